import Foundation
import LMDB
import TestSupport
import Synchronization
import Testing
import TestScheduling

/// The writer lock and opening databases: what must hold whatever the interleaving.
@Suite("Writer lock and database handles", .ownThreads)
struct WriterLockTests {
    /// After an operating-system crash, `writer.lock` may still say "locked" by a thread
    /// that no longer exists (its robust-list cleanup never ran). The first process to open
    /// the store initialises the lock again, so writes do not hang.
    @Test func aLockLeftLockedByACrashedSystemIsResetByTheFirstOpener() throws {
        let directory = TemporaryDirectory(prefix: "stale-lock")
        do {
            let env = try Environment.open(path: directory.path)
            let db = try env.database(named: "test")
            try env.write { try $0.put("v", forKey: "k", in: db) }
        }
        // "After a crash" means nobody has the file open. A child that another test's thread
        // is spawning right now may still share this process's descriptor of it until its
        // exec closes it, and would make the next opener believe it is not the first.
        try waitUntilNobodyHolds(directory.path + "/writer.lock")
        // The mutex's lock word (its first four bytes, at offset 64) as a crash leaves it:
        // owned by a thread id no process has.
        let handle = try #require(FileHandle(forUpdatingAtPath: directory.path + "/writer.lock"))
        try handle.seek(toOffset: 64)
        try handle.write(contentsOf: withUnsafeBytes(of: UInt32(0x3FFF_FFF0).littleEndian) { Data($0) })
        try handle.close()
        let done = DispatchSemaphore(value: 0)
        let failure = Mutex<String?>(nil)
        Thread {
            do {
                let env = try Environment.open(path: directory.path)
                let db = try env.database(named: "test")
                try env.write { try $0.put("after", forKey: "k", in: db) }
            } catch {
                failure.withLock { $0 = "\(error)" }
            }
            done.signal()
        }.start()
        #expect(done.wait(timeout: .now() + 10) == .success, "the write waited for a lock nobody holds")
        #expect(failure.withLock { $0 } == nil)
    }

    /// Waits until an exclusive `flock` of `path` succeeds: no open file description of it
    /// is left in any process.
    private func waitUntilNobodyHolds(_ path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        try #require(descriptor >= 0, "open(\(path)): errno \(errno)")
        defer { close(descriptor) }
        let deadline = ContinuousClock.now + .seconds(30)
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            try #require(ContinuousClock.now < deadline, "\(path) is still held by another open file 30 s after the store closed")
            usleep(1_000)
        }
        flock(descriptor, LOCK_UN)
    }

    /// Threads opening different new databases at once get different handles (liblmdb
    /// numbers a new handle from the count at its transaction's begin, so openers must not
    /// overlap).
    @Test func concurrentOpensOfDifferentDatabasesGetDifferentHandles() throws {
        let f = try Fixture { $0.maxDatabases = 200 }
        for round in 0..<30 {
            let names = (0..<4).map { "r\(round)-\($0)" }
            let handles = Mutex<[String: Database]>([:])
            DispatchQueue.concurrentPerform(iterations: names.count) { index in
                do {
                    let db = try f.env.database(named: names[index])
                    handles.withLock { $0[names[index]] = db }
                } catch {
                    Issue.record("opening \(names[index]): \(error)")
                }
            }
            let opened = handles.withLock { $0 }
            #expect(opened.count == names.count)
            try f.env.write { txn in
                for (name, db) in opened { try txn.put(name, forKey: "name", in: db) }
            }
            for (name, db) in opened {
                #expect(string(try f.env.read { try $0.get("name", in: db) }) == name, "round \(round): \(name) shares a handle")
            }
        }
    }

    /// Beginning a write (or opening a database) while this thread pins the map in a
    /// cursor or value closure is refused: it could wait for a writer that waits for a map
    /// growth that waits for this thread.
    @Test func aWriteInsideACursorClosureIsRefused() throws {
        let f = try Fixture()
        try f.env.write { try $0.put("v", forKey: "k", in: f.db) }
        try f.env.read { txn in
            try txn.withCursor(on: f.db) { _ in
                #expect(throwsLMDB({ if case .transactionNotUsable = $0 { true } else { false } }) {
                    try f.env.write { try $0.put("w", forKey: "k2", in: f.db) }
                })
                #expect(throwsLMDB({ if case .transactionNotUsable = $0 { true } else { false } }) {
                    _ = try f.env.database(named: "new-inside")
                })
            }
        }
        try f.env.write { try $0.put("w", forKey: "k2", in: f.db) }
    }
}
