import Foundation
@_spi(StorageTesting) import PaymentSessions
import StoreTestFixtures
import Testing
import TestSupport
import TestScheduling

@Suite("Corrupt records and broken indexes", .ownThreads)
struct CorruptionTests {
    /// Writes raw bytes under `key` in one of the store's databases, through the storage
    /// core's testing hook.
    func poke(_ f: StoreFixture, _ table: RawStorage.Table, _ key: String, _ value: [UInt8]?) throws {
        if let value { try f.store.rawStorage.put(value, forKey: key, in: table) } else { try f.store.rawStorage.delete(forKey: key, in: table) }
    }

    func rawRecord(_ f: StoreFixture, _ id: String) throws -> [UInt8] {
        try #require(try f.store.rawStorage.value(forKey: id, in: .sessions))
    }

    @Test func everyTruncationOfARecordIsATypedErrorAndAProblem() throws {
        let f = try StoreFixture()
        let s = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", data: ["k": "v"], idempotencyKey: "i"))
        let bytes = try rawRecord(f, s.id)
        for length in 0..<bytes.count {
            try poke(f, .sessions, s.id, Array(bytes.prefix(length)))
            guard case .corruptRecord(let key, _)? = storeError({ _ = try f.store.session(id: s.id) }) else {
                Issue.record("length \(length) not reported as corrupt")
                continue
            }
            #expect(key == s.id)
            let report = try f.store.verify()
            #expect(report.problems.contains { $0.kind == "corrupt_record" && $0.key == s.id })
        }
    }

    /// The checksum the store writes is the documented one at every length a record can
    /// take mod 32 (each way the vector checksum's tail can fall), and a flipped bit in any
    /// one of those records, anywhere, is caught.
    @Test func theStoredChecksumIsTheDocumentedOneAtEveryRecordLength() throws {
        let f = try StoreFixture()
        var lengths = Set<Int>()
        for padding in 0..<48 {
            let s = try f.store.create(
                NewPaymentSession(cartID: "c\(padding)", providerID: "p", data: ["k": .string(String(repeating: "x", count: padding))]))
            let bytes = try rawRecord(f, s.id)
            lengths.insert(bytes.count % 32)
            #expect(bytes.first == RawStorage.recordVersion)
            let stored = bytes.suffix(4).enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << UInt32(8 * $1.offset) }
            #expect(stored == recordChecksum(Array(bytes.dropLast(4))), "record of \(bytes.count) bytes")
            let bit = (padding * 37) % ((bytes.count - 4) * 8)
            var flipped = bytes
            flipped[bit / 8] ^= UInt8(1 << (bit % 8))
            try poke(f, .sessions, s.id, flipped)
            #expect(storeError({ _ = try f.store.session(id: s.id) }) != nil, "bit \(bit) of \(bytes.count) bytes")
            try poke(f, .sessions, s.id, bytes)
        }
        #expect(lengths.count == 32)
    }

    /// The checksum itself, at every length from 0 to 100 (each branch of its tail: under
    /// a word, under a chunk, under a block, and past), against its documented definition.
    @Test func theChecksumIsTheDocumentedOneAtEveryLength() {
        var generator = SplitMix(seed: 5)
        for length in 0...100 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(RawStorage.recordChecksum(of: bytes) == recordChecksum(bytes), "\(length) bytes")
        }
    }

    /// Random byte changes (seeded, so a failure replays) are caught by the checksum:
    /// every changed record reads as `corruptRecord` and `verify` reports it, and the
    /// untouched record reads back as it was.
    @Test func flippedBytesNeverCrashTheDecoder() throws {
        let f = try StoreFixture()
        let s = try f.store.create(NewPaymentSession(cartID: "cart", providerID: "prov", data: ["k": [1, "two"]], idempotencyKey: "i"))
        let bytes = try rawRecord(f, s.id)
        var rng = SplitMix(seed: 0xF11B)
        for round in 0..<300 {
            var mutated = bytes
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                mutated[Int.random(in: 0..<mutated.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            try poke(f, .sessions, s.id, mutated)
            let error = storeError { _ = try f.store.session(id: s.id) }
            let report = try f.store.verify()
            if mutated == bytes {
                #expect(error == nil, "round \(round): the unchanged record was refused")
                #expect(report.isClean, "round \(round)")
                continue
            }
            guard case .corruptRecord? = error else {
                Issue.record("round \(round): a changed record read as \(String(describing: error))")
                continue
            }
            #expect(report.problems.contains { $0.kind == "corrupt_record" && $0.key == s.id }, "round \(round)")
        }
        try poke(f, .sessions, s.id, bytes)
        #expect(try f.store.session(id: s.id) == s)
    }

    /// Every single-bit flip anywhere in a record fails its checksum (one 64-bit word
    /// changed always changes the hash state, and the fold to 32 bits keeps single bits).
    @Test func everySingleBitFlipIsCaughtByTheChecksum() throws {
        let f = try StoreFixture()
        let s = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", data: ["k": "v"], idempotencyKey: "i"))
        let bytes = try rawRecord(f, s.id)
        for bit in 0..<(bytes.count * 8) {
            var flipped = bytes
            flipped[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
            try poke(f, .sessions, s.id, flipped)
            guard case .corruptRecord? = storeError({ _ = try f.store.session(id: s.id) }) else {
                Issue.record("bit \(bit) flipped, record still accepted")
                continue
            }
        }
        try poke(f, .sessions, s.id, bytes)
        #expect(try f.store.session(id: s.id) == s)
    }

    /// A record forged with a valid checksum around `data` that is not JSON reads (the
    /// checksum stands for validation on the read path), but `verify` checks contents in
    /// full and reports it.
    @Test func verifyChecksDataBehindAValidChecksum() throws {
        let f = try StoreFixture()
        let s = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", data: ["k": "v"]))
        var bytes = try rawRecord(f, s.id)
        let data = Array(#"{"k":"v"}"#.utf8)
        let start = try #require(bytes.firstRange(of: data)).lowerBound
        bytes.replaceSubrange(start..<start + data.count, with: Array(#"{"k":v!!}"#.utf8))
        bytes.removeLast(4)
        let checksum = recordChecksum(bytes)
        withUnsafeBytes(of: checksum.littleEndian) { bytes.append(contentsOf: $0) }
        try poke(f, .sessions, s.id, bytes)
        #expect(try f.store.session(id: s.id)?.id == s.id)
        let report = try f.store.verify()
        #expect(report.problems.contains { $0.kind == "corrupt_record" && $0.key == s.id && $0.message.contains("data") })
        // Export checks `data` as verify does, so it never writes a line import refuses:
        // it stops at the forged record with a typed error naming it.
        var lines: [String] = []
        let refusal = storeError { try f.store.exportJSONLines { lines.append($0) } }
        guard case .corruptRecord(let key, _)? = refusal else {
            Issue.record("export of a forged record gave \(String(describing: refusal)), lines \(lines)")
            return
        }
        #expect(key == s.id)
        #expect(lines.isEmpty)
    }

    @Test func unknownRecordVersionIsRefused() throws {
        let f = try StoreFixture()
        let s = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p"))
        var bytes = try rawRecord(f, s.id)
        bytes[0] = 9
        try poke(f, .sessions, s.id, bytes)
        guard case .corruptRecord(_, let reason)? = storeError({ _ = try f.store.session(id: s.id) }) else {
            Issue.record("not refused")
            return
        }
        #expect(reason.contains("version 9"))
    }

    @Test func brokenIndexesAreEachReported() throws {
        let f = try StoreFixture()
        let a = try f.store.create(NewPaymentSession(cartID: "c", providerID: "a", idempotencyKey: "ka", select: true))
        let b = try f.store.create(NewPaymentSession(cartID: "c", providerID: "b", idempotencyKey: "kb"))
        #expect(try f.store.verify().isClean)
        try poke(f, .idempotency, "ka", nil)  // missing index
        try poke(f, .idempotency, "ghost", Array("ps_01G901XNSRM2YS3ASN9H5KG3FZ".utf8))  // dangling
        try poke(f, .selected, "c", Array(b.id.utf8))  // selection disagrees with is_selected
        let report = try f.store.verify()
        let kinds = Set(report.problems.map(\.kind))
        #expect(kinds == ["missing_index", "dangling_index", "selection_mismatch"], "\(report.problems)")
        #expect(report.problems.contains { $0.key == a.id && $0.kind == "missing_index" })
        #expect(report.sessions == 2)
        // Reads through a dangling index are typed errors too.
        #expect(storeError { _ = try f.store.session(idempotencyKey: "ghost") }?.code == .storage)
    }

    /// A cart's sessions are read through its `cart_provider` entries: an entry pointing to
    /// no record, one holding no session id, and a corrupt record among them are each a
    /// typed error naming what broke, from the store and from a read transaction alike.
    @Test func aBrokenCartIndexEntryOrRecordIsATypedErrorOnTheCartRead() throws {
        let f = try StoreFixture()
        let a = try f.store.create(NewPaymentSession(cartID: "c", providerID: "a"))
        let b = try f.store.create(NewPaymentSession(cartID: "c", providerID: "b"))
        _ = try f.store.create(NewPaymentSession(cartID: "c2", providerID: "a"))
        #expect(try f.store.sessions(cartID: "c") == [a, b])
        #expect(try f.store.read { try $0.sessions(cartID: "c") } == [a, b])

        func cartReadError() throws -> [PaymentSessionError?] {
            [
                storeError { _ = try f.store.sessions(cartID: "c") },
                storeError { _ = try f.store.read { try $0.sessions(cartID: "c") } },
            ]
        }
        let pair = RawStorage.cartProviderKey(cartID: "c", providerID: "z")
        let ghost = "ps_01G901XNSRM2YS3ASN9H5KG3FZ"
        try f.store.rawStorage.put(Array(ghost.utf8), forKey: pair, in: .cartProvider)
        for error in try cartReadError() {
            guard case .corruptRecord(let key, let reason)? = error else {
                Issue.record("a dangling cart entry gave \(String(describing: error))")
                continue
            }
            #expect(key == "c" && reason.contains(ghost))
        }
        try f.store.rawStorage.put(Array("not-an-id".utf8), forKey: pair, in: .cartProvider)
        for error in try cartReadError() {
            guard case .corruptRecord(let key, let reason)? = error else {
                Issue.record("a cart entry that is no id gave \(String(describing: error))")
                continue
            }
            #expect(key == "c" && reason.contains("not-an-id"))
        }
        try f.store.rawStorage.delete(forKey: "c\u{0}z", in: .cartProvider)
        #expect(try f.store.sessions(cartID: "c") == [a, b])

        var bytes = try rawRecord(f, b.id)
        bytes[bytes.count / 2] ^= 0x40
        try poke(f, .sessions, b.id, bytes)
        for error in try cartReadError() {
            guard case .corruptRecord(let key, _)? = error else {
                Issue.record("a corrupt record in a cart gave \(String(describing: error))")
                continue
            }
            #expect(key == b.id)
        }
    }
}
