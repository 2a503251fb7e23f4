import Foundation
import PaymentSessions
import TestSupport
import Testing
import TestScheduling

/// `payment-sessions changes`: the feed as JSON Lines, consumers that resume, and a follower
/// that prints each change as it commits, into a pipe.
@Suite("payment-sessions changes", .ownThreads)
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
            // Written by another process; the follower's line comes as it commits, not when the
            // follower happens to look again much later (the bound is loose: a loaded machine).
            try cli.session(["create", "--cart", "c", "--provider", "p\(round)"])
            let started = Date()
            let line = follower.readLine()
            #expect(line.flatMap { try? JSONValue(parsing: $0).objectValue?["sequence"] } == .number(JSONNumber(round)))
            #expect(Date().timeIntervalSince(started) < 10)
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
        // A follower that stops printing must not hang the test: it is killed after five minutes.
        DispatchQueue.global().asyncAfter(deadline: .now() + 300) { Foundation.kill(follower.pid, SIGKILL) }
        // Rounds of three writers at once until they have made a hundred changes: how many a
        // round makes depends on how loaded the machine is, not on the store.
        var total = 0
        for _ in 0..<20 where total <= 100 {
            let writers = try (0..<3).map { _ in
                try ChildProcess(
                    "payment-sessions", ["simulate", "--duration", "2", "--workers", "2", "--carts", "15", "--store", cli.store])
            }
            for writer in writers {
                let output = try writer.finish()
                #expect(output.status == 0, "\(output.stderr)")
            }
            total = try Self.lastSequence(cli)
        }
        #expect(total > 100, "the writers made only \(total) changes in 20 rounds")
        var followed: [Int] = []
        while followed.last ?? 0 < total, let line = follower.readLine() {
            guard case .number(let number)? = try JSONValue(parsing: line).objectValue?["sequence"], let sequence = Int(number.text)
            else { break }
            followed.append(sequence)
        }
        follower.kill()
        #expect(followed == Array(1...total))
        try Self.expectFeedReplaysToTheStore(cli, total: total)
    }

    /// Writers killed with SIGKILL again and again, mid-commit (and, on PostgreSQL, perhaps
    /// mid-batch of their feed sequencer), leave a feed with no number skipped or repeated,
    /// each session's changes in the order they committed, that replays to exactly the
    /// store's sessions. `FEED_KILL_ROUNDS` sets the rounds (3 by default; more by hand).
    @Test(arguments: [false, true])
    func writersKilledMidCommitLeaveAGapFreeFeedThatReplaysToTheStore(postgres: Bool) async throws {
        if postgres && !PostgresServer.shouldRun { return }
        let cli = try CLI(postgres: postgres)
        try cli.session(["create", "--cart", "seed", "--provider", "p"])
        let rounds = Int(ProcessInfo.processInfo.environment["FEED_KILL_ROUNDS"] ?? "") ?? 3
        var random = SplitMix(seed: 26)
        var lastAfterRound = 1
        for round in 0..<rounds {
            let writers = try (0..<2).map { _ in
                try ChildProcess(
                    "payment-sessions", ["simulate", "--duration", "60", "--workers", "4", "--carts", "10", "--store", cli.store])
            }
            // Until both have written, then a little more, at a random moment.
            let deadline = Date().addingTimeInterval(30)
            while try Self.lastSequence(cli) < lastAfterRound + 50 && Date() < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            try await Task.sleep(for: .milliseconds(Int(random.next() % 500)))
            for writer in writers { writer.kill() }
            let last = try Self.lastSequence(cli)
            #expect(last > lastAfterRound, "round \(round) wrote nothing")
            lastAfterRound = last
        }
        try Self.expectFeedReplaysToTheStore(cli, total: lastAfterRound)
    }

    static func lastSequence(_ cli: CLI) throws -> Int {
        var last: Int?
        if case .number(let number)? = try cli.json(["stats"]).objectValue?["changes"]?.objectValue?["last"] {
            last = Int(number.text)
        }
        return try #require(last, "stats has no changes.last")
    }

    /// The whole feed is numbered 1 to `total`, each session's `updated_at` grows along its
    /// changes, and replaying it gives exactly the sessions `export` prints.
    static func expectFeedReplaysToTheStore(_ cli: CLI, total: Int) throws {
        var replayed: [String: JSONValue] = [:]
        var sequences: [Int] = []
        var updatedAt: [String: String] = [:]
        for line in try cli.run(["changes", "--limit", "1000000"]).stdout.split(separator: "\n") {
            let change = try #require(try JSONValue(parsing: String(line)).objectValue)
            guard case .number(let sequence)? = change["sequence"], case .string(let id)? = change["session_id"] else {
                Issue.record("a change without its sequence or session: \(line)")
                continue
            }
            sequences.append(Int(sequence.text) ?? -1)
            replayed[id] = change["session"] == .null ? nil : change["session"]
            if case .string(let updated)? = change["session"]?.objectValue?["updated_at"] {
                // RFC 3339 times of one zone and precision order as text.
                if let previous = updatedAt[id] { #expect(updated > previous, "change \(sequence.text) of \(id) is out of order") }
                updatedAt[id] = updated
            }
        }
        #expect(sequences == Array(1...total))
        let exported = try cli.snapshot().split(separator: "\n").map { try JSONValue(parsing: String($0)) }
        #expect(replayed.keys.sorted().compactMap { replayed[$0] } == exported)
    }
}
