#if PostgreSQL
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
    /// The name the statement is prepared under on each connection.
    static var name: String { get }
}

/// A ``SessionQuery`` bound to its values; its rows decode as sessions.
struct SessionStatement<Query: SessionQuery>: PostgresPreparedStatement {
    static var name: String { Query.name }
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

    enum ByID: SessionQuery {
        static let sql = "\(select) WHERE id = $1"
        static let name = "payment_sessions_by_id"
    }
    enum ByIDLocked: SessionQuery {
        // The cart's lock is taken in the filter, before the row lock (and so before the
        // transaction has an id), for rows the index finds; see PostgresCartLocks.
        static let sql = "\(select) WHERE id = $1 AND payment_session_lock_cart(cart_id) FOR UPDATE"
        static let name = "payment_sessions_by_id_locking_cart"
    }
    enum ByKey: SessionQuery {
        static let sql = "\(select) WHERE idempotency_key = $1"
        static let name = "payment_sessions_by_key"
    }
    enum ByPair: SessionQuery {
        static let sql = "\(select) WHERE cart_id = $1 AND provider_id = $2"
        static let name = "payment_sessions_by_pair"
    }
    enum ByPairLocked: SessionQuery {
        static let sql = "\(select) WHERE cart_id = $1 AND provider_id = $2 FOR UPDATE"
        static let name = "payment_sessions_by_pair_locked"
    }
    enum Selected: SessionQuery {
        static let sql = "\(select) WHERE cart_id = $1 AND is_selected"
        static let name = "payment_sessions_selected"
    }
    enum SelectedLocked: SessionQuery {
        static let sql = "\(select) WHERE cart_id = $1 AND is_selected FOR UPDATE"
        static let name = "payment_sessions_selected_locked"
    }
    enum ByCart: SessionQuery {
        static let sql = "\(select) WHERE cart_id = $1 ORDER BY id"
        static let name = "payment_sessions_by_cart"
    }
    enum ByCartLocked: SessionQuery {
        static let sql = "\(select) WHERE cart_id = $1 ORDER BY id FOR UPDATE"
        static let name = "payment_sessions_by_cart_locked"
    }
}

/// Locks carts (the transaction-level advisory locks of `payment_session_lock_cart`) in the
/// order given.
struct LockCarts: PostgresPreparedStatement {
    static let name = "payment_session_lock_carts"
    static let sql = """
        SELECT count(payment_session_lock_cart(cart)) FROM unnest($1::TEXT[]) WITH ORDINALITY AS carts (cart, position)
        """
    typealias Row = Int64

    var carts: [String]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(carts)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// A create that needs no decision, in one round trip: `payment_session_create` locks the
/// cart, claims the key, inserts the session and its pending change, and the procedure
/// around it commits before the statement completes (schema 5 says why).
/// Its row is `created`, or `key` when the idempotency key is taken (nothing written); a row
/// a unique constraint refuses raises ``refusedState`` (nothing written).
struct PostgresCreateSession: PostgresPreparedStatement {
    static let name = "payment_session_create_committed"
    static let sql = "CALL payment_session_create_committed($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL)"
    /// The SQLSTATE the function raises when a unique constraint refuses the row: the id,
    /// the (cart, provider) pair, or a key taken between its claim and the insert.
    static let refusedState = "YP001"
    typealias Row = String

    var session: PaymentSession
    var dataText: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 11)
        bindings.append(session.id)
        bindings.append(session.cartID)
        bindings.append(session.providerID)
        bindings.append(session.status.rawValue)
        bindings.append(dataText)
        bindings.append(session.idempotencyKey)
        bindings.append(PostgresSessionRow.amount(session))
        bindings.append(session.currencyCode)
        bindings.append(session.isInitiated)
        bindings.append(PostgresSessionRow.createdAt(session))
        bindings.append(session.jsonText())
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// A ``PostgresWriteSet`` and its changes applied in one statement (`payment_session_apply`,
/// in a procedure that commits before the statement completes): carts locked in sorted order, the rows read checked, the writes
/// made, the changes left pending. It raises ``staleState`` when a row read has changed, or a cart read whole has
/// another number of sessions
/// (nothing written: the operation runs again) and ``PostgresCreateSession/refusedState``
/// when a unique constraint refuses a row or key (nothing written: it runs as a transaction).
struct PostgresApplyWrites: PostgresPreparedStatement {
    static let name = "payment_session_apply_committed"
    static let sql = """
        CALL payment_session_apply_committed($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
            $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30)
        """
    /// The SQLSTATE the function raises when a row the operation read has changed since.
    static let staleState = "YP002"
    typealias Row = Int

    var writes: PostgresWriteSet.State
    var changes: [PostgresChangeLog.Entry]
    var now: Int64

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 30)
        bindings.append(writes.carts.sorted())
        bindings.append(writes.expected.map(\.id))
        bindings.append(writes.expected.map(\.updatedAt))
        bindings.append(writes.keyClaims.map(\.key))
        bindings.append(writes.keyClaims.map(\.sessionID))
        bindings.append(writes.keyReservations.map(\.key))
        bindings.append(writes.keyReservations.map(\.sessionID))
        let rows = writes.rows
        bindings.append(rows.map(\.operation.rawValue))
        bindings.append(rows.map(\.session.id))
        bindings.append(rows.map(\.session.cartID))
        bindings.append(rows.map(\.session.providerID))
        bindings.append(rows.map(\.session.isSelected))
        bindings.append(rows.map(\.session.status.rawValue))
        bindings.append(rows.map(\.dataText))
        bindings.append(rows.map { $0.session.idempotencyKey ?? "" })
        bindings.append(rows.map { PostgresSessionRow.amount($0.session) ?? -1 })
        bindings.append(rows.map { $0.session.currencyCode ?? "" })
        bindings.append(rows.map(\.session.isInitiated))
        bindings.append(rows.map { $0.session.money.authorizedAt ?? .min })
        bindings.append(rows.map(\.session.createdMicroseconds))
        bindings.append(rows.map(\.session.updatedMicroseconds))
        bindings.append(changes.map(\.sessionID))
        bindings.append(changes.map(\.cartID))
        bindings.append(changes.map(\.kind.rawValue))
        bindings.append(changes.map { $0.before?.rawValue ?? "" })
        bindings.append(changes.map { $0.after?.rawValue ?? "" })
        bindings.append(changes.map { $0.sessionJSON ?? "" })
        bindings.append(now)
        bindings.append(writes.completeCarts.map(\.cart))
        bindings.append(writes.completeCarts.map { Int32($0.count) })
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { 0 }
}
#endif
