import CLMDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A position in one database of a transaction, for ordered walks and seeks.
///
/// Get one from ``Transaction/withCursor(on:_:)``. Every move returns whether the cursor
/// now stands on an entry; ``key`` and ``value`` copy that entry out, and
/// ``withCurrent(_:)`` lends it without copying.
///
/// ```swift
/// try env.read { txn in
///     try txn.withCursor(on: db) { cursor in
///         var more = try cursor.last()
///         while more {
///             print(try cursor.key)
///             more = try cursor.previous()
///         }
///     }
/// }
/// ```
public final class Cursor {
    private var handle: OpaquePointer?
    private unowned let transaction: Transaction
    /// The database this cursor walks.
    public let database: Database
    private var currentKey = MDB_val()
    private var currentValue = MDB_val()
    private var positioned = false

    init(handle: OpaquePointer, transaction: Transaction, database: Database) {
        self.handle = handle
        self.transaction = transaction
        self.database = database
    }

    func close() {
        if let handle {
            mdb_cursor_close(handle)
            self.handle = nil
        }
    }

    /// `operation` is an autoclosure: it names the operation only in the error, and
    /// building it eagerly would cost more than the cursor step itself.
    private func usableHandle(_ operation: @autoclosure () -> String) throws(LMDBError) -> OpaquePointer {
        guard let handle else {
            throw LMDBError(.transactionNotUsable(reason: "cursor used outside its closure"), operation: operation())
        }
        _ = try transaction.usableHandle(operation())
        return handle
    }

    /// Performs one `mdb_cursor_get` move; `false` when it ran off the data.
    private func move(_ op: MDB_cursor_op, _ name: String) throws(LMDBError) -> Bool {
        let cursor = try usableHandle("mdb_cursor_get(\(database), \(name))")
        let rc = mdb_cursor_get(cursor, &currentKey, &currentValue, op)
        if rc == MDB_NOTFOUND {
            positioned = false
            return false
        }
        try check(rc, "mdb_cursor_get(\(database), \(name))")
        positioned = true
        return true
    }

    /// Moves to the first entry; `false` when the database is empty.
    @discardableResult public func first() throws -> Bool { try move(MDB_FIRST, "MDB_FIRST") }
    /// Moves to the last entry; `false` when the database is empty.
    @discardableResult public func last() throws -> Bool { try move(MDB_LAST, "MDB_LAST") }
    /// Moves to the next entry; `false` past the last.
    @discardableResult public func next() throws -> Bool { try move(MDB_NEXT, "MDB_NEXT") }
    /// Moves to the previous entry; `false` before the first.
    @discardableResult public func previous() throws -> Bool { try move(MDB_PREV, "MDB_PREV") }

    /// Moves to the first entry whose key is `>= key` (`MDB_SET_RANGE`).
    @discardableResult
    public func seek(atLeast key: some LMDBBytes) throws -> Bool {
        try seek(key, MDB_SET_RANGE, "MDB_SET_RANGE")
    }

    /// Moves to the entry whose key is exactly `key` (`MDB_SET_KEY`).
    @discardableResult
    public func seek(exactly key: some LMDBBytes) throws -> Bool {
        try seek(key, MDB_SET_KEY, "MDB_SET_KEY")
    }

    private func seek(_ key: some LMDBBytes, _ op: MDB_cursor_op, _ name: String) throws -> Bool {
        let cursor = try usableHandle("mdb_cursor_get(\(database), \(name))")
        let rc: Int32 = try key.withLMDBBytes { key in
            try transaction.checkKey(key, "mdb_cursor_get(\(database), \(name))")
            // liblmdb may point currentKey at the caller's buffer for MDB_SET_KEY; it is
            // replaced by the key in the map before we return (SET_KEY fills it on success).
            currentKey = MDB_val(key)
            return mdb_cursor_get(cursor, &currentKey, &currentValue, op)
        }
        if rc == MDB_NOTFOUND {
            positioned = false
            return false
        }
        try check(rc, "mdb_cursor_get(\(database), \(name))")
        positioned = true
        return true
    }

    /// The current entry's key and value, pointing into the map.
    func currentBuffers() throws(LMDBError) -> (UnsafeRawBufferPointer, UnsafeRawBufferPointer) {
        _ = try usableHandle("cursor current")
        guard positioned else {
            throw LMDBError(.notFound, operation: "cursor current(\(database)): not on an entry")
        }
        return (currentKey.buffer, currentValue.buffer)
    }

    /// Calls `body` with the current entry without copying it.
    ///
    /// - Important: The buffers are valid only inside `body`.
    public func withCurrent<R>(_ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> R) throws -> R {
        let (key, value) = try currentBuffers()
        return try body(key, value)
    }

    /// A copy of the current entry's key.
    public var key: [UInt8] {
        get throws { Array(try currentBuffers().0) }
    }

    /// A copy of the current entry's value.
    public var value: [UInt8] {
        get throws { Array(try currentBuffers().1) }
    }

    /// Deletes the entry the cursor stands on (write transactions only). Afterwards
    /// ``next()`` moves to the entry that followed the deleted one.
    public func deleteCurrent() throws {
        guard transaction is WriteTransaction else {
            throw LMDBError(.system(errno: EACCES), operation: "mdb_cursor_del(\(database)): read-only transaction")
        }
        let cursor = try usableHandle("mdb_cursor_del(\(database))")
        let rc = mdb_cursor_del(cursor, 0)
        transaction.noteResult(rc)
        try check(rc, "mdb_cursor_del(\(database))")
        positioned = false
    }

    /// Positions on the first entry of `range`; `false` when none.
    func positionAtStart(of range: KeyRange) throws -> Bool {
        guard let start = range.forwardStart else { return try first() }
        guard try seek(atLeast: start.key) else { return false }
        if !start.inclusive, try compare(currentBuffers().0, start.key) == 0 {
            return try next()
        }
        return true
    }

    /// Positions on the first entry after `key`; `false` when none.
    func positionAfter(_ key: [UInt8]) throws -> Bool {
        guard try seek(atLeast: key) else { return false }
        if try compare(currentBuffers().0, key) == 0 { return try next() }
        return true
    }

    /// Positions on the last entry before `key`; `false` when none.
    func positionBefore(_ key: [UInt8]) throws -> Bool {
        guard try seek(atLeast: key) else { return try last() }
        return try previous()
    }

    /// Positions on the last entry of `range` (or past it, to be rejected by the
    /// caller's range check); `false` when none.
    func positionAtEnd(of range: KeyRange) throws -> Bool {
        guard let end = range.reverseStart else { return try last() }
        guard try seek(atLeast: end.key) else { return try last() }
        if end.inclusive, try compare(currentBuffers().0, end.key) == 0 {
            return true
        }
        return try previous()
    }
}

@available(*, unavailable, message: "a cursor belongs to its transaction")
extension Cursor: Sendable {}
