import PaymentSessionsCore
import PostgresNIO

/// The session reads every operation starts with, as prepared statements: each connection
/// parses and plans them once, and a read is then a bind and an execute.
///
/// Their SQL is constant text; the values are bound parameters, never part of the text.
/// The table is named unqualified, so that a connection's `search_path` chooses the schema
/// (the store's tests give each test its own).
protocol SessionQuery {
    /// A `SELECT` of ``PostgresSessionRow/columns`` with `$1`, `$2` as parameters.
    static var sql: String { get }
}

/// A ``SessionQuery`` bound to its values; its rows decode as sessions.
struct SessionStatement<Query: SessionQuery>: PostgresPreparedStatement {
    static var name: String { "payment_sessions_\(Query.self)" }
    static var sql: String { Query.sql }

    var values: [String]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: values.count)
        for value in values { bindings.append(value) }
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

/// The statements, by what they select and whether they lock.
enum SessionQueries {
    private static let select = "SELECT \(PostgresSessionRow.columns) FROM payment_sessions"

    enum ByID: SessionQuery { static let sql = "\(select) WHERE id = $1" }
    enum ByIDLocked: SessionQuery { static let sql = "\(select) WHERE id = $1 FOR UPDATE" }
    enum ByKey: SessionQuery { static let sql = "\(select) WHERE idempotency_key = $1" }
    enum ByPair: SessionQuery { static let sql = "\(select) WHERE cart_id = $1 AND provider_id = $2" }
    enum ByPairLocked: SessionQuery { static let sql = "\(select) WHERE cart_id = $1 AND provider_id = $2 FOR UPDATE" }
    enum Selected: SessionQuery { static let sql = "\(select) WHERE cart_id = $1 AND is_selected" }
    enum SelectedLocked: SessionQuery { static let sql = "\(select) WHERE cart_id = $1 AND is_selected FOR UPDATE" }
    enum ByCart: SessionQuery { static let sql = "\(select) WHERE cart_id = $1 ORDER BY id" }
    enum ByCartLocked: SessionQuery { static let sql = "\(select) WHERE cart_id = $1 ORDER BY id FOR UPDATE" }
}
