import Foundation
import PaymentSessions
import Testing
import TestScheduling

@Suite("Conformance: money and authorization", .ownThreads) struct MoneyConformanceTests {
    @Test(arguments: Backend.available)
    func onlyTheSelectedSessionIsAuthorizedForItsAmountAndARetryIsANoOp(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let session = try await store.create(NewPaymentSession(cartID: "c", providerID: "p", amount: 4200, currencyCode: "eur"))
            let unselected = await expectStoreError {
                _ = try await store.authorize(id: session.id, amount: 4200, currencyCode: nil, data: nil, expectedUpdatedAt: nil)
            }
            #expect(unselected == .notSelected(id: session.id, cartID: "c"))
            _ = try await store.select(id: session.id)
            let wrong = await expectStoreError {
                _ = try await store.authorize(id: session.id, amount: 4300, currencyCode: nil, data: nil, expectedUpdatedAt: nil)
            }
            #expect(wrong == .amountMismatch(id: session.id, expected: 4200, actual: 4300))
            clock.advance()
            let authorized = try await store.authorize(
                id: session.id, amount: 4200, currencyCode: "eur", data: ["intent": "pi_1"], expectedUpdatedAt: nil)
            #expect(authorized.status == .authorized && authorized.paymentAuthorizedAt == authorized.updatedAt)
            #expect(authorized.data == ["intent": "pi_1"])
            clock.advance()
            // A retry after a timeout: the same session, nothing written, whatever it expected.
            let retry = try await store.authorize(
                id: session.id, amount: 4200, currencyCode: nil, data: nil, expectedUpdatedAt: session.updatedAt)
            #expect(retry == authorized)
            let payment = try await store.cartPayment(cartID: "c")
            #expect(payment.isAuthorized(for: 4200, currencyCode: "eur") && !payment.isAuthorized(for: 4300, currencyCode: "eur"))
        }
    }

    @Test(arguments: Backend.available)
    func anAuthorizedSessionKeepsItsAmount(backend: Backend) async throws {
        try await withStore(backend) { store in
            let session = try await store.create(
                NewPaymentSession(cartID: "c", providerID: "p", select: true, amount: 100, currencyCode: "usd"))
            let raised = try await store.update(id: session.id, amount: 150, currencyCode: nil, expectedUpdatedAt: nil)
            #expect(raised.amount == 150)
            let authorized = try await store.authorize(id: session.id, amount: 150, currencyCode: nil, data: nil, expectedUpdatedAt: nil)
            #expect(try await store.update(id: session.id, amount: 150, currencyCode: nil, expectedUpdatedAt: nil) == authorized)
            let changed = await expectStoreError {
                _ = try await store.update(id: session.id, amount: 200, currencyCode: nil, expectedUpdatedAt: nil)
            }
            #expect(changed == .amountMismatch(id: session.id, expected: 150, actual: 200))
            let currency = await expectStoreError {
                _ = try await store.authorize(id: session.id, amount: 150, currencyCode: "eur", data: nil, expectedUpdatedAt: nil)
            }
            #expect(currency?.code == .invalidInput)
        }
    }

    @Test(arguments: Backend.available)
    func anAmountNeedsACurrencyAndMustBeInRange(backend: Backend) async throws {
        try await withStore(backend) { store in
            let session = try await store.create(NewPaymentSession(cartID: "c", providerID: "p", select: true))
            let noCurrency = await expectStoreError {
                _ = try await store.authorize(id: session.id, amount: 10, currencyCode: nil, data: nil, expectedUpdatedAt: nil)
            }
            #expect(noCurrency?.code == .invalidInput)
            for amount in [-1, 1 << 53] {
                let error = await expectStoreError {
                    _ = try await store.authorize(id: session.id, amount: amount, currencyCode: "eur", data: nil, expectedUpdatedAt: nil)
                }
                #expect(error?.code == .invalidInput)
            }
            #expect(try await store.session(id: session.id) == session)
        }
    }

    @Test(arguments: Backend.available)
    func anAuthorizedSessionIsDeletedOnlyWhenForced(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let session = try await RulesConformanceTests.session(in: store, cart: "c", status: .authorized)
            _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "other"))
            #expect(await expectStoreError { _ = try await store.delete(id: session.id, force: false) } == .sessionAuthorized(id: session.id))
            #expect(
                await expectStoreError { _ = try await store.deleteSessions(cartID: "c", force: false) }
                    == .sessionAuthorized(id: session.id))
            #expect(try await store.sessions(cartID: "c").count == 2)
            clock.advance(seconds: 10)
            let kept = try await store.purge(notUpdatedSince: clock.now, statuses: nil, includeAuthorized: false)
            #expect(kept.purged == 1 && kept.keptAuthorized == 1)
            #expect(try await store.deleteSessions(cartID: "c", force: true) == 1)
            #expect(try await store.count() == 0)
        }
    }

    @Test(arguments: Backend.available)
    func isInitiatedIsSetAndCleared(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let session = try await store.create(NewPaymentSession(cartID: "c", providerID: "p"))
            clock.advance()
            let initiated = try await store.update(id: session.id, isInitiated: true)
            #expect(initiated.isInitiated && initiated.updatedAt > session.updatedAt)
            #expect(try await store.update(id: session.id, isInitiated: true) == initiated)
            #expect(try await store.update(id: session.id, isInitiated: false).isInitiated == false)
        }
    }
}
