import Foundation
import GRDB
import PaymentSessions

/// What a Swift user would reach for instead: SQLite through GRDB.swift, WAL mode, with
/// Medusa's constraints as unique indexes.
public final class SQLiteSessions: Sendable {
    public let pool: DatabasePool

    public init(path: String, durable: Bool) throws {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = OFF")
        }
        pool = try DatabasePool(path: path + "/sessions.sqlite", configuration: configuration)
        try pool.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS payment_session (
                        id TEXT PRIMARY KEY NOT NULL,
                        cart_id TEXT NOT NULL,
                        provider_id TEXT NOT NULL,
                        is_selected INTEGER NOT NULL DEFAULT 0,
                        status TEXT NOT NULL,
                        data TEXT NOT NULL,
                        idempotency_key TEXT,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE UNIQUE INDEX IF NOT EXISTS cart_provider ON payment_session(cart_id, provider_id);
                    CREATE UNIQUE INDEX IF NOT EXISTS one_selected ON payment_session(cart_id) WHERE is_selected;
                    CREATE UNIQUE INDEX IF NOT EXISTS idempotency ON payment_session(idempotency_key);
                    """)
        }
    }

    static func insert(_ db: Database, _ index: Int, seed: Int) throws {
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        try db.execute(
            sql: """
                INSERT INTO payment_session (id, cart_id, provider_id, is_selected, status, data, idempotency_key, created_at, updated_at)
                VALUES (?, ?, ?, 0, 'pending', ?, ?, ?, ?)
                """,
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

    static func session(_ row: Row) throws -> PaymentSession {
        let data = try JSONValue(parsing: row["data"] as String).objectValue ?? [:]
        return PaymentSession(
            id: row["id"], cartID: row["cart_id"], providerID: row["provider_id"], isSelected: row["is_selected"],
            status: PaymentSessionStatus(rawValue: row["status"]) ?? .pending, data: data,
            idempotencyKey: row["idempotency_key"],
            createdAt: Timestamp.date(microseconds: row["created_at"]), updatedAt: Timestamp.date(microseconds: row["updated_at"]))
    }

    /// A decoded session by id.
    public func get(id: String) throws -> PaymentSession? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM payment_session WHERE id = ?", arguments: [id]).map(Self.session)
        }
    }

    /// A cart's decoded sessions in creation order.
    public func cartSessions(cart: String) throws -> [PaymentSession] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM payment_session WHERE cart_id = ? ORDER BY id", arguments: [cart])
                .map(Self.session)
        }
    }

    /// Selection switch in one transaction.
    public func select(id: String, cart: String) throws {
        try pool.write { db in
            let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
            try db.execute(
                sql: "UPDATE payment_session SET is_selected = 0, updated_at = ? WHERE cart_id = ? AND is_selected AND id <> ?",
                arguments: [now, cart, id])
            try db.execute(
                sql: "UPDATE payment_session SET is_selected = 1, updated_at = ? WHERE id = ? AND status <> 'canceled'",
                arguments: [now, id])
        }
    }
}
