import Foundation
import PaymentSessions
import TestSupport
import Testing

/// `payment-sessions changes`: the feed as JSON Lines, consumers that resume, and a follower
/// that prints each change as it commits, into a pipe.
@Suite("payment-sessions changes")
struct CLIChangesTests {
    static func sequences(_ output: ChildProcess.Output) -> [Int] {
        output.stdout.split(separator: "\n").compactMap { line in
            guard case .number(let number)? = try? JSONValue(parsing: String(line)).objectValue?["sequence"] else { return nil }
            return Int(number.text)
        }
    }

    @Test(arguments: [false, true])
    func changesPrintsTheFeedAndAConsumerResumesWhereItLeftOff(postgres: Bool) throws {
        if postgres && !PostgresServer.shouldRun { return }
        let cli = try CLI(postgres: postgres)
        let a = try cli.session(["create", "--cart", "c", "--provider", "a", "--select"])
        let b = try cli.session(["create", "--cart", "c", "--provider", "b"])
        try cli.session(["select", b.id])
        let all = try cli.run(["changes"])
        #expect(all.status == 0 && Self.sequences(all) == [1, 2, 3, 4], "\(all.stderr)")
        let first = try #require(try JSONValue(parsing: String(all.stdout.split(separator: "\n")[0])).objectValue)
        #expect(first["kind"] == "created" && first["session_id"] == .string(a.id) && first["status_before"] == .null)
        #expect(Self.sequences(try cli.run(["changes", "--after", "2"])) == [3, 4])
        #expect(Self.sequences(try cli.run(["changes", "--consumer", "hooks", "--limit", "3"])) == [1, 2, 3])
        #expect(Self.sequences(try cli.run(["changes", "--consumer", "hooks"])) == [4])
        #expect(Self.sequences(try cli.run(["changes", "--consumer", "hooks"])) == [])
        let stats = try #require(try cli.json(["stats"]).objectValue?["changes"]?.objectValue)
        #expect(stats["first"] == 1 && stats["last"] == 4 && stats["consumers"] == ["hooks": 4])
        let past = try cli.run(["changes", "--after", "9"])
        #expect(past.status == 2 && errorCode(past) == "invalid_input")
    }

    @Test func followPrintsEachChangeAsItCommitsIntoAPipe() throws {
        let cli = CLI()
        try cli.session(["create", "--cart", "c", "--provider", "first"])
        let follower = try ChildProcess("payment-sessions", ["changes", "--follow", "--store", cli.store])
        defer { follower.kill() }
        #expect(follower.readLine().flatMap { try? JSONValue(parsing: $0).objectValue?["sequence"] } == 1)
        for round in 2...4 {
            // Written by another process; the follower's line comes within its poll interval.
            try cli.session(["create", "--cart", "c", "--provider", "p\(round)"])
            let started = Date()
            let line = follower.readLine()
            #expect(line.flatMap { try? JSONValue(parsing: $0).objectValue?["sequence"] } == .number(JSONNumber(round)))
            #expect(Date().timeIntervalSince(started) < 1)
        }
    }
}
