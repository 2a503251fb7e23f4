import Foundation
import LMDB
import PaymentSessions
import Testing

@Suite("Corrupt records and broken indexes")
struct CorruptionTests {
    /// Writes raw bytes under `key` in one of the store's databases, through the LMDB layer.
    func poke(_ f: StoreFixture, _ database: String, _ key: String, _ value: [UInt8]?) throws {
        let env = f.store.environment
        let db = try env.database(named: database, create: false)
        try env.write { txn in
            if let value { try txn.put(value, forKey: key, in: db) } else { try txn.delete(key, in: db) }
        }
    }

    func rawRecord(_ f: StoreFixture, _ id: String) throws -> [UInt8] {
        let env = f.store.environment
        let db = try env.database(named: "sessions", create: false)
        return try #require(try env.read { try $0.get(id, in: db) })
    }

    @Test func everyTruncationOfARecordIsATypedErrorAndAProblem() throws {
        let f = try StoreFixture()
        let s = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", data: ["k": "v"], idempotencyKey: "i"))
        let bytes = try rawRecord(f, s.id)
        for length in 0..<bytes.count {
            try poke(f, "sessions", s.id, Array(bytes.prefix(length)))
            guard case .corruptRecord(let key, _)? = storeError({ _ = try f.store.session(id: s.id) }) else {
                Issue.record("length \(length) not reported as corrupt")
                continue
            }
            #expect(key == s.id)
            let report = try f.store.verify()
            #expect(report.problems.contains { $0.kind == "corrupt_record" && $0.key == s.id })
        }
    }

    @Test func flippedBytesNeverCrashTheDecoder() throws {
        let f = try StoreFixture()
        let s = try f.store.create(NewPaymentSession(cartID: "cart", providerID: "prov", data: ["k": [1, "two"]], idempotencyKey: "i"))
        let bytes = try rawRecord(f, s.id)
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var mutated = bytes
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                mutated[Int.random(in: 0..<mutated.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            try poke(f, "sessions", s.id, mutated)
            _ = storeError { _ = try f.store.session(id: s.id) }  // a session or a typed error
            _ = try f.store.verify()
        }
    }

    @Test func unknownRecordVersionIsRefused() throws {
        let f = try StoreFixture()
        let s = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p"))
        var bytes = try rawRecord(f, s.id)
        bytes[0] = 9
        try poke(f, "sessions", s.id, bytes)
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
        try poke(f, "idempotency", "ka", nil)  // missing index
        try poke(f, "idempotency", "ghost", Array("ps_01G901XNSRM2YS3ASN9H5KG3FZ".utf8))  // dangling
        try poke(f, "selected", "c", Array(b.id.utf8))  // selection disagrees with is_selected
        let report = try f.store.verify()
        let kinds = Set(report.problems.map(\.kind))
        #expect(kinds == ["missing_index", "dangling_index", "selection_mismatch"], "\(report.problems)")
        #expect(report.problems.contains { $0.key == a.id && $0.kind == "missing_index" })
        #expect(report.sessions == 2)
        // Reads through a dangling index are typed errors too.
        #expect(storeError { _ = try f.store.session(idempotencyKey: "ghost") }?.code == .storage)
    }
}
