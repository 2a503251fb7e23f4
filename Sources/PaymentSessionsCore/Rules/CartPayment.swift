import Foundation

/// A cart's payment state in one read: its sessions, the selected one, and whether
/// that one is authorized.
///
/// ```swift
/// let payment = try await store.cartPayment(cartID: cart.id)
/// if payment.isAuthorized(for: cart.total, currencyCode: cart.currency) { try complete(cart) }
/// ```
public struct CartPayment: Sendable, Hashable {
    /// The cart.
    public var cartID: String
    /// Its sessions in creation order.
    public var sessions: [PaymentSession]

    /// The state of `cartID`, whose sessions are `sessions` in creation order.
    public init(cartID: String, sessions: [PaymentSession]) {
        self.cartID = cartID
        self.sessions = sessions
    }
    /// The selected session, if any.
    public var selected: PaymentSession? { sessions.first(where: \.isSelected) }

    /// The amount the selected session is authorized for, or `nil` when it is not
    /// authorized (or authorized without a record, before the store kept one).
    public var authorizedAmount: Int? {
        guard let selected, selected.status == .authorized, selected.paymentAuthorizedAt != nil else { return nil }
        return selected.amount
    }

    /// Whether the selected session is authorized for exactly `amount` in `currencyCode`
    /// (the cart's total now: a hold for an older total does not pay for this one).
    public func isAuthorized(for amount: Int, currencyCode: String) -> Bool {
        authorizedAmount == amount && selected?.currencyCode == currencyCode
    }
}
