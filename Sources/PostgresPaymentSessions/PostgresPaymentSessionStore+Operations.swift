public import Foundation
import Logging
public import PaymentSessionsCore
import PostgresNIO

extension PostgresPaymentSessionStore {
    // MARK: Running statements

    /// Runs `body` in one transaction, again from the start when a concurrent transaction
    /// got in its way (see the type's documentation), and maps every failure to a
    /// ``PaymentSessionError``. Each attempt, the wait for a connection included, has
    /// ``Options/operationTimeout``.
    func transaction<R: Sendable>(
        _ operation: String, as function: String = #function,
        _ body: @escaping @Sendable (PostgresTransaction) async throws -> R
    ) async throws -> R {
        try await measured(as: function) { try await self.unmeasuredTransaction(operation, body) }
    }

    private func unmeasuredTransaction<R: Sendable>(
        _ operation: String, _ body: @escaping @Sendable (PostgresTransaction) async throws -> R
    ) async throws -> R {
        try await prepareSchema()
        let logger = options.logger
        let cartLocks = PostgresCartLocks()
        var attempt = 1
        while true {
            do {
                return try await withDeadline(operation) {
                    try await self.attempt(.transaction(cartLocks), body)
                }
            } catch where PostgresFailure.isRetryable(error) {
                guard attempt < options.maxAttempts else {
                    throw PaymentSessionError.storage(
                        StorageFailure(
                            backend: .postgresql, kind: .failed, operation: operation, code: "retries",
                            message: "gave up after \(attempt) attempts against concurrent transactions: \(error)",
                            underlying: error))
                }
                logger.info(
                    "retrying a transaction that met a concurrent one",
                    metadata: ["operation": "\(operation)", "attempt": "\(attempt)", "reason": "\(error)"])
                attempt += 1
                // A little random wait, growing: two retrying writers on one cart stop meeting.
                try? await Task.sleep(for: .microseconds(Int.random(in: 0...(100 << min(attempt, 8)))))
            } catch let error as CancellationError {
                // The caller's task was cancelled: that, as the LMDB store says it too.
                throw error
            } catch {
                throw PostgresFailure.storeError(error, operation: operation)
            }
        }
    }

    /// Runs `body` optimistically (see ``PostgresWriteSet``): plain reads, the rules, and one
    /// statement applying the writes if the rows read are unchanged; again when they changed
    /// or a unique constraint on the selection refused (up to ``Options/maxAttempts``), and
    /// as a ``transaction(_:_:)`` when a constraint refused a row or key (the transaction
    /// reads and decides: the key's session, a duplicate), when the operation needs locks
    /// no constraint stands for, or when it kept meeting concurrent writes.
    func write<R: Sendable>(
        _ operation: String, as function: String = #function,
        _ body: @escaping @Sendable (PostgresTransaction) async throws -> R
    ) async throws -> R {
        try await measured(as: function) { try await self.unmeasuredWrite(operation, body) }
    }

    private func unmeasuredWrite<R: Sendable>(
        _ operation: String, _ body: @escaping @Sendable (PostgresTransaction) async throws -> R
    ) async throws -> R {
        try await prepareSchema()
        for _ in 0..<options.maxAttempts {
            do {
                return try await withDeadline(operation) { try await self.attempt(.optimistic, body) }
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == PostgresCreateSession.refusedState {
                break
            } catch is NeedsTransaction {
                break
            } catch let error as PSQLError
                where error.serverInfo?[.sqlState] == PostgresApplyWrites.staleState || PostgresFailure.isRetryable(error)
            {
                options.logger.debug(
                    "running again a write whose rows changed since it read them",
                    metadata: ["operation": "\(operation)", "reason": "\(error)"])
                continue
            } catch let error as CancellationError {
                throw error
            } catch {
                throw PostgresFailure.storeError(error, operation: operation)
            }
        }
        return try await transaction(operation, body)
    }

    /// Runs one read statement (its own snapshot) on a leased connection.
    func read<R: Sendable>(
        _ operation: String, as function: String = #function,
        _ body: @escaping @Sendable (PostgresTransaction) async throws -> R
    ) async throws -> R {
        try await measured(as: function) { try await self.unmeasuredRead(operation, body) }
    }

    private func unmeasuredRead<R: Sendable>(
        _ operation: String, _ body: @escaping @Sendable (PostgresTransaction) async throws -> R
    ) async throws -> R {
        try await prepareSchema()
        do {
            return try await withDeadline(operation) { try await self.attempt(.statements, body) }
        } catch let error as CancellationError {
            throw error
        } catch {
            throw PostgresFailure.storeError(error, operation: operation)
        }
    }

    /// How an attempt runs its statements.
    enum AttemptMode {
        /// One statement at a time, each its own transaction (reads).
        case statements
        /// In a transaction, the operation's carts locked first.
        case transaction(PostgresCartLocks)
        /// Plain reads, then one statement applying the writes (see ``PostgresWriteSet``).
        case optimistic
    }

    /// One attempt on a leased connection, run as `mode` says. The store's watch closes
    /// the connection when the attempt outlives ``Options/operationTimeout``: a statement
    /// whose server crashed without a word would otherwise never finish (seen with a server
    /// stopped in `immediate` mode), and closing fails it.
    func attempt<R: Sendable>(
        _ mode: AttemptMode, _ body: @Sendable (PostgresTransaction) async throws -> R
    ) async throws -> R {
        let logger = options.logger
        let timeout = options.operationTimeout
        return try await servers.client().withConnection { connection in
            let watchdog: Task<Void, any Error>?
            if let ticket = OperationWatch.Ticket.current {
                ticket.watch.statementsStarted(ticket, on: connection)
                watchdog = nil
            } else {
                // Outside the watch (the store not running): a timer of its own.
                watchdog = Task {
                    try await Task.sleep(for: timeout)
                    logger.warning("closing a connection whose statement got no answer", metadata: ["timeout": "\(timeout)"])
                    try? await connection.close()
                }
            }
            defer {
                watchdog?.cancel()
                if let ticket = OperationWatch.Ticket.current { ticket.watch.statementsEnded(ticket) }
            }
            let cartLocks: PostgresCartLocks = if case .transaction(let locks) = mode { locks } else { PostgresCartLocks() }
            var tx = PostgresTransaction(
                connection: connection, logger: logger, options: options, now: options.nowMicroseconds,
                cartLocks: cartLocks)
            switch mode {
            case .statements:
                return try await body(tx)
            case .optimistic:
                let writeSet = PostgresWriteSet()
                tx.writeSet = writeSet
                let result: R
                do {
                    result = try await body(tx)
                } catch is PaymentSessionError where writeSet.hasTentativeClaims {
                    // A key claimed without reading it may be taken, and a transaction checks the
                    // key before what refused here: it decides which answer is right.
                    throw NeedsTransaction()
                }
                guard !writeSet.isEmpty else { return result }
                let apply = PostgresApplyWrites(writes: writeSet.recorded, changes: tx.changes.take(), now: tx.now)
                CommitProgress.commitSending()
                for try await _ in try await connection.execute(apply, logger: logger) {}
                sequencer.wakeUp()
                return result
            case .transaction:
                for try await _ in try await connection.execute(BeginStatement(), logger: logger) {}
                do {
                    try await tx.lockCarts(cartLocks.beginAttempt())
                    let result = try await body(tx)
                    try cartLocks.checkOrder()
                    let wroteChanges = try await tx.changes.flush(on: connection, committedAt: tx.now, logger: logger)
                    CommitProgress.commitSending()
                    for try await _ in try await connection.execute(CommitStatement(), logger: logger) {}
                    if wroteChanges { sequencer.wakeUp() }
                    return result
                } catch {
                    // A server error leaves the connection in an aborted transaction; a lost
                    // connection has nothing to roll back.
                    if PostgresFailure.connectionIsUsable(after: error) {
                        _ = try? await connection.query("ROLLBACK", logger: logger)
                    }
                    throw error
                }
            }
        }
    }

    /// Runs `body` as `operation` (the public method's name) with the store's instruments,
    /// unless there are none or an enclosing operation is measured already.
    func measured<R>(as operation: String = #function, _ body: () async throws -> R) async throws -> R {
        guard let instruments, !StoreInstruments.isMeasuring else { return try await body() }
        return try await instruments.measure(operation, body)
    }

    /// Runs `work`, giving up after twice ``Options/operationTimeout`` with a
    /// ``StorageFailure/Kind/timeout`` storage error: a pool that cannot open a connection
    /// (the server down or out of connection slots) would otherwise keep the caller
    /// waiting for ever. A statement already sent is ended first by the store's watch
    /// closing its connection (see ``OperationWatch``); an operation still running when
    /// the store stops fails as ``StorageFailure/Kind/unavailable``.
    /// A work that does not end when cancelled stays behind, holding its lease (see
    /// `DeadlineRace.first(watchedBy:expired:_:)`).
    func withDeadline<R: Sendable>(
        _ operation: String, _ work: @escaping @Sendable () async throws -> R
    ) async throws -> R {
        let progress = CommitProgress()
        let deadline = watch.deadline
        let result = await DeadlineRace<R>.first(
            watchedBy: watch,
            expired: { why in
                switch why {
                case .deadline:
                    PaymentSessionError.storage(
                        StorageFailure(
                            backend: .postgresql, kind: .timeout, operation: operation, code: "deadline",
                            message: "no answer from the server within \(deadline)"))
                case .statementTimeout:
                    PaymentSessionError.storage(
                        StorageFailure(
                            backend: .postgresql, kind: .timeout, operation: operation, code: "operation_timeout",
                            message: "no answer from the server within \(self.options.operationTimeout): its connection was closed"))
                case .stopped:
                    PaymentSessionError.storage(
                        StorageFailure(
                            backend: .postgresql, kind: .unavailable, operation: operation, code: "stopped",
                            message: "the store stopped running (its run() ended) before the operation finished"))
                }
            }
        ) {
            try await CommitProgress.$current.withValue(progress) { try await work() }
        }
        if case .failure(let error) = result {
            servers.operationFailed(with: error)
            throw progress.classify(error, operation: operation)
        }
        return try result.get()
    }

    // MARK: Reads

    /// The session with `id`, or `nil`.
    public func session(id: String) async throws -> PaymentSession? {
        try SessionValidation.validateID(id)
        return try await read("get session") { try await $0.session(id: id) }
    }

    /// The session created with `idempotencyKey`, or `nil`.
    public func session(idempotencyKey: String) async throws -> PaymentSession? {
        try SessionValidation.validateIdempotencyKey(idempotencyKey)
        return try await read("get session by idempotency key") { try await $0.session(idempotencyKey: idempotencyKey) }
    }

    /// The cart's session for `providerID`, or `nil`.
    public func session(cartID: String, providerID: String) async throws -> PaymentSession? {
        try SessionValidation.validateIdentifier(cartID, field: "cart_id")
        try SessionValidation.validateIdentifier(providerID, field: "provider_id")
        return try await read("get session by cart and provider") {
            try await $0.session(cartID: cartID, providerID: providerID)
        }
    }

    /// The cart's sessions in creation order.
    public func sessions(cartID: String) async throws -> [PaymentSession] {
        try SessionValidation.validateIdentifier(cartID, field: "cart_id")
        return try await read("list cart sessions") { try await $0.sessions(cartID: cartID) }
    }

    /// The cart's selected session, or `nil`.
    public func selectedSession(cartID: String) async throws -> PaymentSession? {
        try SessionValidation.validateIdentifier(cartID, field: "cart_id")
        return try await read("get selected session") { try await $0.selectedSession(cartID: cartID) }
    }

    /// Up to `limit` sessions in id order, after `id`.
    public func sessions(after id: String? = nil, limit: Int = 100) async throws -> [PaymentSession] {
        if let id { try SessionValidation.validateID(id) }
        guard limit > 0 else {
            if limit < 0 {
                throw PaymentSessionError.invalidInput(field: "limit", value: String(limit), reason: "must not be negative")
            }
            return []
        }
        return try await read("list sessions") { try await $0.sessions(after: id, limit: limit) }
    }

    /// How many sessions the store holds.
    public func count() async throws -> Int {
        try await sessionCounts().sessions
    }

    /// The cart's payment state, from one statement's snapshot.
    public func cartPayment(cartID: String) async throws -> CartPayment {
        CartPayment(cartID: cartID, sessions: try await sessions(cartID: cartID))
    }

    /// Counts of sessions, carts, selections and statuses, from one statement's snapshot.
    public func sessionCounts() async throws -> SessionCounts {
        try await read("count sessions") { tx in
            let rows = try await tx.connection.query(
                """
                SELECT count(*), count(DISTINCT cart_id), count(*) FILTER (WHERE is_selected),
                    count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'requires_more'),
                    count(*) FILTER (WHERE status = 'authorized'), count(*) FILTER (WHERE status = 'error'),
                    count(*) FILTER (WHERE status = 'canceled')
                FROM payment_sessions
                """, logger: tx.logger)
            for try await (sessions, carts, selected, pending, more, authorized, error, canceled) in rows.decode(
                (Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64).self)
            {
                return SessionCounts(
                    sessions: Int(sessions), carts: Int(carts), selected: Int(selected),
                    byStatus: [
                        .pending: Int(pending), .requiresMore: Int(more), .authorized: Int(authorized),
                        .error: Int(error), .canceled: Int(canceled),
                    ])
            }
            return SessionCounts(sessions: 0, carts: 0, selected: 0, byStatus: [:])
        }
    }

    // MARK: Writes

    /// Creates a session; see ``PaymentSessionStoring/create(_:)``.
    @discardableResult
    public func create(_ new: NewPaymentSession) async throws -> PaymentSession {
        try await measured { try await self.unmeasuredCreate(new) }
    }

    private func unmeasuredCreate(_ new: NewPaymentSession) async throws -> PaymentSession {
        let prepared = try PreparedSession(
            new, maxDataBytes: options.maxDataBytes, now: options.nowMicroseconds, generator: generator)
        if prepared.select {
            return try await write("create session") { try await self.create(prepared, in: $0) }
        }
        if try await createInOneStatement(prepared) { return prepared.session }
        return try await transaction("create session") { try await self.create(prepared, in: $0) }
    }

    /// The usual create, a new session on a new key (or none) that selects nothing, in one
    /// round trip (``PostgresCreateSession``, its own transaction); `false` when it needs the
    /// transaction's decisions (the key taken, the row refused by a constraint, a conflict
    /// to retry), having written nothing.
    private func createInOneStatement(_ prepared: PreparedSession) async throws -> Bool {
        try await prepareSchema()
        let statement = PostgresCreateSession(
            session: prepared.session, dataText: PostgresSessionRow.dataText(prepared.session, prepared.dataJSON))
        do {
            let outcome = try await withDeadline("create session") {
                try await self.attempt(.statements) { tx in
                    var outcome = ""
                    CommitProgress.commitSending()
                    for try await row in try await tx.connection.execute(statement, logger: tx.logger) { outcome = row }
                    return outcome
                }
            }
            guard outcome == "created" else { return false }
            sequencer.wakeUp()
            return true
        } catch let error as PSQLError
            where error.serverInfo?[.sqlState] == PostgresCreateSession.refusedState || PostgresFailure.isRetryable(error)
        {
            return false
        } catch let error as CancellationError {
            throw error
        } catch {
            throw PostgresFailure.storeError(error, operation: "create session")
        }
    }

    /// Creates or refreshes a cart's session for a provider.
    @discardableResult
    public func createOrUpdate(
        cartID: String, providerID: String, data: [String: JSONValue]? = nil
    ) async throws -> (session: PaymentSession, created: Bool) {
        let result = try await write("create or update session") { tx in
            try await self.createOrUpdate(cartID: cartID, providerID: providerID, data: data, in: tx)
        }
        return (result.session, result.created)
    }

    /// Changes status and/or data.
    @discardableResult
    public func update(
        id: String, status: PaymentSessionStatus? = nil, data: [String: JSONValue]? = nil, expectedUpdatedAt: Date? = nil
    ) async throws -> PaymentSession {
        try await write("update session") { tx in
            try await self.update(id: id, status: status, data: data, expectedUpdatedAt: expectedUpdatedAt, in: tx)
        }
    }

    /// Selects a session, deselecting the cart's previous one.
    @discardableResult
    public func select(id: String) async throws -> PaymentSession {
        try await write("select session") { try await self.select(id: id, in: $0) }
    }

    /// Clears a cart's selection.
    @discardableResult
    public func deselect(cartID: String) async throws -> PaymentSession? {
        try await write("deselect cart") { try await self.deselect(cartID: cartID, in: $0) }
    }

    /// Authorizes the cart's selected session for `amount`; idempotent.
    @discardableResult
    public func authorize(
        id: String, amount: Int, currencyCode: String? = nil, data: [String: JSONValue]? = nil,
        expectedUpdatedAt: Date? = nil
    ) async throws -> PaymentSession {
        try await write("authorize session") { tx in
            try await self.authorize(
                id: id, amount: amount, currencyCode: currencyCode, data: data, expectedUpdatedAt: expectedUpdatedAt, in: tx)
        }
    }

    /// Sets a session's amount while nothing is held.
    @discardableResult
    public func update(
        id: String, amount: Int, currencyCode: String? = nil, expectedUpdatedAt: Date? = nil
    ) async throws -> PaymentSession {
        try await write("update amount") { tx in
            try await self.updateAmount(id: id, amount: amount, currencyCode: currencyCode, expectedUpdatedAt: expectedUpdatedAt, in: tx)
        }
    }

    /// Marks whether the provider holds state for the session.
    @discardableResult
    public func update(id: String, isInitiated: Bool) async throws -> PaymentSession {
        try await write("update is_initiated") { try await self.setInitiated(id: id, isInitiated: isInitiated, in: $0) }
    }

    /// Deletes a session (an authorized one only with `force`).
    @discardableResult
    public func delete(id: String, force: Bool = false) async throws -> PaymentSession {
        try await write("delete session") { try await self.delete(id: id, force: force, in: $0) }
    }

    /// Deletes all of a cart's sessions, all or none.
    @discardableResult
    public func deleteSessions(cartID: String, force: Bool = false) async throws -> Int {
        try await transaction("delete cart sessions") { try await self.deleteSessions(cartID: cartID, force: force, in: $0) }
    }

    /// Deletes sessions not updated since `date`, keeping authorized ones unless told, and
    /// drops expired idempotency reservations, in one transaction.
    @discardableResult
    public func purge(
        notUpdatedSince date: Date, statuses: Set<PaymentSessionStatus>? = nil, includeAuthorized: Bool = false
    ) async throws -> PurgeReport {
        let cutoff = Timestamp.microseconds(date)
        return try await transaction("purge sessions") { tx in
            var purged = 0
            var kept = 0
            for session in try await tx.sessions(updatedBefore: cutoff, lock: true) {
                switch SessionRules.purgeVerdict(
                    session, cutoff: cutoff, statuses: statuses, includeAuthorized: includeAuthorized)
                {
                case .stays: break
                case .keptAuthorized: kept += 1
                case .purged:
                    try await tx.remove(session, kind: .purged)
                    purged += 1
                }
            }
            let dropped = try await tx.dropExpiredReservations()
            let trimmed = try await Self.trimChanges(in: tx, retention: self.options.changeRetention)
            return PurgeReport(purged: purged, keptAuthorized: kept, reservationsDropped: dropped, changesTrimmed: trimmed)
        }
    }

    /// Stores a whole session as given (imports, migrations between backends).
    public func insert(_ session: PaymentSession) async throws {
        try await transaction("insert session") { try await self.insert(session, in: $0) }
    }

    /// Runs `writes` as one transaction: all take effect, or none.
    @discardableResult
    public func perform(_ writes: [PaymentSessionWrite]) async throws -> [PaymentSessionWriteResult] {
        // Creates are checked and given their ids before the transaction, once: a retried
        // transaction creates the same sessions.
        var preparing: [Int: PreparedSession] = [:]
        for (index, write) in writes.enumerated() {
            if case .create(let new) = write {
                preparing[index] = try PreparedSession(
                    new, maxDataBytes: options.maxDataBytes, now: options.nowMicroseconds, generator: generator)
            }
        }
        let prepared = preparing
        return try await transaction("perform writes") { tx in
            var results: [PaymentSessionWriteResult] = []
            for (index, write) in writes.enumerated() {
                results.append(try await self.apply(write, prepared: prepared[index], in: tx))
            }
            return results
        }
    }
}

extension PostgresPaymentSessionStore {
    // MARK: Import and export

    /// Writes every session as a JSON line, in id order, from one snapshot: a
    /// REPEATABLE READ, READ ONLY transaction read a page at a time, so that neither the
    /// server nor this process holds the whole store at once.
    public func exportJSONLines(_ writeLine: (String) throws -> Void) async throws -> Int {
        try await prepareSchema()
        do {
            return try await servers.client().withConnection { connection in
                let logger = options.logger
                try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
                do {
                    let tx = PostgresTransaction(
                        connection: connection, logger: logger, options: options, now: options.nowMicroseconds,
                        cartLocks: PostgresCartLocks())
                    var count = 0
                    var after: String?
                    while true {
                        let page = try await tx.sessions(after: after, limit: 500)
                        for session in page { try writeLine(try SessionLines.exportLine(session)) }
                        count += page.count
                        guard let last = page.last else { break }
                        after = last.id
                    }
                    try await connection.query("COMMIT", logger: logger)
                    return count
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                    throw error
                }
            }
        } catch let error as PaymentSessionError {
            throw error
        } catch let error as PSQLError {
            throw PostgresFailure.storeError(error, operation: "export sessions")
        }
    }

    /// Imports JSON lines all or nothing, in one transaction.
    public func importJSONLines(_ text: String) async throws -> Int {
        let sessions = try SessionLines.parse(text)
        return try await transaction("import sessions") { tx in
            try await tx.lockCarts(sessions.map(\.1.cartID))
            for (line, session) in sessions {
                do {
                    try await self.insert(session, in: tx)
                } catch let error as PaymentSessionError {
                    throw PaymentSessionError.importFailed(line: line, error: error)
                }
            }
            return sessions.count
        }
    }
}

extension PostgresPaymentSessionStore {
    /// Bytes the store's tables and indexes take on the server (`pg_total_relation_size`).
    public func tableBytes() async throws -> Int {
        try await read("measure tables") { tx in
            let rows = try await tx.connection.query(
                """
                SELECT (pg_total_relation_size('payment_sessions') + pg_total_relation_size('payment_session_idempotency_keys')
                    + pg_total_relation_size('payment_session_transitions') + pg_total_relation_size('payment_session_schema'))::BIGINT
                """, logger: tx.logger)
            for try await (bytes) in rows.decode(Int64.self) { return Int(bytes) }
            return 0
        }
    }
}
