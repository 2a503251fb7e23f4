import CLMDB
import Foundation
public import Logging
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
    /// Taken before a write transaction begins; see ``WriterLock``. `nil` when read-only.
    let writerLock: WriterLock?
    /// liblmdb's descriptor of `data.mdb`, for reads that must not touch the map.
    let fileDescriptor: Int32
    /// The database page size.
    let pageSize: Int
    /// Where events an operator should hear of go: map growth and its refusals, a map lost,
    /// reader slots of dead processes reclaimed, a writer lock recovered from a dead holder.
    public let logger: Logger
    /// Reset read transactions kept for reuse; see ``ReadTransactionPool``.
    let readPool = ReadTransactionPool(capacity: 8)
    /// Database handles opened so far. Held only to look up or insert, never across a
    /// wait: a thread inside a write closure may look a handle up while another thread
    /// waits for the writer lock to open one.
    private let databases = Mutex<[String: Database]>([:])
    /// Serialises opening databases, each from its transaction's begin to its end
    /// (liblmdb forbids concurrent openers in one process). Taken before the writer lock,
    /// never by a thread that holds it.
    private let databaseOpening = NSLock()

    private init(
        handle: OpaquePointer, path: String, options: Options, gate: TransactionGate, writerLock: WriterLock?,
        fileDescriptor: Int32, pageSize: Int, logger: Logger
    ) {
        var logger = logger
        logger[metadataKey: "lmdb.path"] = .string(path)
        self.logger = logger
        self.handle = handle
        self.gate = gate
        self.path = path
        self.options = options
        self.fileDescriptor = fileDescriptor
        self.pageSize = pageSize
        self.writerLock = writerLock
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
    ///
    /// - Parameters:
    ///   - path: The environment's directory.
    ///   - options: How to open it; a path open already must be asked with the same ones.
    ///   - logger: Where the environment reports what an operator should know (`notice`
    ///     for map growth and reclaimed reader slots, `warning` for a refused growth or a
    ///     recovered writer lock, `critical` for a lost map). When the path is open
    ///     already, the logger it was first opened with stays.
    public static func open(
        path: String, options: Options = Options(), logger: Logger = Logger(label: "lmdb")
    ) throws -> Environment {
        let canonical = try canonicalDirectory(path, options: options)
        return try EnvironmentRegistry.shared.environment(at: canonical, options: options) {
            try openUnregistered(canonical, options: options, logger: logger)
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

    /// `mkdir -p`, keeping the `errno` of the step that failed. Directories it creates
    /// are `0700` whatever the umask (they hold data that may be secret); existing ones
    /// are left as they are.
    static func makeDirectories(_ path: String, operation: String) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            if mkdir(prefix, 0o700) == 0 {
                // The umask may have removed the owner's bits.
                if chmod(prefix, 0o700) != 0 { throw LMDBError(.system(errno: errno), operation: operation) }
            } else if errno != EEXIST {
                throw LMDBError(.system(errno: errno), operation: operation)
            }
        }
    }

    private static func openUnregistered(_ path: String, options: Options, logger: Logger) throws -> Environment {
        let operation = "mdb_env_open(\(path))"
        let creatingFiles = !options.readOnly && access(path + "/data.mdb", F_OK) != 0
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
        let writerLock: WriterLock?
        var descriptor: Int32 = -1
        let pageSize: Int
        do {
            if creatingFiles {
                // liblmdb creates them with `fileMode` less the umask; make the mode exact.
                for file in ["data.mdb", "lock.mdb"] where chmod(path + "/" + file, mode_t(options.fileMode)) != 0 {
                    throw LMDBError(.system(errno: errno), operation: "chmod(\(path)/\(file))")
                }
            }
            pageSize = try checkFileIsComplete(envHandle, path: path)
            try check(mdb_env_get_fd(envHandle, &descriptor), "mdb_env_get_fd(\(path))")
            // liblmdb opens lock.mdb close-on-exec but not data.mdb: a child process this
            // one starts would hold the store's data file open, read-write, for its whole
            // life (keeping a deleted store's space, and its file system from being
            // remounted read-only).
            let descriptorFlags = fcntl(descriptor, F_GETFD)
            if descriptorFlags < 0 || fcntl(descriptor, F_SETFD, descriptorFlags | FD_CLOEXEC) != 0 {
                throw LMDBError(.system(errno: errno), operation: "fcntl(\(path)/data.mdb, F_SETFD, FD_CLOEXEC)")
            }
            // In an existing store the writer lock takes data.mdb's mode, so that every user
            // who may write the store (a group, say) may take it. A read-only environment never
            // writes: it needs no writer lock, and may lack the right to create one.
            var dataStatus = stat()
            let lockMode = !creatingFiles && fstat(descriptor, &dataStatus) == 0
                ? dataStatus.st_mode & 0o666 : mode_t(options.fileMode)
            writerLock = options.readOnly
                ? nil : try WriterLock(directory: path, dataFileDescriptor: descriptor, fileMode: lockMode, logger: logger)
            gate = try TransactionGate()
        } catch {
            mdb_env_close(envHandle)
            throw error
        }
        let environment = Environment(
            handle: envHandle, path: path, options: options, gate: gate, writerLock: writerLock, fileDescriptor: descriptor,
            pageSize: pageSize, logger: logger)
        if let cleared = try? environment.clearStaleReaders(), cleared > 0 {
            environment.logger.notice(
                "reclaimed reader slots of dead processes", metadata: ["lmdb.slots": .stringConvertible(cleared)])
        }
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
    /// across the module boundary is copied through value witnesses (slow for a large
    /// struct such as a decoded record). Only the call of `body` is inlined.
    @inlinable
    public func value<R>(
        forKey key: some LMDBBytes, in database: Database, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R? {
        try pooledValue(forKey: key, in: database, leaf: false, body)
    }

    /// ``value(forKey:in:_:)`` for a `decode` that only turns the bytes into a value: it
    /// must not begin any operation on this environment (a read, a write, a cursor).
    ///
    /// Why it exists: skipping the per-thread bookkeeping that lets a closure begin
    /// another read makes the hottest read measurably cheaper. Nothing checks the rule: a
    /// `decode` that broke it would wait for ever on another thread's pending map growth,
    /// and a write inside it that grew the map would wait for itself until `growthTimeout`
    /// and fail with `mapFull`. So it is not public: the package's record decoders are its
    /// only users.
    @inlinable
    package func decodeValue<R>(
        forKey key: some LMDBBytes, in database: Database, _ decode: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R? {
        try pooledValue(forKey: key, in: database, leaf: true, decode)
    }

    /// The get of ``value(forKey:in:_:)`` and ``decodeValue(forKey:in:_:)``, in a pooled
    /// read entered as a leaf or not.
    @inlinable
    func pooledValue<R>(
        forKey key: some LMDBBytes, in database: Database, leaf: Bool, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R? {
        let txn = try beginPooledRead(leaf: leaf)
        defer { endPooledRead(txn, leaf: leaf) }
        guard let bytes = try lookup(in: txn, forKey: key, in: database) else { return nil }
        return try body(bytes)
    }

    /// A pooled read transaction renewed on the latest snapshot, the map pinned. A `leaf`
    /// read's body begins nothing on this environment (``TransactionGate/enterLeaf()``).
    @usableFromInline
    func beginPooledRead(leaf: Bool = false) throws -> OpaquePointer {
        try begin(readOnly: true, leaf: leaf)
    }

    /// Ends what ``beginPooledRead(leaf:)`` began.
    @usableFromInline
    func endPooledRead(_ txn: OpaquePointer, leaf: Bool = false) {
        readPool.recycle(txn)
        if leaf { gate.leaveLeaf() } else { gate.leave() }
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
        try checkWriteCanBegin()
        guard let writerLock else { throw LMDBError(.readOnlyEnvironment, operation: "mdb_txn_begin(\(path))") }
        while true {
            let (outcome, hitMapFull) = try writerLock.withLock { () throws -> (Result<R, any Error>, Bool) in
                let txn = try begin(readOnly: false)
                gate.setWriter(true)
                let transaction = WriteTransaction(environment: self, handle: txn, checksThread: true)
                let outcome: Result<R, any Error>
                do {
                    let value = try body(transaction)
                    try transaction.commit("mdb_txn_commit(\(path))")
                    outcome = .success(value)
                } catch {
                    transaction.abortIfLive()
                    outcome = .failure(error)
                }
                gate.setWriter(false)
                gate.leave()
                return (outcome, transaction.hitMapFull)
            }
            if case .failure = outcome, hitMapFull {
                try growMap()
                continue
            }
            return try outcome.get()
        }
    }

    /// Throws what ``write(_:)`` would throw before waiting for the writer lock: the
    /// environment is read-only, the calling thread already holds the write transaction
    /// (``LMDBError/Code/nestedWriteTransaction``), or it pins the map (it runs inside a
    /// cursor or value closure).
    ///
    /// A layer that queues writes for another thread to run checks this first, so that a
    /// write that could never begin on the caller's thread fails there instead of waiting.
    public func checkWriteCanBegin() throws(LMDBError) {
        if options.readOnly {
            throw LMDBError(.readOnlyEnvironment, operation: "mdb_txn_begin(\(path))")
        }
        if gate.callerIsWriter() {
            throw LMDBError(.nestedWriteTransaction, operation: "mdb_txn_begin(\(path))")
        }
        // Waiting for the writer lock while pinning the map could stall a growth that the
        // lock's holder needs until `growthTimeout`.
        try refuseWhileMapIsPinned("a write", operation: "mdb_txn_begin(\(path))")
    }

    /// Throws ``LMDBError/Code/transactionNotUsable(reason:)`` when the calling thread pins
    /// the map (it runs inside a cursor or value closure): `what` must not begin there.
    func refuseWhileMapIsPinned(_ what: String, operation: @autoclosure () -> String) throws(LMDBError) {
        if gate.callerIsInside {
            throw LMDBError(
                .transactionNotUsable(reason: "\(what) cannot begin inside a cursor or value closure, which pins the map"),
                operation: operation())
        }
    }

    /// Begins a liblmdb transaction inside the gate, adopting a map another process grew.
    /// On success the caller owns one gate entry.
    ///
    /// A `leaf` read enters the gate with ``TransactionGate/enterLeaf()``: its caller
    /// must end it with `endPooledRead(_:leaf:)`.
    func begin(readOnly: Bool, pooled: Bool = true, leaf: Bool = false) throws -> OpaquePointer {
        let flags: UInt32 = readOnly ? UInt32(MDB_RDONLY) : 0
        while true {
            if leaf { try gate.enterLeaf() } else { try gate.enter() }
            if readOnly && pooled, let renewed = readPool.renewed() { return renewed }
            var txn: OpaquePointer?
            let rc = mdb_txn_begin(handle, nil, flags, &txn)
            if rc == MDB_SUCCESS, let txn { return txn }
            if leaf { gate.leaveLeaf() } else { gate.leave() }
            if rc == MDB_MAP_RESIZED {
                try adoptGrownMap()
                continue
            }
            if rc == EACCES && !readOnly {
                throw LMDBError(.readOnlyEnvironment, operation: "mdb_txn_begin(\(path))")
            }
            try check(rc, "mdb_txn_begin(\(path))")
            throw LMDBError(.system(errno: ENOMEM), operation: "mdb_txn_begin(\(path))")
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
        if let cached = cachedDatabases(names) { return cached }
        // Opening takes `databaseOpening` for the whole transaction, and a thread inside a
        // write would wait for itself (the open's write) or invert the lock order.
        if gate.callerIsWriter() {
            throw LMDBError(.nestedWriteTransaction, operation: "mdb_dbi_open(\(names.map { $0 ?? "<main>" })) inside a write")
        }
        try refuseWhileMapIsPinned("opening a database", operation: "mdb_dbi_open(\(names.map { $0 ?? "<main>" }))")
        // liblmdb allows one opener at a time, from `mdb_txn_begin` to the end of its
        // transaction: handles are slots of an array every transaction shares, numbered
        // from the count at `begin`.
        databaseOpening.lock()
        defer { databaseOpening.unlock() }
        if let cached = cachedDatabases(names) { return cached }
        let writable = create && !options.readOnly
        // Existing databases open in a read transaction, which never waits for a writer:
        // opening a store that another process is writing to must not block.
        var opened = try openDatabases(names, flags: 0, allowMissing: writable) { try readCommitting($0) }
        if opened.count < names.count {
            opened = try openDatabases(names, flags: UInt32(MDB_CREATE), allowMissing: false) { open in
                try write { try open($0) }
            }
        }
        databases.withLock { cache in
            for (name, database) in opened { cache[name ?? ""] = database }
        }
        guard let handles = cachedDatabases(names) else {
            throw LMDBError(.badDatabaseHandle, operation: "mdb_dbi_open(\(names.map { $0 ?? "<main>" }))")
        }
        return handles
    }

    /// The handles of `names` when all are open already.
    private func cachedDatabases(_ names: [String?]) -> [Database]? {
        databases.withLock { cache in
            let found = names.compactMap { cache[$0 ?? ""] }
            return found.count == names.count ? found : nil
        }
    }

    /// Opens `names` with `flags` in a transaction that `run` provides; a missing database
    /// is skipped when `allowMissing`, else ``LMDBError/Code/databaseNotFound(name:)``.
    private func openDatabases(
        _ names: [String?], flags: UInt32, allowMissing: Bool, run: (_ open: (Transaction) throws -> Void) throws -> Void
    ) throws -> [(String?, Database)] {
        var opened: [(String?, Database)] = []
        try run { txn in
            opened = []
            for name in names {
                let operation = "mdb_dbi_open(\(name ?? "<main>"))"
                var dbi = MDB_dbi()
                let rc = mdb_dbi_open(try txn.usableHandle(operation), name, flags, &dbi)
                if rc == MDB_NOTFOUND {
                    if allowMissing { continue }
                    throw LMDBError(.databaseNotFound(name: name ?? "<main>"), operation: operation)
                }
                try check(rc, operation)
                opened.append((name, Database(dbi: dbi, name: name)))
            }
        }
        return opened
    }

    /// A read transaction that is committed (not aborted), so that database handles it
    /// opened stay valid afterwards.
    private func readCommitting(_ body: (Transaction) throws -> Void) throws {
        let txn = try begin(readOnly: true, pooled: false)
        let transaction = ReadTransaction(environment: self, handle: txn, checksThread: false)
        defer {
            transaction.abortIfLive()
            gate.leave()
        }
        try body(transaction)
        try transaction.commit("mdb_txn_commit(\(path))")
    }

    // MARK: - Maintenance

    /// Refuses a `data.mdb` shorter than its meta page says: liblmdb maps the file, so
    /// touching a page past its end would kill the process with `SIGBUS` instead of
    /// failing. A truncated file (a bad copy, a full disk during a copy) is reported as
    /// ``LMDBError/Code/corrupted``.
    ///
    /// - Returns: The page size.
    private static func checkFileIsComplete(_ handle: OpaquePointer, path: String) throws -> Int {
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
        return Int(pages.ms_psize)
    }

    /// Facts about the map and the reader table (`mdb_env_info`).
    ///
    /// - Throws: ``LMDBError`` only when the environment became unusable (a failed remap).
    public func info() throws -> EnvironmentInfo {
        // mdb_env_info reads the meta pages through the map.
        try gate.enter()
        defer { gate.leave() }
        return unguardedInfo()
    }

    /// ``info()`` for a caller that already keeps the map in place (a resize in progress).
    func unguardedInfo() -> EnvironmentInfo {
        var raw = MDB_envinfo()
        mdb_env_info(handle, &raw)
        return EnvironmentInfo(
            mapSize: raw.me_mapsize, lastPageNumber: raw.me_last_pgno, lastTransactionID: raw.me_last_txnid,
            maxReaders: Int(raw.me_maxreaders), readersUsed: Int(raw.me_numreaders))
    }

    /// Statistics of the main (unnamed) database, whose entries are the named databases
    /// (`mdb_env_stat`).
    public func statistics() throws -> DatabaseStatistics {
        try gate.enter()
        defer { gate.leave() }
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
}
