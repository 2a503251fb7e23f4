import Foundation
import PaymentSessions
import TestSupport
import Testing
import TestScheduling

@Suite("payment-sessions processes at once", .ownThreads)
struct CLIConcurrencyTests {
    /// LMDB always; PostgreSQL where a server can be started (or one is required).
    static let backends = PostgresServer.shouldRun ? ["lmdb", "postgresql"] : ["lmdb"]

    @Test(arguments: backends)
    func racingSelectProcessesLeaveOneSelectionPerCart(backend: String) throws {
        let cli = try CLI(postgres: backend == "postgresql")
        var ids: [String] = []
        for cart in ["c1", "c2"] {
            for provider in ["a", "b", "c"] {
                ids.append(try cli.session(["create", "--cart", cart, "--provider", provider]).id)
            }
        }
        // Six processes at a time, each selecting a different session of the same two carts.
        for round in 0..<4 {
            let children = try ids.shuffled().map { id in
                try ChildProcess("payment-sessions", ["select", id, "--store", cli.store])
            }
            for child in children {
                let output = try child.finish()
                #expect(output.status == 0, "round \(round): \(output.stderr)")
            }
            for cart in ["c1", "c2"] {
                guard case .array(let sessions) = try cli.json(["list", "--cart", cart]) else { continue }
                let selected = sessions.filter { $0.objectValue?["is_selected"] == true }
                #expect(selected.count == 1, "round \(round), cart \(cart)")
            }
        }
        if backend == "lmdb" {
            let verify = try cli.run(["verify"])
            #expect(verify.status == 0, "\(verify.stdout)")
        }
    }

    @Test func backupWhileAnotherProcessWritesIsAConsistentStore() throws {
        let cli = CLI()
        try cli.session(["create", "--cart", "seed", "--provider", "p"])
        let writer = try ChildProcess(
            "payment-sessions", ["simulate", "--duration", "3", "--workers", "2", "--carts", "50", "--store", cli.store])
        Thread.sleep(forTimeInterval: 1)
        let copy = cli.directory.appending("backup")
        let backup = try cli.json(["backup", copy])
        #expect(backup.objectValue?["backup"] == .string(copy))
        let simulated = try writer.finish()
        #expect(simulated.status == 0, "\(simulated.stderr)")
        let verify = try cli.run(["verify"], store: copy)
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
        let sessions = try JSONValue(parsing: verify.stdout).objectValue?["sessions"]
        #expect(sessions != nil && sessions != 0)
        // The backup is a usable store: it takes writes.
        #expect(try cli.run(["create", "--cart", "after-restore", "--provider", "p"], store: copy).status == 0)
        let again = try cli.run(["backup", copy])
        #expect(again.status == 4)
    }

    @Test func simulatePrintsItsSummaryAndVerifies() throws {
        let cli = CLI()
        let output = try cli.run(["simulate", "--duration", "1", "--workers", "2", "--carts", "20", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let summary = try #require(try JSONValue(parsing: output.stdout).objectValue)
        #expect(summary["verify"]?.objectValue?["clean"] == true)
        #expect(summary["failures"] == 0)
        let total = summary["operations"]?.objectValue?["total"]?.objectValue
        #expect(total?["count"] != nil && total?["count"] != 0)
        let table = try cli.run(["simulate", "--duration", "0.5", "--workers", "1", "--carts", "5"])
        #expect(table.status == 0)
        #expect(table.stdout.contains("p99 ms"))
        #expect(table.stdout.contains("verify: ok"))
    }
}
