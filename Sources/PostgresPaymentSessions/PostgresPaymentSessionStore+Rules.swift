#if PostgreSQL
import Foundation
import PaymentSessionsCore

/// Each write inside a transaction: lock the rows the rules decide on, ask the
/// backend-neutral ``SessionRules``, write the rows. The same steps as the LMDB store's
/// write transaction, with row locks where LMDB has its single writer.
extension PostgresPaymentSessionStore {
    func apply(
        _ write: PaymentSessionWrite, prepared: PreparedSession?, in tx: PostgresTransaction
    ) async throws -> PaymentSessionWriteResult {
        let now = tx.now
        let maxDataBytes = options.maxDataBytes
        switch write {
        case .create(let new):
            let prepared =
                try prepared ?? PreparedSession(new, maxDataBytes: maxDataBytes, now: now, generator: generator)
            return .session(try await insertNew(prepared, in: tx))
        case .createOrUpdate(let cartID, let providerID, let data):
            let (session, created) = try await createOrRefresh(cartID: cartID, providerID: providerID, data: data, in: tx)
            return .createdOrUpdated(session, created: created)
        case .update(let id, let status, let data, let expectedUpdatedAt):
            return .session(
                try await rewrite(id, in: tx) { session in
                    try SessionRules.update(
                        session, status: status, data: data, expectedUpdatedAt: expectedUpdatedAt,
                        maxDataBytes: maxDataBytes, now: now)
                })
        case .select(let id):
            return .session(try await makeSelected(id: id, in: tx))
        case .deselect(let cartID):
            return .deselected(try await clearSelection(cartID: cartID, in: tx))
        case .authorize(let id, let amount, let currencyCode, let data, let expectedUpdatedAt):
            try SessionRules.validateAuthorization(amount: amount, currencyCode: currencyCode)
            return .session(
                try await rewrite(id, in: tx) { session in
                    try SessionRules.authorize(
                        session, amount: amount, currencyCode: currencyCode, data: data,
                        expectedUpdatedAt: expectedUpdatedAt, maxDataBytes: maxDataBytes, now: now)
                })
        case .updateAmount(let id, let amount, let currencyCode, let expectedUpdatedAt):
            return .session(
                try await rewrite(id, in: tx) { session in
                    try SessionRules.updateAmount(
                        session, amount: amount, currencyCode: currencyCode, expectedUpdatedAt: expectedUpdatedAt, now: now)
                })
        case .setInitiated(let id, let isInitiated):
            return .session(
                try await rewrite(id, in: tx) { session in
                    try SessionRules.updateInitiated(session, isInitiated: isInitiated, now: now)
                })
        case .delete(let id, let force):
            let session = try await lockedSession(id, in: tx)
            try SessionRules.checkDeletable(session, force: force)
            try await tx.remove(session, kind: .deleted)
            return .session(session)
        case .deleteSessions(let cartID, let force):
            try SessionValidation.validateIdentifier(cartID, field: "cart_id")
            let sessions = try await tx.sessions(cartID: cartID, lock: true)
            try SessionRules.checkDeletable(sessions, force: force)
            for session in sessions { try await tx.remove(session, kind: .deleted) }
            return .count(sessions.count)
        case .purge(let date, let statuses, let includeAuthorized):
            return .purged(
                try await purgeSessions(notUpdatedSince: date, statuses: statuses, includeAuthorized: includeAuthorized, in: tx))
        case .insert(let session):
            try await insertWhole(session, in: tx)
            return .inserted
        }
    }

    // MARK: Create

    /// Creates `prepared`'s session, or returns the session its idempotency key names.
    ///
    /// - Parameter retryOnPair: Run the transaction again when the (cart, provider) pair
    ///   was taken concurrently, instead of reporting a duplicate: `createOrUpdate` then
    ///   finds the pair's session and updates it.
    func insertNew(
        _ prepared: PreparedSession, retryOnPair: Bool = false, in tx: PostgresTransaction
    ) async throws -> PaymentSession {
        let session = prepared.session
        try await tx.lockCarts([session.cartID])
        if let key = session.idempotencyKey {
            switch try await tx.claim(key: key, for: session.id) {
            case .claimed:
                break
            case .live(let existingID):
                guard let holder = try await tx.session(id: existingID) else {
                    throw PaymentSessionError.corruptRecord(
                        key: "idempotency/\(key)", reason: "names session \(existingID), which does not exist")
                }
                return try SessionRules.retriedCreate(session, keyHeldBy: holder)
            case .reserved(let goneID):
                throw PaymentSessionError.sessionGone(key: key, id: goneID)
            }
        }
        // The previous selection goes first (the partial unique index sees each statement),
        // but the feed tells the creation first, as the LMDB store does.
        var release: (before: PaymentSession, after: PaymentSession)?
        if prepared.select, let current = try await tx.selectedSession(cartID: session.cartID, lock: true) {
            let released = try SessionRules.release(current, now: tx.now)
            try await tx.update(released, dataJSON: nil, replacing: nil)
            release = (current, released)
        }
        if try await tx.insert(session, dataJSON: prepared.dataJSON, kind: .created) {
            if let release { tx.recordChange(replacing: release.before, with: release.after) }
            return session
        }
        throw try await refusal(of: session, retryOnPair: retryOnPair, in: tx)
    }

    /// Why a unique constraint refused `session`'s row, from what is committed now: its id,
    /// its (cart, provider) pair (or a retry, with `retryOnPair`), or else the cart's
    /// selection, taken by a transaction that committed meanwhile (a retry).
    private func refusal(of session: PaymentSession, retryOnPair: Bool, in tx: PostgresTransaction) async throws -> any Error {
        if try await tx.session(id: session.id) != nil { return PaymentSessionError.duplicateID(id: session.id) }
        if let existing = try await tx.session(cartID: session.cartID, providerID: session.providerID) {
            if retryOnPair { return RetryTransaction(reason: "pair created concurrently") }
            return PaymentSessionError.duplicateSession(
                cartID: session.cartID, providerID: session.providerID, existingID: existing.id)
        }
        return RetryTransaction(reason: "selection taken concurrently")
    }

    /// `createOrUpdate`: the pair's session refreshed, or a new one (in place of a
    /// canceled one, which is final).
    private func createOrRefresh(
        cartID: String, providerID: String, data: [String: JSONValue]?, in tx: PostgresTransaction
    ) async throws -> (session: PaymentSession, created: Bool) {
        try SessionValidation.validateIdentifier(cartID, field: "cart_id")
        try SessionValidation.validateIdentifier(providerID, field: "provider_id")
        let replacement = {
            try PreparedSession(
                NewPaymentSession(cartID: cartID, providerID: providerID, data: data ?? [:]),
                maxDataBytes: self.options.maxDataBytes, now: tx.now, generator: self.generator)
        }
        let existing = try await tx.session(cartID: cartID, providerID: providerID, lock: true)
        switch try SessionRules.createOrUpdate(existing: existing, data: data, maxDataBytes: options.maxDataBytes, now: tx.now) {
        case .create:
            return (try await insertNew(try replacement(), retryOnPair: true, in: tx), true)
        case .refresh(let change, let previous):
            return (try await tx.store(change, replacing: previous), false)
        case .replace(let canceled):
            // Checked before the canceled session goes, so that refused input changes nothing.
            let prepared = try replacement()
            try await tx.remove(canceled, kind: .deleted)
            return (try await insertNew(prepared, in: tx), true)
        }
    }

    // MARK: Update

    func lockedSession(_ id: String, in tx: PostgresTransaction) async throws -> PaymentSession {
        try SessionValidation.validateID(id)
        guard let session = try await tx.session(id: id, lock: true) else { throw PaymentSessionError.sessionNotFound(id: id) }
        return session
    }

    /// Writes what `rule` decides about session `id`, locked.
    private func rewrite(
        _ id: String, in tx: PostgresTransaction, _ rule: (PaymentSession) throws -> SessionChange
    ) async throws -> PaymentSession {
        let session = try await lockedSession(id, in: tx)
        return try await tx.store(rule(session), replacing: session)
    }

    // MARK: Selection

    /// `select`: the previous selection released first, in the same transaction.
    private func makeSelected(id: String, in tx: PostgresTransaction) async throws -> PaymentSession {
        let session = try await lockedSession(id, in: tx)
        guard try SessionRules.needsSelecting(session) else { return session }
        let current = try await tx.selectedSession(cartID: session.cartID, lock: true)
        let step = try SessionRules.switchSelection(to: session, from: current, now: tx.now)
        // The previous selection goes first: the partial unique index sees each statement.
        if let released = step.released { try await tx.update(released.after, dataJSON: nil, replacing: released.before) }
        try await tx.update(step.selected, dataJSON: nil, replacing: session)
        return step.selected
    }

    /// `deselect`: the cart's selected session released, or `nil`.
    private func clearSelection(cartID: String, in tx: PostgresTransaction) async throws -> PaymentSession? {
        try SessionValidation.validateIdentifier(cartID, field: "cart_id")
        guard let current = try await tx.selectedSession(cartID: cartID, lock: true) else { return nil }
        let released = try SessionRules.release(current, now: tx.now)
        try await tx.update(released, dataJSON: nil, replacing: current)
        return released
    }

    // MARK: Purge

    /// `purge`: the verdicts over the sessions not updated since `date`, locked, then the
    /// expired reservations and the feed's trim.
    private func purgeSessions(
        notUpdatedSince date: Date, statuses: Set<PaymentSessionStatus>?, includeAuthorized: Bool,
        in tx: PostgresTransaction
    ) async throws -> PurgeReport {
        let cutoff = Timestamp.microseconds(date)
        var purged = 0
        var kept = 0
        for session in try await tx.sessions(updatedBefore: cutoff, lock: true) {
            switch SessionRules.purgeVerdict(session, cutoff: cutoff, statuses: statuses, includeAuthorized: includeAuthorized) {
            case .stays: break
            case .keptAuthorized: kept += 1
            case .purged:
                try await tx.remove(session, kind: .purged)
                purged += 1
            }
        }
        let dropped = try await tx.dropExpiredReservations()
        let trimmed = try await Self.trimChanges(in: tx, retention: options.changeRetention)
        return PurgeReport(purged: purged, keptAuthorized: kept, reservationsDropped: dropped, changesTrimmed: trimmed)
    }

    // MARK: Import

    /// `insert`: a whole session as given, selected when it says so.
    func insertWhole(_ session: PaymentSession, in tx: PostgresTransaction) async throws {
        let dataJSON = try SessionRules.validateInsert(session, maxDataBytes: options.maxDataBytes)
        try await tx.lockCarts([session.cartID])
        if session.isSelected, let current = try await tx.selectedSession(cartID: session.cartID) {
            throw SessionRules.selectionTaken(session, by: current.id)
        }
        if let key = session.idempotencyKey {
            switch try await tx.claim(key: key, for: session.id) {
            case .claimed:
                break
            case .live(let existingID):
                let owner = try await tx.session(id: existingID)
                throw PaymentSessionError.idempotencyConflict(
                    key: key, existingID: existingID, existingCartID: owner?.cartID ?? "",
                    existingProviderID: owner?.providerID ?? "")
            case .reserved(let goneID):
                throw PaymentSessionError.sessionGone(key: key, id: goneID)
            }
        }
        if try await tx.insert(session, dataJSON: dataJSON, kind: .imported) { return }
        throw try await refusal(of: session, retryOnPair: false, in: tx)
    }
}

extension PaymentSessionWrite {
    /// The operation a storage failure of this write names.
    var failureOperation: String {
        switch self {
        case .create: "create session"
        case .createOrUpdate: "create or update session"
        case .update: "update session"
        case .select: "select session"
        case .deselect: "deselect cart"
        case .authorize: "authorize session"
        case .updateAmount: "update amount"
        case .setInitiated: "update is_initiated"
        case .delete: "delete session"
        case .deleteSessions: "delete cart sessions"
        case .purge: "purge sessions"
        case .insert: "insert session"
        }
    }

    /// Whether the write is a `deselect`.
    var isDeselect: Bool {
        if case .deselect = self { return true }
        return false
    }

    /// Whether the write can run optimistically (see ``PostgresWriteSet``): a purge rests on
    /// the set of sessions past an age, which nothing checks, and an import's insert reads
    /// and reclaims keys as a transaction does.
    var runsOptimistically: Bool {
        switch self {
        case .purge, .insert: false
        case .create, .createOrUpdate, .update, .select, .deselect, .authorize, .updateAmount, .setInitiated, .delete,
            .deleteSessions:
            true
        }
    }
}
#endif
