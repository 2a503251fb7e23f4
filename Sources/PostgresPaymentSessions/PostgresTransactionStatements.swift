#if PostgreSQL
import PaymentSessionsCore
import PostgresNIO

/// The statements of the transactional write path (units of writes, imports, purges, and
/// the operations an optimistic run hands over), prepared once per connection like the
/// reads: `BEGIN`, `COMMIT`, a session's insert, update and delete, the idempotency keys'
/// claims and reservations, and the pending changes.
///
/// `ROLLBACK` stays an unnamed statement: it runs after a failure, when a connection whose
/// prepared statements are in doubt is better served by the simple path.
protocol ParameterlessStatement: PostgresPreparedStatement where Row == Int {}

extension ParameterlessStatement {
    func makeBindings() throws -> PostgresBindings { PostgresBindings() }
    func decodeRow(_ row: PostgresRow) throws -> Int { 0 }
}

struct BeginStatement: ParameterlessStatement {
    static let name = "payment_session_begin"
    static let sql = "BEGIN"
}

struct CommitStatement: ParameterlessStatement {
    static let name = "payment_session_commit"
    static let sql = "COMMIT"
}

/// Inserts a session's row unless a unique constraint refuses it; its one row, the id, says
/// it was inserted.
struct InsertSessionStatement: PostgresPreparedStatement {
    static let name = "payment_session_insert"
    static let sql = """
        INSERT INTO payment_sessions (\(PostgresSessionRow.columns))
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING RETURNING id
        """
    typealias Row = String

    var session: PaymentSession
    var dataText: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 13)
        bindings.append(session.id)
        bindings.append(session.cartID)
        bindings.append(session.providerID)
        bindings.append(session.isSelected)
        bindings.append(session.status.rawValue)
        bindings.append(dataText)
        bindings.append(session.idempotencyKey)
        bindings.append(PostgresSessionRow.amount(session))
        bindings.append(session.currencyCode)
        bindings.append(session.isInitiated)
        bindings.append(PostgresSessionRow.authorizedAt(session))
        bindings.append(PostgresSessionRow.createdAt(session))
        bindings.append(PostgresSessionRow.updatedAt(session))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// Rewrites the mutable columns of a session's row.
struct UpdateSessionStatement: PostgresPreparedStatement {
    static let name = "payment_session_update"
    static let sql = """
        UPDATE payment_sessions SET is_selected = $2, status = $3, data_text = $4, amount = $5, currency_code = $6,
            is_initiated = $7, payment_authorized_at = $8, updated_at = $9
        WHERE id = $1
        """
    typealias Row = Int

    var session: PaymentSession
    var dataText: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 9)
        bindings.append(session.id)
        bindings.append(session.isSelected)
        bindings.append(session.status.rawValue)
        bindings.append(dataText)
        bindings.append(PostgresSessionRow.amount(session))
        bindings.append(session.currencyCode)
        bindings.append(session.isInitiated)
        bindings.append(PostgresSessionRow.authorizedAt(session))
        bindings.append(PostgresSessionRow.updatedAt(session))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { 0 }
}

/// A statement whose parameters are all text and whose rows, if any, are only counted.
protocol TextQuery {
    static var name: String { get }
    static var sql: String { get }
}

/// A ``TextQuery`` bound to its values.
struct TextStatement<Query: TextQuery>: PostgresPreparedStatement {
    static var name: String { Query.name }
    static var sql: String { Query.sql }
    typealias Row = Int

    var values: [String]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: values.count)
        for value in values { bindings.append(value) }
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { 0 }
}

/// The transaction's text-only statements, by what they do.
enum TransactionQueries {
    /// Deletes a session's row: its id.
    enum DeleteSession: TextQuery {
        static let name = "payment_session_delete"
        static let sql = "DELETE FROM payment_sessions WHERE id = $1"
    }
    /// Claims a new idempotency key (the key, the session's id); a row when it was free.
    enum ClaimKey: TextQuery {
        static let name = "payment_session_claim_key"
        static let sql = """
            INSERT INTO payment_session_idempotency_keys (key, session_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING key
            """
    }
    /// Gives an idempotency key (the key, the session's id) to a session, live: a
    /// reservation expired or restored.
    enum ReclaimKey: TextQuery {
        static let name = "payment_session_reclaim_key"
        static let sql = "UPDATE payment_session_idempotency_keys SET session_id = $2, deleted_at = NULL WHERE key = $1"
    }
}

/// An idempotency key's holder and, for a deleted session's reservation, when it was
/// deleted; the key's row locked.
struct LockedKeyHolderStatement: PostgresPreparedStatement {
    static let name = "payment_session_key_holder_locked"
    static let sql = "SELECT session_id, deleted_at FROM payment_session_idempotency_keys WHERE key = $1 FOR UPDATE"
    typealias Row = (String, PostgresTimestamp?)

    var key: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(key)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// Keeps a deleted session's idempotency key reserved from `deletedAt`.
struct ReserveKeyStatement: PostgresPreparedStatement {
    static let name = "payment_session_reserve_key"
    static let sql = "UPDATE payment_session_idempotency_keys SET deleted_at = $3 WHERE key = $1 AND session_id = $2"
    typealias Row = Int

    var key: String
    var sessionID: String
    var deletedAt: Int64

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(key)
        bindings.append(sessionID)
        bindings.append(PostgresTimestamp(deletedAt))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { 0 }
}

/// A transaction's changes, left pending for the sequencer (see ``PostgresChangeLog``).
struct InsertPendingChangesStatement: PostgresPreparedStatement {
    static let name = "payment_session_insert_pending_changes"
    static let sql = """
        INSERT INTO payment_session_pending_changes
            (position, session_id, cart_id, kind, status_before, status_after, committed_at, session)
        SELECT changes.position, session_id, cart_id, kind, NULLIF(status_before, ''), NULLIF(status_after, ''), $7,
            NULLIF(session, '')
        FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[])
            WITH ORDINALITY AS changes (session_id, cart_id, kind, status_before, status_after, session, position)
        """
    typealias Row = Int

    var changes: [PostgresChangeLog.Entry]
    var committedAt: Int64

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 7)
        bindings.append(changes.map(\.sessionID))
        bindings.append(changes.map(\.cartID))
        bindings.append(changes.map(\.kind.rawValue))
        bindings.append(changes.map { $0.before?.rawValue ?? "" })
        bindings.append(changes.map { $0.after?.rawValue ?? "" })
        bindings.append(changes.map { $0.sessionJSON ?? "" })
        bindings.append(PostgresTimestamp(committedAt))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { 0 }
}
#endif
