import Foundation
import GRDB
import PaymentSessions

/// What a Swift user would reach for instead: SQLite through GRDB.swift, WAL mode, with
/// Medusa's constraints as unique indexes, tuned as GRDB's performance guide says: cached
/// statements, columns read by index, and a `DatabaseQueue` beside the pool for the reads
/// where one connection without a snapshot transaction wins.
public final class SQLiteSessions: Sendable {
    public let pool: DatabasePool
    /// One serial connection to the same database, for reads (no snapshot transaction per read).
    public let queue: DatabaseQueue

    public init(path: String, durable: Bool) throws {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = OFF")
        }
        pool = try DatabasePool(path: path + "/sessions.sqlite", configuration: configuration)
        try pool.write { db in
            try db.execute(sql: BestSQLite.schema)
        }
        // A pool sets `synchronous = NORMAL` on its writer when it turns WAL on (a commit
        // then waits for no flush); the durable scenarios need FULL, set after that.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = OFF")
            let level = try Int.fetchOne(db, sql: "PRAGMA synchronous")
            guard level == (durable ? 2 : 0) else { throw DatabaseError(message: "synchronous is \(level ?? -1)") }
        }
        queue = try DatabaseQueue(path: path + "/sessions.sqlite", configuration: configuration)
    }

    static func insert(_ db: Database, _ index: Int, seed: Int) throws {
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO payment_session (id, cart_id, provider_id, is_selected, status, data, idempotency_key, created_at, updated_at)
                VALUES (?, ?, ?, 0, 'pending', ?, ?, ?, ?)
                """)
        try statement.execute(
            arguments: [
                Workload.sessionID(index, seed: seed), Workload.cartID(index, seed: seed), Workload.providerID(index),
                Workload.dataJSON(index), Workload.idempotencyKey(index, seed: seed), now, now,
            ])
    }

    /// One insert, for callers that run their own transaction.
    public static func insertForBenchmark(_ db: Database, _ index: Int, seed: Int) throws {
        try insert(db, index, seed: seed)
    }

    /// One create per transaction.
    public func create(_ index: Int, seed: Int) throws {
        try pool.write { db in try Self.insert(db, index, seed: seed) }
    }

    /// Many creates in one transaction.
    public func createMany(_ range: Range<Int>, seed: Int) throws {
        try pool.write { db in
            for index in range { try Self.insert(db, index, seed: seed) }
        }
    }

    static let columns = "id, cart_id, provider_id, is_selected, status, data, idempotency_key, created_at, updated_at"

    static func session(_ row: Row) throws -> PaymentSession {
        let data = try JSONValue(parsing: row[5] as String).objectValue ?? [:]
        return PaymentSession(
            id: row[0], cartID: row[1], providerID: row[2], isSelected: row[3],
            status: PaymentSessionStatus(rawValue: row[4]) ?? .pending, data: data,
            idempotencyKey: row[6],
            createdAt: Timestamp.date(microseconds: row[7]), updatedAt: Timestamp.date(microseconds: row[8]))
    }

    /// A decoded session by id, read through `reader` (the pool by default).
    public func get(id: String, from reader: (any DatabaseReader)? = nil) throws -> PaymentSession? {
        try (reader ?? pool).read { db in
            let statement = try db.cachedStatement(sql: "SELECT \(Self.columns) FROM payment_session WHERE id = ?")
            return try Row.fetchOne(statement, arguments: [id]).map(Self.session)
        }
    }

    /// A cart's decoded sessions in creation order.
    public func cartSessions(cart: String, from reader: (any DatabaseReader)? = nil) throws -> [PaymentSession] {
        try (reader ?? pool).read { db in
            let statement = try db.cachedStatement(sql: "SELECT \(Self.columns) FROM payment_session WHERE cart_id = ? ORDER BY id")
            return try Row.fetchAll(statement, arguments: [cart]).map(Self.session)
        }
    }

    /// Selection switch in one transaction.
    public func select(id: String, cart: String) throws {
        try pool.write { db in
            let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
            try db.cachedStatement(
                sql: "UPDATE payment_session SET is_selected = 0, updated_at = ? WHERE cart_id = ? AND is_selected AND id <> ?"
            ).execute(arguments: [now, cart, id])
            try db.cachedStatement(
                sql: "UPDATE payment_session SET is_selected = 1, updated_at = ? WHERE id = ? AND status <> 'canceled'"
            ).execute(arguments: [now, id])
        }
    }
}
