#if PostgreSQL
import Foundation
import Logging
import PaymentSessionsCore
import PostgresNIO

/// How every operation runs its statements: on a leased connection, inside the store's
/// watch (``OperationWatch``), as one statement, an optimistic write or a transaction run
/// again after a conflict; every failure mapped to a ``PaymentSessionError``.
extension PostgresPaymentSessionStore {
    /// Runs `body` in one transaction, again from the start when a concurrent transaction
    /// got in its way (see the type's documentation), and maps every failure to a
    /// ``PaymentSessionError``. Each attempt, the wait for a connection included, has
    /// ``Options/operationTimeout``. The carts in `lockingFirst` are locked before the
    /// first statement of every attempt (see ``PostgresCartLocks``).
    func transaction<R: Sendable>(
        _ operation: String, as function: String = #function, lockingFirst carts: [String] = [],
        _ body: @escaping @Sendable (PostgresTransaction) async throws -> R
    ) async throws -> R {
        try await measured(as: function) { try await self.unmeasuredTransaction(operation, lockingFirst: carts, body) }
    }

    private func unmeasuredTransaction<R: Sendable>(
        _ operation: String, lockingFirst carts: [String],
        _ body: @escaping @Sendable (PostgresTransaction) async throws -> R
    ) async throws -> R {
        try await prepareSchema()
        let logger = options.logger
        let cartLocks = PostgresCartLocks(lockingFirst: carts)
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
    /// no constraint stands for, or when it kept meeting concurrent writes. The
    /// transaction locks the carts in `lockingFirst` first. A `unit` of several writes
    /// also runs as the transaction when it writes nothing or a rule refuses: its reads,
    /// each a statement of its own, are checked together only by an apply that writes.
    func write<R: Sendable>(
        _ operation: String, as function: String = #function, lockingFirst carts: [String] = [], unit: Bool = false,
        _ body: @escaping @Sendable (PostgresTransaction) async throws -> R
    ) async throws -> R {
        try await measured(as: function) { try await self.unmeasuredWrite(operation, lockingFirst: carts, unit: unit, body) }
    }

    private func unmeasuredWrite<R: Sendable>(
        _ operation: String, lockingFirst carts: [String], unit: Bool,
        _ body: @escaping @Sendable (PostgresTransaction) async throws -> R
    ) async throws -> R {
        try await prepareSchema()
        for _ in 0..<options.maxAttempts {
            do {
                return try await withDeadline(operation) { try await self.attempt(.optimistic(unit: unit), body) }
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
        return try await transaction(operation, lockingFirst: carts, body)
    }

    /// Runs one read statement (its own snapshot) on a connection leased from `pool`.
    func read<R: Sendable>(
        _ operation: String, as function: String = #function, pool: PostgresServers.Pool = .operations,
        _ body: @escaping @Sendable (PostgresTransaction) async throws -> R
    ) async throws -> R {
        try await measured(as: function) { try await self.unmeasuredRead(operation, pool: pool, body) }
    }

    private func unmeasuredRead<R: Sendable>(
        _ operation: String, pool: PostgresServers.Pool,
        _ body: @escaping @Sendable (PostgresTransaction) async throws -> R
    ) async throws -> R {
        try await prepareSchema()
        do {
            return try await withDeadline(operation) { try await self.attempt(.statements, pool: pool, body) }
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
        /// Plain reads, then one statement applying the writes (see ``PostgresWriteSet``);
        /// `unit` for several writes (see ``write(_:as:lockingFirst:unit:_:)``).
        case optimistic(unit: Bool)
    }

    /// One attempt on a connection leased from `pool`, run as `mode` says. The store's
    /// watch closes the connection when the attempt outlives ``Options/operationTimeout``:
    /// a statement whose server crashed without a word would otherwise never finish (seen
    /// with a server stopped in `immediate` mode), and closing fails it.
    func attempt<R: Sendable>(
        _ mode: AttemptMode, pool: PostgresServers.Pool = .operations,
        _ body: @Sendable (PostgresTransaction) async throws -> R
    ) async throws -> R {
        let logger = options.logger
        let timeout = options.operationTimeout
        return try await servers.client(pool).withConnection { connection in
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
            case .optimistic(let unit):
                let writeSet = PostgresWriteSet()
                tx.writeSet = writeSet
                let result: R
                do {
                    result = try await body(tx)
                } catch is PaymentSessionError where unit || !writeSet.isEmpty {
                    // A key claimed without reading it may be taken, and a row recorded may be
                    // refused by a constraint, and a transaction meets either before what
                    // refused here (a later write of a unit); a unit's reads were never
                    // checked together: the transaction decides which answer is right.
                    throw NeedsTransaction()
                }
                guard !writeSet.isEmpty else {
                    if unit { throw NeedsTransaction() }
                    return result
                }
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
}
#endif
