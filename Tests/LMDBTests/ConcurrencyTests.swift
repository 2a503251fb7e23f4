import Foundation
import LMDB
import TestSupport
import Testing
import TestScheduling

@Suite("Threads and processes", .ownThreads)
struct ConcurrencyTests {
    @Test func readersOnManyThreadsSeeConsistentSnapshotsWhileOneWrites() throws {
        let f = try Fixture()
        try f.env.write { txn throws in
            try txn.put("0", forKey: "a", in: f.db)
            try txn.put("0", forKey: "b", in: f.db)
        }
        let writes = 500
        let failures = Counter()
        let reads = Counter()
        let done = Flag()
        let group = DispatchGroup()
        for _ in 0..<4 {
            group.enter()
            Thread {
                defer { group.leave() }
                while !done.value {
                    do {
                        try f.env.read { txn throws in
                            // a and b are always written together: any snapshot agrees.
                            if try txn.get("a", in: f.db) != txn.get("b", in: f.db) { failures.add() }
                        }
                        reads.add()
                    } catch { failures.add() }
                }
            }.start()
        }
        for i in 1...writes {
            try f.env.write { txn throws in
                try txn.put("\(i)", forKey: "a", in: f.db)
                try txn.put("\(i)", forKey: "b", in: f.db)
            }
        }
        done.set()
        group.wait()
        #expect(failures.value == 0)
        #expect(reads.value > 0)
        #expect(string(try f.env.read { try $0.get("a", in: f.db) }) == "\(writes)")
    }

    @Test func writersOnManyThreadsAreSerialised() throws {
        let f = try Fixture()
        let group = DispatchGroup()
        for t in 0..<4 {
            group.enter()
            Thread {
                defer { group.leave() }
                for i in 0..<100 {
                    try? f.env.write { txn throws in
                        let count = try txn.get("counter", in: f.db).map { Int(string($0)!)! } ?? 0
                        try txn.put("\(count + 1)", forKey: "counter", in: f.db)
                        try txn.put("x", forKey: "t\(t)-\(i)", in: f.db)
                    }
                }
            }.start()
        }
        group.wait()
        try f.env.read { txn throws in
            #expect(string(try txn.get("counter", in: f.db)) == "400")
            #expect(try txn.count(in: f.db) == 401)
        }
    }

    @Test func aSecondProcessSeesCommittedDataAndWritesBack() throws {
        let f = try Fixture()
        try f.env.write { try $0.put("from parent", forKey: "k", in: f.db) }
        let read = try ChildProcess.run("LMDBProbe", ["get", f.directory.path, "test", "k"])
        #expect(read.status == 0, "\(read.stderr)")
        #expect(read.stdout == "from parent\n")
        let write = try ChildProcess.run("LMDBProbe", ["put", f.directory.path, "test", "k2", "from child"])
        #expect(write.status == 0, "\(write.stderr)")
        #expect(string(try f.env.read { try $0.get("k2", in: f.db) }) == "from child")
    }

    @Test func aWriterKilledWhileHoldingTheLockDoesNotBlockOthers() throws {
        let f = try Fixture()
        let child = try ChildProcess("LMDBProbe", ["hold-write", f.directory.path, "test", "ghost"])
        #expect(child.readLine() == "holding")
        child.kill()
        // LMDB's writer lock is a robust mutex: the next writer recovers it.
        try f.env.write { try $0.put("alive", forKey: "after", in: f.db) }
        try f.env.read { txn throws in
            #expect(try txn.get("ghost", in: f.db) == nil)
            #expect(string(try txn.get("after", in: f.db)) == "alive")
        }
    }

    @Test func staleReaderSlotsOfDeadProcessesAreCleared() throws {
        let f = try Fixture()
        let child = try ChildProcess("LMDBProbe", ["hold-read", f.directory.path])
        #expect(child.readLine() == "reading")
        child.kill()
        #expect(try f.env.clearStaleReaders() == 1)
        #expect(try f.env.clearStaleReaders() == 0)
    }

    @Test func aMapGrownByAnotherProcessIsAdopted() throws {
        let f = try Fixture { $0.mapSize = 1 << 20 }
        let fill = try ChildProcess.run("LMDBProbe", ["fill", f.directory.path, "test", "400", "16384"])
        #expect(fill.status == 0, "\(fill.stderr)")
        let childMap = Int(fill.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(childMap > 1 << 20)
        #expect(try f.env.read { try $0.count(in: f.db) } == 400)
        #expect((try f.env.info()).mapSize >= childMap)
        try f.env.write { try $0.put("parent", forKey: "after-growth", in: f.db) }
    }
}
