import Foundation
import PaymentSessions
import Testing
import TestScheduling

@Suite("Conformance: reads, creates and bad input", .ownThreads) struct BasicsConformanceTests {
    @Test(arguments: Backend.available)
    func aCreatedSessionReadsBackByEveryKey(backend: Backend) async throws {
        try await withStore(backend) { store in
            let created = try await store.create(
                NewPaymentSession(cartID: "cart_1", providerID: "stripe", data: ["a": 1, "b": [true, nil, "x"]], idempotencyKey: "k1"))
            #expect(created.id.hasPrefix("ps_") && created.status == .pending && !created.isSelected)
            #expect(try await store.session(id: created.id) == created)
            #expect(try await store.session(idempotencyKey: "k1") == created)
            #expect(try await store.session(cartID: "cart_1", providerID: "stripe") == created)
            #expect(try await store.sessions(cartID: "cart_1") == [created])
            #expect(try await store.count() == 1)
            #expect(try await store.session(id: PaymentSessionID.generate()) == nil)
            #expect(try await store.session(idempotencyKey: "nope") == nil)
            #expect(try await store.selectedSession(cartID: "cart_1") == nil)
            try await expectInvariants(store)
        }
    }

    @Test(arguments: Backend.available)
    func dataKeepsItsExactTextAndKeyOrder(backend: Backend) async throws {
        try await withStore(backend) { store in
            let new = try NewPaymentSession(
                cartID: "c", providerID: "p", dataJSON: Array(#"{"z":1.50,"a":{"y":1e3,"b":"\u00e9"}}"#.utf8))
            let created = try await store.create(new)
            let read = try #require(try await store.session(id: created.id))
            // The provider's bytes come back as given: key order, number text, escapes.
            #expect(read.jsonText().contains(#""data":{"z":1.50,"a":{"y":1e3,"b":"\u00e9"}}"#))
            #expect(read.data == ["z": .number(JSONNumber(text: "1.50")!), "a": ["y": .number(JSONNumber(text: "1e3")!), "b": "é"]])
        }
    }

    @Test(arguments: Backend.available)
    func pagesWalkEverySessionInIDOrder(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            var ids: [String] = []
            for index in 0..<7 {
                clock.advance()
                ids.append(try await store.create(NewPaymentSession(cartID: "cart_\(index % 3)", providerID: "p\(index)")).id)
            }
            #expect(try await contents(of: store).map(\.id) == ids.sorted())
            #expect(try await store.sessions(after: nil, limit: 3).map(\.id) == Array(ids.sorted().prefix(3)))
            #expect(try await store.sessions(after: ids.sorted()[5], limit: 10).map(\.id) == [ids.sorted()[6]])
            #expect(try await store.sessions(after: nil, limit: 0).isEmpty)
            let error = await expectStoreError { _ = try await store.sessions(after: nil, limit: -1) }
            #expect(error?.code == .invalidInput)
            let counts = try await store.sessionCounts()
            #expect(counts.sessions == 7 && counts.carts == 3 && counts.selected == 0 && counts.byStatus[.pending] == 7)
        }
    }

    /// Longer than the batches a PostgreSQL read decodes its rows in (256): every session
    /// once, in id order, across the batches' seams.
    @Test(arguments: Backend.available)
    func aLongPageHoldsEverySessionOnceInIDOrder(backend: Backend) async throws {
        try await withStore(backend) { store in
            let created = try await store.perform(
                (0..<600).map { index in .create(NewPaymentSession(cartID: "cart_\(index % 40)", providerID: "p\(index)")) })
            let ids = created.compactMap(\.session?.id).sorted()
            #expect(ids.count == 600)
            #expect(try await store.sessions(after: nil, limit: 1000).map(\.id) == ids)
            #expect(try await store.sessions(after: ids[40], limit: 513).map(\.id) == Array(ids[41..<554]))
        }
    }

    @Test(arguments: Backend.available)
    func badInputIsATypedErrorAndWritesNothing(backend: Backend) async throws {
        try await withStore(backend, settings: StoreSettings(maxDataBytes: 64)) { store in
            let refusals: [NewPaymentSession] = [
                NewPaymentSession(cartID: "", providerID: "p"),
                NewPaymentSession(cartID: String(repeating: "c", count: 256), providerID: "p"),
                NewPaymentSession(cartID: "c", providerID: ""),
                NewPaymentSession(cartID: "c", providerID: "p", data: ["big": .string(String(repeating: "x", count: 100))]),
                NewPaymentSession(cartID: "c", providerID: "p", id: "ps_not_an_id"),
                NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: ""),
                NewPaymentSession(cartID: "c", providerID: "p", status: .canceled, select: true),
                NewPaymentSession(cartID: "c", providerID: "p", amount: -1, currencyCode: "eur"),
                NewPaymentSession(cartID: "c", providerID: "p", amount: 10, currencyCode: "EURO"),
                NewPaymentSession(cartID: "c", providerID: "p", status: .authorized, amount: 10, currencyCode: "eur"),
            ]
            for new in refusals {
                let error = await expectStoreError { _ = try await store.create(new) }
                #expect(error?.code == .invalidInput, "\(new)")
            }
            let count = try await store.count()
            #expect(count == 0)
            for id in ["", "ps_", "ps_01G901XNSRM2YS3ASN9H5KG3F!", String(repeating: "x", count: 600)] {
                let error = await expectStoreError { _ = try await store.session(id: id) }
                #expect(error?.code == .invalidInput)
            }
            let missing = await expectStoreError { _ = try await store.update(id: PaymentSessionID.generate(), status: .error, data: nil, expectedUpdatedAt: nil) }
            #expect(missing?.code == .notFound)
        }
    }

    @Test(arguments: Backend.available)
    func aSecondSessionForACartAndProviderIsADuplicate(backend: Backend) async throws {
        try await withStore(backend) { store in
            let first = try await store.create(NewPaymentSession(cartID: "c", providerID: "p"))
            let error = await expectStoreError { _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "p")) }
            #expect(error == .duplicateSession(cartID: "c", providerID: "p", existingID: first.id))
            let sameID = await expectStoreError {
                _ = try await store.create(NewPaymentSession(cartID: "c2", providerID: "p", id: first.id))
            }
            #expect(sameID == .duplicateID(id: first.id))
            #expect(try await store.count() == 1)
            try await expectInvariants(store)
        }
    }

    @Test(arguments: Backend.available)
    func createOrUpdateCreatesThenRefreshesAndReplacesACanceledSession(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let (first, created) = try await store.createOrUpdate(cartID: "c", providerID: "p", data: ["v": 1])
            #expect(created && first.data == ["v": 1])
            clock.advance()
            let (refreshed, createdAgain) = try await store.createOrUpdate(cartID: "c", providerID: "p", data: ["v": 2])
            #expect(!createdAgain && refreshed.id == first.id && refreshed.data == ["v": 2])
            #expect(refreshed.updatedAt > first.updatedAt)
            let (kept, _) = try await store.createOrUpdate(cartID: "c", providerID: "p", data: nil)
            #expect(kept.data == ["v": 2])
            _ = try await store.update(id: first.id, status: .canceled, data: nil, expectedUpdatedAt: nil)
            let (replacement, replaced) = try await store.createOrUpdate(cartID: "c", providerID: "p", data: ["v": 3])
            #expect(replaced && replacement.id != first.id && replacement.status == .pending)
            #expect(try await store.session(id: first.id) == nil)
            #expect(try await store.sessions(cartID: "c") == [replacement])
        }
    }
}
