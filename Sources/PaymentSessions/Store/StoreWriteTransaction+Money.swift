import Foundation
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
        try SessionValidation.validateAmount(amount)
        if let currencyCode { try SessionValidation.validateCurrencyCode(currencyCode) }
        guard let session = try session(id: id) else { throw .sessionNotFound(id: id) }
        // A retry of an authorization that went through returns it, whatever the
        // `expectedUpdatedAt` it carries (the first attempt moved `updated_at`).
        let repeated = session.status == .authorized && session.money.authorizedAt != nil && session.amount == amount
        if !repeated { try checkExpected(session, expectedUpdatedAt) }
        return try authorize(session, amount: amount, currencyCode: currencyCode, data: data)
    }

    /// The authorization rules applied to `session`, read in this transaction. `amount`
    /// is `nil` only on the `update(status: .authorized)` path of a session that has no
    /// amount yet: the authorization is then recorded without one.
    func authorize(
        _ session: PaymentSession, amount: Int?, currencyCode: String?, data: [String: JSONValue]?
    ) throws(PaymentSessionError) -> PaymentSession {
        var session = session
        let id = session.id
        if session.status == .authorized && session.money.authorizedAt != nil {
            if let amount, let held = session.amount, held != amount {
                throw .amountMismatch(id: id, expected: held, actual: amount)
            }
            if let amount, session.amount == nil {
                throw .invalidInput(
                    field: "amount", value: String(amount), reason: "session \(id) was authorized without an amount")
            }
            if let currencyCode, currencyCode != session.currencyCode { try refuseCurrency(session, currencyCode) }
            return session
        }
        guard session.status.canMove(to: .authorized) else {
            throw .invalidTransition(id: id, from: session.status, to: .authorized)
        }
        guard session.isSelected else { throw .notSelected(id: id, cartID: session.cartID) }
        if let amount, let held = session.amount, held != amount { throw .amountMismatch(id: id, expected: held, actual: amount) }
        if let currencyCode, let own = session.currencyCode, own != currencyCode { try refuseCurrency(session, currencyCode) }
        let currency = currencyCode ?? session.currencyCode
        if amount != nil && currency == nil {
            throw .invalidInput(field: "currency_code", value: nil, reason: "is required to authorize an amount")
        }
        let dataJSON = try data.map { members throws(PaymentSessionError) in
            try SessionValidation.encodeData(members, maxBytes: options.maxDataBytes)
        }
        if let data { session.data = data }
        session.status = .authorized
        if let amount { session.amount = amount }
        session.currencyCode = currency
        try touchAndStore(&session, dataJSON: dataJSON, authorizing: true)
        return session
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
        guard var session = try session(id: id) else { throw .sessionNotFound(id: id) }
        // Final first: a canceled session refuses any amount, well-formed or not.
        if session.status == .canceled { throw .sessionIsFinal(id: id) }
        try SessionValidation.validateMoney(amount: amount, currencyCode: currencyCode ?? session.currencyCode)
        if session.status == .authorized {
            guard let held = session.amount else {
                throw .invalidInput(field: "amount", value: String(amount), reason: "session \(id) was authorized without an amount")
            }
            guard held == amount else { throw .amountMismatch(id: id, expected: held, actual: amount) }
            if let currencyCode, currencyCode != session.currencyCode { try refuseCurrency(session, currencyCode) }
            return session
        }
        try checkExpected(session, expectedUpdatedAt)
        if session.amount == amount && (currencyCode == nil || currencyCode == session.currencyCode) { return session }
        session.amount = amount
        if let currencyCode { session.currencyCode = currencyCode }
        try touchAndStore(&session, dataJSON: nil)
        return session
    }

    /// Marks whether the provider holds state for the session (Medusa's `is_initiated`).
    @discardableResult
    public func update(id: String, isInitiated: Bool) throws(PaymentSessionError) -> PaymentSession {
        guard var session = try session(id: id) else { throw .sessionNotFound(id: id) }
        if session.isInitiated == isInitiated { return session }
        if session.status == .canceled { throw .sessionIsFinal(id: id) }
        session.isInitiated = isInitiated
        try touchAndStore(&session, dataJSON: nil)
        return session
    }

    /// `expectedUpdatedAt`'s optimistic-concurrency check.
    func checkExpected(_ session: PaymentSession, _ expected: Date?) throws(PaymentSessionError) {
        if let expected, Timestamp.microseconds(expected) != session.updatedMicroseconds {
            throw .staleUpdate(id: session.id, expected: Timestamp.normalized(expected), actual: session.updatedAt)
        }
    }

    private func refuseCurrency(_ session: PaymentSession, _ currencyCode: String) throws(PaymentSessionError) {
        throw .invalidInput(
            field: "currency_code", value: currencyCode,
            reason: "session \(session.id) is in \(session.currencyCode ?? "no currency")")
    }
}

extension PaymentSessionStore {
    /// What ``WriteTransaction/purge(notUpdatedSince:statuses:includeAuthorized:)`` did.
    public struct PurgeReport: Sendable, Hashable {
        /// Sessions deleted.
        public var purged: Int
        /// Authorized sessions that matched but were kept (their holds would be orphaned).
        public var keptAuthorized: Int
        /// Idempotency reservations past their retention, dropped.
        public var reservationsDropped: Int

        public init(purged: Int, keptAuthorized: Int, reservationsDropped: Int) {
            self.purged = purged
            self.keptAuthorized = keptAuthorized
            self.reservationsDropped = reservationsDropped
        }
    }

    /// A cart's payment state in one read: its sessions, the selected one, and whether
    /// that one is authorized.
    ///
    /// ```swift
    /// let payment = try store.cartPayment(cartID: cart.id)
    /// if payment.isAuthorized(for: cart.total, currencyCode: cart.currency) { try complete(cart) }
    /// ```
    public struct CartPayment: Sendable, Hashable {
        /// The cart.
        public var cartID: String
        /// Its sessions in creation order.
        public var sessions: [PaymentSession]
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
}

extension PaymentSessionStore.ReadTransaction {
    /// The cart's payment state; see ``PaymentSessionStore/CartPayment``.
    public func cartPayment(cartID: String) throws(PaymentSessionError) -> PaymentSessionStore.CartPayment {
        PaymentSessionStore.CartPayment(cartID: cartID, sessions: try sessions(cartID: cartID))
    }
}
