import Foundation
import PaymentSessions
import TestSupport
import Testing
import TestScheduling

@Suite("payment-sessions subcommands", .ownThreads)
struct CLICommandTests {
    @Test func sessionLifecycleThroughEverySubcommand() throws {
        let cli = CLI()
        let a = try cli.session(["create", "--cart", "cart_1", "--provider", "stripe", "--data", #"{"intent":"pi_1"}"#,
            "--idempotency-key", "idem-1"])
        #expect(a.status == .pending)
        #expect(a.data == ["intent": "pi_1"])
        let b = try cli.session(["create", "--cart", "cart_1", "--provider", "manual", "--select"])
        #expect(b.isSelected)
        #expect(try cli.session(["get", a.id]) == a)
        #expect(try cli.session(["get", "--idempotency-key", "idem-1"]) == a)
        #expect(try cli.session(["selected", "--cart", "cart_1"]) == b)
        let selectedA = try cli.session(["select", a.id])
        #expect(selectedA.isSelected)
        #expect(try cli.session(["get", b.id]).isSelected == false)
        let listed = try cli.json(["list", "--cart", "cart_1"])
        guard case .array(let items) = listed else { Issue.record("not an array"); return }
        #expect(items.count == 2)
        #expect(items.first?.objectValue?["id"] == .string(a.id))
        #expect(try cli.json(["list", "--status", "pending", "--limit", "1"]) == .array([try JSONValue(parsing: selectedA.jsonText())]))
        let updated = try cli.session(["update", a.id, "--status", "authorized", "--data", #"{"intent":"pi_1","ok":true}"#])
        #expect(updated.status == .authorized)
        #expect(updated.data["ok"] == true)
        #expect(updated.paymentAuthorizedAt != nil)
        // An authorized selection cannot be dropped (its hold would be orphaned) until canceled.
        let refused = try cli.run(["deselect", "--cart", "cart_1"])
        #expect(refused.status == 3)
        #expect(errorCode(refused) == "conflict")
        try cli.session(["update", a.id, "--status", "canceled"])
        #expect(try cli.json(["deselect", "--cart", "cart_1"]) == ["cart_id": "cart_1", "deselected": nil])
        #expect(try cli.json(["delete", b.id]) == ["deleted": .string(b.id)])
        let stats = try #require(try cli.json(["stats"]).objectValue)
        #expect(stats["sessions"] == 1)
        #expect(stats["carts"] == 1)
        #expect(stats["selected"] == 0)
        #expect(stats["by_status"]?.objectValue?["canceled"] == 1)
        #expect(stats["file_bytes"] != nil && stats["map_bytes"] != nil)
        #expect(try cli.json(["verify"]) == ["sessions": 1, "problems": [], "legacy_authorized": [], "reservations": 0])
    }

    @Test func versionPrintsTheLibrarysVersion() throws {
        let output = try ChildProcess.run("payment-sessions", ["--version"])
        #expect(output.status == 0)
        #expect(output.stdout == PaymentSessionsVersion.current + "\n")
    }

    @Test func idempotentCreateRepeatsAndConflicts() throws {
        let cli = CLI()
        let first = try cli.session(["create", "--cart", "c", "--provider", "p", "--idempotency-key", "k"])
        #expect(try cli.session(["create", "--cart", "c", "--provider", "p", "--idempotency-key", "k"]) == first)
        let conflict = try cli.run(["create", "--cart", "other", "--provider", "p", "--idempotency-key", "k"])
        #expect(conflict.status == 3)
        #expect(errorCode(conflict) == "conflict")
        #expect(conflict.stdout.isEmpty)
        let duplicate = try cli.run(["create", "--cart", "c", "--provider", "p"])
        #expect(duplicate.status == 3)
    }

    /// Each failure: its code, its exit status, empty stdout, and the store unchanged.
    @Test func everyErrorCodeHasItsExitStatusAndChangesNothing() throws {
        let cli = CLI()
        let s = try cli.session(["create", "--cart", "c", "--provider", "p", "--status", "authorized", "--select"])
        let before = try cli.snapshot()
        let cases: [([String], String, Int32)] = [
            (["get", "ps_01G901XNSRM2YS3ASN9H5KG3FZ"], "not_found", 1),
            (["get", "--idempotency-key", "none"], "not_found", 1),
            (["selected", "--cart", "nobody"], "not_found", 1),
            (["select", "ps_01G901XNSRM2YS3ASN9H5KG3FZ"], "not_found", 1),
            (["delete", "ps_01G901XNSRM2YS3ASN9H5KG3FZ"], "not_found", 1),
            (["get", "bad-id"], "invalid_input", 2),
            (["create", "--cart", "", "--provider", "p"], "invalid_input", 2),
            (["create", "--cart", "c2", "--provider", "p", "--data", "[1]"], "invalid_input", 2),
            (["create", "--cart", "c2", "--provider", "p", "--data", "{bad"], "invalid_input", 2),
            (["create", "--cart", "c2", "--provider", "p", "--status", "paid"], "invalid_input", 2),
            (["update", s.id], "invalid_input", 2),
            (["purge", "--older-than", "soon"], "invalid_input", 2),
            (["import", "-"], "invalid_input", 2),
            (["update", s.id, "--status", "pending"], "invalid_transition", 2),
            (["create", "--cart", "c", "--provider", "p"], "conflict", 3),
        ]
        for (arguments, code, status) in cases {
            let output = try cli.run(arguments, stdin: arguments.first == "import" ? "{\"not\":\"a session\"}\n" : nil)
            #expect(output.status == status, "\(arguments): \(output.stderr)")
            #expect(errorCode(output) == code, "\(arguments): \(output.stderr)")
            #expect(output.stdout.isEmpty, "\(arguments)")
            #expect(try cli.snapshot() == before, "\(arguments) changed the store")
        }
    }

    @Test func storageErrorsExitFour() throws {
        let cli = CLI()
        try cli.session(["create", "--cart", "c", "--provider", "p"])
        // A store directory whose data file is not LMDB.
        let broken = cli.directory.appending("broken")
        try FileManager.default.createDirectory(atPath: broken, withIntermediateDirectories: true)
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: broken + "/data.mdb"))
        let output = try cli.run(["stats"], store: broken)
        #expect(output.status == 4)
        #expect(errorCode(output) == "storage")
    }

    @Test func readCommandsOnAMissingStoreAreNotFoundAndCreateNothing() throws {
        let cli = CLI()
        for arguments in [["get", "ps_01G901XNSRM2YS3ASN9H5KG3FZ"], ["list"], ["export"], ["verify"], ["stats"],
            ["selected", "--cart", "c"], ["backup", cli.directory.appending("copy")]]
        {
            let output = try cli.run(arguments)
            #expect(output.status == 1, "\(arguments)")
            #expect(errorCode(output) == "not_found", "\(arguments)")
        }
        #expect(!FileManager.default.fileExists(atPath: cli.store))
    }

    @Test func storeComesFromTheEnvironmentWhenNotGiven() throws {
        let directory = TemporaryDirectory(prefix: "cli-env")
        let output = try ChildProcess.run(
            "payment-sessions", ["create", "--cart", "c", "--provider", "p"],
            environment: ["PAYMENT_SESSIONS_STORE": directory.appending("from-env")])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(FileManager.default.fileExists(atPath: directory.appending("from-env/data.mdb")))
    }

    @Test func exportImportRoundTripKeepsEverything() throws {
        let source = CLI()
        for i in 0..<5 {
            let s = try source.session(["create", "--cart", "cart_\(i % 2)", "--provider", "p\(i)", "--idempotency-key", "k\(i)"])
            if i == 3 { try source.session(["select", s.id]) }
            if i == 4 { try source.session(["update", s.id, "--status", "canceled"]) }
        }
        let exported = try source.snapshot()
        #expect(exported.split(separator: "\n").count == 5)
        let target = CLI()
        let file = target.directory.appending("sessions.jsonl")
        try exported.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try target.json(["import", file]) == ["imported": 5])
        #expect(try target.snapshot() == exported)
        let viaStdin = CLI()
        #expect(try viaStdin.run(["import"], stdin: exported).stdout == "{\"imported\":5}\n")
        // Importing again collides and imports nothing.
        let again = try target.run(["import", file])
        #expect(again.status == 3)
        #expect(try target.snapshot() == exported)
    }

    @Test func purgeDeletesOldSessionsByStatus() throws {
        let cli = CLI()
        let s = try cli.session(["create", "--cart", "c", "--provider", "p", "--status", "canceled"])
        try cli.session(["create", "--cart", "c", "--provider", "q"])
        #expect(try cli.json(["purge", "--older-than", "1h"]) == ["purged": 0, "kept_authorized": 0, "reservations_dropped": 0, "changes_trimmed": 0])
        #expect(try cli.json(["purge", "--older-than", "0s", "--status", "canceled"]) == ["purged": 1, "kept_authorized": 0, "reservations_dropped": 0, "changes_trimmed": 0])
        #expect(try cli.run(["get", s.id]).status == 1)
        #expect(try cli.json(["purge", "--older-than", "0s"]) == ["purged": 1, "kept_authorized": 0, "reservations_dropped": 0, "changes_trimmed": 0])
    }

    @Test func helpIsThereForEverySubcommand() throws {
        let cli = CLI()
        let top = try ChildProcess.run("payment-sessions", ["--help"])
        #expect(top.status == 0)
        for name in ["create", "get", "list", "selected", "select", "deselect", "update", "delete", "export", "import",
            "verify", "stats", "backup", "purge", "simulate"]
        {
            #expect(top.stdout.contains(name), "\(name) missing from --help")
            let help = try ChildProcess.run("payment-sessions", [name, "--help"])
            #expect(help.status == 0, "\(name) --help")
            #expect(help.stdout.contains("--store"), "\(name) --help lacks --store")
        }
        _ = cli
    }
}
