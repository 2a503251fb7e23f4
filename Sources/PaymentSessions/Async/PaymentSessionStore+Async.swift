import Foundation

/// The `async` API: the same operations as the synchronous one, for Swift concurrency.
///
/// Writes go to a dedicated writer thread that **group-commits**: writes arriving while
/// a commit is in flight share the next LMDB transaction, each in its own nested
/// transaction, and one durable commit (one pair of `fsync`s) serves them all. Every
/// caller resumes only after the commit holding its change is on disk, so durability is
/// the same as the synchronous API's, at many times the throughput under concurrency.
///
/// ```swift
/// // In a request handler:
/// let session = try await store.create(NewPaymentSession(cartID: cart, providerID: "stripe"))
/// try await store.write { tx in
///     try tx.select(id: session.id)
///     try tx.update(id: session.id, status: .authorized)
/// }
/// ```
///
/// - Writes that arrive while a batch is being applied join it, up to
///   ``GroupCommitLimits``; a batch's callers all resume after its one commit.
/// - A closure that throws rolls back only its own changes; the others in the batch commit.
/// - A task cancelled before its closure starts is not applied and throws
///   `CancellationError`; once applied, the change is committed and reported normally.
/// - Reads run on the calling task: LMDB readers never wait for the writer.
/// - The synchronous API keeps working, and both may be used at once.
extension PaymentSessionStore {
    /// Runs `body` in the next group commit and returns its result once that commit is
    /// durable. `body` runs on the writer thread and, like a synchronous write closure,
    /// may run again if the map must grow: no side effects outside the transaction.
    ///
    /// - Throws: `body`'s error (its changes rolled back, the batch unaffected),
    ///   `CancellationError`, or `PaymentSessionError/storage(_:)` when the commit fails.
    public func write<R: Sendable>(_ body: @escaping @Sendable (WriteTransaction) throws -> R) async throws -> R {
        try await performAsyncWrite(body)
    }

    /// The one implementation of the `async` write, measured as `operation` (the public
    /// method's name) when the store has instruments.
    func performAsyncWrite<R: Sendable>(
        as operation: String = #function, _ body: @escaping @Sendable (WriteTransaction) throws -> R
    ) async throws -> R {
        guard let instruments else { return try await groupCommitted(body) }
        return try await instruments.measure(operation) { try await groupCommitted(body) }
    }

    private func groupCommitted<R: Sendable>(_ body: @escaping @Sendable (WriteTransaction) throws -> R) async throws -> R {
        try Task.checkCancellation()
        let request = AsyncWriteRequest(body)
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                if request.attach(continuation) { submit(request) }
            }
        } onCancel: {
            request.cancel()
        }
    }

    /// Runs `body` on a consistent snapshot, on the calling task.
    public func read<R>(_ body: (ReadTransaction) throws -> R) async throws -> R {
        try performRead(body)
    }

    // MARK: Reads

    /// The session with `id`, or `nil`.
    public func session(id: String) async throws -> PaymentSession? {
        try sessionByID(id)
    }

    /// The session created with `idempotencyKey`, or `nil`.
    public func session(idempotencyKey: String) async throws -> PaymentSession? {
        try performRead { try $0.session(idempotencyKey: idempotencyKey) }
    }

    /// The sessions of `cartID` in creation order.
    public func sessions(cartID: String) async throws -> [PaymentSession] {
        try sessionsOfCart(cartID)
    }

    /// The selected session of `cartID`, or `nil`.
    public func selectedSession(cartID: String) async throws -> PaymentSession? {
        try performRead { try $0.selectedSession(cartID: cartID) }
    }

    /// A page of sessions in id order.
    public func sessions(after id: String? = nil, limit: Int = 100) async throws -> [PaymentSession] {
        try performRead { try $0.sessions(after: id, limit: limit) }
    }

    /// The number of sessions.
    public func count() async throws -> Int {
        try performRead { try $0.count() }
    }

    /// A cart's payment state in one read.
    public func cartPayment(cartID: String) async throws -> CartPayment {
        try performRead { try $0.cartPayment(cartID: cartID) }
    }

    // MARK: Writes (each joins the next group commit)

    /// Applies one write in the next group commit; the write methods
    /// (`PaymentSessionStoring/create(_:)` and the others) land here.
    @discardableResult
    public func apply(_ write: PaymentSessionWrite) async throws -> PaymentSessionWriteResult {
        if case .create(let new) = write {
            // Checked and encoded here, on the caller's task: the writer thread, which
            // serves every caller in turn, is left only the puts.
            let prepared = try PreparedSession(
                new, maxDataBytes: options.maxDataBytes, now: options.nowMicroseconds, generator: generator)
            return try await performAsyncWrite(as: write.operationName) { .session(try $0.insertNew(prepared)) }
        }
        return try await performAsyncWrite(as: write.operationName) { try $0.apply(write) }
    }
}
