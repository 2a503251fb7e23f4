import Foundation
import LMDB
import TestSupport
import Testing
import TestScheduling

/// Long operations (walks, copies, a writer waiting for another process) must not hold
/// the environment's gate, or a map growth in this process stalls for `growthTimeout`
/// and then fails with `mapFull`.
@Suite("Long operations and map growth", .ownThreads)
struct LongOperationTests {
    static let value = [UInt8](repeating: 0xC3, count: 16 << 10)

    /// A walk that takes three seconds (a slow consumer) while writes need the map to grow
    /// several times; growth may wait at most two seconds for the walk.
    @Test func aSlowWalkDoesNotHoldBackMapGrowth() throws {
        let f = try Fixture {
            $0.mapSize = 1 << 20
            $0.growthTimeout = .seconds(2)
        }
        try f.env.write { txn in
            for i in 0..<1500 { try txn.put("v", forKey: String(format: "a%05d", i), in: f.db) }
        }
        let walking = DispatchSemaphore(value: 0)
        let walked = Counter()
        let walker = Thread {
            try? f.env.read { txn in
                try txn.forEach(in: f.db) { _, _ in
                    if walked.value == 0 { walking.signal() }
                    walked.add()
                    usleep(2000)
                    return true
                }
            }
        }
        walker.start()
        walking.wait()
        for batch in 0..<16 {
            try f.env.write { txn in
                for i in 0..<16 { try txn.put(Self.value, forKey: "b\(batch)-\(i)", in: f.db) }
            }
        }
        #expect(walked.value < 1500, "the writes finished only after the walk: growth waited for it")
        #expect((try f.env.info()).mapSize >= 4 << 20)
    }

    /// A thread of this process waits for the writer lock that another process holds;
    /// meanwhile a reader must adopt a map that a third process grew. The waiting writer
    /// is not inside the gate, so the adoption does not wait for it.
    @Test func aWriterWaitingForAnotherProcessDoesNotStallAdoptingAGrownMap() throws {
        let f = try Fixture {
            $0.mapSize = 1 << 20
            $0.growthTimeout = .seconds(2)
        }
        try f.env.write { try $0.put("here", forKey: "first", in: f.db) }
        let fill = try ChildProcess.run("LMDBProbe", ["fill", f.directory.path, "test", "200", "16384"])
        #expect(fill.status == 0, "\(fill.stderr)")
        let holder = try ChildProcess("LMDBProbe", ["hold-write", f.directory.path, "test", "ghost"])
        #expect(holder.readLine() == "holding")
        let writerDone = DispatchSemaphore(value: 0)
        Thread {
            try? f.env.write { try $0.put("late", forKey: "waited", in: f.db) }
            writerDone.signal()
        }.start()
        usleep(200_000)  // the writer is now waiting for the other process
        let start = ContinuousClock.now
        let count = try f.env.read { try $0.count(in: f.db) }
        let elapsed = ContinuousClock.now - start
        #expect(count == 201)
        #expect(elapsed < .seconds(1), "the read waited \(elapsed) for the adoption")
        holder.kill()
        #expect(writerDone.wait(timeout: .now() + 10) == .success)
    }

    /// One thread inside a write asks for a database it has open; another waits for the
    /// writer lock to open a new one. The cache lookup must not wait for that opener.
    @Test func askingForAnOpenDatabaseInsideAWriteDoesNotDeadlockAgainstAnOpener() throws {
        let f = try Fixture()
        let inside = DispatchSemaphore(value: 0)
        let proceed = DispatchSemaphore(value: 0)
        let done = DispatchGroup()
        let failures = Counter()
        done.enter()
        Thread {
            do {
                try f.env.write { txn in
                    inside.signal()
                    proceed.wait()
                    let same = try f.env.database(named: "test")
                    try txn.put("x", forKey: "k", in: same)
                }
            } catch {
                failures.add()
            }
            done.leave()
        }.start()
        inside.wait()
        done.enter()
        Thread {
            if (try? f.env.database(named: "other")) == nil { failures.add() }
            done.leave()
        }.start()
        usleep(200_000)  // the opener now waits for the writer
        proceed.signal()
        #expect(done.wait(timeout: .now() + 10) == .success, "deadlock")
        #expect(failures.value == 0)
    }

    /// Copies taken while a writer commits and grows the map are each a complete store as
    /// of one commit: keys 0..<n for some n, every value intact; the file is 0600.
    @Test func onlineCopiesAreConsistentWhileWritersGrowTheMap() throws {
        let f = try Fixture {
            $0.mapSize = 1 << 20
            $0.durability = .noSync
        }
        let stop = Flag()
        let committed = Counter()
        // Bounded (10,000 values of 2 KiB), so that a copy that falls behind cannot make the
        // writer fill the disk.
        let writer = Thread {
            var next = 0
            while !stop.value && next < 10_000 {
                try? f.env.write { txn in
                    for i in next..<(next + 8) { try txn.put(Self.payload(i), forKey: Self.key(i), in: f.db) }
                }
                next += 8
                committed.add()
            }
        }
        writer.start()
        defer { stop.set() }
        let copies = TemporaryDirectory(prefix: "copies")
        for round in 0..<8 {
            usleep(30_000)
            let destination = copies.appending("copy\(round)/nested")
            try f.env.copy(to: destination)
            try Self.checkCopy(at: destination)
        }
        stop.set()
        #expect(committed.value > 8)
        #expect((try f.env.info()).mapSize > 1 << 20)
    }

    @Test func aCompactCopyIsAStoreToo() throws {
        let f = try Fixture()
        try f.env.write { txn in
            for i in 0..<100 { try txn.put(Self.payload(i), forKey: Self.key(i), in: f.db) }
        }
        let copies = TemporaryDirectory(prefix: "compact")
        try f.env.copy(to: copies.path + "/c", compact: true)
        try Self.checkCopy(at: copies.path + "/c", atLeast: 100)
    }

    @Test func aCopyRefusesADestinationThatHoldsAStore() throws {
        let f = try Fixture()
        try f.env.write { try $0.put("v", forKey: "k", in: f.db) }
        let copies = TemporaryDirectory(prefix: "refused")
        try f.env.copy(to: copies.path)
        #expect(throwsLMDB({ $0 == .system(errno: EEXIST) }) { try f.env.copy(to: copies.path) })
        try Self.checkCopy(at: copies.path, atLeast: 0)
    }

    static func key(_ i: Int) -> String { String(format: "k%08d", i) }
    static func payload(_ i: Int) -> [UInt8] { [UInt8](repeating: UInt8(i % 251), count: 2048) }

    /// Opens the copy and checks that it holds keys 0..<n with intact values, and that
    /// its file is 0600.
    static func checkCopy(at path: String, atLeast minimum: Int = 0) throws {
        var status = stat()
        #expect(stat(path + "/data.mdb", &status) == 0)
        #expect(status.st_mode & 0o777 == 0o600, "data.mdb mode \(String(status.st_mode & 0o777, radix: 8))")
        #expect(stat(path, &status) == 0)
        let env = try Environment.open(path: path)
        let db = try env.database(named: "test", create: false)
        let entries = try env.read { try $0.entries(in: db) }
        #expect(entries.count >= minimum)
        for (index, entry) in entries.enumerated() where entry.key != Array("k".utf8) {
            #expect(entry.key == Array(key(index).utf8), "copy has a gap at \(index)")
            #expect(entry.value == payload(index), "copy's value \(index) differs")
            if entry.key != Array(key(index).utf8) || entry.value != payload(index) { break }
        }
    }
}
