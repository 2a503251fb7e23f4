import Foundation
import PaymentSessions
import Testing
import TestScheduling

/// A session's life on each backend: ids in creation order, a cart's sessions in creation
/// order, conflicts that write nothing, deletes that free the pair and keep the key.
@Suite("Conformance: creating and deleting", .ownThreads)
struct LifecycleConformanceTests {
    @Test(arguments: Backend.available)
    func idsAreUniqueAndInCreationOrderWithinOneMillisecond(backend: Backend) async throws {
        try await withStore(backend) { store in
            var ids: [String] = []
            for i in 0..<50 {
                ids.append(try await store.create(NewPaymentSession(cartID: "cart_\(i)", providerID: "manual")).id)
            }
            #expect(ids == ids.sorted())
            #expect(Set(ids).count == 50)
            #expect(try await store.sessions(after: nil, limit: 1000).map(\.id) == ids)
            // Ids a caller makes for a unit sort in the order given, too.
            let named = PaymentSessionID.generate(count: 20)
            #expect(named == named.sorted() && Set(named).count == 20 && named.allSatisfy(PaymentSessionID.isValid))
        }
    }

    @Test(arguments: Backend.available)
    func aCartsSessionsComeInCreationOrderWhateverTheProviderNames(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let providers = ["zeta", "alpha", "mid"]
            var ids: [String] = []
            for provider in providers {
                ids.append(try await store.create(NewPaymentSession(cartID: "cart_A", providerID: provider)).id)
                clock.advance()
            }
            // Carts whose ids share a prefix with it are other carts.
            _ = try await store.create(NewPaymentSession(cartID: "cart_A2", providerID: "alpha"))
            _ = try await store.create(NewPaymentSession(cartID: "cart_", providerID: "alpha"))
            #expect(try await store.sessions(cartID: "cart_A").map(\.id) == ids)
            #expect(try await store.sessions(cartID: "cart_A").map(\.providerID) == providers)
        }
    }

    @Test(arguments: Backend.available)
    func anIdempotencyKeyReusedForAnotherCartOrProviderIsAConflict(backend: Backend) async throws {
        try await withStore(backend) { store in
            let first = try await store.create(NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: "k"))
            let expected = PaymentSessionError.idempotencyConflict(
                key: "k", existingID: first.id, existingCartID: "c", existingProviderID: "p")
            #expect(await expectStoreError {
                _ = try await store.create(NewPaymentSession(cartID: "other", providerID: "p", idempotencyKey: "k"))
            } == expected)
            #expect(await expectStoreError {
                _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "q", idempotencyKey: "k"))
            } == expected)
            #expect(try await store.count() == 1)
        }
    }

    /// A refused create leaves nothing behind: its key and (cart, provider) stay free.
    @Test(arguments: Backend.available)
    func aRefusedCreateLeavesItsKeyAndPairFree(backend: Backend) async throws {
        try await withStore(backend) { store in
            let first = try await store.create(NewPaymentSession(cartID: "c", providerID: "p"))
            #expect(await expectStoreError {
                _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: "k1"))
            } == .duplicateSession(cartID: "c", providerID: "p", existingID: first.id))
            #expect(await expectStoreError {
                _ = try await store.create(NewPaymentSession(cartID: "d", providerID: "p", idempotencyKey: "k2", id: first.id))
            } == .duplicateID(id: first.id))
            #expect(try await store.session(idempotencyKey: "k1") == nil)
            #expect(try await store.session(idempotencyKey: "k2") == nil)
            #expect(try await store.session(cartID: "d", providerID: "p") == nil)
            let second = try await store.create(NewPaymentSession(cartID: "d", providerID: "p", idempotencyKey: "k1"))
            #expect(try await store.session(idempotencyKey: "k1") == second)
            _ = try await store.create(NewPaymentSession(cartID: "e", providerID: "p", idempotencyKey: "k2"))
            try await expectInvariants(store)
        }
    }

    /// `createOrUpdate` on a canceled pair replaces the session all or nothing: when the
    /// new `data` is refused, the canceled session is still there.
    @Test(arguments: Backend.available)
    func createOrUpdateWithRefusedDataKeepsTheCanceledSession(backend: Backend) async throws {
        try await withStore(backend, settings: StoreSettings(maxDataBytes: 64)) { store in
            let (session, _) = try await store.createOrUpdate(cartID: "c", providerID: "stripe", data: nil)
            _ = try await store.update(id: session.id, status: .canceled, data: nil, expectedUpdatedAt: nil)
            let tooLarge: [String: JSONValue] = ["blob": .string(String(repeating: "x", count: 200))]
            let refusal = await expectStoreError { _ = try await store.createOrUpdate(cartID: "c", providerID: "stripe", data: tooLarge) }
            guard case .invalidInput(field: "data", _, _)? = refusal else {
                Issue.record("expected invalid data, got \(String(describing: refusal))")
                return
            }
            #expect(try await store.session(id: session.id)?.status == .canceled)
            #expect(try await store.count() == 1)
        }
    }

    @Test(arguments: Backend.available)
    func createOrUpdateWithoutDataKeepsItAndTheSelection(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let created = try await store.create(try NewPaymentSession(
                cartID: "c", providerID: "p", dataJSON: Array(#"{"z":1,"a":[true,null]}"#.utf8), select: true))
            clock.advance()
            let (refreshed, wasCreated) = try await store.createOrUpdate(cartID: "c", providerID: "p", data: nil)
            #expect(!wasCreated && refreshed.id == created.id && refreshed.isSelected)
            // The provider's text, key order included, is kept as it was.
            #expect(refreshed.jsonText().contains(#""data":{"z":1,"a":[true,null]}"#))
            #expect(refreshed.updatedAt > created.updatedAt)
        }
    }

    /// A session created selected takes the cart's selection; the one it replaces is
    /// deselected, which is a change (`updated_at` moves).
    @Test(arguments: Backend.available)
    func aSessionCreatedSelectedDeselectsThePreviousOne(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let a = try await store.create(NewPaymentSession(cartID: "c", providerID: "a", select: true))
            clock.advance()
            let b = try await store.create(NewPaymentSession(cartID: "c", providerID: "b", select: true))
            #expect(try await store.selectedSession(cartID: "c") == b)
            let aNow = try #require(try await store.session(id: a.id))
            #expect(!aNow.isSelected && aNow.updatedAt == clock.now)
        }
    }

    @Test(arguments: Backend.available)
    func aDeleteRemovesEveryWayToTheSessionAndKeepsItsKey(backend: Backend) async throws {
        try await withStore(backend) { store in
            let s = try await store.create(NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: "k", select: true))
            #expect(try await store.delete(id: s.id, force: false) == s)
            #expect(try await store.session(id: s.id) == nil)
            #expect(try await store.session(idempotencyKey: "k") == nil)
            #expect(try await store.selectedSession(cartID: "c") == nil)
            #expect(try await store.sessions(cartID: "c").isEmpty)
            #expect(await expectStoreError { _ = try await store.delete(id: s.id, force: false) } == .sessionNotFound(id: s.id))
            // The pair is free again; the key stays reserved, so that a retry of the deleted
            // session's create does not make a second one.
            #expect(await expectStoreError {
                _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: "k"))
            } == .sessionGone(key: "k", id: s.id))
            _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "p"))
            try await expectInvariants(store)
        }
    }

    @Test(arguments: Backend.available)
    func deletingACartsSessionsLeavesOtherCartsAlone(backend: Backend) async throws {
        try await withStore(backend) { store in
            for provider in ["a", "b", "c"] { _ = try await store.create(NewPaymentSession(cartID: "one", providerID: provider)) }
            let other = try await store.create(NewPaymentSession(cartID: "two", providerID: "a", select: true))
            #expect(try await store.deleteSessions(cartID: "one", force: false) == 3)
            #expect(try await contents(of: store) == [other])
            #expect(try await store.deleteSessions(cartID: "one", force: false) == 0)
            #expect(try await store.selectedSession(cartID: "two") == other)
        }
    }
}
