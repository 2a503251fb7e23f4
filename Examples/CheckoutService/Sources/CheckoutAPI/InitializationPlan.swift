import Foundation
import PaymentSessions

/// The writes that initialize a cart's sessions for a list of providers, planned from
/// what the store holds and run as one unit, so that a request's sessions appear together
/// or not at all on any backend.
///
/// For each provider:
/// - With an idempotency key whose session exists: `create` with the key again (the store
///   returns that session, or a conflict when the key belongs to another cart or provider).
/// - Without a session for (cart, provider), or with a canceled one (removed first): a new
///   session at the cart's amount, carrying `KEY:provider` when the request had a key.
/// - With a live session: refreshed (`createOrUpdate`), and while nothing is held its
///   amount follows the cart's (an authorized session keeps the amount it holds: a changed
///   total there is the client's to resolve).
///
/// A plan is only as fresh as its read: when another request changed the cart in between,
/// the unit fails as a whole on a conflict that ``isRace(_:)`` recognizes and the caller
/// plans again.
struct InitializationPlan: Sendable {
    var cartID: String
    var providers: [String]
    var idempotencyKey: String?
    var amount: Int?
    var currencyCode: String?

    /// The unit for the store's current state.
    func writes(in store: some PaymentSessionStoring) async throws -> [PaymentSessionWrite] {
        var writes: [PaymentSessionWrite] = []
        // Ids that sort in the request's order, so that the cart lists its new sessions so.
        var newIDs = PaymentSessionID.generate(count: providers.count)[...]
        for provider in providers {
            let providerKey = idempotencyKey.map { "\($0):\(provider)" }
            if let providerKey, let keyed = try await store.session(idempotencyKey: providerKey) {
                writes.append(.create(newSession(provider: provider, key: providerKey, id: nil)))
                writes += followAmount(keyed)
                continue
            }
            let existing = try await store.session(cartID: cartID, providerID: provider)
            if let existing, existing.status != .canceled {
                writes.append(.createOrUpdate(cartID: cartID, providerID: provider, data: nil))
                writes += followAmount(existing)
            } else {
                if let existing { writes.append(.delete(id: existing.id, force: false)) }
                writes.append(.create(newSession(provider: provider, key: providerKey, id: newIDs.popFirst())))
            }
        }
        return writes
    }

    /// Whether `error` says the cart changed between the plan's read and its unit.
    static func isRace(_ error: PaymentSessionError) -> Bool {
        switch error {
        case .duplicateSession, .sessionNotFound, .sessionIsFinal, .sessionAuthorized, .invalidTransition: true
        default: false
        }
    }

    private func newSession(provider: String, key: String?, id: String?) -> NewPaymentSession {
        NewPaymentSession(
            cartID: cartID, providerID: provider, idempotencyKey: key, id: id, amount: amount, currencyCode: currencyCode)
    }

    private func followAmount(_ session: PaymentSession) -> [PaymentSessionWrite] {
        guard let amount, session.status != .authorized, session.status != .canceled else { return [] }
        return [.updateAmount(id: session.id, amount: amount, currencyCode: currencyCode, expectedUpdatedAt: nil)]
    }
}
