import Foundation
import PaymentSessions
import Testing
import TestScheduling

@Suite("Conformance: transitions, idempotency, optimistic concurrency", .ownThreads) struct RulesConformanceTests {
    /// A session of a fresh cart brought to `status` by allowed moves (selected, with an
    /// amount, so that `authorized` is reachable).
    static func session(
        in store: any PaymentSessionStoring, cart: String, status: PaymentSessionStatus
    ) async throws -> PaymentSession {
        let session = try await store.create(
            NewPaymentSession(cartID: cart, providerID: "p", select: true, amount: 100, currencyCode: "usd"))
        switch status {
        case .pending: return session
        case .authorized: return try await store.authorize(id: session.id, amount: 100, currencyCode: nil, data: nil, expectedUpdatedAt: nil)
        default: return try await store.update(id: session.id, status: status, data: nil, expectedUpdatedAt: nil)
        }
    }

    @Test(arguments: Backend.available)
    func everyMoveFollowsTheTransitionTable(backend: Backend) async throws {
        try await withStore(backend) { store in
            for from in PaymentSessionStatus.allCases {
                for to in PaymentSessionStatus.allCases {
                    let session = try await Self.session(in: store, cart: "\(from.rawValue)-\(to.rawValue)", status: from)
                    #expect(session.status == from)
                    if from.canMove(to: to) {
                        let moved = try await store.update(id: session.id, status: to, data: nil, expectedUpdatedAt: nil)
                        #expect(moved.status == to, "\(from) -> \(to)")
                    } else {
                        let error = await expectStoreError {
                            _ = try await store.update(id: session.id, status: to, data: nil, expectedUpdatedAt: nil)
                        }
                        #expect(error == .invalidTransition(id: session.id, from: from, to: to), "\(from) -> \(to)")
                        #expect(try await store.session(id: session.id) == session)
                    }
                }
            }
            try await expectInvariants(store)
        }
    }

    @Test(arguments: Backend.available)
    func aCanceledSessionsDataIsFinal(backend: Backend) async throws {
        try await withStore(backend) { store in
            let session = try await Self.session(in: store, cart: "c", status: .canceled)
            let error = await expectStoreError {
                _ = try await store.update(id: session.id, status: nil, data: ["new": true], expectedUpdatedAt: nil)
            }
            #expect(error == .sessionIsFinal(id: session.id))
            let initiated = await expectStoreError { _ = try await store.update(id: session.id, isInitiated: true) }
            #expect(initiated == .sessionIsFinal(id: session.id))
        }
    }

    @Test(arguments: Backend.available)
    func aRepeatedCreateWithAnIdempotencyKeyReturnsTheFirstSession(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let first = try await store.create(NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: "key-1"))
            clock.advance()
            let again = try await store.create(
                NewPaymentSession(cartID: "c", providerID: "p", data: ["other": true], idempotencyKey: "key-1"))
            #expect(again == first)
            let conflict = await expectStoreError {
                _ = try await store.create(NewPaymentSession(cartID: "c2", providerID: "p", idempotencyKey: "key-1"))
            }
            #expect(
                conflict
                    == .idempotencyConflict(key: "key-1", existingID: first.id, existingCartID: "c", existingProviderID: "p"))
            #expect(try await store.count() == 1)
        }
    }

    @Test(arguments: Backend.available)
    func aDeletedSessionsKeyStaysReservedForTheRetention(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock, settings: StoreSettings(idempotencyRetention: 60)) { store in
            let first = try await store.create(NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: "key-1"))
            _ = try await store.delete(id: first.id, force: false)
            #expect(try await store.session(idempotencyKey: "key-1") == nil)
            let gone = await expectStoreError {
                _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: "key-1"))
            }
            #expect(gone == .sessionGone(key: "key-1", id: first.id))
            clock.advance(seconds: 61)
            let second = try await store.create(NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: "key-1"))
            #expect(second.id != first.id)
            #expect(try await store.session(idempotencyKey: "key-1") == second)
        }
    }

    @Test(arguments: Backend.available)
    func purgeDropsExpiredReservations(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock, settings: StoreSettings(idempotencyRetention: 60)) { store in
            for index in 0..<3 {
                let session = try await store.create(NewPaymentSession(cartID: "c\(index)", providerID: "p", idempotencyKey: "k\(index)"))
                _ = try await store.delete(id: session.id, force: false)
            }
            clock.advance(seconds: 30)
            #expect(try await store.purge(notUpdatedSince: clock.now, statuses: nil, includeAuthorized: false).reservationsDropped == 0)
            clock.advance(seconds: 31)
            let report = try await store.purge(notUpdatedSince: clock.now, statuses: nil, includeAuthorized: false)
            #expect(report == PurgeReport(purged: 0, keptAuthorized: 0, reservationsDropped: 3))
        }
    }

    @Test(arguments: Backend.available)
    func anUpdateWithAStaleExpectedTimeChangesNothing(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let session = try await store.create(NewPaymentSession(cartID: "c", providerID: "p"))
            clock.advance()
            let updated = try await store.update(id: session.id, status: nil, data: ["v": 1], expectedUpdatedAt: session.updatedAt)
            #expect(updated.updatedAt > session.updatedAt)
            let stale = await expectStoreError {
                _ = try await store.update(id: session.id, status: .error, data: nil, expectedUpdatedAt: session.updatedAt)
            }
            #expect(stale == .staleUpdate(id: session.id, expected: session.updatedAt, actual: updated.updatedAt))
            #expect(try await store.session(id: session.id) == updated)
        }
    }

    @Test(arguments: Backend.available)
    func everyChangeMovesUpdatedAtEvenWhenTheClockStandsStill(backend: Backend) async throws {
        try await withStore(backend) { store in
            let session = try await store.create(NewPaymentSession(cartID: "c", providerID: "p"))
            var previous = session.updatedAt
            for value in 0..<3 {
                let updated = try await store.update(id: session.id, status: nil, data: ["v": .number(JSONNumber(value))], expectedUpdatedAt: previous)
                #expect(updated.updatedAt > previous)
                previous = updated.updatedAt
            }
        }
    }
}
