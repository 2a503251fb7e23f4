import CLMDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What every transaction can do: read.
///
/// ``ReadTransaction`` and ``WriteTransaction`` are subclasses, so code that only reads
/// takes a `Transaction` and works inside either. A transaction lives only as long as the
/// closure given to ``Environment/read(_:)`` or ``Environment/write(_:)``: using it after
/// that throws ``LMDBError/Code/transactionNotUsable(reason:)``, never touches freed memory.
///
/// Bytes handed to a closure (`value(forKey:in:_:)`, cursors) point into the memory map
/// and are valid only inside that closure; the copying variants return `[UInt8]`.
public class Transaction {
    let environment: Environment
    var handle: OpaquePointer?
    /// Set while a nested child transaction is live: the parent must not be used then.
    var childActive = false
    /// Set when any operation of this transaction returned `MDB_MAP_FULL`.
    var hitMapFull = false
    private let owner: pthread_t
    private let checksThread: Bool

    init(environment: Environment, handle: OpaquePointer, checksThread: Bool) {
        self.environment = environment
        self.handle = handle
        self.owner = pthread_self()
        self.checksThread = checksThread
    }

    /// The liblmdb transaction, after checking that this object may be used here and now.
    @inline(__always)
    func usableHandle(_ operation: @autoclosure () -> String) throws(LMDBError) -> OpaquePointer {
        guard let handle else {
            throw LMDBError(.transactionNotUsable(reason: "it has ended (used outside its closure)"), operation: operation())
        }
        if childActive {
            throw LMDBError(.transactionNotUsable(reason: "a nested transaction is active"), operation: operation())
        }
        if checksThread && pthread_equal(owner, pthread_self()) == 0 {
            throw LMDBError(
                .transactionNotUsable(reason: "a write transaction must stay on the thread that began it"),
                operation: operation())
        }
        return handle
    }

    /// Checks the key-size rule before liblmdb sees the key.
    @inline(__always)
    func checkKey(_ key: UnsafeRawBufferPointer, _ operation: @autoclosure () -> String) throws(LMDBError) {
        try environment.checkKey(key, operation())
    }

    /// Runs `body`, which touches the memory map, inside the environment's gate when
    /// this is a read transaction (a write transaction is counted for its whole life),
    /// so that the map is never remapped under it.
    @inline(__always)
    func touchingMap<R>(_ body: () throws -> R) throws -> R {
        if checksThread { return try body() }
        try environment.gate.enter()
        defer { environment.gate.leave() }
        return try body()
    }

    /// Records a map-full result so that ``Environment/write(_:)`` grows and retries even
    /// when the closure caught the error and threw another.
    @inline(__always)
    func noteResult(_ rc: Int32) {
        if rc == MDB_MAP_FULL { hitMapFull = true }
    }

    /// The id of this transaction's snapshot (`mdb_txn_id`).
    public var id: Int {
        get throws {
            Int(mdb_txn_id(try usableHandle("mdb_txn_id")))
        }
    }

    /// Calls `body` with the value stored under `key`, without copying it.
    ///
    /// - Returns: `body`'s result, or `nil` when the key is absent.
    /// - Important: The buffer points into the memory map: it is valid only inside `body`.
    public func value<R>(
        forKey key: some LMDBBytes, in database: Database,
        _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R? {
        let txn = try usableHandle("mdb_get(\(database))")
        return try touchingMap {
            guard let bytes = try environment.lookup(in: txn, forKey: key, in: database) else { return nil }
            return try body(bytes)
        }
    }

    /// A copy of the value stored under `key`, or `nil` when the key is absent.
    public func get(_ key: some LMDBBytes, in database: Database) throws -> [UInt8]? {
        try value(forKey: key, in: database) { Array($0) }
    }

    /// Whether `key` is present in `database`.
    public func contains(_ key: some LMDBBytes, in database: Database) throws -> Bool {
        try value(forKey: key, in: database) { _ in true } ?? false
    }

    /// Page statistics of `database` as of this transaction's snapshot.
    public func statistics(of database: Database) throws -> DatabaseStatistics {
        let txn = try usableHandle("mdb_stat(\(database))")
        // On a fresh read transaction every named database is stale, so mdb_stat reads
        // the main B-tree through the map.
        return try touchingMap {
            var stat = MDB_stat()
            try check(mdb_stat(txn, database.dbi, &stat), "mdb_stat(\(database))")
            return DatabaseStatistics(stat)
        }
    }

    /// The number of entries in `database`, in O(1).
    public func count(in database: Database) throws -> Int {
        try statistics(of: database).entries
    }

    /// Opens a cursor on `database` for the duration of `body`.
    ///
    /// The cursor is closed when `body` returns; using it afterwards throws.
    ///
    /// - Important: A cursor keeps pointers into the map between moves, so in a read
    ///   transaction the map is pinned (this process cannot grow it) until `body`
    ///   returns. Keep `body` short; ``forEach(in:range:reverse:_:)`` pins it only a
    ///   bounded number of entries at a time.
    public func withCursor<R>(on database: Database, _ body: (Cursor) throws -> R) throws -> R {
        let txn = try usableHandle("mdb_cursor_open(\(database))")
        // Opening the cursor reads the main B-tree for a stale named database: it touches
        // the map too.
        return try touchingMap {
            var cursorHandle: OpaquePointer?
            try check(mdb_cursor_open(txn, database.dbi, &cursorHandle), "mdb_cursor_open(\(database))")
            guard let cursorHandle else {
                throw LMDBError(.system(errno: ENOMEM), operation: "mdb_cursor_open(\(database))")
            }
            let cursor = Cursor(handle: cursorHandle, transaction: self, database: database)
            defer { cursor.close() }
            return try body(cursor)
        }
    }

    /// How many entries a walk in a read transaction visits before it lets the map go
    /// (closing its cursor) and seeks back: a bound on how long a walk holds back growth.
    public static let walkChunk = 256

    /// Visits the entries of `database` whose keys fall in `range`, in key order (or
    /// reverse key order), without copying, until `body` returns `false`.
    ///
    /// ```swift
    /// try txn.forEach(in: index, range: .prefix(cartKey)) { key, value in
    ///     ids.append(Array(value))
    ///     return ids.count < limit
    /// }
    /// ```
    /// In a read transaction the walk pins the map only ``walkChunk`` entries at a time
    /// (then closes its cursor and seeks back to where it was, in the same snapshot), so
    /// a long walk does not hold back map growth; `body` itself runs while the map is
    /// pinned, so a slow consumer should copy what it needs and act after the walk.
    ///
    /// - Important: `key` and `value` are valid only inside `body`.
    public func forEach(
        in database: Database, range: KeyRange = .all, reverse: Bool = false,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        // A write transaction keeps the map for its whole life anyway: one cursor.
        let chunk = checksThread ? Int.max : Self.walkChunk
        var resumeAfter: [UInt8]?
        var finished = false
        while !finished {
            finished = true
            try withCursor(on: database) { cursor in
                var positioned: Bool
                if let key = resumeAfter {
                    positioned = try reverse ? cursor.positionBefore(key) : cursor.positionAfter(key)
                } else {
                    positioned = try reverse ? cursor.positionAtEnd(of: range) : cursor.positionAtStart(of: range)
                }
                var visited = 0
                while positioned {
                    let (key, value) = try cursor.currentBuffers()
                    if !range.contains(key) { return }
                    if try !body(key, value) { return }
                    visited += 1
                    if visited == chunk {
                        resumeAfter = Array(key)
                        finished = false
                        return
                    }
                    positioned = try reverse ? cursor.previous() : cursor.next()
                }
            }
        }
    }

    /// Copies of the entries of `database` whose keys fall in `range`, at most `limit`.
    public func entries(
        in database: Database, range: KeyRange = .all, reverse: Bool = false, limit: Int = .max
    ) throws -> [(key: [UInt8], value: [UInt8])] {
        var result: [(key: [UInt8], value: [UInt8])] = []
        guard limit > 0 else { return result }
        try forEach(in: database, range: range, reverse: reverse) { key, value in
            result.append((Array(key), Array(value)))
            return result.count < limit
        }
        return result
    }

    /// Commits the liblmdb transaction and makes this object unusable; a map-full result
    /// is noted, so that the write grows the map and reruns.
    func commit(_ operation: @autoclosure () -> String) throws {
        guard let live = handle else { throw LMDBError(.badTransaction, operation: operation()) }
        handle = nil
        let rc = mdb_txn_commit(live)
        noteResult(rc)
        try check(rc, operation())
    }

    /// Ends the liblmdb transaction (abort) and makes this object unusable.
    func abortIfLive() {
        if let handle {
            mdb_txn_abort(handle)
            self.handle = nil
        }
    }
}

/// A read-only snapshot of an environment, valid inside ``Environment/read(_:)``.
///
/// Readers never block the writer or each other, and see the data as of the moment the
/// transaction began, however long they run. Keep them short anyway: pages the snapshot
/// still references cannot be reused, so a long reader makes the file grow under writes.
public final class ReadTransaction: Transaction {}

/// A read-write transaction, valid inside ``Environment/write(_:)`` on the thread that
/// began it. Only one exists at a time per environment, across all processes.
///
/// It is not `Sendable`: LMDB's writer lock is a mutex owned by the beginning thread, so
/// the transaction must not cross threads (and never an `await`).
public final class WriteTransaction: Transaction {
    /// Bytes of keys and values this transaction (and its committed nested ones) has
    /// put so far: a cheap measure of its size, for bounding batches.
    public private(set) var writtenBytes = 0

    /// Stores `value` under `key`.
    ///
    /// - Parameters:
    ///   - value: The bytes to store.
    ///   - key: The key, 1 to ``Environment/maxKeySize`` bytes.
    ///   - database: The database to store it in.
    ///   - overwrite: When `false` and `key` exists, throws ``LMDBError/Code/keyExists``
    ///     and changes nothing (`MDB_NOOVERWRITE`).
    public func put(
        _ value: some LMDBBytes, forKey key: some LMDBBytes, in database: Database, overwrite: Bool = true
    ) throws {
        let flags: UInt32 = overwrite ? 0 : UInt32(MDB_NOOVERWRITE)
        let rc = try key.withLMDBBytes { key in
            try value.withLMDBBytes { value in try put(value, forKey: key, in: database, flags: flags, "mdb_put(\(database))").0 }
        }
        try check(rc, "mdb_put(\(database))")
    }

    /// Stores `value` under `key` unless `key` exists; then changes nothing and returns
    /// what `existing` makes of the stored value.
    ///
    /// One B-tree descent that both checks and inserts (`MDB_NOOVERWRITE`, with liblmdb
    /// handing back the value it found), where a `get` then a `put` would make two.
    ///
    /// ```swift
    /// if let owner = try txn.insert(id, forKey: email, in: users, existing: { String(decoding: $0, as: UTF8.self) }) {
    ///     throw SignupError.emailTaken(by: owner)
    /// }
    /// ```
    ///
    /// - Returns: `nil` when `value` was stored.
    @inlinable
    public func insert<R>(
        _ value: some LMDBBytes, forKey key: some LMDBBytes, in database: Database,
        existing: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R? {
        // Inlinable around a non-generic core, so that callers get it specialized for their
        // key and value types instead of going through `LMDBBytes` witnesses.
        try key.withLMDBBytes { key in
            try value.withLMDBBytes { value in
                guard let found = try insert(value, forKey: key, in: database) else { return nil }
                return try existing(found)
            }
        }
    }

    /// The non-generic core of ``insert(_:forKey:in:existing:)``: `nil` when stored, else
    /// the value already stored under `key`.
    @usableFromInline
    func insert(
        _ value: UnsafeRawBufferPointer, forKey key: UnsafeRawBufferPointer, in database: Database
    ) throws(LMDBError) -> UnsafeRawBufferPointer? {
        let (rc, data) = try put(
            value, forKey: key, in: database, flags: UInt32(MDB_NOOVERWRITE), "mdb_put(\(database), MDB_NOOVERWRITE)")
        if rc == MDB_KEYEXIST { return data.buffer }
        try check(rc, "mdb_put(\(database), MDB_NOOVERWRITE)")
        return nil
    }

    /// The core `put` and `insert` share: `mdb_put` with `flags`, the key checked first,
    /// the size counted when it succeeds. Returns liblmdb's code and the data item, which
    /// on `MDB_KEYEXIST` (with `MDB_NOOVERWRITE`) points at the value already stored.
    @inline(__always)
    private func put(
        _ value: UnsafeRawBufferPointer, forKey key: UnsafeRawBufferPointer, in database: Database, flags: UInt32,
        _ operation: @autoclosure () -> String
    ) throws(LMDBError) -> (Int32, MDB_val) {
        let txn = try usableHandle(operation())
        try checkKey(key, operation())
        var k = MDB_val(key)
        var data = MDB_val(value)
        let rc = mdb_put(txn, database.dbi, &k, &data, flags)
        noteResult(rc)
        if rc == MDB_SUCCESS { writtenBytes += key.count + value.count }
        return (rc, data)
    }

    /// Stores `count` bytes under `key`, written in place by `body` (`MDB_RESERVE`):
    /// one copy fewer than encoding to an array first.
    ///
    /// - Parameters:
    ///   - count: How many bytes to reserve.
    ///   - key: The key, 1 to ``Environment/maxKeySize`` bytes.
    ///   - database: The database to store them in.
    ///   - appending: `key` sorts after every key of `database` (`MDB_APPEND`): liblmdb
    ///     puts it at the end without searching, and fills pages instead of splitting
    ///     them. A key that does not sort last throws ``LMDBError/Code/keyExists``.
    ///   - body: Fills the reserved bytes.
    /// - Important: `body` must fill the whole buffer and not keep it.
    public func put(
        reservingCount count: Int, forKey key: some LMDBBytes, in database: Database, appending: Bool = false,
        _ body: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws {
        let flags = UInt32(MDB_RESERVE) | (appending ? UInt32(MDB_APPEND) : 0)
        let txn = try usableHandle("mdb_put(\(database), MDB_RESERVE)")
        var data = MDB_val(mv_size: count, mv_data: nil)
        var size = count
        let rc: Int32 = try key.withLMDBBytes { key in
            try checkKey(key, "mdb_put(\(database), MDB_RESERVE)")
            size += key.count
            var k = MDB_val(key)
            return mdb_put(txn, database.dbi, &k, &data, flags)
        }
        noteResult(rc)
        try check(rc, "mdb_put(\(database), MDB_RESERVE)")
        writtenBytes += size
        try body(UnsafeMutableRawBufferPointer(start: data.mv_data, count: count))
    }

    /// Deletes `key`.
    ///
    /// - Returns: `false` when the key was absent (nothing changed).
    @discardableResult
    public func delete(_ key: some LMDBBytes, in database: Database) throws -> Bool {
        let txn = try usableHandle("mdb_del(\(database))")
        let rc: Int32 = try key.withLMDBBytes { key in
            try checkKey(key, "mdb_del(\(database))")
            var k = MDB_val(key)
            return mdb_del(txn, database.dbi, &k, nil)
        }
        if rc == MDB_NOTFOUND { return false }
        noteResult(rc)
        try check(rc, "mdb_del(\(database))")
        return true
    }

    /// Deletes every entry of `database`, keeping the database itself (`mdb_drop(0)`).
    public func removeAll(in database: Database) throws {
        let txn = try usableHandle("mdb_drop(\(database))")
        let rc = mdb_drop(txn, database.dbi, 0)
        noteResult(rc)
        try check(rc, "mdb_drop(\(database))")
    }

    /// Runs `body` in a nested transaction: when `body` throws, only its changes are
    /// rolled back and this transaction goes on; when it returns, its changes become
    /// part of this transaction (still to be committed by it).
    ///
    /// This transaction cannot be used while the nested one is live.
    public func nested<R>(_ body: (WriteTransaction) throws -> R) throws -> R {
        let parent = try usableHandle("mdb_txn_begin(nested)")
        var child: OpaquePointer?
        try check(mdb_txn_begin(environment.handle, parent, 0, &child), "mdb_txn_begin(nested)")
        guard let child else { throw LMDBError(.system(errno: ENOMEM), operation: "mdb_txn_begin(nested)") }
        let transaction = WriteTransaction(environment: environment, handle: child, checksThread: true)
        childActive = true
        defer {
            childActive = false
            if transaction.hitMapFull { hitMapFull = true }
        }
        do {
            let result = try body(transaction)
            try transaction.commit("mdb_txn_commit(nested)")
            writtenBytes += transaction.writtenBytes
            return result
        } catch {
            transaction.abortIfLive()
            throw error
        }
    }
}

@available(*, unavailable, message: "a write transaction must stay on the thread that began it")
extension WriteTransaction: Sendable {}

@available(*, unavailable, message: "a transaction lives inside its closure; do not share it")
extension ReadTransaction: Sendable {}
