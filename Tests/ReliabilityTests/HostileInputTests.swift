import Foundation
@_spi(StorageTesting) import PaymentSessions
import StoreTestFixtures
import Testing
import TestSupport
import TestScheduling

/// Seeded random inputs against the two parsers of untrusted bytes: the stored record
/// decoder (reached through LMDB and `session(id:)`) and the JSON import. Every input
/// must give a session or a typed error: never a crash, never a write.
@Suite("Hostile input", .ownThreads)
struct HostileInputTests {
    @Test func randomRecordBytesDecodeOrFailTyped() throws {
        let f = try StoreFixture()
        let seedSession = try f.store.create(
            NewPaymentSession(cartID: "cart", providerID: "stripe", data: ["a": [1, "b", ["c": nil]], "d": true], idempotencyKey: "k"))
        let raw = f.store.rawStorage
        let valid = try #require(try raw.value(forKey: seedSession.id, in: .sessions))
        var rng = SplitMix(seed: 0xC0FFEE)
        var decoded = 0
        var refused = 0
        let batch = 2000
        for start in stride(from: 0, to: Mutation.inputs, by: batch) {
            let count = min(batch, Mutation.inputs - start)
            let ids = (0..<count).map { "ps_01JD" + String(format: "%022d", start + $0) }
            let records = ids.map { id in
                let bytes = Int.random(in: 0..<4, using: &rng) == 0
                    ? (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                    : Mutation.mutate(valid, &rng)
                return (key: id, value: bytes)
            }
            try raw.put(records, in: .sessions)
            for id in ids {
                switch Result(catching: { () throws(PaymentSessionError) in try f.store.session(id: id) }) {
                case .success: decoded += 1
                case .failure(.corruptRecord): refused += 1
                case .failure(let other): Issue.record("\(id): unexpected \(other)")
                }
            }
            try raw.delete(keys: ids, in: .sessions)
        }
        #expect(decoded + refused == Mutation.inputs)
        #expect(refused > Mutation.inputs / 2)
        #expect(try f.store.verify().isClean)
    }

    @Test func randomImportLinesAreRefusedTypedAndWriteNothing() throws {
        let valid = Array(
            #"{"id":"ps_01G901XNSRM2YS3ASN9H5KG3FZ","cart_id":"c","provider_id":"p","is_selected":true,"status":"pending","data":{"k":[1,2.5,"x",null,{"n":true}]},"idempotency_key":"key","created_at":"2026-01-01T00:00:00.000001Z","updated_at":"2026-01-01T00:00:00Z"}"#
                .utf8)
        var rng = SplitMix(seed: 0xBADC0DE)
        var parsed = 0
        var refused = 0
        for _ in 0..<Mutation.inputs {
            let bytes = Mutation.mutate(valid, &rng)
            guard let text = String(validating: bytes, as: UTF8.self) else {
                refused += 1  // the CLI refuses invalid UTF-8 before parsing
                continue
            }
            do {
                _ = try PaymentSession(jsonText: text)
                parsed += 1
            } catch {
                if case .invalidInput = error { refused += 1 } else { Issue.record("unexpected \(error)") }
            }
        }
        #expect(parsed + refused == Mutation.inputs)
        // A bad import of many lines writes nothing.
        let f = try StoreFixture()
        let lines = (0..<200).map { _ in String(decoding: Mutation.mutate(valid, &rng), as: UTF8.self) }
        let refusal = storeError { try f.store.importJSONLines(lines.joined(separator: "\n")) }
        guard case .importFailed? = refusal else {
            Issue.record("the import of 200 mutated lines (most of them malformed, the rest one id) was not refused: \(String(describing: refusal))")
            return
        }
        #expect(try f.store.count() == 0)
    }

    @Test func deeplyNestedAndHugeDataAreRefused() throws {
        let f = try StoreFixture()
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: deep) }
        let huge = "{\"data\":\"" + String(repeating: "x", count: 2 << 20) + "\"}"
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: huge) }
        let bigData: [String: JSONValue] = ["x": .string(String(repeating: "y", count: 1 << 20))]
        #expect(storeError { try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", data: bigData)) }?.code == .invalidInput)
        #expect(try f.store.count() == 0)
    }
}
