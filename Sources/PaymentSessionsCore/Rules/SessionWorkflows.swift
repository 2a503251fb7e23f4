/// The operations that decide over more than one session, as pure steps: what a backend
/// read in, and what it must write out. Each backend reads and writes with its own means
/// (LMDB under its single writer, PostgreSQL under row and cart locks); the decisions,
/// and so the errors and their order, are these.
extension SessionRules {
    // MARK: Create

    /// What a create whose idempotency key already names `holder` returns: `holder` itself
    /// (the create retried) when it is for the same cart and provider, and otherwise
    /// ``PaymentSessionError/idempotencyConflict(key:existingID:existingCartID:existingProviderID:)``.
    package static func retriedCreate(
        _ new: PaymentSession, keyHeldBy holder: PaymentSession
    ) throws(PaymentSessionError) -> PaymentSession {
        guard holder.cartID == new.cartID, holder.providerID == new.providerID else {
            throw .idempotencyConflict(
                key: new.idempotencyKey ?? "", existingID: holder.id, existingCartID: holder.cartID,
                existingProviderID: holder.providerID)
        }
        return holder
    }

    // MARK: Create or update

    /// What `createOrUpdate` does with the (cart, provider) pair's session.
    package enum PairUpdate: Sendable {
        /// The pair has no session: create one.
        case create
        /// The pair's live session, with its `data` replaced (or kept): write the change.
        case refresh(SessionChange, replacing: PaymentSession)
        /// The pair's session is canceled, which is final: delete it, then create a new
        /// `pending` one. The backend checks the new one before it deletes anything.
        case replace(canceled: PaymentSession)
    }

    /// `createOrUpdate`'s decision from the pair's session as read (`nil`: none).
    package static func createOrUpdate(
        existing: PaymentSession?, data: [String: JSONValue]?, maxDataBytes: Int, now: Int64
    ) throws(PaymentSessionError) -> PairUpdate {
        guard let existing else { return .create }
        guard existing.status != .canceled else { return .replace(canceled: existing) }
        // `nil` data keeps the stored text as it is.
        let change = try update(
            existing, status: nil, data: data, expectedUpdatedAt: nil, maxDataBytes: maxDataBytes, now: now)
        return .refresh(change, replacing: existing)
    }

    // MARK: Select

    /// What selecting a session writes.
    package struct SelectionSwitch: Sendable {
        /// The cart's previous selection, before and after it lets go (`nil`: none).
        package var released: (before: PaymentSession, after: PaymentSession)?
        /// The session as the cart's selection.
        package var selected: PaymentSession
    }

    /// Selecting `session` (which ``needsSelecting(_:)`` said may be selected), given the
    /// cart's selected session `current` as read: `current` lets go, unless it holds an
    /// authorization (``PaymentSessionError/authorizedSessionSelected(cartID:authorizedID:)``),
    /// and `session` takes the cart's selection.
    package static func switchSelection(
        to session: PaymentSession, from current: PaymentSession?, now: Int64
    ) throws(PaymentSessionError) -> SelectionSwitch {
        var released: (before: PaymentSession, after: PaymentSession)?
        if let current, current.id != session.id { released = (current, try release(current, now: now)) }
        return SelectionSwitch(released: released, selected: selected(session, now: now))
    }
}
