import Foundation
import LMDB
import Logging
import Metrics

/// An embedded, transactional store of payment sessions on LMDB.
///
/// Open one per directory and share it: it is `Sendable`, and every thread (and every
/// other process that opens the same directory) sees one consistent store. Reads run in
/// parallel and never wait for writes; writes are serialised, each one atomic and, by
/// default, durable when it returns.
///
/// ```swift
/// let store = try PaymentSessionStore(path: "/var/lib/checkout/sessions")
///
/// let session = try store.create(NewPaymentSession(
///     cartID: "cart_1", providerID: "stripe", select: true, amount: 4200, currencyCode: "usd"))
///
/// // Several operations, all or nothing:
/// try store.write { tx in
///     let manual = try tx.create(NewPaymentSession(cartID: "cart_1", providerID: "manual"))
///     try tx.select(id: manual.id)
///     try tx.select(id: session.id)
/// }
/// try store.authorize(id: session.id, amount: 4200, data: ["intent": "pi_123"])
/// let selected = try store.selectedSession(cartID: "cart_1")
/// ```
///
/// The store keeps these invariants in every committed state: at most one selected
/// session per cart, at most one session per (cart, provider), unique idempotency keys,
/// status moves along `PaymentSessionStatus/canMove(to:)`, every record indexed exactly
/// as it says, and the money rules (see `authorize(id:amount:currencyCode:data:expectedUpdatedAt:)`).
/// ``verify()`` checks them all.
public final class PaymentSessionStore: Sendable {
    /// The LMDB environment underneath. Not public: an application works with sessions,
    /// statistics and backups; tests reach the bytes through ``rawStorage`` (an SPI).
    let environment: Environment
    /// The options the store was opened with.
    public let options: Options
    let layout: StoreLayout
    let generator = PaymentSessionIDGenerator()
    /// The thread behind the `async` writes; started on first use.
    private let groupCommitWriter: GroupCommitWriter
    /// Metrics and spans, when the process bootstrapped them before opening the store.
    let instruments = StoreInstruments.make(backend: "lmdb")

    /// Opens the store in directory `path`, creating it when ``Options/createIfMissing``
    /// allows.
    ///
    /// - Throws: `PaymentSessionError/storeNotFound(location:)` when there is no store and
    ///   it may not be created; `PaymentSessionError/unsupportedFormat(found:supported:)`
    ///   for a store written by a newer version; `PaymentSessionError/storage(_:)`.
    public init(path: String, options: Options = Options()) throws(PaymentSessionError) {
        var options = options
        options.groupCommit.maxCount = max(1, options.groupCommit.maxCount)
        if !options.createIfMissing && !FileManager.default.fileExists(atPath: path + "/data.mdb") {
            throw .storeNotFound(location: path)
        }
        self.options = options
        let environment: Environment = try storageMapped {
            try Environment.open(path: path, options: options.environment, logger: options.logger)
        }
        self.environment = environment
        let databases = try storageMapped {
            try environment.databases(named: StoreLayout.databaseNames, create: !options.environment.readOnly)
        }
        let readOnly = options.environment.readOnly
        let feed: [Database]? =
            readOnly
            ? try? environment.databases(named: StoreLayout.feedDatabaseNames, create: false)
            : try storageMapped { try environment.databases(named: StoreLayout.feedDatabaseNames, create: true) }
        let layout = StoreLayout(databases, feed: feed)
        self.layout = layout
        let generator = self.generator
        // The writer must not retain the store (its deinit stops the writer), so the
        // batch runs against a store-less copy of what it needs.
        let batchSizes =
            StoreInstruments.isMetricsBootstrapped
            ? Recorder(label: "payment_sessions_group_commit_batch_size", dimensions: [("backend", "lmdb")]) : nil
        let batchStore = BatchContext(
            environment: environment, layout: layout, options: options, generator: generator, batchSizes: batchSizes)
        groupCommitWriter = GroupCommitWriter(limits: options.groupCommit) { batchStore.performBatch($0, lease: $1) }
        try checkFormat()
    }

    deinit {
        groupCommitWriter.stop()
    }

    /// Queues an async write (see `PaymentSessionStore+Async.swift`).
    func submit(_ request: any GroupCommitRequest) {
        groupCommitWriter.submit(request)
    }

    /// Records the format version in a new store, marks an older store (format 1 to 5)
    /// with the current format when it is opened for writing, and refuses a store of a newer
    /// format. Opening a store of the current format writes nothing.
    private func checkFormat() throws(PaymentSessionError) {
        let stored: [UInt8]? = try storageMapped {
            try environment.read { try $0.get(StoreLayout.formatVersionKey, in: layout.meta) }
        }
        if let stored {
            guard stored.count == 4 else {
                throw .corruptRecord(key: "meta/\(StoreLayout.formatVersionKey)", reason: "expected 4 bytes, found \(stored.count)")
            }
            let version = stored.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
            if version > StoreLayout.formatVersion || version == 0 {
                throw .unsupportedFormat(found: version, supported: StoreLayout.formatVersion)
            }
            if version == StoreLayout.formatVersion || options.environment.readOnly { return }
        } else if options.environment.readOnly {
            throw .unsupportedFormat(found: 0, supported: StoreLayout.formatVersion)
        }
        try storageMapped {
            try environment.write { txn in
                let version = withUnsafeBytes(of: StoreLayout.formatVersion.littleEndian) { Array($0) }
                if let current = try txn.get(StoreLayout.formatVersionKey, in: layout.meta) {
                    // Older formats' records are read as they are; marking the store with
                    // the current format keeps older binaries, which cannot read the
                    // records and reservations this one will write, from opening it.
                    // Another process may have done so since the read above.
                    if current.count == 4, current[1...] == [0, 0, 0], current[0] < UInt8(StoreLayout.formatVersion) {
                        try txn.put(version, forKey: StoreLayout.formatVersionKey, in: layout.meta)
                    }
                    return
                }
                // A store with sessions but no version is format 0 (written before the
                // version was recorded): same databases and records, so migrating it is
                // recording the version.
                try txn.put(version, forKey: StoreLayout.formatVersionKey, in: layout.meta)
                try txn.put(
                    Timestamp.rfc3339(options.now()), forKey: StoreLayout.createdAtKey, in: layout.meta)
            }
        }
    }

    // MARK: - Transactions

    /// Runs `body` on a consistent snapshot and returns its result.
    ///
    /// Errors from `body` are rethrown as they were thrown (a `CancellationError` stays
    /// one); LMDB failures become `PaymentSessionError/storage(_:)`.
    public func read<R>(_ body: (ReadTransaction) throws -> R) throws -> R {
        try performRead(body)
    }

    /// The one implementation of `read`, sync and async, measured as `operation` (the
    /// public method's name) when the store has instruments.
    func performRead<R>(as operation: String = #function, _ body: (ReadTransaction) throws -> R) throws -> R {
        guard let instruments else { return try unmeasuredRead(body) }
        return try instruments.measure(operation) { () throws -> R in try unmeasuredRead(body) }
    }

    func unmeasuredRead<R>(_ body: (ReadTransaction) throws -> R) throws -> R {
        do {
            return try lmdbMapped {
                try environment.read { txn in
                    try body(ReadTransaction(transaction: txn, layout: layout, options: options))
                }
            }
        } catch let error as PaymentSessionError {
            logIfCorrupt(error)
            throw error
        }
    }

    /// A corrupt record is news for an operator (run `verify`), whoever asked for it.
    func logIfCorrupt(_ error: PaymentSessionError) {
        if case .corruptRecord(let key, let reason) = error {
            options.logger.warning(
                "met a corrupt record on a read; run verify",
                metadata: ["payment_sessions.key": .string(key), "payment_sessions.reason": .string(reason)])
        }
    }

    /// Runs `body` in a write transaction: everything it does commits together, and
    /// nothing does when it throws (the error is rethrown). Returns once the commit that
    /// holds the change is durable.
    ///
    /// Writers are serialised across threads and processes. Writes made at the same time by
    /// this process's threads **share one commit** (one pair of `fsync`s), as the `async`
    /// writes do: a caller that finds another thread writing hands its closure to that
    /// thread's batch and sleeps until the batch has committed. So:
    /// - `body` runs on the calling thread when it writes alone, and may run on another
    ///   writing thread while the caller waits (turn
    ///   ``GroupCommitLimits/sharesSynchronousCommits`` off if that matters);
    /// - a `body` that throws rolls back only its own changes; the batch's others commit;
    /// - `body` **may run more than once** (when the LMDB map must grow the transaction is
    ///   retried from the start, and when another caller's closure in the same batch throws
    ///   the batch is rerun with each closure in its own nested transaction), so it must have
    ///   no side effects outside the transaction.
    ///
    /// Do not call `write` from inside `body` (it throws
    /// `LMDB/LMDBError/Code/nestedWriteTransaction`). Errors from `body` are rethrown as they
    /// were thrown; LMDB failures become `PaymentSessionError/storage(_:)`.
    public func write<R>(_ body: (WriteTransaction) throws -> R) throws -> R {
        try performWrite(body)
    }

    /// The one implementation of the synchronous `write`, measured as `operation` (the
    /// public method's name) when the store has instruments.
    func performWrite<R>(as operation: String = #function, _ body: (WriteTransaction) throws -> R) throws -> R {
        guard let instruments else { return try unmeasuredWrite(body) }
        return try instruments.measure(operation) { () throws -> R in try unmeasuredWrite(body) }
    }

    private func unmeasuredWrite<R>(_ body: (WriteTransaction) throws -> R) throws -> R {
        do {
            return try lmdbMapped {
                guard options.groupCommit.sharesSynchronousCommits else {
                    return try environment.write { txn in
                        try body(WriteTransaction(transaction: txn, layout: layout, options: options, generator: generator))
                    }
                }
                return try withoutActuallyEscaping(body) { body in
                    let request = SyncWriteRequest(body)
                    try groupCommitWriter.commitSynchronously(request) { try environment.checkWriteCanBegin() }
                    return try request.result()
                }
            }
        } catch let error as PaymentSessionError {
            logIfCorrupt(error)
            throw error
        }
    }

    /// `read` for bodies that throw only ``PaymentSessionError``.
    func typedRead<R>(
        as operation: String = #function, _ body: (ReadTransaction) throws(PaymentSessionError) -> R
    ) throws(PaymentSessionError) -> R {
        try storageMapped { try performRead(as: operation) { tx in try body(tx) } }
    }

    /// `write` for bodies that throw only ``PaymentSessionError``.
    func typedWrite<R>(
        as operation: String = #function, _ body: (WriteTransaction) throws(PaymentSessionError) -> R
    ) throws(PaymentSessionError) -> R {
        try storageMapped { try performWrite(as: operation) { tx in try body(tx) } }
    }

    // MARK: - Reads

    /// The session with `id`, or `nil`; see ``ReadTransaction/session(id:)``.
    public func session(id: String) throws(PaymentSessionError) -> PaymentSession? {
        try sessionByID(id)
    }

    /// The hottest read: one get, so no transaction objects (`Environment.decodeValue(forKey:in:_:)`).
    ///
    /// The id's form is checked only when no record answers (see
    /// ``SessionValidation/validateIDUnlessFound(_:_:)``).
    @inline(__always)
    func sessionByID(_ id: String, as operation: String = #function) throws(PaymentSessionError) -> PaymentSession? {
        guard let instruments else { return try unmeasuredSessionByID(id) }
        return try instruments.measure(operation) { () throws(PaymentSessionError) in try unmeasuredSessionByID(id) }
    }

    // Inlined, as `sessionByID` is, so that the decoder builds the session in the public
    // method's result: each call it is returned through copies it once more, stalling on
    // the partial writes just made.
    @inline(__always)
    private func unmeasuredSessionByID(_ id: String) throws(PaymentSessionError) -> PaymentSession? {
        do {
            return try SessionValidation.validateIDUnlessFound(id) { () throws(PaymentSessionError) in
                try storageMapped {
                    try environment.decodeValue(forKey: id, in: layout.sessions) { buffer in try RecordCodec.decode(id: id, buffer) }
                }
            }
        } catch {
            logIfCorrupt(error)
            throw error
        }
    }

    /// The session created with `idempotencyKey`, or `nil`.
    public func session(idempotencyKey: String) throws(PaymentSessionError) -> PaymentSession? {
        try typedRead { tx throws(PaymentSessionError) in try tx.session(idempotencyKey: idempotencyKey) }
    }

    /// The sessions of `cartID` in creation order.
    ///
    /// Like `session(id:)`, one pooled read with no transaction object (see
    /// `CartSessions`).
    public func sessions(cartID: String) throws(PaymentSessionError) -> [PaymentSession] {
        try sessionsOfCart(cartID)
    }

    /// ``sessions(cartID:)`` for the sync and async methods alike (a name of its own: in an
    /// async method, `sessions(cartID:)` would call the async one).
    func sessionsOfCart(_ cartID: String, as operation: String = #function) throws(PaymentSessionError) -> [PaymentSession] {
        guard let instruments else { return try unmeasuredSessions(cartID: cartID) }
        return try instruments.measure(operation) { () throws(PaymentSessionError) in try unmeasuredSessions(cartID: cartID) }
    }

    private func unmeasuredSessions(cartID: String) throws(PaymentSessionError) -> [PaymentSession] {
        do {
            return try CartSessions.read(cartID: cartID) { prefix, body in
                try environment.decodeIndexedValues(prefix: prefix, in: layout.cartProvider, values: layout.sessions, body)
            }
        } catch {
            logIfCorrupt(error)
            throw error
        }
    }

    /// The selected session of `cartID`, or `nil`.
    public func selectedSession(cartID: String) throws(PaymentSessionError) -> PaymentSession? {
        try typedRead { tx throws(PaymentSessionError) in try tx.selectedSession(cartID: cartID) }
    }

    /// A page of sessions in id order; see ``ReadTransaction/sessions(after:limit:)``.
    public func sessions(after id: String? = nil, limit: Int = 100) throws(PaymentSessionError) -> [PaymentSession] {
        try typedRead { tx throws(PaymentSessionError) in try tx.sessions(after: id, limit: limit) }
    }

    /// The number of sessions.
    public func count() throws(PaymentSessionError) -> Int {
        try typedRead { tx throws(PaymentSessionError) in try tx.count() }
    }

    /// A cart's payment state in one read; see ``CartPayment``.
    public func cartPayment(cartID: String) throws(PaymentSessionError) -> CartPayment {
        try typedRead { tx throws(PaymentSessionError) in try tx.cartPayment(cartID: cartID) }
    }


    // MARK: - Maintenance

    /// Writes a consistent copy of the store into directory `destination` (created
    /// `0700` if needed; it must not hold a store), while others go on writing. The copy
    /// is a complete store (`data.mdb`, `0600`), flushed to disk: open it with
    /// ``init(path:options:)``.
    ///
    /// - Parameters:
    ///   - destination: The copy's directory.
    ///   - compact: `false` (the default) copies the snapshot's pages through the file,
    ///     never pinning the map: writers and map growth go on undisturbed however long the
    ///     copy takes. `true` omits free pages (a smaller copy after many deletes) but pins
    ///     the map while it runs, so a write that must grow the map waits for it; see
    ///     `LMDB/Environment/copy(to:compact:)`.
    public func backup(to destination: String, compact: Bool = false) throws(PaymentSessionError) {
        try storageMapped {
            try environment.copy(to: destination, compact: compact)
        }
    }
}

extension PaymentSessionStore: SynchronousSessionWriting {
    /// Applies one write in its own durable transaction; the write methods
    /// (`SynchronousSessionWriting/create(_:)` and the others) land here.
    ///
    /// A create's fields are checked and its `data` encoded before the write transaction
    /// begins: LMDB has one writer at a time across threads and processes, and encoding is
    /// most of a create's CPU time, so it is kept out of the writer's turn.
    @discardableResult
    public func apply(_ write: PaymentSessionWrite) throws(PaymentSessionError) -> PaymentSessionWriteResult {
        if case .create(let new) = write {
            let prepared = try PreparedSession(
                new, maxDataBytes: options.maxDataBytes, now: options.nowMicroseconds, generator: generator)
            return try typedWrite(as: write.operationName) { tx throws(PaymentSessionError) in
                .session(try tx.insertNew(prepared))
            }
        }
        return try typedWrite(as: write.operationName) { tx throws(PaymentSessionError) in try tx.apply(write) }
    }
}
