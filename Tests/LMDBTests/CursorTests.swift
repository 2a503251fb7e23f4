import LMDB
import Testing
import TestScheduling

@Suite("Cursors and range scans", .ownThreads)
struct CursorTests {
    /// Keys chosen to sit on every boundary of a prefix scan: the prefix itself, bytes
    /// 0x00 and 0xFF right after it, and neighbours that share all but the last byte.
    static let keys: [[UInt8]] = [
        [0x00], [0x00, 0x00], [0x01], [0x61], [0x61, 0x00], [0x61, 0x00, 0xFF], [0x61, 0x01],
        [0x61, 0xFF], [0x61, 0xFF, 0xFF], [0x62], [0xFF], [0xFF, 0x00], [0xFF, 0xFF],
    ]

    func filled() throws -> Fixture {
        let f = try Fixture()
        try f.env.write { txn throws in
            for key in Self.keys.shuffled() { try txn.put(key, forKey: key, in: f.db) }
        }
        return f
    }

    func keys(_ f: Fixture, _ range: KeyRange, reverse: Bool = false, limit: Int = .max) throws -> [[UInt8]] {
        try f.env.read { try $0.entries(in: f.db, range: range, reverse: reverse, limit: limit).map(\.key) }
    }

    func expected(_ include: ([UInt8]) -> Bool) -> [[UInt8]] { Self.keys.filter(include) }

    @Test func fullScanIsInBytewiseOrderBothWays() throws {
        let f = try filled()
        #expect(try keys(f, .all) == Self.keys)
        #expect(try keys(f, .all, reverse: true) == Self.keys.reversed())
    }

    @Test(arguments: [[0x61], [0x61, 0x00], [0x61, 0xFF], [0xFF], [0xFF, 0xFF], [0x00], [0x63], [0x61, 0x02]] as [[UInt8]])
    func prefixScanStopsExactlyAtItsBoundaries(prefix: [UInt8]) throws {
        let f = try filled()
        let want = expected { $0.starts(with: prefix) }
        #expect(try keys(f, .prefix(prefix)) == want)
        #expect(try keys(f, .prefix(prefix), reverse: true) == want.reversed())
    }

    @Test func prefixScanAfterAKeyPaginates() throws {
        let f = try filled()
        let page1 = try keys(f, .prefix([0x61]), limit: 2)
        #expect(page1 == [[0x61], [0x61, 0x00]])
        let page2 = try keys(f, .prefix([0x61], after: page1.last!), limit: 2)
        #expect(page2 == [[0x61, 0x00, 0xFF], [0x61, 0x01]])
        let rest = try keys(f, .prefix([0x61], after: page2.last!))
        #expect(rest == [[0x61, 0xFF], [0x61, 0xFF, 0xFF]])
    }

    @Test func halfOpenRangesBothWays() throws {
        let f = try filled()
        let range = KeyRange(from: [0x01], to: [0x62])
        let want = expected { $0.lexicographicallyPrecedes([0x62]) && !$0.lexicographicallyPrecedes([0x01]) }
        #expect(try keys(f, range) == want)
        #expect(try keys(f, range, reverse: true) == want.reversed())
        let after = KeyRange(after: [0x61, 0xFF])
        #expect(try keys(f, after) == [[0x61, 0xFF, 0xFF], [0x62], [0xFF], [0xFF, 0x00], [0xFF, 0xFF]])
        #expect(try keys(f, after, reverse: true) == [[0xFF, 0xFF], [0xFF, 0x00], [0xFF], [0x62], [0x61, 0xFF, 0xFF]])
    }

    @Test func emptyDatabaseYieldsNothing() throws {
        let f = try Fixture()
        #expect(try keys(f, .all).isEmpty)
        #expect(try keys(f, .all, reverse: true).isEmpty)
        #expect(try keys(f, .prefix([0x61])).isEmpty)
        try f.env.read { txn throws in
            try txn.withCursor(on: f.db) { cursor throws in
                #expect(try !cursor.first())
                #expect(try !cursor.last())
                #expect(try !cursor.seek(atLeast: [0x00]))
            }
        }
    }

    @Test func cursorMovesAndSeeks() throws {
        let f = try filled()
        try f.env.read { txn throws in
            try txn.withCursor(on: f.db) { cursor throws in
                #expect(try cursor.seek(atLeast: [0x61, 0x00, 0x00]))
                #expect(try cursor.key == [0x61, 0x00, 0xFF])
                #expect(try cursor.value == [0x61, 0x00, 0xFF])
                #expect(try cursor.next())
                #expect(try cursor.key == [0x61, 0x01])
                #expect(try cursor.previous())
                #expect(try cursor.previous())
                #expect(try cursor.key == [0x61, 0x00])
                #expect(try cursor.seek(exactly: [0x62]))
                #expect(try !cursor.seek(exactly: [0x63]))
                #expect(try cursor.last())
                #expect(try !cursor.next())
                #expect(try cursor.first())
                #expect(try !cursor.previous())
                #expect(try cursor.first())
                let length = try cursor.withCurrent { key, _ in key.count }
                #expect(length == 1)
            }
        }
    }

    @Test func cursorDeletesWhileWalking() throws {
        let f = try filled()
        try f.env.write { txn throws in
            try txn.withCursor(on: f.db) { cursor throws in
                var more = try cursor.first()
                while more {
                    if try cursor.key.first == 0x61 { try cursor.deleteCurrent() }
                    more = try cursor.next()
                }
            }
        }
        #expect(try keys(f, .all) == expected { $0.first != 0x61 })
    }

    @Test func forEachStopsWhenTheBodySaysSo() throws {
        let f = try filled()
        var seen = 0
        try f.env.read { txn throws in
            try txn.forEach(in: f.db) { _, _ in
                seen += 1
                return seen < 3
            }
        }
        #expect(seen == 3)
    }

    /// An index walk visits the index entries under the prefix (and no neighbour), in key
    /// order, with what the values database holds under each entry's value: `nil` for a
    /// dangling one. In a write transaction it sees the transaction's own changes.
    @Test func anIndexWalkJoinsEachEntryUnderThePrefixToItsValue() throws {
        let f = try Fixture()
        let index = try f.env.database(named: "index")
        try f.env.write { txn throws in
            for key in Self.keys { try txn.put(key + [0x7A], forKey: key, in: index) }
            for key in Self.keys where key != [0x61, 0x01] { try txn.put(key + [0x7A, 0x76], forKey: key + [0x7A], in: f.db) }
        }
        func walk(_ prefix: [UInt8], in txn: Transaction? = nil) throws -> [[UInt8]?] {
            var seen: [[UInt8]?] = []
            let body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer?) throws -> Void = { _, value in
                seen.append(value.map { Array($0) })
            }
            if let txn {
                try txn.forEachIndexedValue(prefix: prefix, in: index, values: f.db, body)
            } else {
                try f.env.forEachIndexedValue(prefix: prefix, in: index, values: f.db, body)
            }
            return seen
        }
        let underA = expected { $0.first == 0x61 }.map { $0 == [0x61, 0x01] ? nil : $0 + [0x7A, 0x76] }
        #expect(try walk([0x61]) == underA)
        #expect(try f.env.read { try walk([0x61], in: $0) } == underA)
        #expect(try walk([0x61, 0x00]) == [[0x61, 0x00, 0x7A, 0x76], [0x61, 0x00, 0xFF, 0x7A, 0x76]])
        #expect(try walk([0xFF, 0xFF, 0xFF]).isEmpty)
        #expect(try walk([0x63]).isEmpty)
        // Seen inside the write, gone with its abort.
        #expect(throws: CancellationError.self) {
            try f.env.write { txn throws in
                try txn.put([0x61, 0x01, 0x7A, 0x76], forKey: [0x61, 0x01, 0x7A], in: f.db)
                #expect(try walk([0x61, 0x01], in: txn) == [[0x61, 0x01, 0x7A, 0x76]])
                throw CancellationError()
            }
        }
        #expect(try walk([0x61, 0x01]) == [nil])
    }

    @Test func anIndexWalkRefusesAnEmptyPrefixAndPassesOnTheBodysError() throws {
        let f = try Fixture()
        #expect(throwsLMDB({ if case .invalidKeySize = $0 { true } else { false } }) {
            try f.env.forEachIndexedValue(prefix: [UInt8](), in: f.db, values: f.db) { _, _ in }
        })
        try f.env.write { try $0.put("v", forKey: "k", in: f.db) }
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try f.env.forEachIndexedValue(prefix: "k", in: f.db, values: f.db) { _, _ in throw Stop() }
        }
        // The pooled transaction went back: the next read works.
        #expect(try f.env.read { try $0.get("k", in: f.db) } == bytes("v"))
    }
}
