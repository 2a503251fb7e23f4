import Foundation
import PaymentSessions
import StoreTestFixtures
import Testing
import TestScheduling

@Suite("Input checks in the LMDB store's transactions and the JSON form", .ownThreads)
struct InputValidationTests {
    // Bad creates, the limits on a store, the longest inputs and malformed lookups are in
    // the conformance suite (both backends); here are the depth cases the data text tests
    // share, and what only the LMDB API has.

    static func deeplyNested(_ depth: Int) -> JSONValue {
        (0..<depth).reduce(JSONValue.null) { inner, _ in .array([inner]) }
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
