import CLMDB
import Foundation
import Synchronization

/// An open LMDB environment: one directory holding `data.mdb` and `lock.mdb`, with any
/// number of named databases, shared by every thread and process that opens it.
///
/// ```swift
/// let env = try Environment.open(path: "/tmp/example")
/// let users = try env.database(named: "users")
/// try env.write { txn in
///     try txn.put("Ada", forKey: "user:1", in: users)
/// }
/// let name = try env.read { txn in try txn.get("user:1", in: users) }
/// ```
///
/// One `Environment` exists per directory per process: opening a path that is already
/// open returns the same object (LMDB's locks break if a process opens a path twice).
/// The environment closes when the last reference to it goes away.
public final class Environment: @unchecked Sendable {
    let handle: OpaquePointer
    /// The canonical path of the environment's directory.
    public let path: String
    /// The options it was opened with.
    public let options: Options
    /// The largest key liblmdb accepts (`mdb_env_get_maxkeysize`): 511 bytes by default.
    public let maxKeySize: Int
    let gate: TransactionGate
    /// Reset read transactions kept for reuse; see ``ReadTransactionPool``.
    let readPool = ReadTransactionPool(capacity: 8)
    private let databases = Mutex<[String: Database]>([:])

    private init(handle: OpaquePointer, path: String, options: Options, gate: TransactionGate) {
        self.handle = handle
        self.gate = gate
        self.path = path
        self.options = options
        self.maxKeySize = Int(mdb_env_get_maxkeysize(handle))
    }

    deinit {
        readPool.drain()
        mdb_env_close(handle)
        EnvironmentRegistry.shared.remove(path: path)
    }

    /// Opens (or creates) the environment in directory `path`, or returns the one this
    /// process already has open there.
    ///
    /// Stale reader slots left by dead processes are cleared on open
    /// (`mdb_reader_check`).
    ///
    /// - Throws: ``LMDBError`` naming `mdb_env_open` and the path: `.system(errno: ENOENT)`
    ///   for a missing directory that may not be created, `.system(errno: EACCES)` when it
    ///   is not accessible, `.invalidFile` when `data.mdb` is not an LMDB file,
    ///   `.incompatibleOptions` when this process has it open with other options.
    public static func open(path: String, options: Options = Options()) throws -> Environment {
        let canonical = try canonicalDirectory(path, options: options)
        return try EnvironmentRegistry.shared.environment(at: canonical, options: options) {
            try openUnregistered(canonical, options: options)
        }
    }

    private static func canonicalDirectory(_ path: String, options: Options) throws -> String {
        let operation = "mdb_env_open(\(path))"
        if options.createDirectory && !options.readOnly {
            try makeDirectories(path, operation: operation)
        }
        guard let resolved = realpath(path, nil) else {
            throw LMDBError(.system(errno: errno), operation: operation)
        }
        defer { free(resolved) }
        var status = stat()
        if stat(resolved, &status) != 0 { throw LMDBError(.system(errno: errno), operation: operation) }
        if (status.st_mode & S_IFMT) != S_IFDIR { throw LMDBError(.system(errno: ENOTDIR), operation: operation) }
        return String(cString: resolved)
    }

    /// `mkdir -p`, keeping the `errno` of the step that failed.
    private static func makeDirectories(_ path: String, operation: String) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw LMDBError(.system(errno: errno), operation: operation)
            }
        }
    }

    private static func openUnregistered(_ path: String, options: Options) throws -> Environment {
        let operation = "mdb_env_open(\(path))"
        var envHandle: OpaquePointer?
        try check(mdb_env_create(&envHandle), "mdb_env_create")
        guard let envHandle else { throw LMDBError(.system(errno: ENOMEM), operation: "mdb_env_create") }
        do {
            try check(mdb_env_set_maxdbs(envHandle, MDB_dbi(options.maxDatabases)), "mdb_env_set_maxdbs")
            try check(mdb_env_set_maxreaders(envHandle, UInt32(options.maxReaders)), "mdb_env_set_maxreaders")
            try check(mdb_env_set_mapsize(envHandle, options.mapSize), "mdb_env_set_mapsize")
            try check(
                mdb_env_open(envHandle, path, options.environmentFlags, mdb_mode_t(options.fileMode)), operation)
        } catch {
            mdb_env_close(envHandle)
            throw error
        }
        let gate: TransactionGate
        do {
            try checkFileIsComplete(envHandle, path: path)
            gate = try TransactionGate()
        } catch {
            mdb_env_close(envHandle)
            throw error
        }
        let environment = Environment(handle: envHandle, path: path, options: options, gate: gate)
        _ = try? environment.clearStaleReaders()
        return environment
    }

    // MARK: - Transactions

    /// Runs `body` in a read-only snapshot and returns its result.
    ///
    /// Readers never wait for the writer, and may run on any thread (`MDB_NOTLS`).
    /// Values read must be decoded or copied before `body` returns.
    public func read<R>(_ body: (ReadTransaction) throws -> R) throws -> R {
        let txn = try begin(readOnly: true)
        // An idle read transaction holds no pointer into the map (only its page
        // numbers and a reader slot in lock.mdb), so it leaves the gate at once and
        // each of its operations enters it: a long reader does not hold back map growth.
        gate.leave()
        let transaction = ReadTransaction(environment: self, handle: txn, checksThread: false)
        defer {
            if let live = transaction.handle {
                transaction.handle = nil
                readPool.recycle(live)
            }
        }
        return try body(transaction)
    }

    /// Reads the value under `key` in `database` in a short read transaction of its own,
    /// passing the bytes to `body` (valid only during the call); `nil` when the key is absent.
    ///
    /// The cheapest read there is: no transaction object is allocated, the liblmdb
    /// transaction is a reused one, and the map is pinned once for the whole call. Use
    /// ``read(_:)`` when several reads must see the same snapshot.
    ///
    /// ```swift
    /// let name = try env.value(forKey: "user:1", in: users) { String(decoding: $0, as: UTF8.self) }
    /// ```
    ///
    /// - Throws: ``LMDBError`` naming `mdb_get`: ``LMDBError/Code/invalidKeySize(size:maximum:)``
    ///   for an empty or too long key, or liblmdb's error; or what `body` throws.
    ///
    /// Inlinable, so that `R` is specialized in the caller: a generic result returned
    /// across the module boundary is copied through value witnesses (a large struct such
    /// as a decoded record, a twentieth of a read). Only the call of `body` is inlined.
    @inlinable
    public func value<R>(
        forKey key: some LMDBBytes, in database: Database, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R? {
        let txn = try beginPooledRead()
        defer { endPooledRead(txn) }
        guard let bytes = try lookup(in: txn, forKey: key, in: database) else { return nil }
        return try body(bytes)
    }

    /// A pooled read transaction renewed on the latest snapshot, the map pinned.
    @usableFromInline
    func beginPooledRead() throws -> OpaquePointer {
        try begin(readOnly: true)
    }

    /// Ends what ``beginPooledRead()`` began.
    @usableFromInline
    func endPooledRead(_ txn: OpaquePointer) {
        readPool.recycle(txn)
        gate.leave()
    }

    /// `mdb_get` in the live transaction `txn`, the key checked first: the bytes (which
    /// point into the map and are valid only while `txn` is), or `nil` when absent.
    @usableFromInline
    func lookup(in txn: OpaquePointer, forKey key: some LMDBBytes, in database: Database) throws -> UnsafeRawBufferPointer? {
        var data = MDB_val()
        let rc: Int32 = try key.withLMDBBytes { key in
            try checkKey(key, "mdb_get(\(database))")
            var k = MDB_val(key)
            return mdb_get(txn, database.dbi, &k, &data)
        }
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_get(\(database))")
        return data.buffer
    }

    /// Checks the key-size rule before liblmdb sees the key, so that the error names the
    /// size and the limit instead of a bare `MDB_BAD_VALSIZE`.
    @inline(__always)
    func checkKey(_ key: UnsafeRawBufferPointer, _ operation: @autoclosure () -> String) throws(LMDBError) {
        if key.count == 0 || key.count > maxKeySize {
            throw LMDBError(.invalidKeySize(size: key.count, maximum: maxKeySize), operation: operation())
        }
    }

    /// Runs `body` in the write transaction and commits when it returns; when it throws,
    /// nothing it did is kept and the error is rethrown.
    ///
    /// Only one write transaction runs at a time per environment, across processes:
    /// this call waits for the writer lock. Calling `write` from inside `write` on the
    /// same thread throws ``LMDBError/Code/nestedWriteTransaction`` (use
    /// ``WriteTransaction/nested(_:)``).
    ///
    /// ## Map growth
    /// When the data outgrows the map (`MDB_MAP_FULL`), the transaction is aborted, the
    /// map is doubled once no other transaction of this process is open (new ones wait
    /// meanwhile), and **`body` runs again** from the start. So `body` must have no
    /// effects outside the transaction (no network calls, no counters it does not reset)
    /// or they may happen twice. Past ``Options/maxMapSize`` the call throws
    /// ``LMDBError/Code/mapFull``.
    public func write<R>(_ body: (WriteTransaction) throws -> R) throws -> R {
        if options.readOnly {
            throw LMDBError(.readOnlyEnvironment, operation: "mdb_txn_begin(\(path))")
        }
        if gate.callerIsWriter() {
            throw LMDBError(.nestedWriteTransaction, operation: "mdb_txn_begin(\(path))")
        }
        while true {
            let txn = try begin(readOnly: false)
            gate.setWriter(true)
            let transaction = WriteTransaction(environment: self, handle: txn, checksThread: true)
            let outcome: Result<R, any Error>
            do {
                let value = try body(transaction)
                guard let live = transaction.handle else {
                    throw LMDBError(.badTransaction, operation: "mdb_txn_commit(\(path))")
                }
                transaction.handle = nil
                let rc = mdb_txn_commit(live)
                transaction.noteResult(rc)
                try check(rc, "mdb_txn_commit(\(path))")
                outcome = .success(value)
            } catch {
                transaction.abortIfLive()
                outcome = .failure(error)
            }
            gate.setWriter(false)
            gate.leave()
            if case .failure = outcome, transaction.hitMapFull {
                try growMap()
                continue
            }
            return try outcome.get()
        }
    }

    /// Begins a liblmdb transaction inside the gate, adopting a map another process grew.
    /// On success the caller owns one gate entry.
    private func begin(readOnly: Bool, pooled: Bool = true) throws -> OpaquePointer {
        let flags: UInt32 = readOnly ? UInt32(MDB_RDONLY) : 0
        while true {
            gate.enter()
            if readOnly && pooled, let renewed = readPool.renewed() { return renewed }
            var txn: OpaquePointer?
            let rc = mdb_txn_begin(handle, nil, flags, &txn)
            if rc == MDB_SUCCESS, let txn { return txn }
            gate.leave()
            if rc == MDB_MAP_RESIZED {
                // Another process grew the map: adopt its size (0 = read it from the file).
                _ = try gate.whenQuiescent(timeout: options.growthTimeout, operation: "mdb_env_set_mapsize(adopt)") {
                    try check(mdb_env_set_mapsize(handle, 0), "mdb_env_set_mapsize(adopt)")
                }
                continue
            }
            if rc == EACCES && !readOnly {
                throw LMDBError(.readOnlyEnvironment, operation: "mdb_txn_begin(\(path))")
            }
            try check(rc, "mdb_txn_begin(\(path))")
            throw LMDBError(.system(errno: ENOMEM), operation: "mdb_txn_begin(\(path))")
        }
    }

    /// Doubles the map, up to `maxMapSize`; throws `mapFull` when already there.
    private func growMap() throws {
        let operation = "mdb_env_set_mapsize(\(path))"
        _ = try gate.whenQuiescent(timeout: options.growthTimeout, operation: operation) {
            let current = info().mapSize
            guard current < options.maxMapSize else {
                throw LMDBError(.mapFull, operation: "\(operation): map is \(current) bytes, maxMapSize reached")
            }
            let grown = min(max(current * 2, current + (1 << 20)), options.maxMapSize)
            try check(mdb_env_set_mapsize(handle, grown), operation)
        }
    }

    // MARK: - Databases

    /// The named database `name` (or the unnamed main database for `nil`), opened once
    /// and cached for the life of the environment.
    ///
    /// Call it outside any transaction of this thread: a first open runs its own
    /// short transaction (a write transaction when `create` is true), which commits
    /// before the handle is shared, as LMDB requires.
    ///
    /// - Throws: ``LMDBError/Code/databaseNotFound(name:)`` when the database does not exist
    ///   and `create` is `false` (or the environment is read-only),
    ///   ``LMDBError/Code/databasesFull`` beyond ``Options/maxDatabases``.
    public func database(named name: String?, create: Bool = true) throws -> Database {
        try databases(named: [name], create: create)[0]
    }

    /// Several named databases at once, opening those not yet cached in one transaction
    /// (one commit instead of one per database); see ``database(named:create:)``.
    public func databases(named names: [String?], create: Bool = true) throws -> [Database] {
        let cached = databases.withLock { cache in names.compactMap { cache[$0 ?? ""] } }
        if cached.count == names.count { return cached }
        return try databases.withLock { cache in
            let missing = names.filter { cache[$0 ?? ""] == nil }
            let writable = create && !options.readOnly
            var opened: [(String?, MDB_dbi)] = []
            let open: (Transaction) throws -> Void = { txn in
                opened = []
                for name in missing {
                    let operation = "mdb_dbi_open(\(name ?? "<main>"))"
                    var dbi = MDB_dbi()
                    let rc = mdb_dbi_open(try txn.usableHandle(operation), name, writable ? UInt32(MDB_CREATE) : 0, &dbi)
                    if rc == MDB_NOTFOUND {
                        throw LMDBError(.databaseNotFound(name: name ?? "<main>"), operation: operation)
                    }
                    try check(rc, operation)
                    opened.append((name, dbi))
                }
            }
            if !missing.isEmpty {
                if writable {
                    try write { try open($0) }
                } else {
                    try readCommitting { try open($0) }
                }
            }
            for (name, dbi) in opened { cache[name ?? ""] = Database(dbi: dbi, name: name) }
            return names.compactMap { cache[$0 ?? ""] }
        }
    }

    /// A read transaction that is committed (not aborted), so that database handles it
    /// opened stay valid afterwards.
    private func readCommitting(_ body: (ReadTransaction) throws -> Void) throws {
        let txn = try begin(readOnly: true, pooled: false)
        let transaction = ReadTransaction(environment: self, handle: txn, checksThread: false)
        defer {
            transaction.abortIfLive()
            gate.leave()
        }
        try body(transaction)
        transaction.handle = nil
        try check(mdb_txn_commit(txn), "mdb_txn_commit(\(path))")
    }

    // MARK: - Maintenance

    /// Refuses a `data.mdb` shorter than its meta page says: liblmdb maps the file, so
    /// touching a page past its end would kill the process with `SIGBUS` instead of
    /// failing. A truncated file (a bad copy, a full disk during a copy) is reported as
    /// ``LMDBError/Code/corrupted``.
    private static func checkFileIsComplete(_ handle: OpaquePointer, path: String) throws {
        var pages = MDB_stat()
        try check(mdb_env_stat(handle, &pages), "mdb_env_stat(\(path))")
        var raw = MDB_envinfo()
        mdb_env_info(handle, &raw)
        let needed = (raw.me_last_pgno + 1) * Int(pages.ms_psize)
        var status = stat()
        let file = path + "/data.mdb"
        if stat(file, &status) != 0 { throw LMDBError(.system(errno: errno), operation: "stat(\(file))") }
        if Int(status.st_size) < needed {
            throw LMDBError(
                .corrupted,
                operation: "open(\(path)): data.mdb is \(status.st_size) bytes but its meta page needs \(needed) (truncated)")
        }
    }

    /// Facts about the map and the reader table (`mdb_env_info`).
    public func info() -> EnvironmentInfo {
        var raw = MDB_envinfo()
        mdb_env_info(handle, &raw)
        return EnvironmentInfo(
            mapSize: raw.me_mapsize, lastPageNumber: raw.me_last_pgno, lastTransactionID: raw.me_last_txnid,
            maxReaders: Int(raw.me_maxreaders), readersUsed: Int(raw.me_numreaders))
    }

    /// Statistics of the main (unnamed) database, whose entries are the named databases
    /// (`mdb_env_stat`).
    public func statistics() throws -> DatabaseStatistics {
        var stat = MDB_stat()
        try check(mdb_env_stat(handle, &stat), "mdb_env_stat(\(path))")
        return DatabaseStatistics(stat)
    }

    /// The size of `data.mdb` on disk, in bytes.
    public func fileSize() throws -> Int {
        var status = stat()
        let file = path + "/data.mdb"
        if stat(file, &status) != 0 { throw LMDBError(.system(errno: errno), operation: "stat(\(file))") }
        return Int(status.st_size)
    }

    /// Flushes buffers to disk (`mdb_env_sync`). Needed only with ``Durability/noSync`` or
    /// ``Durability/noMetaSync``; with `force`, syncs even then.
    public func sync(force: Bool = true) throws {
        try check(mdb_env_sync(handle, force ? 1 : 0), "mdb_env_sync(\(path))")
    }

    /// Clears reader slots left by processes that died inside a read transaction
    /// (`mdb_reader_check`). Such slots otherwise pin old pages and make the file grow.
    ///
    /// - Returns: How many slots were cleared.
    @discardableResult
    public func clearStaleReaders() throws -> Int {
        var dead: Int32 = 0
        try check(mdb_reader_check(handle, &dead), "mdb_reader_check(\(path))")
        return Int(dead)
    }

    /// Writes a consistent copy of the environment into directory `destination`, which
    /// must exist and hold no `data.mdb`, while other threads and processes go on writing
    /// (`mdb_env_copy2`). With `compact`, free pages are omitted and pages renumbered.
    public func copy(to destination: String, compact: Bool = true) throws {
        let operation = "mdb_env_copy2(\(path) -> \(destination))"
        if FileManager.default.fileExists(atPath: destination + "/data.mdb") {
            throw LMDBError(.system(errno: EEXIST), operation: operation)
        }
        gate.enter()
        defer { gate.leave() }
        try check(mdb_env_copy2(handle, destination, compact ? UInt32(MDB_CP_COMPACT) : 0), operation)
    }
}
