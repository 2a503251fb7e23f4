import Foundation
import PaymentSessions
import Testing
import TestScheduling

/// Money and authorization on each backend, on a cart as a checkout has it: amounts follow
/// the cart while nothing is held, every path to `authorized` obeys the rules, a hold is
/// never orphaned, and keys outlive their sessions.
@Suite("Conformance: authorization paths", .ownThreads)
struct AuthorizationConformanceTests {
    /// A cart with a stripe session (selected, keyed) and a manual one, both for 4200 usd.
    static func cart(
        _ store: any PaymentSessionStoring, clock: ManualClock
    ) async throws -> (stripe: PaymentSession, manual: PaymentSession) {
        let stripe = try await store.create(NewPaymentSession(
            cartID: "c", providerID: "stripe", idempotencyKey: "k-stripe", select: true, amount: 4200, currencyCode: "usd"))
        let manual = try await store.create(NewPaymentSession(cartID: "c", providerID: "manual", amount: 4200, currencyCode: "usd"))
        clock.advance()
        return (stripe, manual)
    }

    static func authorize(_ store: any PaymentSessionStoring, _ id: String, _ amount: Int, currency: String? = nil) async throws -> PaymentSession {
        try await store.authorize(id: id, amount: amount, currencyCode: currency, data: nil, expectedUpdatedAt: nil)
    }

    @Test(arguments: Backend.available)
    func theMoneyFieldsReadBackAsCreated(backend: Backend) async throws {
        try await withStore(backend) { store in
            let created = try await store.create(NewPaymentSession(
                cartID: "c", providerID: "p", amount: 1999, currencyCode: "eur", isInitiated: true))
            let read = try #require(try await store.session(id: created.id))
            #expect(read == created)
            #expect(read.amount == 1999 && read.currencyCode == "eur" && read.isInitiated && read.paymentAuthorizedAt == nil)
            let bare = try await store.create(NewPaymentSession(cartID: "c", providerID: "q"))
            #expect(try await store.session(id: bare.id) == bare)
            #expect(bare.amount == nil && bare.currencyCode == nil && !bare.isInitiated)
            let noCurrency = await expectStoreError { _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "r", amount: 5)) }
            #expect(noCurrency?.code == .invalidInput)
        }
    }

    @Test(arguments: Backend.available)
    func theAmountFollowsTheCartWhileNothingIsHeld(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let (stripe, _) = try await Self.cart(store, clock: clock)
            let updated = try await store.update(id: stripe.id, amount: 5100, currencyCode: nil, expectedUpdatedAt: nil)
            #expect(updated.amount == 5100 && updated.currencyCode == "usd" && updated.updatedAt == clock.now)
            clock.advance()
            let sameAgain = try await store.update(id: stripe.id, amount: 5100, currencyCode: nil, expectedUpdatedAt: nil)
            #expect(sameAgain.updatedAt == updated.updatedAt)
            _ = try await store.update(id: stripe.id, status: .error, data: nil, expectedUpdatedAt: nil)
            #expect(try await store.update(id: stripe.id, amount: 5200, currencyCode: nil, expectedUpdatedAt: nil).amount == 5200)
            _ = try await store.update(id: stripe.id, status: .canceled, data: nil, expectedUpdatedAt: nil)
            let final = await expectStoreError { _ = try await store.update(id: stripe.id, amount: 5300, currencyCode: nil, expectedUpdatedAt: nil) }
            #expect(final == .sessionIsFinal(id: stripe.id))
        }
    }

    @Test(arguments: Backend.available)
    func onlyTheSelectedSessionCanBeAuthorizedForItsAmount(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let (stripe, manual) = try await Self.cart(store, clock: clock)
            #expect(await expectStoreError { _ = try await Self.authorize(store, manual.id, 4200) } == .notSelected(id: manual.id, cartID: "c"))
            #expect(await expectStoreError {
                _ = try await store.update(id: manual.id, status: .authorized, data: nil, expectedUpdatedAt: nil)
            } == .notSelected(id: manual.id, cartID: "c"))
            #expect(await expectStoreError { _ = try await Self.authorize(store, stripe.id, 4000) }
                == .amountMismatch(id: stripe.id, expected: 4200, actual: 4000))
            #expect(await expectStoreError { _ = try await Self.authorize(store, stripe.id, 4200, currency: "eur") }?.code == .invalidInput)
            #expect(try await store.sessions(cartID: "c").allSatisfy { $0.status == .pending })
            // A session without an amount takes the authorized one (and needs a currency).
            let bare = try await store.create(NewPaymentSession(cartID: "d", providerID: "p", select: true))
            #expect(await expectStoreError { _ = try await Self.authorize(store, bare.id, 10) }?.code == .invalidInput)
            let taken = try await Self.authorize(store, bare.id, 10, currency: "gbp")
            #expect(taken.amount == 10 && taken.currencyCode == "gbp" && taken.paymentAuthorizedAt == taken.updatedAt)
            // Authorized: another amount is a mismatch, and nothing changes.
            #expect(await expectStoreError { _ = try await Self.authorize(store, bare.id, 11) }
                == .amountMismatch(id: bare.id, expected: 10, actual: 11))
            #expect(try await store.session(id: bare.id) == taken)
        }
    }

    /// `update(status: .authorized)` authorizes for the session's own amount; a session
    /// created authorized must be selected and records the authorization at its creation.
    @Test(arguments: Backend.available)
    func everyPathToAuthorizedFollowsTheRules(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let (stripe, manual) = try await Self.cart(store, clock: clock)
            let viaUpdate = try await store.update(id: stripe.id, status: .authorized, data: nil, expectedUpdatedAt: nil)
            #expect(viaUpdate.amount == 4200 && viaUpdate.paymentAuthorizedAt == clock.now)
            // Again: the same session, nothing written.
            clock.advance()
            #expect(try await store.update(id: stripe.id, status: .authorized, data: nil, expectedUpdatedAt: nil) == viaUpdate)
            let unselected = await expectStoreError {
                _ = try await store.create(NewPaymentSession(cartID: "e", providerID: "p", status: .authorized, amount: 1, currencyCode: "usd"))
            }
            #expect(unselected?.code == .invalidInput)
            let created = try await store.create(NewPaymentSession(
                cartID: "e", providerID: "p", status: .authorized, select: true, amount: 1, currencyCode: "usd"))
            #expect(created.paymentAuthorizedAt == created.createdAt)
            let inUnit = await expectStoreError {
                try await store.perform([.update(id: manual.id, status: .authorized, data: nil, expectedUpdatedAt: nil)])
            }
            #expect(inUnit == .notSelected(id: manual.id, cartID: "c"))
            try await expectInvariants(store)
        }
    }

    /// Switching provider after authorizing would orphan the hold: refused until the
    /// authorized session is canceled, which keeps its authorization record.
    @Test(arguments: Backend.available)
    func anAuthorizedSelectionCannotBeSwitchedOrDroppedUntilCanceled(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let (stripe, manual) = try await Self.cart(store, clock: clock)
            let authorized = try await Self.authorize(store, stripe.id, 4200)
            let refusal = PaymentSessionError.authorizedSessionSelected(cartID: "c", authorizedID: stripe.id)
            #expect(await expectStoreError { _ = try await store.select(id: manual.id) } == refusal)
            #expect(await expectStoreError { _ = try await store.deselect(cartID: "c") } == refusal)
            #expect(await expectStoreError {
                _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "paypal", select: true))
            } == refusal)
            #expect(try await store.count() == 2)
            clock.advance()
            let canceled = try await store.update(id: stripe.id, status: .canceled, data: nil, expectedUpdatedAt: nil)
            #expect(!canceled.isSelected)
            #expect(canceled.paymentAuthorizedAt == authorized.paymentAuthorizedAt)
            #expect(try await store.select(id: manual.id).isSelected)
            try await expectInvariants(store)
        }
    }

    @Test(arguments: Backend.available)
    func purgeKeepsAuthorizedSessionsUnlessTold(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let (stripe, manual) = try await Self.cart(store, clock: clock)
            _ = try await Self.authorize(store, stripe.id, 4200)
            clock.advance(milliseconds: 10_000)
            let report = try await store.purge(notUpdatedSince: clock.now, statuses: nil, includeAuthorized: false)
            #expect(report == PurgeReport(purged: 1, keptAuthorized: 1, reservationsDropped: 0))
            #expect(try await store.session(id: manual.id) == nil)
            #expect(try await store.session(id: stripe.id) != nil)
            #expect(try await store.purge(notUpdatedSince: clock.now, statuses: nil, includeAuthorized: true).purged == 1)
            #expect(try await store.count() == 0)
        }
    }

    /// The key of a deleted session stays reserved: a retry within the retention answers
    /// `sessionGone`; past it a create takes the key over, and purge drops what is left.
    @Test(arguments: Backend.available)
    func idempotencyKeysOutliveTheirSessions(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock, settings: StoreSettings(idempotencyRetention: 3600)) { store in
            let (stripe, _) = try await Self.cart(store, clock: clock)
            _ = try await store.delete(id: stripe.id, force: false)
            let retry = NewPaymentSession(cartID: "c", providerID: "stripe", idempotencyKey: "k-stripe")
            #expect(await expectStoreError { _ = try await store.create(retry) } == .sessionGone(key: "k-stripe", id: stripe.id))
            #expect(try await store.session(idempotencyKey: "k-stripe") == nil)
            #expect(try await store.purge(notUpdatedSince: clock.now, statuses: nil, includeAuthorized: false).reservationsDropped == 0)
            clock.advance(milliseconds: 3_601_000)
            let other = try await store.create(NewPaymentSession(cartID: "c", providerID: "paypal", idempotencyKey: "k-other"))
            _ = try await store.delete(id: other.id, force: false)
            let reborn = try await store.create(retry)
            #expect(try await store.session(idempotencyKey: "k-stripe") == reborn)
            clock.advance(milliseconds: 3_601_000)
            let dropped = try await store.purge(notUpdatedSince: Date(timeIntervalSince1970: 0), statuses: nil, includeAuthorized: false)
            #expect(dropped.reservationsDropped == 1)
            // Dropped: the key is free again.
            _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "adyen", idempotencyKey: "k-other"))
            try await expectInvariants(store)
        }
    }

    @Test(arguments: Backend.available)
    func aCartsPaymentStateInOneRead(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let (stripe, manual) = try await Self.cart(store, clock: clock)
            var payment = try await store.cartPayment(cartID: "c")
            #expect(payment.sessions.map(\.id) == [stripe.id, manual.id])
            #expect(payment.selected?.id == stripe.id)
            #expect(payment.authorizedAmount == nil)
            #expect(!payment.isAuthorized(for: 4200, currencyCode: "usd"))
            _ = try await Self.authorize(store, stripe.id, 4200)
            payment = try await store.cartPayment(cartID: "c")
            #expect(payment.authorizedAmount == 4200)
            #expect(payment.isAuthorized(for: 4200, currencyCode: "usd"))
            #expect(!payment.isAuthorized(for: 4300, currencyCode: "usd"))
            #expect(!payment.isAuthorized(for: 4200, currencyCode: "eur"))
        }
    }
}
