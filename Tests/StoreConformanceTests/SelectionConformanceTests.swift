import Foundation
import PaymentSessions
import Testing
import TestSupport
import TestScheduling

@Suite("Conformance: selection", .ownThreads) struct SelectionConformanceTests {
    @Test(arguments: Backend.available)
    func selectingASessionDeselectsTheCartsPreviousOne(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let a = try await store.create(NewPaymentSession(cartID: "c", providerID: "a"))
            let b = try await store.create(NewPaymentSession(cartID: "c", providerID: "b"))
            let other = try await store.create(NewPaymentSession(cartID: "d", providerID: "a", select: true))
            clock.advance()
            let selectedA = try await store.select(id: a.id)
            #expect(selectedA.isSelected && selectedA.updatedAt > a.updatedAt)
            clock.advance()
            let selectedB = try await store.select(id: b.id)
            #expect(selectedB.isSelected)
            #expect(try await store.session(id: a.id)?.isSelected == false)
            #expect(try await store.selectedSession(cartID: "c") == selectedB)
            #expect(try await store.selectedSession(cartID: "d") == other)
            // Selecting the selected session changes nothing, not even updated_at.
            clock.advance()
            #expect(try await store.select(id: b.id) == selectedB)
            try await expectInvariants(store)
        }
    }

    @Test(arguments: Backend.available)
    func createdSelectedTakesTheCartsSelection(backend: Backend) async throws {
        try await withStore(backend) { store in
            let a = try await store.create(NewPaymentSession(cartID: "c", providerID: "a", select: true))
            let b = try await store.create(NewPaymentSession(cartID: "c", providerID: "b", select: true))
            #expect(try await store.session(id: a.id)?.isSelected == false)
            #expect(try await store.selectedSession(cartID: "c")?.id == b.id)
            try await expectInvariants(store)
        }
    }

    @Test(arguments: Backend.available)
    func deselectClearsTheSelectionAndReturnsIt(backend: Backend) async throws {
        try await withStore(backend) { store in
            #expect(try await store.deselect(cartID: "c") == nil)
            let a = try await store.create(NewPaymentSession(cartID: "c", providerID: "a", select: true))
            let released = try #require(try await store.deselect(cartID: "c"))
            #expect(released.id == a.id && !released.isSelected)
            #expect(try await store.selectedSession(cartID: "c") == nil)
            #expect(try await store.deselect(cartID: "c") == nil)
        }
    }

    @Test(arguments: Backend.available)
    func aCanceledSessionIsDeselectedAndCannotBeSelected(backend: Backend) async throws {
        try await withStore(backend) { store in
            let a = try await store.create(NewPaymentSession(cartID: "c", providerID: "a", select: true))
            let canceled = try await store.update(id: a.id, status: .canceled, data: nil, expectedUpdatedAt: nil)
            #expect(!canceled.isSelected)
            #expect(try await store.selectedSession(cartID: "c") == nil)
            let error = await expectStoreError { _ = try await store.select(id: a.id) }
            #expect(error == .notSelectable(id: a.id, status: .canceled))
            try await expectInvariants(store)
        }
    }

    @Test(arguments: Backend.available)
    func anAuthorizedSelectionCannotBeTakenAway(backend: Backend) async throws {
        try await withStore(backend) { store in
            let a = try await store.create(
                NewPaymentSession(cartID: "c", providerID: "a", select: true, amount: 500, currencyCode: "eur"))
            let b = try await store.create(NewPaymentSession(cartID: "c", providerID: "b"))
            _ = try await store.authorize(id: a.id, amount: 500, currencyCode: nil, data: nil, expectedUpdatedAt: nil)
            let switching = await expectStoreError { _ = try await store.select(id: b.id) }
            #expect(switching == .authorizedSessionSelected(cartID: "c", authorizedID: a.id))
            let clearing = await expectStoreError { _ = try await store.deselect(cartID: "c") }
            #expect(clearing == .authorizedSessionSelected(cartID: "c", authorizedID: a.id))
            let creating = await expectStoreError {
                _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "x", select: true))
            }
            #expect(creating == .authorizedSessionSelected(cartID: "c", authorizedID: a.id))
            #expect(try await store.session(cartID: "c", providerID: "x") == nil)
            // Canceling voids the hold and releases the selection.
            _ = try await store.update(id: a.id, status: .canceled, data: nil, expectedUpdatedAt: nil)
            #expect(try await store.select(id: b.id).isSelected)
            try await expectInvariants(store)
        }
    }

    @Test(arguments: Backend.available)
    func concurrentSelectsLeaveOneSelectedSessionPerCart(backend: Backend) async throws {
        try await withStore(backend) { store in
            var ids: [String: [String]] = [:]
            for cart in 0..<4 {
                for provider in 0..<4 {
                    let session = try await store.create(NewPaymentSession(cartID: "cart_\(cart)", providerID: "p\(provider)"))
                    ids["cart_\(cart)", default: []].append(session.id)
                }
            }
            let all = ids.values.flatMap { $0 }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        var generator = SplitMix(seed: UInt64(worker))
                        for _ in 0..<25 {
                            let id = all[Int(generator.next() % UInt64(all.count))]
                            if generator.next() % 5 == 0 {
                                _ = try await store.deselect(cartID: try #require(try await store.session(id: id)).cartID)
                            } else {
                                _ = try await store.select(id: id)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            try await expectInvariants(store)
        }
    }
}
