package import Foundation

/// What a rule decided for one session: the session as it is to be stored, or as it is
/// when nothing is to be written (a repeat).
package struct SessionChange: Sendable {
    /// The session after the change (touched when ``isWrite``).
    package var session: PaymentSession
    /// `data`'s new compact JSON, when `data` changed; `nil` keeps the stored text.
    package var dataJSON: [UInt8]?
    /// Whether the session must be written. `false` for a repeat that changes nothing
    /// (an authorization retried, the same amount again): `updated_at` stays.
    package var isWrite: Bool
    /// The session gave up its cart's selection (canceled while selected): the backend
    /// clears the cart's selection with the write.
    package var deselected: Bool

    static func unchanged(_ session: PaymentSession) -> SessionChange {
        SessionChange(session: session, dataJSON: nil, isWrite: false, deselected: false)
    }
}

/// The rules of the store, stated once over values, for every backend.
///
/// A backend reads the sessions an operation needs inside its transaction (locking them,
/// where the engine locks), asks these functions what to do, and writes the result with
/// its own means: LMDB puts the record and its index entries, PostgreSQL updates rows
/// under its constraints. Nothing here reads or writes storage, so both backends decide
/// every case alike, and the conformance suite checks that they also store it alike.
package enum SessionRules {
    // MARK: Common checks

    /// `expectedUpdatedAt`'s optimistic-concurrency check.
    package static func checkExpected(_ session: PaymentSession, _ expected: Date?) throws(PaymentSessionError) {
        if let expected, Timestamp.microseconds(expected) != session.updatedMicroseconds {
            throw .staleUpdate(id: session.id, expected: Timestamp.normalized(expected), actual: session.updatedAt)
        }
    }

    /// Refuses to take the selection away from an authorized session: its hold would be
    /// orphaned. It must be canceled first (which deselects it).
    package static func refuseOrphaning(_ selected: PaymentSession) throws(PaymentSessionError) {
        if selected.status == .authorized {
            throw .authorizedSessionSelected(cartID: selected.cartID, authorizedID: selected.id)
        }
    }

    /// Sets `updated_at` to `now`, strictly after its old value, so that optimistic
    /// concurrency sees every change even when the clock stands still or steps back. With
    /// `authorizing`, the same instant is recorded as `payment_authorized_at`.
    package static func touch(_ session: inout PaymentSession, now: Int64, authorizing: Bool = false) {
        let previous = session.updatedMicroseconds
        session.updatedMicroseconds = max(now, previous == .max ? previous : previous + 1)
        if authorizing { session.money.authorizedMicroseconds = session.updatedMicroseconds }
    }

    // MARK: Update

    /// `update(id:status:data:expectedUpdatedAt:)`: a status move and/or new data.
    ///
    /// Every move to `authorized` is an authorization for the session's own amount; a
    /// canceled session keeps its data; canceling a selected session deselects it.
    package static func update(
        _ session: PaymentSession, status: PaymentSessionStatus?, data: [String: JSONValue]?,
        expectedUpdatedAt: Date?, maxDataBytes: Int, now: Int64
    ) throws(PaymentSessionError) -> SessionChange {
        var session = session
        let id = session.id
        try checkExpected(session, expectedUpdatedAt)
        if let status {
            guard session.status.canMove(to: status) else {
                throw .invalidTransition(id: id, from: session.status, to: status)
            }
            if status == .authorized {
                return try authorizing(
                    session, amount: session.amount, currencyCode: nil, data: data, maxDataBytes: maxDataBytes, now: now)
            }
        }
        var dataJSON: [UInt8]?
        if let data {
            if session.status == .canceled && data != session.data { throw .sessionIsFinal(id: id) }
            dataJSON = try SessionValidation.encodeData(data, maxBytes: maxDataBytes)
            session.data = data
        }
        if let status { session.status = status }
        let deselected = session.status == .canceled && session.isSelected
        if deselected { session.isSelected = false }
        touch(&session, now: now)
        return SessionChange(session: session, dataJSON: dataJSON, isWrite: true, deselected: deselected)
    }

    // MARK: Authorization

    /// `authorize(id:amount:currencyCode:data:expectedUpdatedAt:)`: checks the input, lets a
    /// retry of an authorization that went through return it whatever `expectedUpdatedAt`
    /// it carries (the first attempt moved `updated_at`), then applies the rules.
    package static func authorize(
        _ session: PaymentSession, amount: Int, currencyCode: String?, data: [String: JSONValue]?,
        expectedUpdatedAt: Date?, maxDataBytes: Int, now: Int64
    ) throws(PaymentSessionError) -> SessionChange {
        let repeated = session.status == .authorized && session.money.authorizedAt != nil && session.amount == amount
        if !repeated { try checkExpected(session, expectedUpdatedAt) }
        return try authorizing(
            session, amount: amount, currencyCode: currencyCode, data: data, maxDataBytes: maxDataBytes, now: now)
    }

    /// Checks `authorize`'s input before any read: an amount out of range or a malformed
    /// currency is refused whatever the session.
    package static func validateAuthorization(amount: Int, currencyCode: String?) throws(PaymentSessionError) {
        try SessionValidation.validateAmount(amount)
        if let currencyCode { try SessionValidation.validateCurrencyCode(currencyCode) }
    }

    /// The authorization rules applied to `session`. `amount` is `nil` only on the
    /// `update(status: .authorized)` path of a session that has no amount yet: the
    /// authorization is then recorded without one.
    static func authorizing(
        _ session: PaymentSession, amount: Int?, currencyCode: String?, data: [String: JSONValue]?, maxDataBytes: Int,
        now: Int64
    ) throws(PaymentSessionError) -> SessionChange {
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
            return .unchanged(session)
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
            try SessionValidation.encodeData(members, maxBytes: maxDataBytes)
        }
        if let data { session.data = data }
        session.status = .authorized
        if let amount { session.amount = amount }
        session.currencyCode = currency
        touch(&session, now: now, authorizing: true)
        return SessionChange(session: session, dataJSON: dataJSON, isWrite: true, deselected: false)
    }

    // MARK: Money

    /// `update(id:amount:currencyCode:expectedUpdatedAt:)`: the amount follows the cart's
    /// total while nothing is held; an authorized session keeps its amount.
    package static func updateAmount(
        _ session: PaymentSession, amount: Int, currencyCode: String?, expectedUpdatedAt: Date?, now: Int64
    ) throws(PaymentSessionError) -> SessionChange {
        var session = session
        let id = session.id
        // Final first: a canceled session refuses any amount, well-formed or not.
        if session.status == .canceled { throw .sessionIsFinal(id: id) }
        try SessionValidation.validateMoney(amount: amount, currencyCode: currencyCode ?? session.currencyCode)
        if session.status == .authorized {
            guard let held = session.amount else {
                throw .invalidInput(field: "amount", value: String(amount), reason: "session \(id) was authorized without an amount")
            }
            guard held == amount else { throw .amountMismatch(id: id, expected: held, actual: amount) }
            if let currencyCode, currencyCode != session.currencyCode { try refuseCurrency(session, currencyCode) }
            return .unchanged(session)
        }
        try checkExpected(session, expectedUpdatedAt)
        if session.amount == amount && (currencyCode == nil || currencyCode == session.currencyCode) {
            return .unchanged(session)
        }
        session.amount = amount
        if let currencyCode { session.currencyCode = currencyCode }
        touch(&session, now: now)
        return SessionChange(session: session, dataJSON: nil, isWrite: true, deselected: false)
    }

    /// `update(id:isInitiated:)`: whether the provider holds state for the session.
    package static func updateInitiated(
        _ session: PaymentSession, isInitiated: Bool, now: Int64
    ) throws(PaymentSessionError) -> SessionChange {
        var session = session
        if session.isInitiated == isInitiated { return .unchanged(session) }
        if session.status == .canceled { throw .sessionIsFinal(id: session.id) }
        session.isInitiated = isInitiated
        touch(&session, now: now)
        return SessionChange(session: session, dataJSON: nil, isWrite: true, deselected: false)
    }

    private static func refuseCurrency(_ session: PaymentSession, _ currencyCode: String) throws(PaymentSessionError) {
        throw .invalidInput(
            field: "currency_code", value: currencyCode,
            reason: "session \(session.id) is in \(session.currencyCode ?? "no currency")")
    }

    // MARK: Selection

    /// Whether `session` may become its cart's selection: `false` when it already is (a
    /// select that changes nothing); throws for a canceled one.
    package static func needsSelecting(_ session: PaymentSession) throws(PaymentSessionError) -> Bool {
        if session.status == .canceled { throw .notSelectable(id: session.id, status: .canceled) }
        return !session.isSelected
    }

    /// The cart's selected session `current`, released because another takes the cart's
    /// selection (or the cart's selection is cleared): refused when authorized.
    package static func release(_ current: PaymentSession, now: Int64) throws(PaymentSessionError) -> PaymentSession {
        try refuseOrphaning(current)
        var released = current
        released.isSelected = false
        touch(&released, now: now)
        return released
    }

    /// `session` as the cart's new selection.
    package static func selected(_ session: PaymentSession, now: Int64) -> PaymentSession {
        var selected = session
        selected.isSelected = true
        touch(&selected, now: now)
        return selected
    }

    // MARK: Delete and purge

    /// Refuses to delete an authorized session unless forced: its hold would be orphaned.
    package static func checkDeletable(_ session: PaymentSession, force: Bool) throws(PaymentSessionError) {
        if session.status == .authorized && !force { throw .sessionAuthorized(id: session.id) }
    }

    /// Refuses to delete a cart's sessions when one is authorized, unless forced.
    package static func checkDeletable(_ sessions: [PaymentSession], force: Bool) throws(PaymentSessionError) {
        if !force, let authorized = sessions.first(where: { $0.status == .authorized }) {
            throw .sessionAuthorized(id: authorized.id)
        }
    }

    /// What a purge does with one session.
    package enum PurgeVerdict: Sendable {
        /// Not matched: stays.
        case stays
        /// Matched and deleted.
        case purged
        /// Matched but authorized: kept so that its hold is not orphaned, and counted.
        case keptAuthorized
    }

    /// Whether `purge(notUpdatedSince:statuses:includeAuthorized:)` deletes `session`.
    package static func purgeVerdict(
        _ session: PaymentSession, cutoff: Int64, statuses: Set<PaymentSessionStatus>?, includeAuthorized: Bool
    ) -> PurgeVerdict {
        guard session.updatedMicroseconds < cutoff, statuses?.contains(session.status) ?? true else { return .stays }
        return session.status == .authorized && !includeAuthorized ? .keptAuthorized : .purged
    }

    /// Whether an idempotency key reserved at `reservedAt` (microseconds) has outlived
    /// `retention` seconds at `now`.
    package static func reservationExpired(reservedAt: Int64, now: Int64, retention: TimeInterval) -> Bool {
        let retention = retentionMicroseconds(retention)
        // A reservation's time may come from damaged bytes: it must not trap.
        let (age, overflow) = now.subtractingReportingOverflow(reservedAt)
        return overflow || age >= retention
    }

    /// `retention` seconds in microseconds, bounded so that no setting traps.
    package static func retentionMicroseconds(_ retention: TimeInterval) -> Int64 {
        Int64(max(0, min(retention, 1e12)) * 1_000_000)
    }

    // MARK: Import

    /// Checks a whole session given by an import before any read.
    package static func validateInsert(_ session: PaymentSession, maxDataBytes: Int) throws(PaymentSessionError) -> [UInt8] {
        try SessionValidation.validate(session)
        return try SessionValidation.encodeData(session.data, maxBytes: maxDataBytes)
    }

    /// The refusal of an imported selected session when its cart has another.
    package static func selectionTaken(_ session: PaymentSession, by current: String) -> PaymentSessionError {
        .invalidInput(field: "is_selected", value: "true", reason: "cart \(session.cartID) already has selected session \(current)")
    }
}
