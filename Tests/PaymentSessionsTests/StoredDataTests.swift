import Foundation
@_spi(StorageTesting) import PaymentSessions
import StoreTestFixtures
import Testing
import TestSupport
import TestScheduling

/// A session read from the store keeps `data` as the record's JSON bytes, checked when
/// the record is decoded and parsed when `data` is read. These tests pin that this is
/// invisible: the same values, the same JSON, the same equality, and that the check at
/// decode accepts exactly what the full parser accepts.
@Suite("Stored data: kept as bytes, read as objects", .ownThreads)
struct StoredDataTests {
    static let richData: [String: JSONValue] = [
        "amount": .number(JSONNumber(text: "1.50")!), "big": .number(JSONNumber(text: "12345678901234567890")!),
        "escaped \"key\"\n": "line\nbreak", "é": "ü", "nested": ["list": [1, "two", nil, true, ["x": false]]],
        "empty": [:],
        // Strings longer than a word, specials at several offsets (the word-at-a-time
        // scan), and keys in order, where a one-byte change makes a duplicate.
        "k1": "a plain ASCII string longer than sixteen bytes", "k2": "tab\there, then \"quotes\" and ünïcödé later on",
        "k3": "0123456\\89abcdefgh\u{1}", "k4": "smörgåsbord smörgåsbord 😀😀 plain tail text",
    ]

    /// A session is returned through several layers on every read; past 128 bytes each
    /// copy became a call to `memcpy` (the compiler copies smaller values inline). A layout
    /// guard, not a timing: a new stored field must keep the session this small.
    @Test func aSessionIsSmallEnoughToBeCopiedInline() {
        #expect(MemoryLayout<PaymentSession>.size <= 128, "PaymentSession is \(MemoryLayout<PaymentSession>.size) bytes")
    }

    @Test func aStoredSessionEqualsHashesAndPrintsLikeTheOneCreated() throws {
        let f = try StoreFixture()
        let created = try f.store.create(NewPaymentSession(cartID: "cart", providerID: "stripe", data: Self.richData))
        let read = try #require(try f.store.session(id: created.id))
        #expect(read == created)
        #expect(read.hashValue == created.hashValue)
        #expect(Set([read, created]).count == 1)
        #expect(read.data == Self.richData)
        #expect(read.jsonText() == created.jsonText())
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys  // dictionaries built differently iterate differently
        #expect(try encoder.encode(read) == encoder.encode(created))
    }

    @Test func changingOtherFieldsKeepsDataExactly() throws {
        let f = try StoreFixture()
        let created = try f.store.create(NewPaymentSession(cartID: "cart", providerID: "stripe", data: Self.richData))
        _ = try f.store.select(id: created.id)
        _ = try f.store.update(id: created.id, status: .authorized)
        let read = try #require(try f.store.session(id: created.id))
        #expect(read.data == Self.richData)
        #expect(read.status == .authorized)
        var changed = read
        changed.data["amount"] = 2
        #expect(changed != read)
        #expect(changed.data["amount"] == 2)
    }

    @Test(arguments: [
        #"{"a":1,"a":2}"#, #"{"b":1,"\u0062":2}"#, "{\"\u{E9}\":1,\"e\u{301}\":2}", #"{"o":{"k":1,"k":1}}"#,
        #"{"a":1}x"#, #"[1]"#, #"{"a":"\ud800"}"#, "{\"a\":\"\u{1}\"}", #"{"a":01}"#, "",
    ])
    func aRecordWhoseDataTheParserRefusesIsCorrupt(data: String) throws {
        let f = try StoreFixture()
        let id = try Self.storeRecord(f, data: Array(data.utf8))
        let error = storeError { _ = try f.store.session(id: id) }
        guard case .corruptRecord? = error else {
            Issue.record("expected corruptRecord for \(data), got \(String(describing: error))")
            return
        }
        #expect(try !f.store.verify().isClean)
    }

    /// Mutated `data` bytes inside an otherwise valid record: the record decodes exactly
    /// when the full parser accepts the bytes as an object, and then to that object.
    @Test func decodingAgreesWithTheFullParserOnMutatedData() throws {
        let f = try StoreFixture()
        let seed = Array(JSONValue.object(Self.richData).jsonText.utf8)
        var rng = SplitMix(seed: 0x5EED)
        var accepted = 0
        for round in 0..<max(1, Mutation.inputs / 10) {
            let data = Mutation.mutate(seed, &rng)
            let id = try Self.storeRecord(f, data: data, index: round)
            let expected: [String: JSONValue]?
            if case .object(let members)? = try? JSONParser.parse(data) { expected = members } else { expected = nil }
            switch Result(catching: { () throws(PaymentSessionError) in try f.store.session(id: id) }) {
            case .success(let session):
                accepted += 1
                #expect(expected != nil, "accepted data the parser refuses: \(String(decoding: data, as: UTF8.self))")
                #expect(session?.data == expected)
                let printed = try #require(session?.jsonText())
                guard case .object(let members) = try JSONValue(parsing: printed) else {
                    Issue.record("jsonText is not an object: \(printed)")
                    continue
                }
                #expect(members["data"] == expected.map(JSONValue.object))
            case .failure(.corruptRecord):
                #expect(expected == nil, "refused data the parser accepts: \(String(decoding: data, as: UTF8.self))")
            case .failure(let other):
                Issue.record("unexpected \(other)")
            }
        }
        #expect(accepted > 0)
    }

    /// Writes a session record with the given `data` bytes (format 1, as documented in
    /// the store's record layout) straight into LMDB.
    static func storeRecord(_ f: StoreFixture, data: [UInt8], index: Int = 0) throws -> String {
        let id = "ps_01JD" + String(format: "%022d", index)
        var record: [UInt8] = [1, 0, 0]
        record += [UInt8](repeating: 0, count: 16)
        for text in ["cart", "stripe"] { record += varint(text.utf8.count) + Array(text.utf8) }
        record += varint(data.count) + data
        try f.store.rawStorage.put(record, forKey: id, in: .sessions)
        return id
    }

    static func varint(_ value: Int) -> [UInt8] {
        var rest = UInt64(value)
        var bytes: [UInt8] = []
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
        return bytes
    }
}
