import Foundation
import LMDB
import PaymentSessions
import TestSupport
import Testing

/// Money and authorization: amounts follow the cart while nothing is held, only the
/// selected session is authorized and for its amount, authorize is idempotent, and holds
/// are never orphaned silently.
@Suite("Money and authorization")
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

    @Test(arguments: [
        (-1, "usd"), (SessionValidation.maxAmount + 1, "usd"), (100, "USD"), (100, "us"), (100, "usdx"), (100, "u$d"),
    ])
    func amountsAndCurrenciesOutOfRangeAreInvalidInputAndWriteNothing(amount: Int, currency: String) throws {
        let f = try StoreFixture()
        let refusal = storeError {
            try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", amount: amount, currencyCode: currency))
        }
        #expect(refusal?.code == .invalidInput)
        #expect(try f.store.count() == 0)
        #expect(storeError { try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", amount: 5)) }?.code == .invalidInput)
    }

    @Test func theAmountFollowsTheCartWhileNothingIsHeld() throws {
        let f = try StoreFixture()
        let (stripe, _) = try cart(f)
        let updated = try f.store.update(id: stripe.id, amount: 5100)
        #expect(updated.amount == 5100 && updated.currencyCode == "usd" && updated.updatedAt == f.clock.now)
        f.clock.advance()
        let sameAgain = try f.store.update(id: stripe.id, amount: 5100)
        #expect(sameAgain.updatedAt == updated.updatedAt)
        try f.store.update(id: stripe.id, status: .error)
        #expect(try f.store.update(id: stripe.id, amount: 5200).amount == 5200)
        try f.store.update(id: stripe.id, status: .canceled)
        #expect(storeError { try f.store.update(id: stripe.id, amount: 5300) } == .sessionIsFinal(id: stripe.id))
    }

    @Test func authorizeRecordsTheAuthorizationInOneWrite() throws {
        let f = try StoreFixture()
        let (stripe, _) = try cart(f)
        let authorized = try f.store.authorize(id: stripe.id, amount: 4200, data: ["intent": "pi_1"])
        #expect(authorized.status == .authorized)
        #expect(authorized.amount == 4200)
        #expect(authorized.paymentAuthorizedAt == f.clock.now)
        #expect(authorized.updatedAt == f.clock.now)
        #expect(authorized.data == ["intent": "pi_1"])
        #expect(try f.store.session(id: stripe.id) == authorized)
        #expect(try f.store.verify().isClean)
    }

    /// A retried authorize (a client that timed out) returns the session as it is and
    /// writes nothing; another amount is a conflict.
    @Test func authorizeIsIdempotent() throws {
        let f = try StoreFixture()
        let (stripe, _) = try cart(f)
        let first = try f.store.authorize(id: stripe.id, amount: 4200)
        f.clock.advance()
        let transaction = try f.store.environment.info().lastTransactionID
        let again = try f.store.authorize(id: stripe.id, amount: 4200)
        #expect(again == first)
        #expect(try f.store.environment.info().lastTransactionID == transaction)
        #expect(storeError { try f.store.authorize(id: stripe.id, amount: 4300) }
            == .amountMismatch(id: stripe.id, expected: 4200, actual: 4300))
        #expect(try f.store.session(id: stripe.id) == first)
    }

    @Test func onlyTheSelectedSessionCanBeAuthorizedForItsAmount() throws {
        let f = try StoreFixture()
        let (stripe, manual) = try cart(f)
        #expect(storeError { try f.store.authorize(id: manual.id, amount: 4200) } == .notSelected(id: manual.id, cartID: "c"))
        #expect(storeError { try f.store.update(id: manual.id, status: .authorized) } == .notSelected(id: manual.id, cartID: "c"))
        #expect(storeError { try f.store.authorize(id: stripe.id, amount: 4000) }
            == .amountMismatch(id: stripe.id, expected: 4200, actual: 4000))
        #expect(storeError { try f.store.authorize(id: stripe.id, amount: 4200, currencyCode: "eur") }?.code == .invalidInput)
        #expect(try f.store.sessions(cartID: "c").allSatisfy { $0.status == .pending })
        // A session without an amount takes the authorized one (and needs a currency).
        let bare = try f.store.create(NewPaymentSession(cartID: "d", providerID: "p", select: true))
        #expect(storeError { try f.store.authorize(id: bare.id, amount: 10) }?.code == .invalidInput)
        let taken = try f.store.authorize(id: bare.id, amount: 10, currencyCode: "gbp")
        #expect(taken.amount == 10 && taken.currencyCode == "gbp")
    }

    /// `update(status: .authorized)` is an authorization for the session's own amount, and
    /// a created-authorized session must be selected; the rules hold inside write closures.
    @Test func everyPathToAuthorizedFollowsTheRules() throws {
        let f = try StoreFixture()
        let (stripe, manual) = try cart(f)
        let viaUpdate = try f.store.update(id: stripe.id, status: .authorized)
        #expect(viaUpdate.amount == 4200 && viaUpdate.paymentAuthorizedAt == f.clock.now)
        #expect(storeError {
            try f.store.create(NewPaymentSession(cartID: "e", providerID: "p", status: .authorized, amount: 1, currencyCode: "usd"))
        }?.code == .invalidInput)
        let created = try f.store.create(NewPaymentSession(
            cartID: "e", providerID: "p", status: .authorized, select: true, amount: 1, currencyCode: "usd"))
        #expect(created.paymentAuthorizedAt == created.createdAt)
        let refused = try f.store.write { tx in
            storeError { try tx.update(id: manual.id, status: .authorized) }
        }
        #expect(refused == .notSelected(id: manual.id, cartID: "c"))
        // An import of an authorized session that is not selected is refused.
        var orphan = try #require(try f.store.session(id: created.id))
        orphan.id = "ps_01G901XNSRM2YS3ASN9H5KG3FZ"
        orphan.cartID = "f"
        orphan.isSelected = false
        #expect(storeError { try f.store.importJSONLines(orphan.jsonText()) }?.code == .invalidInput)
        #expect(try f.store.verify().isClean)
    }

    /// Switching provider after authorizing would orphan the hold: refused until the
    /// authorized session is canceled, which keeps its authorization record.
    @Test func anAuthorizedSelectionCannotBeSwitchedOrDroppedUntilCanceled() throws {
        let f = try StoreFixture()
        let (stripe, manual) = try cart(f)
        let authorized = try f.store.authorize(id: stripe.id, amount: 4200)
        let refusal = PaymentSessionError.authorizedSessionSelected(cartID: "c", authorizedID: stripe.id)
        #expect(storeError { try f.store.select(id: manual.id) } == refusal)
        #expect(storeError { try f.store.deselect(cartID: "c") } == refusal)
        #expect(storeError { try f.store.create(NewPaymentSession(cartID: "c", providerID: "paypal", select: true)) } == refusal)
        #expect(try f.store.count() == 2)
        #expect(storeError { try f.store.update(id: stripe.id, amount: 9999) }
            == .amountMismatch(id: stripe.id, expected: 4200, actual: 9999))
        f.clock.advance()
        let canceled = try f.store.update(id: stripe.id, status: .canceled)
        #expect(!canceled.isSelected)
        #expect(canceled.paymentAuthorizedAt == authorized.paymentAuthorizedAt)
        #expect(try f.store.select(id: manual.id).isSelected)
        #expect(try f.store.verify().isClean)
    }

    @Test func deletingAnAuthorizedSessionNeedsForceAndPurgeKeepsThem() throws {
        let f = try StoreFixture()
        let (stripe, manual) = try cart(f)
        try f.store.authorize(id: stripe.id, amount: 4200)
        #expect(storeError { try f.store.delete(id: stripe.id) } == .sessionAuthorized(id: stripe.id))
        #expect(storeError { try f.store.deleteSessions(cartID: "c") } == .sessionAuthorized(id: stripe.id))
        #expect(try f.store.count() == 2)
        f.clock.advance(milliseconds: 10_000)
        let report = try f.store.purge(notUpdatedSince: f.clock.now)
        #expect(report == .init(purged: 1, keptAuthorized: 1, reservationsDropped: 0))
        #expect(try f.store.session(id: manual.id) == nil)
        #expect(try f.store.session(id: stripe.id) != nil)
        #expect(try f.store.purge(notUpdatedSince: f.clock.now, includeAuthorized: true).purged == 1)
        #expect(try f.store.count() == 0)
        let again = try f.store.create(NewPaymentSession(
            cartID: "c2", providerID: "stripe", select: true, amount: 4200, currencyCode: "usd"))
        try f.store.create(NewPaymentSession(cartID: "c2", providerID: "manual"))
        try f.store.authorize(id: again.id, amount: 4200)
        #expect(try f.store.deleteSessions(cartID: "c2", force: true) == 2)
    }

    /// The key of a deleted session stays reserved: a retry within the retention answers
    /// `sessionGone` instead of creating a second session; purge drops expired reservations.
    @Test func idempotencyKeysOutliveTheirSessions() throws {
        let f = try StoreFixture { $0.idempotencyRetention = 3600 }
        let (stripe, _) = try cart(f)
        try f.store.delete(id: stripe.id)
        let retry = NewPaymentSession(cartID: "c", providerID: "stripe", idempotencyKey: "k-stripe")
        #expect(storeError { try f.store.create(retry) } == .sessionGone(key: "k-stripe", id: stripe.id))
        #expect(storeError { try f.store.create(retry) }?.code == .notFound)
        #expect(try f.store.session(idempotencyKey: "k-stripe") == nil)
        #expect(try f.store.read { try $0.idempotencyReservation(key: "k-stripe") }?.id == stripe.id)
        #expect(try f.store.verify().reservations == 1)
        #expect(try f.store.purge(notUpdatedSince: f.clock.now).reservationsDropped == 0)
        f.clock.advance(milliseconds: 3_601_000)
        // Past the retention a create takes the key over, and purge drops what is left.
        let other = try f.store.create(NewPaymentSession(cartID: "c", providerID: "paypal", idempotencyKey: "k-other"))
        try f.store.delete(id: other.id)
        let reborn = try f.store.create(retry)
        #expect(try f.store.session(idempotencyKey: "k-stripe") == reborn)
        f.clock.advance(milliseconds: 3_601_000)
        #expect(try f.store.purge(notUpdatedSince: Date(timeIntervalSince1970: 0)).reservationsDropped == 1)
        #expect(try f.store.read { try $0.idempotencyReservation(key: "k-other") } == nil)
        #expect(try f.store.verify().isClean)
    }

    @Test func aCartsPaymentStateInOneRead() throws {
        let f = try StoreFixture()
        let (stripe, manual) = try cart(f)
        var payment = try f.store.cartPayment(cartID: "c")
        #expect(payment.sessions.map(\.id) == [stripe.id, manual.id])
        #expect(payment.selected?.id == stripe.id)
        #expect(payment.authorizedAmount == nil)
        #expect(!payment.isAuthorized(for: 4200, currencyCode: "usd"))
        try f.store.authorize(id: stripe.id, amount: 4200)
        payment = try f.store.cartPayment(cartID: "c")
        #expect(payment.authorizedAmount == 4200)
        #expect(payment.isAuthorized(for: 4200, currencyCode: "usd"))
        #expect(!payment.isAuthorized(for: 4300, currencyCode: "usd"))
        #expect(!payment.isAuthorized(for: 4200, currencyCode: "eur"))
    }

    /// A format 2 store (records without the money fields) opens and reads as it is, the
    /// new fields unset; an authorized session of it is legacy, listed apart by verify; the
    /// store is marked format 3 when opened for writing.
    @Test func aFormatTwoStoreUpgradesInPlaceAndKeepsLegacyAuthorizations() throws {
        let directory = TemporaryDirectory(prefix: "format2")
        let id = "ps_01JD0000000000000000000002"
        do {
            let store = try PaymentSessionStore(path: directory.path)
            let env = store.environment
            let sessions = try env.database(named: "sessions", create: false)
            let cartProvider = try env.database(named: "cart_provider", create: false)
            let selected = try env.database(named: "selected", create: false)
            let meta = try env.database(named: "meta", create: false)
            let record = oldRecord(version: 2, selected: true, status: 2, strings: ["cart", "stripe", #"{"a":1}"#])
            try env.write { txn in
                try txn.put(record, forKey: id, in: sessions)
                try txn.put(id, forKey: Array("cart".utf8) + [0] + Array("stripe".utf8), in: cartProvider)
                try txn.put(id, forKey: "cart", in: selected)
                try txn.put([2, 0, 0, 0] as [UInt8], forKey: "format_version", in: meta)
            }
        }
        let store = try PaymentSessionStore(path: directory.path)
        let session = try #require(try store.session(id: id))
        #expect(session.status == .authorized && session.isSelected)
        #expect(session.amount == nil && session.currencyCode == nil && !session.isInitiated && session.paymentAuthorizedAt == nil)
        #expect(session.isLegacyAuthorized)
        let report = try store.verify()
        #expect(report.isClean)
        #expect(report.legacyAuthorized == [id])
        let meta = try store.environment.database(named: "meta", create: false)
        #expect(try store.environment.read { try $0.get("format_version", in: meta) } == [3, 0, 0, 0])
        // Authorizing it now records the authorization.
        let recorded = try store.authorize(id: id, amount: 500, currencyCode: "usd")
        #expect(!recorded.isLegacyAuthorized && recorded.amount == 500)
        #expect(try store.verify().legacyAuthorized.isEmpty)
    }

    /// Sessions built by hand (`insert`, `Codable`) meet the same money rules as input:
    /// a negative amount or a malformed currency is refused, not stored as something else.
    @Test func wholeSessionsWithBadMoneyAreRefusedNotRewritten() throws {
        let f = try StoreFixture()
        let now = f.clock.now
        var session = PaymentSession(
            id: "ps_01G901XNSRM2YS3ASN9H5KG3FZ", cartID: "c", providerID: "p", amount: 100, currencyCode: "usd",
            createdAt: now, updatedAt: now)
        session.amount = -5
        #expect(storeError { try f.store.write { try $0.insert(session) } }?.code == .invalidInput)
        session.amount = 100
        session.currencyCode = "usdx"
        #expect(storeError { try f.store.write { try $0.insert(session) } }?.code == .invalidInput)
        #expect(try f.store.count() == 0)
        let negative = #"{"id":"ps_01G901XNSRM2YS3ASN9H5KG3FZ","cart_id":"c","provider_id":"p","status":"pending","amount":-5,"currency_code":"usd","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}"#
        #expect(throws: (any Error).self) { try JSONDecoder().decode(PaymentSession.self, from: Data(negative.utf8)) }
    }

    /// An imported authorized session must be its cart's selection, unless it is a legacy
    /// one (no amount, no authorization record: exported by a store before them).
    @Test func importRefusesOrphanedHoldsButKeepsLegacyOnes() throws {
        let f = try StoreFixture()
        let base = #""cart_id":"c","provider_id":"p","status":"authorized","is_selected":false,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z""#
        let orphan = #"{"id":"ps_01G901XNSRM2YS3ASN9H5KG3FZ","amount":100,"currency_code":"usd","#
            + base + "}"
        #expect(storeError { try f.store.importJSONLines(orphan) }?.code == .invalidInput)
        let unrecorded = orphan.replacingOccurrences(of: #""is_selected":false"#, with: #""is_selected":true"#)
        #expect(storeError { try f.store.importJSONLines(unrecorded) }?.code == .invalidInput)
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
        let transaction = try f.store.environment.info().lastTransactionID
        #expect(try f.store.update(id: stripe.id, status: .authorized) == first)
        #expect(try f.store.environment.info().lastTransactionID == transaction)
    }

    /// Restoring a deleted session (an import of a backup) takes its own reserved key back.
    @Test func aDeletedSessionCanBeRestoredWithItsKey() throws {
        let f = try StoreFixture()
        let (stripe, _) = try cart(f)
        try f.store.delete(id: stripe.id)
        var restored = stripe
        restored.isSelected = false
        try f.store.importJSONLines(restored.jsonText())
        #expect(try f.store.session(idempotencyKey: "k-stripe") == restored)
        #expect(try f.store.verify().isClean)
    }
}
