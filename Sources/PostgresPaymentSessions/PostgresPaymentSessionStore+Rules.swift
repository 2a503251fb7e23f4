import Foundation
import PaymentSessionsCore

/// Each write inside a transaction: lock the rows the rules decide on, ask the
/// backend-neutral ``SessionRules``, write the rows. The same steps as the LMDB store's
/// write transaction, with row locks where LMDB has its single writer.
extension PostgresPaymentSessionStore {
    func apply(
        _ write: PaymentSessionWrite, prepared: PreparedSession?, in tx: PostgresTransaction
    ) async throws -> PaymentSessionWriteResult {
        switch write {
        case .create(let new):
            let prepared =
                try prepared
                ?? PreparedSession(new, maxDataBytes: options.maxDataBytes, now: tx.now, generator: generator)
            return .session(try await create(prepared, in: tx))
        case .createOrUpdate(let cartID, let providerID, let data):
            let (session, created) = try await createOrUpdate(cartID: cartID, providerID: providerID, data: data, in: tx)
            return .createdOrUpdated(session, created: created)
        case .update(let id, let status, let data, let expectedUpdatedAt):
            return .session(try await update(id: id, status: status, data: data, expectedUpdatedAt: expectedUpdatedAt, in: tx))
        case .select(let id):
            return .session(try await select(id: id, in: tx))
        case .deselect(let cartID):
            return .deselected(try await deselect(cartID: cartID, in: tx))
        case .authorize(let id, let amount, let currencyCode, let data, let expectedUpdatedAt):
            return .session(
                try await authorize(
                    id: id, amount: amount, currencyCode: currencyCode, data: data, expectedUpdatedAt: expectedUpdatedAt,
                    in: tx))
        case .updateAmount(let id, let amount, let currencyCode, let expectedUpdatedAt):
            return .session(
                try await updateAmount(
                    id: id, amount: amount, currencyCode: currencyCode, expectedUpdatedAt: expectedUpdatedAt, in: tx))
        case .setInitiated(let id, let isInitiated):
            return .session(try await setInitiated(id: id, isInitiated: isInitiated, in: tx))
        case .delete(let id, let force):
            return .session(try await delete(id: id, force: force, in: tx))
        case .deleteSessions(let cartID, let force):
            return .count(try await deleteSessions(cartID: cartID, force: force, in: tx))
        case .insert(let session):
            try await insert(session, in: tx)
            return .inserted
        }
    }

    // MARK: Create

    /// Creates `prepared`'s session, or returns the session its idempotency key names.
    ///
    /// - Parameter retryOnPair: Run the transaction again when the (cart, provider) pair
    ///   was taken concurrently, instead of reporting a duplicate: `createOrUpdate` then
    ///   finds the pair's session and updates it.
    func create(
        _ prepared: PreparedSession, retryOnPair: Bool = false, in tx: PostgresTransaction
    ) async throws -> PaymentSession {
        let session = prepared.session
        try await tx.lockCarts([session.cartID])
        if let key = session.idempotencyKey {
            switch try await tx.claim(key: key, for: session.id) {
            case .claimed:
                break
            case .live(let existingID):
                guard let existing = try await tx.session(id: existingID) else {
                    throw PaymentSessionError.corruptRecord(
                        key: "idempotency/\(key)", reason: "names session \(existingID), which does not exist")
                }
                guard existing.cartID == session.cartID, existing.providerID == session.providerID else {
                    throw PaymentSessionError.idempotencyConflict(
                        key: key, existingID: existing.id, existingCartID: existing.cartID,
                        existingProviderID: existing.providerID)
                }
                return existing
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

    func createOrUpdate(
        cartID: String, providerID: String, data: [String: JSONValue]?, in tx: PostgresTransaction
    ) async throws -> (session: PaymentSession, created: Bool) {
        try SessionValidation.validateIdentifier(cartID, field: "cart_id")
        try SessionValidation.validateIdentifier(providerID, field: "provider_id")
        let replacement = {
            try PreparedSession(
                NewPaymentSession(cartID: cartID, providerID: providerID, data: data ?? [:]),
                maxDataBytes: self.options.maxDataBytes, now: tx.now, generator: self.generator)
        }
        guard let existing = try await tx.session(cartID: cartID, providerID: providerID, lock: true) else {
            return (try await create(try replacement(), retryOnPair: true, in: tx), true)
        }
        if existing.status != .canceled {
            let change = try SessionRules.update(
                existing, status: nil, data: data, expectedUpdatedAt: nil, maxDataBytes: options.maxDataBytes, now: tx.now)
            return (try await tx.store(change, replacing: existing), false)
        }
        // Checked before the canceled session goes, so that refused input changes nothing.
        let prepared = try replacement()
        try await tx.remove(existing, kind: .deleted)
        return (try await create(prepared, in: tx), true)
    }

    // MARK: Update

    func lockedSession(_ id: String, in tx: PostgresTransaction) async throws -> PaymentSession {
        try SessionValidation.validateID(id)
        guard let session = try await tx.session(id: id, lock: true) else { throw PaymentSessionError.sessionNotFound(id: id) }
        return session
    }

    func update(
        id: String, status: PaymentSessionStatus?, data: [String: JSONValue]?, expectedUpdatedAt: Date?,
        in tx: PostgresTransaction
    ) async throws -> PaymentSession {
        let session = try await lockedSession(id, in: tx)
        return try await tx.store(
            SessionRules.update(
                session, status: status, data: data, expectedUpdatedAt: expectedUpdatedAt,
                maxDataBytes: options.maxDataBytes, now: tx.now),
            replacing: session)
    }

    func authorize(
        id: String, amount: Int, currencyCode: String?, data: [String: JSONValue]?, expectedUpdatedAt: Date?,
        in tx: PostgresTransaction
    ) async throws -> PaymentSession {
        try SessionRules.validateAuthorization(amount: amount, currencyCode: currencyCode)
        let session = try await lockedSession(id, in: tx)
        return try await tx.store(
            SessionRules.authorize(
                session, amount: amount, currencyCode: currencyCode, data: data, expectedUpdatedAt: expectedUpdatedAt,
                maxDataBytes: options.maxDataBytes, now: tx.now),
            replacing: session)
    }

    func updateAmount(
        id: String, amount: Int, currencyCode: String?, expectedUpdatedAt: Date?, in tx: PostgresTransaction
    ) async throws -> PaymentSession {
        let session = try await lockedSession(id, in: tx)
        return try await tx.store(
            SessionRules.updateAmount(
                session, amount: amount, currencyCode: currencyCode, expectedUpdatedAt: expectedUpdatedAt, now: tx.now),
            replacing: session)
    }

    func setInitiated(id: String, isInitiated: Bool, in tx: PostgresTransaction) async throws -> PaymentSession {
        let session = try await lockedSession(id, in: tx)
        return try await tx.store(
            SessionRules.updateInitiated(session, isInitiated: isInitiated, now: tx.now), replacing: session)
    }

    // MARK: Selection

    func select(id: String, in tx: PostgresTransaction) async throws -> PaymentSession {
        let session = try await lockedSession(id, in: tx)
        guard try SessionRules.needsSelecting(session) else { return session }
        if let current = try await tx.selectedSession(cartID: session.cartID, lock: true), current.id != id {
            try await tx.update(try SessionRules.release(current, now: tx.now), dataJSON: nil, replacing: current)
        }
        let selected = SessionRules.selected(session, now: tx.now)
        try await tx.update(selected, dataJSON: nil, replacing: session)
        return selected
    }

    func deselect(cartID: String, in tx: PostgresTransaction) async throws -> PaymentSession? {
        try SessionValidation.validateIdentifier(cartID, field: "cart_id")
        guard let current = try await tx.selectedSession(cartID: cartID, lock: true) else { return nil }
        let released = try SessionRules.release(current, now: tx.now)
        try await tx.update(released, dataJSON: nil, replacing: current)
        return released
    }

    // MARK: Delete

    func delete(id: String, force: Bool, in tx: PostgresTransaction) async throws -> PaymentSession {
        let session = try await lockedSession(id, in: tx)
        try SessionRules.checkDeletable(session, force: force)
        try await tx.remove(session, kind: .deleted)
        return session
    }

    func deleteSessions(cartID: String, force: Bool, in tx: PostgresTransaction) async throws -> Int {
        try SessionValidation.validateIdentifier(cartID, field: "cart_id")
        let sessions = try await tx.sessions(cartID: cartID, lock: true)
        try SessionRules.checkDeletable(sessions, force: force)
        for session in sessions { try await tx.remove(session, kind: .deleted) }
        return sessions.count
    }

    // MARK: Import

    func insert(_ session: PaymentSession, in tx: PostgresTransaction) async throws {
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
