public import Foundation

/// The write operations, each defined once for every backend: a method names a
/// ``PaymentSessionWrite`` and hands it to the backend's ``PaymentSessionStoring/apply(_:)``,
/// which runs it as its own all-or-nothing unit under the rules of <doc:TheRules>.
/// ``SynchronousSessionWriting`` offers the same methods without `await`, on the
/// embedded store and inside its write transactions.
extension PaymentSessionStoring {
    /// Creates a session.
    ///
    /// With an ``NewPaymentSession/idempotencyKey`` that exists already, returns that
    /// session unchanged when its cart and provider match, and throws
    /// ``PaymentSessionError/idempotencyConflict(key:existingID:existingCartID:existingProviderID:)``
    /// when they differ; a key whose session was deleted stays reserved for a while
    /// (``PaymentSessionError/sessionGone(key:id:)``).
    ///
    /// ```swift
    /// let session = try await store.create(
    ///     NewPaymentSession(cartID: "cart_01", providerID: "stripe", idempotencyKey: "checkout-42"))
    /// ```
    ///
    /// - Throws: ``PaymentSessionError/duplicateSession(cartID:providerID:existingID:)``
    ///   when the cart has a session for this provider; ``PaymentSessionError/duplicateID(id:)``;
    ///   ``PaymentSessionError/invalidInput(field:value:reason:)`` for bad fields or a
    ///   session asked to be created both `canceled` and selected.
    @discardableResult
    public func create(_ new: NewPaymentSession) async throws -> PaymentSession {
        let write = PaymentSessionWrite.create(new)
        return try await apply(write).writtenSession(by: write, of: backend)
    }

    /// Medusa's "initialize payment sessions" step for one provider: creates the cart's
    /// session for `providerID`, or refreshes the existing one, replacing its `data` when
    /// `data` is given (`nil` keeps it).
    ///
    /// A `canceled` session for the pair is final, so it is deleted and a new `pending`
    /// one takes its place.
    ///
    /// - Returns: The session, and whether it was created.
    @discardableResult
    public func createOrUpdate(
        cartID: String, providerID: String, data: [String: JSONValue]? = nil
    ) async throws -> (session: PaymentSession, created: Bool) {
        let write = PaymentSessionWrite.createOrUpdate(cartID: cartID, providerID: providerID, data: data)
        return try await apply(write).createdOrUpdated(by: write, of: backend)
    }

    /// Changes a session's status and/or data.
    ///
    /// - Parameters:
    ///   - id: The session.
    ///   - status: The new status; the move must be allowed by
    ///     ``PaymentSessionStatus/canMove(to:)``. Canceling a selected session deselects
    ///     it. The same status again only touches `updated_at`, except `authorized`: every
    ///     move to it is an authorization for the session's own amount (see
    ///     ``authorize(id:amount:currencyCode:data:expectedUpdatedAt:)``), and a repeat
    ///     writes nothing.
    ///   - data: The provider's new data (replaces the old object). Refused once the
    ///     session is `canceled`.
    ///   - expectedUpdatedAt: Optimistic concurrency: when given and the session's
    ///     `updated_at` differs, throws ``PaymentSessionError/staleUpdate(id:expected:actual:)``.
    @discardableResult
    public func update(
        id: String, status: PaymentSessionStatus? = nil, data: [String: JSONValue]? = nil, expectedUpdatedAt: Date? = nil
    ) async throws -> PaymentSession {
        let write = PaymentSessionWrite.update(id: id, status: status, data: data, expectedUpdatedAt: expectedUpdatedAt)
        return try await apply(write).writtenSession(by: write, of: backend)
    }

    /// Makes `id` its cart's selected session, deselecting the previous one in the same
    /// unit. Selecting the selected session changes nothing.
    ///
    /// - Throws: ``PaymentSessionError/notSelectable(id:status:)`` for a canceled session;
    ///   ``PaymentSessionError/authorizedSessionSelected(cartID:authorizedID:)`` when the
    ///   cart's selection holds an authorization that switching would orphan.
    @discardableResult
    public func select(id: String) async throws -> PaymentSession {
        let write = PaymentSessionWrite.select(id: id)
        return try await apply(write).writtenSession(by: write, of: backend)
    }

    /// Clears the selection of `cartID`.
    ///
    /// - Returns: The session that was selected, now deselected, or `nil` when none was.
    @discardableResult
    public func deselect(cartID: String) async throws -> PaymentSession? {
        let write = PaymentSessionWrite.deselect(cartID: cartID)
        return try await apply(write).deselected(by: write, of: backend)
    }

    /// Records the provider's authorization of the cart's payment: moves the session to
    /// `authorized`, records `payment_authorized_at` and the amount, and replaces `data`
    /// with the provider's answer when `data` is given, in one write.
    ///
    /// The rules, which every path to `authorized` follows:
    /// - Only the cart's **selected** session can be authorized: a hold on another would be
    ///   orphaned from birth (``PaymentSessionError/notSelected(id:cartID:)``).
    /// - The amount must be the session's (``PaymentSessionError/amountMismatch(id:expected:actual:)``);
    ///   a session without an amount takes this one, in `currencyCode` or its own currency.
    /// - **Idempotent**: authorizing an authorized session with its amount returns it as it
    ///   is, writing nothing (same `updated_at`); with another amount it is a mismatch.
    ///
    /// ```swift
    /// let session = try await store.authorize(id: id, amount: 4200, data: ["intent": "pi_123"])
    /// // A retry after a timeout is safe: same session, nothing written.
    /// let again = try await store.authorize(id: id, amount: 4200)
    /// ```
    ///
    /// - Parameters:
    ///   - id: The cart's selected session.
    ///   - amount: The amount the provider authorized, in the currency's minor unit.
    ///   - currencyCode: Its currency; `nil` keeps the session's.
    ///   - data: The provider's answer, replacing `data`; `nil` keeps it.
    ///   - expectedUpdatedAt: Optimistic concurrency, as in
    ///     ``update(id:status:data:expectedUpdatedAt:)``.
    /// - Throws: The errors above; ``PaymentSessionError/invalidTransition(id:from:to:)`` from
    ///   `error` or `canceled`; ``PaymentSessionError/invalidInput(field:value:reason:)`` for an
    ///   amount out of range or a missing or different currency.
    @discardableResult
    public func authorize(
        id: String, amount: Int, currencyCode: String? = nil, data: [String: JSONValue]? = nil,
        expectedUpdatedAt: Date? = nil
    ) async throws -> PaymentSession {
        let write = PaymentSessionWrite.authorize(
            id: id, amount: amount, currencyCode: currencyCode, data: data, expectedUpdatedAt: expectedUpdatedAt)
        return try await apply(write).writtenSession(by: write, of: backend)
    }

    /// Sets the amount (and currency) a session will charge, following the cart's total
    /// while nothing is held: on a `pending`, `requires_more` or `error` session.
    ///
    /// On an authorized session the hold is for its amount: the same amount changes
    /// nothing, another is ``PaymentSessionError/amountMismatch(id:expected:actual:)``. A
    /// canceled session is final (``PaymentSessionError/sessionIsFinal(id:)``).
    ///
    /// - Parameters:
    ///   - id: The session.
    ///   - amount: The amount, in the currency's minor unit.
    ///   - currencyCode: The currency; `nil` keeps the session's, which must then have one.
    ///   - expectedUpdatedAt: Optimistic concurrency, as in
    ///     ``update(id:status:data:expectedUpdatedAt:)``.
    @discardableResult
    public func update(
        id: String, amount: Int, currencyCode: String? = nil, expectedUpdatedAt: Date? = nil
    ) async throws -> PaymentSession {
        let write = PaymentSessionWrite.updateAmount(
            id: id, amount: amount, currencyCode: currencyCode, expectedUpdatedAt: expectedUpdatedAt)
        return try await apply(write).writtenSession(by: write, of: backend)
    }

    /// Marks whether the provider holds state for the session (Medusa's `is_initiated`).
    @discardableResult
    public func update(id: String, isInitiated: Bool) async throws -> PaymentSession {
        let write = PaymentSessionWrite.setInitiated(id: id, isInitiated: isInitiated)
        return try await apply(write).writtenSession(by: write, of: backend)
    }

    /// Deletes a session and its index entries (and the cart's selection, if it was
    /// selected). Its idempotency key stays reserved for the store's retention period: a
    /// create retried with it gets ``PaymentSessionError/sessionGone(key:id:)``.
    ///
    /// - Parameters:
    ///   - id: The session.
    ///   - force: Delete an authorized session too. Without it, an authorized session is
    ///     refused with ``PaymentSessionError/sessionAuthorized(id:)``: its hold must be
    ///     voided (the session canceled) first, or it is orphaned.
    /// - Returns: The deleted session.
    @discardableResult
    public func delete(id: String, force: Bool = false) async throws -> PaymentSession {
        let write = PaymentSessionWrite.delete(id: id, force: force)
        return try await apply(write).writtenSession(by: write, of: backend)
    }

    /// Deletes every session of `cartID`, all or none.
    ///
    /// - Parameters:
    ///   - cartID: The cart.
    ///   - force: Delete authorized sessions too; without it, a cart with an authorized
    ///     session is refused with ``PaymentSessionError/sessionAuthorized(id:)`` and
    ///     nothing is deleted.
    /// - Returns: How many were deleted.
    @discardableResult
    public func deleteSessions(cartID: String, force: Bool = false) async throws -> Int {
        let write = PaymentSessionWrite.deleteSessions(cartID: cartID, force: force)
        return try await apply(write).count(by: write, of: backend)
    }

    /// Deletes the sessions not updated since `date` (`updated_at < date`), optionally only
    /// those whose status is in `statuses`, drops idempotency reservations past the
    /// store's retention, and trims the change feed (``trimChanges()``), as one unit.
    ///
    /// - Parameters:
    ///   - date: The cutoff: sessions updated at or after it stay.
    ///   - statuses: Only sessions in these statuses; `nil` for any.
    ///   - includeAuthorized: Delete authorized sessions too. By default they are kept
    ///     (their holds would be orphaned) and counted in the report.
    @discardableResult
    public func purge(
        notUpdatedSince date: Date, statuses: Set<PaymentSessionStatus>? = nil, includeAuthorized: Bool = false
    ) async throws -> PurgeReport {
        let write = PaymentSessionWrite.purge(notUpdatedSince: date, statuses: statuses, includeAuthorized: includeAuthorized)
        return try await apply(write).purgeReport(by: write, of: backend)
    }

    /// Stores a whole session as given, id and timestamps included (imports and
    /// migrations between backends), indexing it and, when it is selected, making it the
    /// cart's selection.
    ///
    /// - Throws: ``PaymentSessionError/duplicateID(id:)``,
    ///   ``PaymentSessionError/duplicateSession(cartID:providerID:existingID:)``, a conflict
    ///   on its idempotency key or on the cart's selection (another session is selected),
    ///   ``PaymentSessionError/invalidInput(field:value:reason:)``.
    public func insert(_ session: PaymentSession) async throws {
        let write = PaymentSessionWrite.insert(session)
        try await apply(write).inserted(by: write, of: backend)
    }
}
