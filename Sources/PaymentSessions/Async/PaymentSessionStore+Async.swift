public import Foundation

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
    ///   `CancellationError`, or ``PaymentSessionError/storage(_:)`` when the commit fails.
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

    // MARK: Writes (each joins the next group commit)

    /// Creates a session; see ``WriteTransaction/create(_:)``.
    @discardableResult
    public func create(_ new: NewPaymentSession) async throws -> PaymentSession {
        // Checked and encoded here, on the caller's task: the writer thread, which serves
        // every caller in turn, is left only the puts.
        let prepared = try PreparedSession(new, maxDataBytes: options.maxDataBytes, now: options.nowMicroseconds, generator: generator)
        return try await performAsyncWrite { try $0.create(prepared) }
    }

    /// Creates or refreshes a cart's session for a provider.
    @discardableResult
    public func createOrUpdate(
        cartID: String, providerID: String, data: [String: JSONValue]? = nil
    ) async throws -> (session: PaymentSession, created: Bool) {
        let result = try await performAsyncWrite { tx in
            let (session, created) = try tx.createOrUpdate(cartID: cartID, providerID: providerID, data: data)
            return CreateOrUpdateResult(session: session, created: created)
        }
        return (result.session, result.created)
    }

    /// Changes status and/or data.
    @discardableResult
    public func update(
        id: String, status: PaymentSessionStatus? = nil, data: [String: JSONValue]? = nil, expectedUpdatedAt: Date? = nil
    ) async throws -> PaymentSession {
        try await performAsyncWrite { try $0.update(id: id, status: status, data: data, expectedUpdatedAt: expectedUpdatedAt) }
    }

    /// Selects a session, deselecting the cart's previous one.
    @discardableResult
    public func select(id: String) async throws -> PaymentSession {
        try await performAsyncWrite { try $0.select(id: id) }
    }

    /// Clears a cart's selection.
    @discardableResult
    public func deselect(cartID: String) async throws -> PaymentSession? {
        try await performAsyncWrite { try $0.deselect(cartID: cartID) }
    }

    /// Authorizes the cart's selected session for `amount`; idempotent.
    @discardableResult
    public func authorize(
        id: String, amount: Int, currencyCode: String? = nil, data: [String: JSONValue]? = nil,
        expectedUpdatedAt: Date? = nil
    ) async throws -> PaymentSession {
        try await performAsyncWrite {
            try $0.authorize(id: id, amount: amount, currencyCode: currencyCode, data: data, expectedUpdatedAt: expectedUpdatedAt)
        }
    }

    /// Sets a session's amount while nothing is held.
    @discardableResult
    public func update(
        id: String, amount: Int, currencyCode: String? = nil, expectedUpdatedAt: Date? = nil
    ) async throws -> PaymentSession {
        try await performAsyncWrite { try $0.update(id: id, amount: amount, currencyCode: currencyCode, expectedUpdatedAt: expectedUpdatedAt) }
    }

    /// A cart's payment state in one read.
    public func cartPayment(cartID: String) async throws -> CartPayment {
        try performRead { try $0.cartPayment(cartID: cartID) }
    }

    /// Deletes a session (an authorized one only with `force`).
    @discardableResult
    public func delete(id: String, force: Bool = false) async throws -> PaymentSession {
        try await performAsyncWrite { try $0.delete(id: id, force: force) }
    }

    /// Deletes all of a cart's sessions (none if one is authorized, unless `force`).
    @discardableResult
    public func deleteSessions(cartID: String, force: Bool = false) async throws -> Int {
        try await performAsyncWrite { try $0.deleteSessions(cartID: cartID, force: force) }
    }

    /// Deletes sessions not updated since `date`, keeping authorized ones unless told.
    @discardableResult
    public func purge(
        notUpdatedSince date: Date, statuses: Set<PaymentSessionStatus>? = nil, includeAuthorized: Bool = false
    ) async throws -> PurgeReport {
        try await performAsyncWrite { try $0.purge(notUpdatedSince: date, statuses: statuses, includeAuthorized: includeAuthorized) }
    }
}

/// `createOrUpdate`'s result as a `Sendable` value for the writer thread.
private struct CreateOrUpdateResult: Sendable {
    var session: PaymentSession
    var created: Bool
}
