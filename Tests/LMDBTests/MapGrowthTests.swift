import LMDB
import Testing
import TestScheduling

@Suite("Map growth", .ownThreads)
struct MapGrowthTests {
    static let value = [UInt8](repeating: 0xC3, count: 16 << 10)

    @Test func tinyMapAcceptsFiftyTimesItsSizeAcrossManyCommits() throws {
        let f = try Fixture {
            $0.mapSize = 1 << 20
            $0.maxMapSize = 1 << 30
        }
        for batch in 0..<50 {
            try f.env.write { txn throws in
                for i in 0..<64 { try txn.put(Self.value, forKey: "b\(batch)-\(i)", in: f.db) }
            }
        }
        #expect(try f.env.read { try $0.count(in: f.db) } == 50 * 64)
        #expect((try f.env.info()).mapSize >= 50 << 20)
        #expect(try f.env.fileSize() >= 50 << 20)
    }

    @Test func oneTransactionLargerThanTheMapGrowsAndRerunsTheClosure() throws {
        let f = try Fixture {
            $0.mapSize = 1 << 20
            $0.maxMapSize = 1 << 30
        }
        var runs = 0
        try f.env.write { txn throws in
            runs += 1
            for i in 0..<1280 { try txn.put(Self.value, forKey: "k\(i)", in: f.db) }
        }
        #expect(runs > 1)
        #expect(try f.env.read { try $0.count(in: f.db) } == 1280)
    }

    @Test func growthHappensEvenWhenTheClosureReplacesTheError() throws {
        struct Wrapped: Error {}
        let f = try Fixture {
            $0.mapSize = 1 << 20
            $0.maxMapSize = 64 << 20
        }
        try f.env.write { txn throws in
            do {
                for i in 0..<256 { try txn.put(Self.value, forKey: "k\(i)", in: f.db) }
            } catch {
                throw Wrapped()
            }
        }
        #expect(try f.env.read { try $0.count(in: f.db) } == 256)
    }

    @Test func pastTheMaximumTheWriteFailsWithMapFullAndKeepsEarlierData() throws {
        let f = try Fixture {
            $0.mapSize = 1 << 20
            $0.maxMapSize = 2 << 20
        }
        try f.env.write { try $0.put("kept", forKey: "first", in: f.db) }
        var caught: LMDBError?
        do {
            try f.env.write { txn throws in
                for i in 0..<256 { try txn.put(Self.value, forKey: "k\(i)", in: f.db) }
            }
        } catch let error as LMDBError { caught = error }
        #expect(caught?.code == .mapFull)
        #expect(caught?.operation.contains("maxMapSize") == true)
        try f.env.read { txn throws in
            #expect(try txn.count(in: f.db) == 1)
            #expect(string(try txn.get("first", in: f.db)) == "kept")
        }
        #expect((try f.env.info()).mapSize == 2 << 20)
    }
}
