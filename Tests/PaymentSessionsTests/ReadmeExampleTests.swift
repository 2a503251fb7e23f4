import PaymentSessions
import TestSupport
import Testing

/// README.md's "Using the library" example, verbatim but for the store path: if this
/// stops compiling or passing, the README is wrong.
@Suite("README example")
struct ReadmeExampleTests {
    @Test func theReadmeExampleCompilesAndRuns() throws {
        let directory = TemporaryDirectory(prefix: "readme")
        let store = try PaymentSessionStore(path: directory.appending("sessions"))

        // Create sessions for a cart; the idempotency key makes a retried request safe.
        let stripe = try store.create(NewPaymentSession(
            cartID: "cart_01G8ZH853Y6TFXWPG5EYE81X63", providerID: "stripe",
            data: ["client_secret": "pi_123_secret"], idempotencyKey: "req-7f3a", select: true))
        let manual = try store.create(NewPaymentSession(cartID: stripe.cartID, providerID: "manual"))

        // Switch the selection: the stripe session is deselected in the same transaction.
        try store.select(id: manual.id)

        // Several operations, all or nothing: a thrown error rolls every one of them back.
        let authorized = try store.write { tx in
            try tx.select(id: stripe.id)
            return try tx.update(id: stripe.id, status: .authorized, data: ["intent": "pi_123"])
        }

        // Reads see one consistent snapshot.
        let (selected, all) = try store.read { tx in
            (try tx.selectedSession(cartID: stripe.cartID), try tx.sessions(cartID: stripe.cartID))
        }
        print(selected?.jsonText() ?? "none", all.count, authorized.status)

        // Typed errors carry the failing input; nothing was written when one is thrown.
        var caught: PaymentSessionError?
        do {
            try store.update(id: stripe.id, status: .pending)
        } catch {
            // `error` is a PaymentSessionError (typed throws): here .invalidTransition(id:from:to:).
            print(error.code, error)  // invalid_transition payment session ps_... cannot move from authorized to pending
            caught = error
        }

        // `data` straight from a provider's JSON response body: checked once, stored compact,
        // without building a dictionary for the store to encode again.
        let body = #"{"id": "pi_456", "client_secret": "pi_456_secret", "amount": 4200}"#
        let paypal = try store.create(NewPaymentSession(cartID: stripe.cartID, providerID: "paypal", dataJSON: body.utf8))
        print(paypal.data["amount"] ?? "none")  // 4200

        #expect(caught == .invalidTransition(id: stripe.id, from: .authorized, to: .pending))
        #expect(selected?.id == stripe.id)
        #expect(selected?.status == .authorized)
        #expect(all.map(\.providerID) == ["stripe", "manual"])
        #expect(paypal.data == ["id": "pi_456", "client_secret": "pi_456_secret", "amount": 4200])
        #expect(paypal.jsonText().contains(#""data":{"id":"pi_456","client_secret":"pi_456_secret","amount":4200}"#))
        #expect(try store.verify().isClean)
    }
}
