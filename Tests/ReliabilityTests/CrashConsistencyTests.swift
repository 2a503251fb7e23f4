import Foundation
import PaymentSessions
import TestSupport
import Testing
import TestScheduling
import LMDB

/// A child writes at random (on one thread, or on four whose writes share commits) and
/// acknowledges each commit on stdout; the parent kills it
/// with SIGKILL at random moments and checks that every acknowledged change survived,
/// no transaction is half visible, the change feed replays to exactly the sessions there,
/// and `verify()` is clean.
// One durability at a time: each case keeps a core busy checking the store after every
// kill, and three at once starved the other suites' tasks (PostgreSQL's, which have deadlines).
@Suite("Crash consistency (SIGKILL)", .serialized, .ownThreads)
struct CrashConsistencyTests {
    /// Kills per durability mode; `CRASH_ITERATIONS` raises it for a long local run.
    static let iterations = Int(ProcessInfo.processInfo.environment["CRASH_ITERATIONS"] ?? "") ?? 60

    /// What the children promised, accumulated over every run.
    struct Promises {
        var created: [String: (txn: String, size: Int)] = [:]
        var authorized: Set<String> = []
        var deleted: Set<String> = []
        /// Deletes begun but not acknowledged: the session may be there or not.
        var maybeDeleted: Set<String> = []

        /// Reads a child's lines; returns how many acknowledge a commit (`C`, `U`, `D`),
        /// leaving out `d`, which only announces a delete the child is about to make.
        @discardableResult
        mutating func read(_ stdout: String, tag: String) -> Int {
            var acknowledgements = 0
            for line in stdout.split(separator: "\n") {
                if line.hasPrefix("C ") || line.hasPrefix("U ") || line.hasPrefix("D ") { acknowledgements += 1 }
                let parts = line.split(separator: " ").map(String.init)
                switch parts.first {
                case "C"?:
                    guard parts.count >= 4, let size = Int(parts[2]) else { continue }
                    for id in parts[3...] { created[id] = ("\(tag)-\(parts[1])", size) }
                case "U"? where parts.count == 2: authorized.insert(parts[1])
                case "d"? where parts.count == 2: maybeDeleted.insert(parts[1])
                case "D"? where parts.count == 2:
                    deleted.insert(parts[1])
                    maybeDeleted.remove(parts[1])
                default: Issue.record("unreadable ack line \(line)")
                }
            }
            return acknowledgements
        }
    }

    @Test(arguments: [PaymentSessionStore.Durability.full, .noMetaSync, .noSync])
    func killedWritersLoseNothingAcknowledged(durability: PaymentSessionStore.Durability) async throws {
        let directory = TemporaryDirectory(prefix: "crash")
        let path = directory.appending("store")
        // The store exists before the first child: one killed before it got as far as
        // creating it (a loaded machine) would otherwise leave nothing to check.
        _ = try PaymentSessionStore(path: path)
        var promises = Promises()
        var acknowledged = 0
        for run in 0..<Self.iterations {
            let tag = "r\(run)"
            // Every other child writes on 4 threads, whose synchronous writes share commits.
            let threads = run % 2 == 0 ? 1 : 4
            let child = try ChildProcess("StoreTorture", ["crash", path, tag, durability.rawValue, "\(threads)"])
            // Half the children are killed only after their first acknowledged commit, so that
            // every durability mode is cut short mid-work whatever the machine's load (on a
            // loaded machine a child killed at random was often still starting: CI once saw 57
            // commits acknowledged in 60 durable runs); the others may die anywhere, starting
            // up included.
            var firstLine = ""
            if run % 4 >= 2 {
                guard let line = child.readLine() else {
                    Issue.record("child \(tag) ended before its first commit: \(try child.finish().stderr)")
                    continue
                }
                firstLine = line + "\n"
            }
            // Sleeping, not blocking, for the rest of the wait: the suite's threads are its own,
            // but the kills must land at random moments.
            try await Task.sleep(for: .microseconds(Int.random(in: 20_000...120_000)))
            child.kill()
            let output = try child.finish()
            #expect(output.killedBySignal, "child exited by itself: \(output.stderr)")
            acknowledged += promises.read(firstLine + output.stdout, tag: tag)
            try check(path, promises)
            await Task.yield()
        }
        // Not vacuous: the children really committed (each waited-for child at least once)
        // and were really cut short (each killed by the signal, checked above).
        #expect(acknowledged >= Self.iterations / 2, "only \(acknowledged) acknowledged commits")
        print("crash consistency (\(durability)): \(Self.iterations) kills, \(acknowledged) acknowledged commits checked")
    }

    func check(_ path: String, _ promises: Promises) throws {
        var options = PaymentSessionStore.Options()
        options.createIfMissing = false
        let store = try PaymentSessionStore(path: path, options: options)
        let report = try store.verify()
        #expect(report.isClean, "\(report.problems)")
        let all = try store.sessions(limit: 1_000_000)
        let byID = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0) })
        for (id, _) in promises.created where !promises.deleted.contains(id) && !promises.maybeDeleted.contains(id) {
            guard let session = byID[id] else {
                Issue.record("acknowledged session \(id) is missing")
                continue
            }
            if promises.authorized.contains(id) { #expect(session.status == .authorized, "\(id)") }
        }
        for id in promises.deleted { #expect(byID[id] == nil, "acknowledged delete of \(id) undone") }
        // The change feed and the sessions are one fact: replayed, the feed rebuilds exactly
        // the sessions that survived (no change without its write, no write without its
        // change), and its numbers have no gap.
        let changes = try store.changes(after: 0, limit: 10_000_000)
        #expect(changes.map(\.sequence) == Array(stride(from: 1, through: Int64(changes.count), by: 1)))
        var replayed: [String: PaymentSession] = [:]
        for change in changes { replayed[change.sessionID] = change.session }
        #expect(replayed.values.sorted { $0.id < $1.id } == all, "the feed does not replay to the store")
        // Atomicity: every transaction is wholly there, less what was deleted afterwards.
        var present: [String: Int] = [:]
        var sizes: [String: Int] = [:]
        for session in all {
            guard case .number(let txn)? = session.data["txn"], case .number(let size)? = session.data["size"] else { continue }
            let key = "\(session.cartID.split(separator: "-").first ?? "")-\(txn.text)"
            present[key, default: 0] += 1
            sizes[key] = Int(size.text)
        }
        let gone = promises.deleted.union(promises.maybeDeleted.filter { byID[$0] == nil })
        let deletedPerTxn = gone.reduce(into: [String: Int]()) { counts, id in
            if let txn = promises.created[id]?.txn { counts[txn, default: 0] += 1 }
        }
        for (key, count) in present {
            let expected = (sizes[key] ?? 0) - (deletedPerTxn[key] ?? 0)
            #expect(count == expected, "transaction \(key): \(count) of \(expected) sessions visible")
        }
    }
}
