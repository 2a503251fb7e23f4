public import Foundation
import LMDB

extension PaymentSessionStore.WriteTransaction {
    // MARK: Authorization

    /// Records the provider's authorization of the cart's payment: moves the session to
    /// `authorized`, records `payment_authorized_at` and the amount, and replaces `data`
    /// with the provider's answer when `data` is given, in one write.
    ///
    /// The rules, which every path to `authorized` follows (``update(id:status:data:expectedUpdatedAt:)``
    /// with `.authorized` calls this with the session's own amount):
    /// - Only the cart's **selected** session can be authorized: a hold on another would be
    ///   orphaned from birth (``PaymentSessionError/notSelected(id:cartID:)``).
    /// - The amount must be the session's (``PaymentSessionError/amountMismatch(id:expected:actual:)``);
    ///   a session without an amount takes this one, in `currencyCode` or its own currency.
    /// - **Idempotent**: authorizing an authorized session with its amount returns it as it
    ///   is, writing nothing (same `updated_at`); with another amount it is a mismatch.
    ///
    /// ```swift
    /// let session = try tx.authorize(id: id, amount: 4200, data: ["intent": "pi_123"])
    /// // A retry after a timeout is safe: same session, nothing written.
    /// let again = try tx.authorize(id: id, amount: 4200)
    /// ```
    ///
    /// - Throws: The errors above; ``PaymentSessionError/invalidTransition(id:from:to:)`` from
    ///   `error` or `canceled`; ``PaymentSessionError/invalidInput(field:value:reason:)`` for an
    ///   amount out of range or a missing or different currency.
    @discardableResult
    public func authorize(
        id: String, amount: Int, currencyCode: String? = nil, data: [String: JSONValue]? = nil,
        expectedUpdatedAt: Date? = nil
    ) throws(PaymentSessionError) -> PaymentSession {
        try SessionRules.validateAuthorization(amount: amount, currencyCode: currencyCode)
        guard let session = try session(id: id) else { throw .sessionNotFound(id: id) }
        return try store(
            SessionRules.authorize(
                session, amount: amount, currencyCode: currencyCode, data: data, expectedUpdatedAt: expectedUpdatedAt,
                maxDataBytes: options.maxDataBytes, now: options.nowMicroseconds),
            replacing: session)
    }

    /// Sets the amount (and currency) a session will charge, following the cart's total
    /// while nothing is held: on a `pending`, `requires_more` or `error` session.
    ///
    /// On an authorized session the hold is for its amount: the same amount changes
    /// nothing, another is ``PaymentSessionError/amountMismatch(id:expected:actual:)``. A
    /// canceled session is final (``PaymentSessionError/sessionIsFinal(id:)``).
    ///
    /// - Parameter currencyCode: The currency; `nil` keeps the session's, which must then
    ///   have one.
    @discardableResult
    public func update(
        id: String, amount: Int, currencyCode: String? = nil, expectedUpdatedAt: Date? = nil
    ) throws(PaymentSessionError) -> PaymentSession {
        guard let session = try session(id: id) else { throw .sessionNotFound(id: id) }
        return try store(
            SessionRules.updateAmount(
                session, amount: amount, currencyCode: currencyCode, expectedUpdatedAt: expectedUpdatedAt,
                now: options.nowMicroseconds),
            replacing: session)
    }

    /// Marks whether the provider holds state for the session (Medusa's `is_initiated`).
    @discardableResult
    public func update(id: String, isInitiated: Bool) throws(PaymentSessionError) -> PaymentSession {
        guard let session = try session(id: id) else { throw .sessionNotFound(id: id) }
        return try store(
            SessionRules.updateInitiated(session, isInitiated: isInitiated, now: options.nowMicroseconds), replacing: session)
    }
}

extension PaymentSessionStore {
    /// What a purge did; see ``PaymentSessionsCore/PurgeReport``.
    public typealias PurgeReport = PaymentSessionsCore.PurgeReport
    /// A cart's payment state; see ``PaymentSessionsCore/CartPayment``.
    public typealias CartPayment = PaymentSessionsCore.CartPayment
}

extension PaymentSessionStore.ReadTransaction {
    /// The cart's payment state; see ``PaymentSessionStore/CartPayment``.
    public func cartPayment(cartID: String) throws(PaymentSessionError) -> PaymentSessionStore.CartPayment {
        PaymentSessionStore.CartPayment(cartID: cartID, sessions: try sessions(cartID: cartID))
    }
}
