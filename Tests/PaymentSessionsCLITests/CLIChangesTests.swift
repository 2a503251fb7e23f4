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

    @Test(arguments: [false, true])
    func followPrintsEachChangeAsItCommitsIntoAPipe(postgres: Bool) throws {
        if postgres && !PostgresServer.shouldRun { return }
        let cli = try CLI(postgres: postgres)
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

    /// Three `simulate` processes write at once while a fourth follows the feed: the merged
    /// feed is gap-free, replays to exactly the store's sessions, and the follower printed
    /// every change, once, in order.
    @Test(arguments: [false, true])
    func writersInSeveralProcessesMakeOneGapFreeFeedThatAFollowerSeesWhole(postgres: Bool) throws {
        if postgres && !PostgresServer.shouldRun { return }
        let cli = try CLI(postgres: postgres)
        try cli.session(["create", "--cart", "seed", "--provider", "p"])
        let follower = try ChildProcess("payment-sessions", ["changes", "--follow", "--store", cli.store])
        // A follower that stops printing must not hang the test: it is killed after a minute.
        DispatchQueue.global().asyncAfter(deadline: .now() + 60) { Foundation.kill(follower.process.processIdentifier, SIGKILL) }
        let writers = try (0..<3).map { _ in
            try ChildProcess(
                "payment-sessions", ["simulate", "--duration", "2", "--workers", "2", "--carts", "15", "--store", cli.store])
        }
        for writer in writers {
            let output = try writer.finish()
            #expect(output.status == 0, "\(output.stderr)")
        }
        guard case .number(let last)? = try cli.json(["stats"]).objectValue?["changes"]?.objectValue?["last"],
            let total = Int(last.text)
        else {
            Issue.record("stats has no changes.last")
            return
        }
        #expect(total > 100, "the writers made only \(total) changes")
        var followed: [Int] = []
        while followed.last ?? 0 < total, let line = follower.readLine() {
            guard case .number(let number)? = try JSONValue(parsing: line).objectValue?["sequence"], let sequence = Int(number.text)
            else { break }
            followed.append(sequence)
        }
        follower.kill()
        #expect(followed == Array(1...total))
        // The feed replays to the store.
        var replayed: [String: JSONValue] = [:]
        for line in try cli.run(["changes", "--limit", "1000000"]).stdout.split(separator: "\n") {
            let change = try #require(try JSONValue(parsing: String(line)).objectValue)
            guard case .string(let id)? = change["session_id"] else { continue }
            replayed[id] = change["session"] == .null ? nil : change["session"]
        }
        let exported = try cli.snapshot().split(separator: "\n").map { try JSONValue(parsing: String($0)) }
        #expect(replayed.keys.sorted().compactMap { replayed[$0] } == exported)
    }
}
