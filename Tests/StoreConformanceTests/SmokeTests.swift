import Foundation
import PaymentSessions
import Testing

@Suite("Conformance: basics") struct BasicsConformanceTests {
    @Test(arguments: Backend.available)
    func aCreatedSessionReadsBackByEveryKey(backend: Backend) async throws {
        try await withStore(backend) { store in
            let created = try await store.create(
                NewPaymentSession(cartID: "cart_1", providerID: "stripe", data: ["a": 1], idempotencyKey: "k1"))
            #expect(try await store.session(id: created.id) == created)
            #expect(try await store.session(idempotencyKey: "k1") == created)
            #expect(try await store.session(cartID: "cart_1", providerID: "stripe") == created)
            #expect(try await store.sessions(cartID: "cart_1") == [created])
            #expect(try await store.count() == 1)
            try await expectInvariants(store)
        }
    }
}
