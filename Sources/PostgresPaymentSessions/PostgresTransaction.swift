#if PostgreSQL
import Foundation
import Logging
import PaymentSessionsCore
import PostgresNIO

/// One transaction on one leased connection: the statements every operation is made of.
/// The only place that writes SQL for sessions and idempotency keys; every value is
/// bound through `PostgresQuery` interpolation.
struct PostgresTransaction {
    let connection: PostgresConnection
    let logger: Logger
    let options: PostgresPaymentSessionStore.Options
    /// The transaction's clock reading: every row it writes carries this instant (moved
    /// past a session's previous `updated_at` by the rules).
    let now: Int64
    /// The changes the transaction made, for the feed; written before it commits.
    let changes = PostgresChangeLog()
    /// The carts the transaction locked, kept across the operation's attempts.
    let cartLocks: PostgresCartLocks
    /// Set when the operation runs optimistically: reads take no locks and note the rows
    /// they return, writes are recorded here, and one statement applies them at the end.
    var writeSet: PostgresWriteSet? = nil

    // MARK: Cart locks

    /// Locks `carts` (those not held yet, in sorted order, in one statement) until the
    /// transaction ends. Every write locks its session's cart first; see
    /// ``PostgresCartLocks`` for why before the transaction's first write.
    func lockCarts(_ carts: some Sequence<String>) async throws {
        if let writeSet { return writeSet.lock(carts) }
        let needed = cartLocks.notHeld(carts)
        guard !needed.isEmpty else { return }
        let hadTransactionID = cartLocks.hasTransactionID
        for try await _ in try await connection.execute(LockCarts(carts: needed), logger: logger) {}
        cartLocks.didLock(needed, hadTransactionID: hadTransactionID)
    }

    // MARK: Reads

    /// The session with `id`; with `lock`, its cart locked first (in the same statement,
    /// before the row lock) and then its row.
    func session(id: String, lock: Bool = false) async throws -> PaymentSession? {
        if let writeSet {
            return writeSet.overlaying(
                try await all(SessionStatement<SessionQueries.ByID>(values: [id])), noting: lock, matching: { $0.id == id }
            ).first
        }
        guard lock else { return try await all(SessionStatement<SessionQueries.ByID>(values: [id])).first }
        let hadTransactionID = cartLocks.hasTransactionID
        guard let session = try await all(SessionStatement<SessionQueries.ByIDLocked>(values: [id])).first else {
            return nil
        }
        cartLocks.didLock([session.cartID], hadTransactionID: hadTransactionID)
        cartLocks.didWrite()
        return session
    }

    func session(idempotencyKey key: String) async throws -> PaymentSession? {
        let rows = try await all(SessionStatement<SessionQueries.ByKey>(values: [key]))
        guard let writeSet else { return rows.first }
        return writeSet.overlaying(rows, noting: false, matching: { $0.idempotencyKey == key }).first
    }

    func session(cartID: String, providerID: String, lock: Bool = false) async throws -> PaymentSession? {
        if let writeSet {
            if lock { writeSet.lock([cartID]) }
            return writeSet.overlaying(
                try await all(SessionStatement<SessionQueries.ByPair>(values: [cartID, providerID])), noting: lock,
                matching: { $0.cartID == cartID && $0.providerID == providerID }
            ).first
        }
        guard lock else { return try await all(SessionStatement<SessionQueries.ByPair>(values: [cartID, providerID])).first }
        try await lockCarts([cartID])
        cartLocks.didWrite()
        return try await all(SessionStatement<SessionQueries.ByPairLocked>(values: [cartID, providerID])).first
    }

    /// The cart's selected session, locked when `lock` (the row a selection change rewrites).
    func selectedSession(cartID: String, lock: Bool = false) async throws -> PaymentSession? {
        if let writeSet {
            if lock { writeSet.lock([cartID]) }
            return writeSet.overlaying(
                try await all(SessionStatement<SessionQueries.Selected>(values: [cartID])), noting: lock,
                matching: { $0.cartID == cartID && $0.isSelected }
            ).first
        }
        guard lock else { return try await all(SessionStatement<SessionQueries.Selected>(values: [cartID])).first }
        try await lockCarts([cartID])
        cartLocks.didWrite()
        return try await all(SessionStatement<SessionQueries.SelectedLocked>(values: [cartID])).first
    }

    /// The cart's sessions in id order, locked in that order when `lock` (one order for
    /// every locker, so two of them never deadlock on one cart).
    func sessions(cartID: String, lock: Bool = false) async throws -> [PaymentSession] {
        if let writeSet {
            let rows = try await all(SessionStatement<SessionQueries.ByCart>(values: [cartID]))
            // Deleting a cart's sessions rests on there being no others, which no constraint
            // checks: the apply counts them.
            if lock { writeSet.expectComplete(cart: cartID, sessions: rows) }
            return writeSet.overlaying(rows, noting: false, matching: { $0.cartID == cartID })
        }
        guard lock else { return try await all(SessionStatement<SessionQueries.ByCart>(values: [cartID])) }
        try await lockCarts([cartID])
        cartLocks.didWrite()
        return try await all(SessionStatement<SessionQueries.ByCartLocked>(values: [cartID]))
    }

    func sessions(after id: String?, limit: Int) async throws -> [PaymentSession] {
        let limit = Int64(max(0, limit))
        if let id {
            return try await all(
                """
                SELECT \(unescaped: PostgresSessionRow.columns) FROM payment_sessions
                WHERE id > \(id) ORDER BY id LIMIT \(limit)
                """)
        }
        return try await all(
            "SELECT \(unescaped: PostgresSessionRow.columns) FROM payment_sessions ORDER BY id LIMIT \(limit)")
    }

    /// Sessions not updated since `cutoff`, in id order; with `lock`, their carts locked
    /// first (those read without the lock) and then their rows.
    func sessions(updatedBefore cutoff: Int64, lock: Bool) async throws -> [PaymentSession] {
        guard lock else {
            return try await all(
                """
                SELECT \(unescaped: PostgresSessionRow.columns) FROM payment_sessions
                WHERE updated_at < \(PostgresTimestamp(cutoff)) ORDER BY id
                """)
        }
        if writeSet != nil { throw NeedsTransaction() }
        try await lockCarts(try await sessions(updatedBefore: cutoff, lock: false).map(\.cartID))
        cartLocks.didWrite()
        return try await all(
            """
            SELECT \(unescaped: PostgresSessionRow.columns) FROM payment_sessions
            WHERE updated_at < \(PostgresTimestamp(cutoff)) ORDER BY id FOR UPDATE
            """)
    }

    private func all(_ query: PostgresQuery) async throws -> [PaymentSession] {
        try await sessions(from: try await connection.query(query, logger: logger))
    }

    private func all<Query>(_ statement: SessionStatement<Query>) async throws -> [PaymentSession] {
        try await sessions(from: try await connection.execute(statement, logger: logger))
    }

    private func sessions(from rows: some AsyncSequence<PostgresRow, any Error>) async throws -> [PaymentSession] {
        // Rows are decoded once the statement has ended (or a batch of them has arrived),
        // not as each arrives: decoding one while the connection's event loop reads the
        // rest of the answer cost a get more thread switches than the decoding itself. The
        // batch bounds the rows held at once for a long answer (a purge's).
        var sessions: [PaymentSession] = []
        var received: [PostgresRow] = []
        for try await row in rows {
            received.append(row)
            if received.count == Self.rowsDecodedTogether {
                try decode(received, into: &sessions)
                received.removeAll(keepingCapacity: true)
            }
        }
        try decode(received, into: &sessions)
        return sessions
    }

    /// How many rows a long answer holds before they are decoded.
    private static let rowsDecodedTogether = 256

    private func decode(_ rows: [PostgresRow], into sessions: inout [PaymentSession]) throws(PaymentSessionError) {
        for row in rows {
            do {
                sessions.append(try PostgresSessionRow.session(from: row))
            } catch {
                // The same words and metadata as the LMDB store's, so that one alert serves both.
                var metadata: Logger.Metadata = ["error": "\(error)"]
                if case .corruptRecord(let key, let reason) = error {
                    metadata = ["payment_sessions.key": .string(key), "payment_sessions.reason": .string(reason)]
                }
                logger.warning("met a corrupt record on a read; run verify", metadata: metadata)
                throw error
            }
        }
    }

    // MARK: Writes

    /// Inserts a new row; `false` when a unique constraint refused it (nothing written).
    /// The feed gets a `kind` change.
    func insert(_ session: PaymentSession, dataJSON: [UInt8]?, kind: PaymentSessionChange.Kind) async throws -> Bool {
        if let writeSet {
            // Optimistic: a refusal by a constraint surfaces when the writes are applied.
            writeSet.lock([session.cartID])
            writeSet.write(.insert, session, dataText: PostgresSessionRow.dataText(session, dataJSON))
            changes.record(kind, before: nil, after: session, sessionID: session.id, cartID: session.cartID)
            return true
        }
        try await lockCarts([session.cartID])
        cartLocks.didWrite()
        let rows = try await connection.execute(
            InsertSessionStatement(session: session, dataText: PostgresSessionRow.dataText(session, dataJSON)), logger: logger)
        var inserted = false
        for try await _ in rows { inserted = true }
        if inserted { changes.record(kind, before: nil, after: session, sessionID: session.id, cartID: session.cartID) }
        return inserted
    }

    /// Rewrites the mutable columns of a session's row, which was `previous` (the caller
    /// holds its lock), and records the change for the feed (unless `previous` is `nil`:
    /// then the caller records it, with ``recordChange(replacing:with:)``).
    func update(_ session: PaymentSession, dataJSON: [UInt8]?, replacing previous: PaymentSession?) async throws {
        if let writeSet {
            writeSet.lock([session.cartID])
            writeSet.write(.update, session, dataText: PostgresSessionRow.dataText(session, dataJSON))
            if let previous { recordChange(replacing: previous, with: session) }
            return
        }
        try await lockCarts([session.cartID])
        cartLocks.didWrite()
        for try await _ in try await connection.execute(
            UpdateSessionStatement(session: session, dataText: PostgresSessionRow.dataText(session, dataJSON)), logger: logger)
        {}
        if let previous { recordChange(replacing: previous, with: session) }
    }

    /// Records, for the feed, that `previous` became `session`.
    func recordChange(replacing previous: PaymentSession, with session: PaymentSession) {
        changes.record(
            PaymentSessionChange.kind(from: previous, to: session), before: previous, after: session, sessionID: session.id,
            cartID: session.cartID)
    }

    /// Writes what a rule decided about `previous`; a repeat writes nothing.
    func store(_ change: SessionChange, replacing previous: PaymentSession) async throws -> PaymentSession {
        if change.isWrite { try await update(change.session, dataJSON: change.dataJSON, replacing: previous) }
        return change.session
    }

    /// Deletes a session's row, leaving its idempotency key reserved; the feed gets a
    /// `kind` change.
    func remove(_ session: PaymentSession, kind: PaymentSessionChange.Kind) async throws {
        if let writeSet {
            writeSet.lock([session.cartID])
            writeSet.write(.delete, session, dataText: "")
            if let key = session.idempotencyKey { writeSet.reserve(key: key, of: session.id) }
            changes.record(kind, before: session, after: nil, sessionID: session.id, cartID: session.cartID)
            return
        }
        try await lockCarts([session.cartID])
        cartLocks.didWrite()
        let delete = TextStatement<TransactionQueries.DeleteSession>(values: [session.id])
        for try await _ in try await connection.execute(delete, logger: logger) {}
        changes.record(kind, before: session, after: nil, sessionID: session.id, cartID: session.cartID)
        if let key = session.idempotencyKey {
            for try await _ in try await connection.execute(
                ReserveKeyStatement(key: key, sessionID: session.id, deletedAt: now), logger: logger)
            {}
        }
    }

    // MARK: Idempotency keys

    /// Who holds an idempotency key.
    enum KeyClaim {
        /// The key is now this session's.
        case claimed
        /// A live session holds it.
        case live(sessionID: String)
        /// A deleted session's reservation holds it.
        case reserved(sessionID: String)
    }

    /// Takes `key` for `sessionID`: a new key, an expired reservation, or the session's own
    /// reservation (a deleted session restored by an import). The key's row stays locked
    /// until the transaction ends, so a concurrent create or delete with the key waits.
    func claim(key: String, for sessionID: String) async throws -> KeyClaim {
        if let writeSet {
            // Optimistic: a taken key surfaces when the writes are applied, and the operation
            // then runs as a transaction, which reads the key's holder.
            writeSet.claim(key: key, for: sessionID)
            return .claimed
        }
        cartLocks.didWrite()
        let claim = TextStatement<TransactionQueries.ClaimKey>(values: [key, sessionID])
        for try await _ in try await connection.execute(claim, logger: logger) {
            return .claimed
        }
        var holder: (String, Int64?)?
        for try await (holderID, deletedAt) in try await connection.execute(LockedKeyHolderStatement(key: key), logger: logger) {
            holder = (holderID, deletedAt?.microseconds)
        }
        // The holder was deleted (its row gone) between the insert and the read: run again.
        guard let (holderID, deletedAt) = holder else { throw RetryTransaction(reason: "idempotency key released") }
        guard let deletedAt else { return .live(sessionID: holderID) }
        let expired = SessionRules.reservationExpired(
            reservedAt: deletedAt, now: now, retention: options.idempotencyRetention)
        if holderID != sessionID && !expired { return .reserved(sessionID: holderID) }
        let reclaim = TextStatement<TransactionQueries.ReclaimKey>(values: [key, sessionID])
        for try await _ in try await connection.execute(reclaim, logger: logger) {}
        return .claimed
    }

    /// Drops reservations past the retention; returns how many.
    func dropExpiredReservations() async throws -> Int {
        if writeSet != nil { throw NeedsTransaction() }
        cartLocks.didWrite()
        let retention = SessionRules.retentionMicroseconds(options.idempotencyRetention)
        let (cutoff, overflow) = now.subtractingReportingOverflow(retention)
        let rows = try await connection.query(
            """
            DELETE FROM payment_session_idempotency_keys
            WHERE deleted_at IS NOT NULL AND deleted_at <= \(PostgresTimestamp(overflow ? Int64.min : cutoff)) RETURNING key
            """, logger: logger)
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }
}
#endif
