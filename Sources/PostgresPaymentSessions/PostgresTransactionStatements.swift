#if PostgreSQL
import PaymentSessionsCore
import PostgresNIO

/// The statements of the transactional write path (units of writes, imports, purges, and
/// the operations an optimistic run hands over), prepared once per connection like the
/// reads: `BEGIN`, `COMMIT`, a session's insert and update.
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
#endif
