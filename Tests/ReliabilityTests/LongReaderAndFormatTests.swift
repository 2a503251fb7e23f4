import Foundation
@_spi(StorageTesting) import PaymentSessions
import TestSupport
import StoreTestFixtures
import Testing
import TestScheduling
import LMDB

@Suite("Long readers and format versions", .ownThreads)
struct LongReaderAndFormatTests {
    static let writes = Int(ProcessInfo.processInfo.environment["LONG_READER_WRITES"] ?? "") ?? 100_000

    /// A snapshot held open across many writes keeps its view; writers are not blocked;
    /// the file grows because pages the snapshot can see are not reused.
    @Test func aReaderHeldAcrossManyWritesKeepsItsSnapshotAndWritersGoOn() throws {
        let f = try StoreFixture { $0.environment.mapSize = 1 << 20 }
        let s = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", data: ["v": 0]))
        let batch = 1000
        var sizeWithReader = 0
        try f.store.read { snapshot in
            for round in 0..<(Self.writes / batch) {
                try f.store.write { tx in
                    for i in 0..<batch {
                        try tx.update(id: s.id, data: ["v": .number(JSONNumber(round * batch + i + 1))])
                    }
                }
            }
            #expect(try snapshot.session(id: s.id)?.data == ["v": 0])
            sizeWithReader = try f.store.rawStorage.fileSize()
        }
        #expect(try f.store.session(id: s.id)?.data == ["v": .number(JSONNumber(Self.writes))])
        // The same writes again, with no reader: freed pages are reused, the file stays put.
        let before = try f.store.rawStorage.fileSize()
        try f.store.write { tx in
            for i in 0..<batch { try tx.update(id: s.id, data: ["v": .number(JSONNumber(i))]) }
        }
        #expect(try f.store.rawStorage.fileSize() == before)
        #expect(sizeWithReader >= 1 << 20)
    }

    @Test func aStoreWithoutAVersionIsFormatZeroAndIsMigrated() throws {
        let directory = TemporaryDirectory(prefix: "format0")
        let id: String
        do {
            let store = try PaymentSessionStore(path: directory.path)
            id = try store.create(NewPaymentSession(cartID: "c", providerID: "p")).id
            try store.rawStorage.delete(forKey: RawStorage.formatVersionKey, in: .meta)
        }
        let store = try PaymentSessionStore(path: directory.path)
        #expect(try store.session(id: id) != nil)
        #expect(try store.rawStorage.value(forKey: RawStorage.formatVersionKey, in: .meta) == [UInt8(RawStorage.formatVersion), 0, 0, 0])
    }

    /// A format 1 store holds version 1 records (no checksum): they are read as they are,
    /// and opening the store for writing marks it with the current format. Opened read-only, it
    /// stays 1.
    @Test func aFormatOneStoreIsReadAndMarkedCurrent() throws {
        let directory = TemporaryDirectory(prefix: "format1")
        let id = "ps_01JD0000000000000000000001"
        do {
            let store = try PaymentSessionStore(path: directory.path)
            let raw = store.rawStorage
            let record = oldRecord(version: 1, selected: false, status: 2, strings: ["cart", "stripe", #"{"a":[1,true]}"#])
            try raw.put(record, forKey: id, in: .sessions)
            try raw.put(Array(id.utf8), forKey: RawStorage.cartProviderKey(cartID: "cart", providerID: "stripe"), in: .cartProvider)
            try raw.put([1, 0, 0, 0] as [UInt8], forKey: RawStorage.formatVersionKey, in: .meta)
        }
        var readOnly = PaymentSessionStore.Options()
        readOnly.environment.readOnly = true
        do {
            let store = try PaymentSessionStore(path: directory.path, options: readOnly)
            #expect(try store.session(id: id)?.status == .authorized)
            #expect(try store.rawStorage.value(forKey: RawStorage.formatVersionKey, in: .meta) == [1, 0, 0, 0])
        }
        let store = try PaymentSessionStore(path: directory.path)
        #expect(try store.rawStorage.value(forKey: RawStorage.formatVersionKey, in: .meta) == [UInt8(RawStorage.formatVersion), 0, 0, 0])
        #expect(try store.session(id: id)?.data == ["a": [1, true]])
        let updated = try store.update(id: id, data: ["b": "c"])
        #expect(try store.session(id: id) == updated)
        #expect(try store.verify().isClean)
    }

    /// A store of format 4 holds version 3 records (the single-chain checksum, the money
    /// fields), one of format 5 version 4 records (the four-chain checksum): they are read
    /// as they are, the cart's sessions too, a corrupt one is still caught, and a change
    /// rewrites the record as the current version.
    @Test(arguments: [(recordVersion: UInt8(3), format: UInt8(4)), (recordVersion: 4, format: 5)])
    func anOlderStoreReadsItsRecordsAndRewritesThemWhenTheyChange(recordVersion: UInt8, format: UInt8) throws {
        let directory = TemporaryDirectory(prefix: "format\(format)")
        let id = "ps_01JD0000000000000000000004"
        let record = oldRecord(version: recordVersion, selected: true, status: 0, strings: ["cart", "stripe", #"{"n":1}"#])
        do {
            let store = try PaymentSessionStore(path: directory.path)
            let raw = store.rawStorage
            try raw.put(record, forKey: id, in: .sessions)
            try raw.put(Array(id.utf8), forKey: RawStorage.cartProviderKey(cartID: "cart", providerID: "stripe"), in: .cartProvider)
            try raw.put(Array(id.utf8), forKey: "cart", in: .selected)
            try raw.put([format, 0, 0, 0] as [UInt8], forKey: RawStorage.formatVersionKey, in: .meta)
        }
        let store = try PaymentSessionStore(path: directory.path)
        #expect(try store.rawStorage.value(forKey: RawStorage.formatVersionKey, in: .meta) == [UInt8(RawStorage.formatVersion), 0, 0, 0])
        let session = try #require(try store.session(id: id))
        #expect(session.cartID == "cart" && session.providerID == "stripe" && session.isSelected && session.amount == nil)
        #expect(try store.sessions(cartID: "cart") == [session])
        #expect(try store.verify().isClean)

        var flipped = record
        flipped[flipped.count - 8] ^= 1
        try store.rawStorage.put(flipped, forKey: id, in: .sessions)
        guard case .corruptRecord(let key, let reason)? = storeError({ _ = try store.session(id: id) }) else {
            Issue.record("a version \(recordVersion) record with a flipped bit was accepted")
            return
        }
        #expect(key == id && reason.contains("checksum"))
        try store.rawStorage.put(record, forKey: id, in: .sessions)

        let updated = try store.update(id: id, data: ["n": 2])
        let rewritten = try #require(try store.rawStorage.value(forKey: id, in: .sessions))
        #expect(rewritten.first == RawStorage.recordVersion)
        #expect(try store.session(id: id) == updated)
        #expect(try store.verify().isClean)
    }

    @Test func aStoreOfANewerFormatIsRefusedWithAClearError() throws {
        let directory = TemporaryDirectory(prefix: "format9")
        do {
            let store = try PaymentSessionStore(path: directory.path)
            try store.rawStorage.put([9, 0, 0, 0] as [UInt8], forKey: RawStorage.formatVersionKey, in: .meta)
        }
        let error = storeError { _ = try PaymentSessionStore(path: directory.path) }
        #expect(error == .unsupportedFormat(found: 9, supported: RawStorage.formatVersion))
        #expect(error?.description == "store format version 9 is not supported (this version reads up to \(RawStorage.formatVersion))")
    }
}
