import Foundation
import PaymentSessions
import Testing
import TestScheduling

/// Bad input on each backend: a typed `invalidInput` naming the field, and nothing written;
/// the longest allowed input accepted and found by every lookup.
@Suite("Conformance: input checks", .ownThreads)
struct InputConformanceTests {
    static let long256 = String(repeating: "x", count: 256)

    static func deeplyNested(_ depth: Int) -> JSONValue {
        (0..<depth).reduce(JSONValue.null) { inner, _ in .array([inner]) }
    }

    /// Each bad input with the field its error must name.
    static let badCreates: [(NewPaymentSession, String)] = [
        (NewPaymentSession(cartID: "", providerID: "p"), "cart_id"),
        (NewPaymentSession(cartID: long256, providerID: "p"), "cart_id"),
        // PostgreSQL's text cannot hold a NUL: refused before it reaches the server, as on LMDB.
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
        (NewPaymentSession(cartID: "c", providerID: "p", amount: SessionValidation.maxAmount + 1, currencyCode: "usd"), "amount"),
        (NewPaymentSession(cartID: "c", providerID: "p", amount: 1, currencyCode: "USD"), "currency_code"),
        (NewPaymentSession(cartID: "c", providerID: "p", amount: 1, currencyCode: "u$d"), "currency_code"),
    ]

    @Test(arguments: Backend.available)
    func aBadCreateNamesTheFieldAndWritesNothing(backend: Backend) async throws {
        try await withStore(backend) { store in
            for (input, field) in Self.badCreates {
                let error = await expectStoreError { _ = try await store.create(input) }
                guard case .invalidInput(let named, _, _)? = error else {
                    Issue.record("expected invalidInput for \(field), got \(String(describing: error))")
                    continue
                }
                #expect(named == field)
                // The same input as one write of a unit.
                let inUnit = await expectStoreError { try await store.perform([.create(input)]) }
                #expect(inUnit == error)
            }
            let result = try await store.count()
            #expect(result == 0)
        }
    }

    /// A store applies the core's depth rule (whose every case the data text tests check):
    /// depth 32 is stored and read back, 33 is refused with the rule's error.
    @Test(arguments: Backend.available)
    func theDataDepthLimitHoldsOnTheStore(backend: Backend) async throws {
        try await withStore(backend) { store in
            let deepest = NewPaymentSession(cartID: "c", providerID: "p", data: ["deep": Self.deeplyNested(31)])
            let session = try await store.create(deepest)
            #expect(try await store.session(id: session.id)?.data == deepest.data)
            let error = await expectStoreError {
                _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "q", data: ["deep": Self.deeplyNested(32)]))
            }
            #expect(error == .invalidInput(field: "data", value: nil, reason: "nested deeper than \(SessionValidation.maxDataDepth) levels"))
            #expect(try await store.count() == 1)
        }
    }

    /// Exactly the limit of compact JSON is accepted; a byte more is refused with the size.
    @Test(arguments: Backend.available)
    func theDataSizeLimitIsExact(backend: Backend) async throws {
        try await withStore(backend, settings: StoreSettings(maxDataBytes: 100)) { store in
            // {"s":"…"} is 8 bytes around the string.
            let fits: [String: JSONValue] = ["s": .string(String(repeating: "a", count: 92))]
            _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "fits", data: fits))
            let over: [String: JSONValue] = ["s": .string(String(repeating: "a", count: 93))]
            let error = await expectStoreError { _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "over", data: over)) }
            #expect(error == .invalidInput(field: "data", value: nil, reason: "is 101 bytes of JSON; at most 100"))
            #expect(try await store.count() == 1)
        }
    }

    @Test(arguments: Backend.available)
    func theLongestAllowedInputsAreAcceptedAndFound(backend: Backend) async throws {
        try await withStore(backend) { store in
            let cart = String(repeating: "c", count: 255)
            let provider = String(repeating: "p", count: 255)
            let key = String(repeating: "k", count: 511)
            let s = try await store.create(NewPaymentSession(cartID: cart, providerID: provider, idempotencyKey: key, select: true))
            #expect(try await store.sessions(cartID: cart) == [s])
            #expect(try await store.session(idempotencyKey: key) == s)
            #expect(try await store.session(cartID: cart, providerID: provider) == s)
            #expect(try await store.selectedSession(cartID: cart) == s)
            try await expectInvariants(store)
        }
    }

    @Test(arguments: Backend.available)
    func lookupsWithMalformedInputAreInvalidInputNotNotFound(backend: Backend) async throws {
        try await withStore(backend) { store in
            #expect(await expectStoreError { _ = try await store.session(id: "nope") }?.code == .invalidInput)
            #expect(await expectStoreError { _ = try await store.sessions(cartID: "") }?.code == .invalidInput)
            #expect(await expectStoreError { _ = try await store.session(idempotencyKey: "") }?.code == .invalidInput)
            #expect(await expectStoreError { _ = try await store.select(id: "ps_01G901XNSRM2YS3ASN9H5KG3FZ") }
                == .sessionNotFound(id: "ps_01G901XNSRM2YS3ASN9H5KG3FZ"))
        }
    }

    /// Odd but valid text in ids and data comes back exactly: quotes, backslashes, control
    /// characters, multi-byte letters, a number longer than a `Double` holds.
    @Test(arguments: Backend.available)
    func unusualTextComesBackExactly(backend: Backend) async throws {
        try await withStore(backend) { store in
            let data: [String: JSONValue] = [
                "controls": "\u{0}\u{1F}", "big": .number(JSONNumber(text: "123456789012345678901234567890")!),
                "quote": "a \"b\" \\ c", "letters": "ü é 漢字 🙂",
            ]
            let created = try await store.create(NewPaymentSession(
                cartID: #"cart_"quoted"\é"#, providerID: "prov\u{1}ider", data: data, idempotencyKey: #"key "ü""#))
            let read = try await store.session(id: created.id)
            #expect(read == created)
            #expect(read?.jsonText() == created.jsonText())
            #expect(try await store.session(idempotencyKey: #"key "ü""#) == created)
            #expect(try await store.sessions(cartID: #"cart_"quoted"\é"#) == [created])
            // Data is unchanged by select and authorize-free status moves.
            #expect(try await store.select(id: created.id).data == data)
        }
    }
}
