import Foundation
@_spi(StorageTesting) import PaymentSessions
import Testing
import TestSupport
import TestScheduling

/// Seeded random inputs against the two parsers of untrusted bytes: the stored record
/// decoder (reached through LMDB and `session(id:)`) and the JSON import. Every input
/// must give a session or a typed error: never a crash, never a write.
@Suite("Hostile input", .ownThreads)
struct HostileInputTests {
    /// Inputs per parser; `FUZZ_INPUTS` raises it for a long local run.
    static let inputs = Int(ProcessInfo.processInfo.environment["FUZZ_INPUTS"] ?? "") ?? 100_000

    /// The seeded generator, so that a failure can be replayed.
    typealias SeededGenerator = SplitMix

    /// Mutations of a valid input: flipped, inserted, deleted and duplicated bytes.
    static func mutate(_ input: [UInt8], _ rng: inout SeededGenerator) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            switch Int.random(in: 0..<5, using: &rng) {
            case 0 where !bytes.isEmpty: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            case 1: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...bytes.count, using: &rng))
            case 2 where !bytes.isEmpty: bytes.remove(at: Int.random(in: 0..<bytes.count, using: &rng))
            case 3 where !bytes.isEmpty:
                let cut = Int.random(in: 0..<bytes.count, using: &rng)
                bytes = Array(bytes[..<cut])
            default:
                let start = Int.random(in: 0...bytes.count, using: &rng)
                let piece = bytes[start...].prefix(Int.random(in: 0...16, using: &rng))
                bytes.insert(contentsOf: piece, at: Int.random(in: 0...bytes.count, using: &rng))
            }
        }
        return bytes
    }

    @Test func randomRecordBytesDecodeOrFailTyped() throws {
        let f = try StoreFixture()
        let seedSession = try f.store.create(
            NewPaymentSession(cartID: "cart", providerID: "stripe", data: ["a": [1, "b", ["c": nil]], "d": true], idempotencyKey: "k"))
        let raw = f.store.rawStorage
        let valid = try #require(try raw.value(forKey: seedSession.id, in: .sessions))
        var rng = SeededGenerator(seed: 0xC0FFEE)
        var decoded = 0
        var refused = 0
        let batch = 2000
        for start in stride(from: 0, to: Self.inputs, by: batch) {
            let count = min(batch, Self.inputs - start)
            let ids = (0..<count).map { "ps_01JD" + String(format: "%022d", start + $0) }
            let records = ids.map { id in
                let bytes = Int.random(in: 0..<4, using: &rng) == 0
                    ? (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                    : Self.mutate(valid, &rng)
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
        #expect(decoded + refused == Self.inputs)
        #expect(refused > Self.inputs / 2)
        #expect(try f.store.verify().isClean)
    }

    @Test func randomImportLinesAreRefusedTypedAndWriteNothing() throws {
        let valid = Array(
            #"{"id":"ps_01G901XNSRM2YS3ASN9H5KG3FZ","cart_id":"c","provider_id":"p","is_selected":true,"status":"pending","data":{"k":[1,2.5,"x",null,{"n":true}]},"idempotency_key":"key","created_at":"2026-01-01T00:00:00.000001Z","updated_at":"2026-01-01T00:00:00Z"}"#
                .utf8)
        var rng = SeededGenerator(seed: 0xBADC0DE)
        var parsed = 0
        var refused = 0
        for _ in 0..<Self.inputs {
            let bytes = Self.mutate(valid, &rng)
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
        #expect(parsed + refused == Self.inputs)
        // A bad import of many lines writes nothing.
        let f = try StoreFixture()
        let lines = (0..<200).map { _ in String(decoding: Self.mutate(valid, &rng), as: UTF8.self) }
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
