import Foundation
import PaymentSessions
import Testing

@Suite("Input checks: typed errors naming the field, nothing written")
struct InputValidationTests {
    static let long256 = String(repeating: "x", count: 256)

    /// Each bad input with the field its error must name.
    static let badCreates: [(NewPaymentSession, String)] = [
        (NewPaymentSession(cartID: "", providerID: "p"), "cart_id"),
        (NewPaymentSession(cartID: long256, providerID: "p"), "cart_id"),
        (NewPaymentSession(cartID: "a\u{0}b", providerID: "p"), "cart_id"),
        (NewPaymentSession(cartID: "c", providerID: ""), "provider_id"),
        (NewPaymentSession(cartID: "c", providerID: long256), "provider_id"),
        (NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: ""), "idempotency_key"),
        (NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: String(repeating: "k", count: 512)), "idempotency_key"),
        (NewPaymentSession(cartID: "c", providerID: "p", id: "ps_tooshort"), "id"),
        (NewPaymentSession(cartID: "c", providerID: "p", id: "ps_01G901XNSRM2YS3ASN9H5KG3FI"), "id"),  // I is not Crockford
        (NewPaymentSession(cartID: "c", providerID: "p", id: "ps_81G901XNSRM2YS3ASN9H5KG3FZ"), "id"),  // > 128 bits
        (NewPaymentSession(cartID: "c", providerID: "p", id: "xx_01G901XNSRM2YS3ASN9H5KG3FZ"), "id"),
        (NewPaymentSession(cartID: "c", providerID: "p", data: ["blob": .string(String(repeating: "z", count: 70_000))]), "data"),
        (NewPaymentSession(cartID: "c", providerID: "p", data: ["deep": deeplyNested(40)]), "data"),
    ]

    static func deeplyNested(_ depth: Int) -> JSONValue {
        (0..<depth).reduce(JSONValue.null) { inner, _ in .array([inner]) }
    }

    @Test(arguments: 0..<badCreates.count)
    func badCreateNamesTheFieldAndWritesNothing(index: Int) throws {
        let f = try StoreFixture()
        let (input, field) = Self.badCreates[index]
        let error = storeError { try f.store.create(input) }
        guard case .invalidInput(let named, _, _) = error else {
            Issue.record("expected invalidInput for \(field), got \(String(describing: error))")
            return
        }
        #expect(named == field)
        #expect(error?.code == .invalidInput)
        #expect(try f.store.count() == 0)
        #expect((try f.store.environment.info()).lastTransactionID <= 2)
    }

    static func nestedObjects(_ depth: Int, innermost: JSONValue = .null) -> JSONValue {
        (0..<depth).reduce(innermost) { inner, _ in .object(["k": inner]) }
    }

    /// `data`'s members are at depth 1; a value at depth 32 is allowed, one at 33 is not,
    /// whether arrays or objects hold it, and an empty container counts as its own depth.
    static let depthCases: [(JSONValue, Bool)] = [
        (deeplyNested(31), true), (deeplyNested(32), false),
        (nestedObjects(31), true), (nestedObjects(32), false),
        (nestedObjects(15, innermost: deeplyNested(16)), true), (nestedObjects(16, innermost: deeplyNested(16)), false),
        (deeplyNested(31).replacingInnermost(with: .array([])), true),
        (nestedObjects(31, innermost: .object([:])), true), (nestedObjects(31, innermost: .array([])), true),
        (deeplyNested(32).replacingInnermost(with: .object([:])), false), (deeplyNested(200), false),
    ]

    @Test(arguments: depthCases)
    func dataDepthLimitIsExact(value: JSONValue, accepted: Bool) throws {
        let f = try StoreFixture()
        let input = NewPaymentSession(cartID: "c", providerID: "p", data: ["deep": value, "flat": 1])
        if accepted {
            let session = try f.store.create(input)
            #expect(try f.store.session(id: session.id)?.data == input.data)
        } else {
            let error = storeError { try f.store.create(input) }
            guard case .invalidInput("data", nil, let reason) = error else {
                Issue.record("expected invalidInput for data, got \(String(describing: error))")
                return
            }
            #expect(reason == "nested deeper than \(SessionValidation.maxDataDepth) levels")
            #expect(try f.store.count() == 0)
        }
    }

    @Test func longestAllowedInputsAreAccepted() throws {
        let f = try StoreFixture()
        let cart = String(repeating: "c", count: 255)
        let provider = String(repeating: "p", count: 255)
        let key = String(repeating: "k", count: 511)
        let s = try f.store.create(NewPaymentSession(cartID: cart, providerID: provider, idempotencyKey: key, select: true))
        #expect(try f.store.sessions(cartID: cart) == [s])
        #expect(try f.store.session(idempotencyKey: key) == s)
        #expect(try f.store.verify().isClean)
    }

    @Test func lookupsWithMalformedInputAreInvalidInputNotNotFound() throws {
        let f = try StoreFixture()
        #expect(storeError { _ = try f.store.session(id: "nope") }?.code == .invalidInput)
        #expect(storeError { _ = try f.store.sessions(cartID: "") }?.code == .invalidInput)
        #expect(storeError { _ = try f.store.session(idempotencyKey: "") }?.code == .invalidInput)
        #expect(storeError { try f.store.select(id: "ps_01G901XNSRM2YS3ASN9H5KG3FZ") }
            == .sessionNotFound(id: "ps_01G901XNSRM2YS3ASN9H5KG3FZ"))
    }

    @Test func aFailedOperationInsideAWriteRollsBackTheWholeTransaction() throws {
        let f = try StoreFixture()
        let error = storeError {
            try f.store.write { tx in
                try tx.create(NewPaymentSession(cartID: "c", providerID: "a"))
                try tx.create(NewPaymentSession(cartID: "c", providerID: ""))
            }
        }
        #expect(error?.code == .invalidInput)
        #expect(try f.store.count() == 0)
    }

    @Test func anOperationThatThrowsInsideAWriteChangesNothingAndTheRestCommits() throws {
        let f = try StoreFixture()
        let s = try f.store.create(NewPaymentSession(cartID: "c", providerID: "a", status: .authorized, select: true))
        try f.store.write { tx in
            #expect(throws: PaymentSessionError.self) { try tx.update(id: s.id, status: .pending) }
            try tx.create(NewPaymentSession(cartID: "c", providerID: "b"))
        }
        #expect(try f.store.session(id: s.id) == s)
        #expect(try f.store.count() == 2)
        #expect(try f.store.verify().isClean)
    }

    @Test func sessionJSONWithBadFieldsIsRefusedNamingTheField() {
        let valid = #"{"id":"ps_01G901XNSRM2YS3ASN9H5KG3FZ","cart_id":"c","provider_id":"p","is_selected":false,"status":"pending","data":{},"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}"#
        #expect((try? PaymentSession(jsonText: valid)) != nil)
        let cases: [(String, String)] = [
            (valid.replacingOccurrences(of: #""status":"pending""#, with: #""status":"paid""#), "status"),
            (valid.replacingOccurrences(of: #""data":{}"#, with: #""data":[]"#), "data"),
            (valid.replacingOccurrences(of: #""data":{}"#, with: #""data":"{}""#), "data"),
            (valid.replacingOccurrences(of: #""is_selected":false"#, with: #""is_selected":"no""#), "is_selected"),
            (valid.replacingOccurrences(of: "2026-01-01T00:00:00Z\",\"updated", with: "2026-01-01 00:00\",\"updated"), "created_at"),
            (valid.replacingOccurrences(of: #","cart_id":"c""#, with: ""), "cart_id"),
            (valid.replacingOccurrences(of: #""id":"ps_01G901XNSRM2YS3ASN9H5KG3FZ""#, with: #""id":"ps_1""#), "id"),
            (valid.replacingOccurrences(of: #""status""#, with: #""extra":1,"status""#), "extra"),
            (valid.replacingOccurrences(of: #""updated_at":"2026-01-01T00:00:00Z""#, with: #""updated_at":"2025-01-01T00:00:00Z""#), "updated_at"),
        ]
        for (text, field) in cases {
            do {
                _ = try PaymentSession(jsonText: text)
                Issue.record("accepted bad \(field): \(text)")
            } catch {
                if case .invalidInput(let named, _, _) = error { #expect(named == field, "\(text)") } else {
                    Issue.record("wrong error \(error) for \(field)")
                }
            }
        }
    }
}

extension JSONValue {
    /// The same nesting with its innermost `null` replaced.
    func replacingInnermost(with value: JSONValue) -> JSONValue {
        switch self {
        case .array(let elements): .array(elements.map { $0.replacingInnermost(with: value) })
        case .object(let members): .object(members.mapValues { $0.replacingInnermost(with: value) })
        case .null: value
        default: self
        }
    }
}
