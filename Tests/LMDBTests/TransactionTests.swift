import Foundation
import LMDB
import Synchronization
import Testing
import TestScheduling

@Suite("Transactions", .ownThreads)
struct TransactionTests {
    @Test func commitMakesDataVisibleToLaterReaders() throws {
        let f = try Fixture()
        try f.env.write { try $0.put("v1", forKey: "k", in: f.db) }
        #expect(string(try f.env.read { try $0.get("k", in: f.db) }) == "v1")
    }

    @Test func thrownErrorAbortsEverything() throws {
        struct Boom: Error {}
        let f = try Fixture()
        #expect(throws: Boom.self) {
            try f.env.write { txn throws in
                try txn.put("a", forKey: "k1", in: f.db)
                try txn.put("b", forKey: "k2", in: f.db)
                throw Boom()
            }
        }
        try f.env.read { txn throws in
            #expect(try txn.get("k1", in: f.db) == nil)
            #expect(try txn.count(in: f.db) == 0)
        }
    }

    @Test func readerKeepsItsSnapshotAcrossALaterCommit() throws {
        let f = try Fixture()
        try f.env.write { try $0.put("old", forKey: "k", in: f.db) }
        try f.env.read { snapshot throws in
            try f.env.write { try $0.put("new", forKey: "k", in: f.db) }
            #expect(string(try snapshot.get("k", in: f.db)) == "old")
            #expect(string(try f.env.read { try $0.get("k", in: f.db) }) == "new")
        }
    }

    @Test func writeSeesItsOwnUncommittedChanges() throws {
        let f = try Fixture()
        try f.env.write { txn throws in
            try txn.put("v", forKey: "k", in: f.db)
            #expect(string(try txn.get("k", in: f.db)) == "v")
            #expect(try txn.delete("k", in: f.db))
            #expect(try !txn.delete("k", in: f.db))
            #expect(try !txn.contains("k", in: f.db))
        }
    }

    @Test func noOverwriteRefusesAnExistingKeyAndKeepsTheOldValue() throws {
        let f = try Fixture()
        try f.env.write { try $0.put("first", forKey: "k", in: f.db) }
        #expect(throwsLMDB({ $0 == .keyExists }) {
            try f.env.write { try $0.put("second", forKey: "k", in: f.db, overwrite: false) }
        })
        #expect(string(try f.env.read { try $0.get("k", in: f.db) }) == "first")
    }

    @Test func insertStoresANewKeyAndHandsBackTheValueOfAnExistingOne() throws {
        let f = try Fixture()
        let (first, second, empty): (String?, String?, String?) = try f.env.write { txn in
            let decode = { (bytes: UnsafeRawBufferPointer) in String(decoding: bytes, as: UTF8.self) }
            let first = try txn.insert("first", forKey: "k", in: f.db, existing: decode)
            let second = try txn.insert("second", forKey: "k", in: f.db, existing: decode)
            let empty = try? txn.insert("x", forKey: "", in: f.db, existing: decode)
            return (first, second, empty)
        }
        #expect(first == nil)
        #expect(second == "first")
        #expect(empty == nil)
        #expect(string(try f.env.read { try $0.get("k", in: f.db) }) == "first")
        #expect(throwsLMDB({ if case .invalidKeySize = $0 { true } else { false } }) {
            try f.env.write { _ = try $0.insert("x", forKey: "", in: f.db) { _ in () } }
        })
    }

    @Test func reservedPutWritesInPlace() throws {
        let f = try Fixture()
        try f.env.write { txn throws in
            try txn.put(reservingCount: 4, forKey: "k", in: f.db) { buffer in
                buffer.copyBytes(from: [1, 2, 3, 4])
            }
        }
        #expect(try f.env.read { try $0.get("k", in: f.db) } == [1, 2, 3, 4])
    }

    @Test func nestedTransactionRollsBackOnlyItsOwnChanges() throws {
        struct Boom: Error {}
        let f = try Fixture()
        try f.env.write { txn throws in
            try txn.put("outer", forKey: "a", in: f.db)
            #expect(throws: Boom.self) {
                try txn.nested { child throws in
                    try child.put("inner", forKey: "b", in: f.db)
                    try child.put("changed", forKey: "a", in: f.db)
                    throw Boom()
                }
            }
            try txn.nested { child in try child.put("kept", forKey: "c", in: f.db) }
        }
        try f.env.read { txn throws in
            #expect(string(try txn.get("a", in: f.db)) == "outer")
            #expect(try txn.get("b", in: f.db) == nil)
            #expect(string(try txn.get("c", in: f.db)) == "kept")
        }
    }

    @Test func parentIsUnusableWhileANestedTransactionIsLive() throws {
        let f = try Fixture()
        try f.env.write { txn throws in
            try txn.nested { _ throws in
                #expect(throwsLMDB({ if case .transactionNotUsable = $0 { true } else { false } }) {
                    try txn.put("x", forKey: "k", in: f.db)
                })
            }
        }
    }

    @Test func transactionUsedAfterItsClosureThrowsInsteadOfCrashing() throws {
        let f = try Fixture()
        var escapedWrite: WriteTransaction?
        var escapedRead: ReadTransaction?
        try f.env.write { escapedWrite = $0 }
        try f.env.read { escapedRead = $0 }
        let notUsable: (LMDBError.Code) -> Bool = { if case .transactionNotUsable = $0 { true } else { false } }
        #expect(throwsLMDB(notUsable) { try escapedWrite?.put("v", forKey: "k", in: f.db) })
        #expect(throwsLMDB(notUsable) { _ = try escapedRead?.get("k", in: f.db) })
    }

    @Test func writeTransactionRefusesUseFromAnotherThread() throws {
        let f = try Fixture()
        try f.env.write { txn throws in
            nonisolated(unsafe) let smuggled = txn
            nonisolated(unsafe) var failedWith: LMDBError.Code?
            let done = DispatchSemaphore(value: 0)
            Thread {
                do { try smuggled.put("v", forKey: "k", in: f.db) } catch let error as LMDBError {
                    failedWith = error.code
                } catch {}
                done.signal()
            }.start()
            done.wait()
            if case .transactionNotUsable = failedWith {} else { Issue.record("expected transactionNotUsable, got \(String(describing: failedWith))") }
        }
        #expect(try f.env.read { try $0.get("k", in: f.db) } == nil)
    }

    @Test func nestedWriteOnTheSameThreadFailsInsteadOfDeadlocking() throws {
        let f = try Fixture()
        try f.env.write { _ throws in
            #expect(throwsLMDB({ $0 == .nestedWriteTransaction }) {
                try f.env.write { try $0.put("v", forKey: "k", in: f.db) }
            })
        }
    }

    @Test func cursorUsedAfterItsClosureThrows() throws {
        let f = try Fixture()
        try f.env.write { try $0.put("v", forKey: "k", in: f.db) }
        try f.env.read { txn throws in
            var escaped: Cursor?
            try txn.withCursor(on: f.db) { escaped = $0 }
            #expect(throwsLMDB({ if case .transactionNotUsable = $0 { true } else { false } }) {
                try escaped?.first()
            })
        }
    }
}

@Suite("One-shot reads", .ownThreads)
struct OneShotReadTests {
    @Test func eachCallSeesTheLatestCommitWhileAnOlderSnapshotKeepsItsOwn() throws {
        let f = try Fixture()
        try f.env.write { try $0.put("0", forKey: "k", in: f.db) }
        try f.env.read { snapshot throws in
            // Far more calls than the pool keeps: reused transactions must be renewed
            // on the newest snapshot every time.
            for value in 1...200 {
                try f.env.write { try $0.put("\(value)", forKey: "k", in: f.db) }
                let seen = try f.env.value(forKey: "k", in: f.db) { String(decoding: $0, as: UTF8.self) }
                #expect(seen == "\(value)")
            }
            #expect(string(try snapshot.get("k", in: f.db)) == "0")
        }
    }

    @Test func missingKeyIsNilAndBadKeysAreTypedErrors() throws {
        let f = try Fixture()
        #expect(try f.env.value(forKey: "absent", in: f.db) { _ in true } == nil)
        #expect(throwsLMDB({ if case .invalidKeySize = $0 { true } else { false } }) {
            _ = try f.env.value(forKey: "", in: f.db) { _ in true }
        })
        #expect(throwsLMDB({ if case .invalidKeySize = $0 { true } else { false } }) {
            _ = try f.env.value(forKey: String(repeating: "k", count: 512), in: f.db) { _ in true }
        })
    }

    @Test func anErrorThrownByTheBodyPropagatesAndLeavesNothingOpen() throws {
        struct Boom: Error {}
        let f = try Fixture { $0.mapSize = 1 << 20 }
        try f.env.write { try $0.put("v", forKey: "k", in: f.db) }
        #expect(throws: Boom.self) { _ = try f.env.value(forKey: "k", in: f.db) { _ in throw Boom() } }
        // Nothing of this thread is left inside the map: growing it does not time out.
        try f.env.write { txn in
            for index in 0..<2000 { try txn.put([UInt8](repeating: 1, count: 1000), forKey: "big\(index)", in: f.db) }
        }
        #expect((try f.env.info()).mapSize > 1 << 20)
    }

    @Test func manyThreadsReadingAtOnceAllSeeCommittedValues() throws {
        let f = try Fixture()
        try f.env.write { txn in for index in 0..<100 { try txn.put("v\(index)", forKey: "k\(index)", in: f.db) } }
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 16) { worker in
            for round in 0..<500 {
                let index = (worker * 31 + round) % 100
                let seen = try? f.env.value(forKey: "k\(index)", in: f.db) { String(decoding: $0, as: UTF8.self) }
                if seen != "v\(index)" { failures.withLock { $0 += 1 } }
            }
        }
        #expect(failures.withLock { $0 } == 0)
    }
}
