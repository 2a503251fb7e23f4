import CSQLite
import Foundation
import PaymentSessions

/// SQLite at its best: the C API, statements prepared once and reused, WAL with
/// `synchronous=FULL` (or `OFF` when not durable), one connection per thread without
/// SQLite's own mutexes, and per-call transactions where the store's calls are per call
/// (autocommit). Same schema and rows as ``SQLiteSessions`` (GRDB), same decoding into
/// ``PaymentSession``.
///
/// A connection is used by one thread at a time; concurrent callers each open their own
/// with ``connection()``. The connections of one database take turns to write through a lock
/// of this process, as a well-built SQLite application does: SQLite's own busy handler
/// sleeps (1, 2, 5, 10 ms and more) while another connection writes, which at 32 writers
/// costs many times the commits themselves.
public final class BestSQLite: @unchecked Sendable {
    public let path: String
    let durable: Bool
    private let writers: NSLock
    private let db: OpaquePointer
    private let insertStatement: OpaquePointer
    private let getStatement: OpaquePointer
    private let cartStatement: OpaquePointer
    private let deselectStatement: OpaquePointer
    private let selectStatement: OpaquePointer
    private let begin: OpaquePointer
    private let commit: OpaquePointer

    /// Opens (creating the schema in) `directory/sessions.sqlite`.
    public convenience init(directory: String, durable: Bool) throws {
        try self.init(file: directory + "/sessions.sqlite", durable: durable, createSchema: true, writers: NSLock())
    }

    init(file: String, durable: Bool, createSchema: Bool, writers: NSLock) throws {
        path = file
        self.durable = durable
        self.writers = writers
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        guard sqlite3_open_v2(file, &handle, flags, nil) == SQLITE_OK, let handle else {
            throw BestSQLiteError(message: "open \(file)")
        }
        db = handle
        sqlite3_busy_timeout(db, 60_000)
        try Self.execute(db, "PRAGMA journal_mode = WAL")
        try Self.execute(db, durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = OFF")
        if createSchema {
            try Self.execute(db, Self.schema)
        }
        insertStatement = try Self.prepare(
            db,
            """
            INSERT INTO payment_session (id, cart_id, provider_id, is_selected, status, data, idempotency_key, created_at, updated_at)
            VALUES (?, ?, ?, 0, 'pending', ?, ?, ?, ?)
            """)
        getStatement = try Self.prepare(
            db, "SELECT id, cart_id, provider_id, is_selected, status, data, idempotency_key, created_at, updated_at FROM payment_session WHERE id = ?")
        cartStatement = try Self.prepare(
            db,
            "SELECT id, cart_id, provider_id, is_selected, status, data, idempotency_key, created_at, updated_at FROM payment_session WHERE cart_id = ? ORDER BY id")
        deselectStatement = try Self.prepare(
            db, "UPDATE payment_session SET is_selected = 0, updated_at = ? WHERE cart_id = ? AND is_selected AND id <> ?")
        selectStatement = try Self.prepare(
            db, "UPDATE payment_session SET is_selected = 1, updated_at = ? WHERE id = ? AND status <> 'canceled'")
        begin = try Self.prepare(db, "BEGIN IMMEDIATE")
        commit = try Self.prepare(db, "COMMIT")
    }

    /// The table and Medusa's constraints as unique indexes, shared with ``SQLiteSessions``.
    public static let schema = """
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
        """

    deinit {
        for statement in [insertStatement, getStatement, cartStatement, deselectStatement, selectStatement, begin, commit] {
            sqlite3_finalize(statement)
        }
        sqlite3_close_v2(db)
    }

    /// Another connection to the same database, for another thread.
    public func connection() throws -> BestSQLite {
        try BestSQLite(file: path, durable: durable, createSchema: false, writers: writers)
    }

    // MARK: Writes

    /// One create, its own transaction (autocommit).
    public func create(_ index: Int, seed: Int) throws {
        try writers.withLock { try insert(index, seed: seed) }
    }

    /// Many creates in one transaction.
    public func createMany(_ range: Range<Int>, seed: Int) throws {
        try writers.withLock {
            try step(begin)
            for index in range { try insert(index, seed: seed) }
            try step(commit)
        }
    }

    /// Selection switch in one transaction.
    public func select(id: String, cart: String) throws {
        writers.lock()
        defer { writers.unlock() }
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        try step(begin)
        sqlite3_bind_int64(deselectStatement, 1, now)
        bind(deselectStatement, 2, cart)
        bind(deselectStatement, 3, id)
        try step(deselectStatement)
        sqlite3_bind_int64(selectStatement, 1, now)
        bind(selectStatement, 2, id)
        try step(selectStatement)
        try step(commit)
    }

    private func insert(_ index: Int, seed: Int) throws {
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        bind(insertStatement, 1, Workload.sessionID(index, seed: seed))
        bind(insertStatement, 2, Workload.cartID(index, seed: seed))
        bind(insertStatement, 3, Workload.providerID(index))
        bind(insertStatement, 4, Workload.dataJSON(index))
        bind(insertStatement, 5, Workload.idempotencyKey(index, seed: seed))
        sqlite3_bind_int64(insertStatement, 6, now)
        sqlite3_bind_int64(insertStatement, 7, now)
        try step(insertStatement)
    }

    // MARK: Reads

    /// A decoded session by id (one autocommit read).
    public func get(id: String) throws -> PaymentSession? {
        bind(getStatement, 1, id)
        defer { sqlite3_reset(getStatement) }
        let rc = sqlite3_step(getStatement)
        if rc == SQLITE_DONE { return nil }
        guard rc == SQLITE_ROW else { throw error("get") }
        return try session(getStatement)
    }

    /// A cart's decoded sessions in creation order.
    public func cartSessions(cart: String) throws -> [PaymentSession] {
        bind(cartStatement, 1, cart)
        defer { sqlite3_reset(cartStatement) }
        var sessions: [PaymentSession] = []
        while true {
            let rc = sqlite3_step(cartStatement)
            if rc == SQLITE_DONE { return sessions }
            guard rc == SQLITE_ROW else { throw error("cart") }
            sessions.append(try session(cartStatement))
        }
    }

    /// The database and WAL file sizes, after a checkpoint.
    public func fileBytes() -> Int {
        try? Self.execute(db, "PRAGMA wal_checkpoint(TRUNCATE)")
        let size = { (path: String) in ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0 }
        return size(path) + size(path + "-wal")
    }

    // MARK: Plumbing

    private func session(_ statement: OpaquePointer) throws -> PaymentSession {
        let data = try JSONValue(parsing: text(statement, 5)).objectValue ?? [:]
        return PaymentSession(
            id: text(statement, 0), cartID: text(statement, 1), providerID: text(statement, 2),
            isSelected: sqlite3_column_int(statement, 3) != 0,
            status: PaymentSessionStatus(rawValue: text(statement, 4)) ?? .pending, data: data,
            idempotencyKey: sqlite3_column_type(statement, 6) == SQLITE_NULL ? nil : text(statement, 6),
            createdAt: Timestamp.date(microseconds: sqlite3_column_int64(statement, 7)),
            updatedAt: Timestamp.date(microseconds: sqlite3_column_int64(statement, 8)))
    }

    private func text(_ statement: OpaquePointer, _ column: Int32) -> String {
        guard let bytes = sqlite3_column_text(statement, column) else { return "" }
        let count = Int(sqlite3_column_bytes(statement, column))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    private func bind(_ statement: OpaquePointer, _ index: Int32, _ value: String) {
        var value = value
        value.withUTF8 { bytes in
            // SQLITE_TRANSIENT: SQLite copies the bytes, which live only during this call.
            _ = sqlite3_bind_text(
                statement, index, UnsafeRawPointer(bytes.baseAddress)?.assumingMemoryBound(to: CChar.self),
                Int32(bytes.count), unsafeBitCast(-1, to: sqlite3_destructor_type.self))
        }
    }

    private func step(_ statement: OpaquePointer) throws {
        defer { sqlite3_reset(statement) }
        let rc = sqlite3_step(statement)
        guard rc == SQLITE_DONE || rc == SQLITE_ROW else { throw error("step") }
    }

    /// `PRAGMA synchronous` as SQLite reports it: 2 is FULL, 0 OFF.
    public func synchronousLevel() -> Int32 {
        guard let statement = try? Self.prepare(db, "PRAGMA synchronous") else { return -1 }
        defer { sqlite3_finalize(statement) }
        return sqlite3_step(statement) == SQLITE_ROW ? sqlite3_column_int(statement, 0) : -1
    }

    private func error(_ what: String) -> BestSQLiteError {
        BestSQLiteError(message: "\(what): \(String(cString: sqlite3_errmsg(db)))")
    }

    static func execute(_ db: OpaquePointer, _ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &message) != SQLITE_OK {
            defer { sqlite3_free(message) }
            throw BestSQLiteError(message: message.map { String(cString: $0) } ?? sql)
        }
    }

    static func prepare(_ db: OpaquePointer, _ sql: String) throws -> OpaquePointer {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil) == SQLITE_OK, let statement else {
            throw BestSQLiteError(message: "prepare \(sql): \(String(cString: sqlite3_errmsg(db)))")
        }
        return statement
    }
}

/// A failed SQLite call, with SQLite's message.
public struct BestSQLiteError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
