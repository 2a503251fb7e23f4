import Foundation
@_spi(StorageTesting) import PaymentSessions
import TestSupport
import StoreTestFixtures
import Testing
import TestScheduling

/// Money and authorization in what only the LMDB store has: its JSON output of the new
/// fields, writes that do not happen (transaction ids), its reservations and format
/// upgrade. The rules themselves are in the conformance suite, on both backends.
@Suite("Money and authorization: LMDB", .ownThreads)
struct AuthorizationTests {
    /// A cart with a stripe session (selected) and a manual one, both for 4200 usd.
    func cart(_ f: StoreFixture) throws -> (stripe: PaymentSession, manual: PaymentSession) {
        let stripe = try f.store.create(NewPaymentSession(
            cartID: "c", providerID: "stripe", idempotencyKey: "k-stripe", select: true, amount: 4200, currencyCode: "usd"))
        let manual = try f.store.create(NewPaymentSession(cartID: "c", providerID: "manual", amount: 4200, currencyCode: "usd"))
        f.clock.advance()
        return (stripe, manual)
    }

    @Test func theNewFieldsAreStoredAndPrinted() throws {
        let f = try StoreFixture()
        let created = try f.store.create(NewPaymentSession(
            cartID: "c", providerID: "p", amount: 1999, currencyCode: "eur", isInitiated: true))
        let read = try #require(try f.store.session(id: created.id))
        #expect(read == created)
        #expect(read.amount == 1999 && read.currencyCode == "eur" && read.isInitiated && read.paymentAuthorizedAt == nil)
        let json = try #require(try JSONValue(parsing: read.jsonText()).objectValue)
        #expect(json["amount"] == 1999 && json["currency_code"] == "eur" && json["is_initiated"] == true)
        #expect(json["payment_authorized_at"] == .null)
        let bare = try f.store.create(NewPaymentSession(cartID: "c", providerID: "q"))
        let bareJSON = try #require(try JSONValue(parsing: bare.jsonText()).objectValue)
        #expect(bareJSON["amount"] == .null && bareJSON["currency_code"] == .null && bareJSON["is_initiated"] == false)
        #expect(try PaymentSession(jsonText: read.jsonText()) == read)
        #expect(try JSONDecoder().decode(PaymentSession.self, from: JSONEncoder().encode(read)) == read)
    }

    /// A retried authorize (a client that timed out) returns the session as it is and
    /// writes nothing; another amount is a conflict.
    @Test func authorizeIsIdempotent() throws {
        let f = try StoreFixture()
        let (stripe, _) = try cart(f)
        let first = try f.store.authorize(id: stripe.id, amount: 4200)
        f.clock.advance()
        let transaction = try f.store.rawStorage.lastTransactionID()
        let again = try f.store.authorize(id: stripe.id, amount: 4200)
        #expect(again == first)
        #expect(try f.store.rawStorage.lastTransactionID() == transaction)
        #expect(storeError { try f.store.authorize(id: stripe.id, amount: 4300) }
            == .amountMismatch(id: stripe.id, expected: 4200, actual: 4300))
        #expect(try f.store.session(id: stripe.id) == first)
    }

    /// A format 2 store (records without the money fields) opens and reads as it is, the
    /// new fields unset; an authorized session of it is legacy, listed apart by verify; the
    /// store is marked with the current format when opened for writing.
    @Test func aFormatTwoStoreUpgradesInPlaceAndKeepsLegacyAuthorizations() throws {
        let directory = TemporaryDirectory(prefix: "format2")
        let id = "ps_01JD0000000000000000000002"
        do {
            let store = try PaymentSessionStore(path: directory.path)
            let raw = store.rawStorage
            let record = oldRecord(version: 2, selected: true, status: 2, strings: ["cart", "stripe", #"{"a":1}"#])
            try raw.put(record, forKey: id, in: .sessions)
            try raw.put(Array(id.utf8), forKey: RawStorage.cartProviderKey(cartID: "cart", providerID: "stripe"), in: .cartProvider)
            try raw.put(Array(id.utf8), forKey: "cart", in: .selected)
            try raw.put([2, 0, 0, 0] as [UInt8], forKey: RawStorage.formatVersionKey, in: .meta)
        }
        let store = try PaymentSessionStore(path: directory.path)
        let session = try #require(try store.session(id: id))
        #expect(session.status == .authorized && session.isSelected)
        #expect(session.amount == nil && session.currencyCode == nil && !session.isInitiated && session.paymentAuthorizedAt == nil)
        #expect(session.isLegacyAuthorized)
        let report = try store.verify()
        #expect(report.isClean)
        #expect(report.legacyAuthorized == [id])
        #expect(try store.rawStorage.value(forKey: RawStorage.formatVersionKey, in: .meta) == [UInt8(RawStorage.formatVersion), 0, 0, 0])
        // Authorizing it now records the authorization.
        let recorded = try store.authorize(id: id, amount: 500, currencyCode: "usd")
        #expect(!recorded.isLegacyAuthorized && recorded.amount == 500)
        #expect(try store.verify().legacyAuthorized.isEmpty)
    }

    /// A session decoded by hand meets the same money rules as input: a negative amount
    /// does not decode. (Refusing such sessions on import and insert is in the conformance
    /// suite.)
    @Test func aNegativeAmountDoesNotDecode() {
        let negative = #"{"id":"ps_01G901XNSRM2YS3ASN9H5KG3FZ","cart_id":"c","provider_id":"p","status":"pending","amount":-5,"currency_code":"usd","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}"#
        #expect(throws: (any Error).self) { try JSONDecoder().decode(PaymentSession.self, from: Data(negative.utf8)) }
    }

    /// A legacy authorized session (no amount, no authorization record: exported by a store
    /// before them) imports, and `verify` lists it apart, not as a problem. (Refusing
    /// orphaned holds is in the conformance suite.)
    @Test func verifyListsALegacyAuthorizedImportApart() throws {
        let f = try StoreFixture()
        let base = #""cart_id":"c","provider_id":"p","status":"authorized","is_selected":false,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z""#
        let legacy = #"{"id":"ps_01G901XNSRM2YS3ASN9H5KG3FZ","# + base + "}"
        #expect(try f.store.importJSONLines(legacy) == 1)
        #expect(try f.store.verify().legacyAuthorized == ["ps_01G901XNSRM2YS3ASN9H5KG3FZ"])
        #expect(try f.store.verify().isClean)
    }

    /// A refused create does not consume an expired reservation: the refusal changes
    /// nothing, the reservation included.
    @Test func aRefusedCreateLeavesAnExpiredReservationInPlace() throws {
        let f = try StoreFixture { $0.idempotencyRetention = 1 }
        let first = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: "k"))
        try f.store.delete(id: first.id)
        try f.store.create(NewPaymentSession(cartID: "c", providerID: "p"))
        f.clock.advance(milliseconds: 2000)
        let refusal = storeError { try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: "k")) }
        guard case .duplicateSession? = refusal else {
            Issue.record("expected duplicateSession, got \(String(describing: refusal))")
            return
        }
        #expect(try f.store.read { try $0.idempotencyReservation(key: "k") }?.id == first.id)
        #expect(try f.store.verify().isClean)
    }

    /// A retried authorize that carries the `expectedUpdatedAt` of its first attempt gets
    /// the session back, and `update(status: .authorized)` on an authorized session writes
    /// nothing either.
    @Test func retriesOfAnAuthorizationNeverWrite() throws {
        let f = try StoreFixture()
        let (stripe, _) = try cart(f)
        let first = try f.store.authorize(id: stripe.id, amount: 4200, expectedUpdatedAt: stripe.updatedAt)
        f.clock.advance()
        #expect(try f.store.authorize(id: stripe.id, amount: 4200, expectedUpdatedAt: stripe.updatedAt) == first)
        let transaction = try f.store.rawStorage.lastTransactionID()
        #expect(try f.store.update(id: stripe.id, status: .authorized) == first)
        #expect(try f.store.rawStorage.lastTransactionID() == transaction)
    }
}
