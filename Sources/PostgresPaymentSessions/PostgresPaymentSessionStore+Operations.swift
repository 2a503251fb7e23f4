#if PostgreSQL
import Foundation
import Logging
public import PaymentSessionsCore
import PostgresNIO

extension PostgresPaymentSessionStore {
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

    /// Applies one write as its own unit; the write methods
    /// (`PaymentSessionStoring/create(_:)` and the others) land here.
    ///
    /// A create that selects nothing tries one statement first; most other writes run
    /// optimistically (their reads, then their rows in one statement that checks nothing
    /// changed), falling back to a transaction; `purge` and `insert` run as transactions.
    @discardableResult
    public func apply(_ write: PaymentSessionWrite) async throws -> PaymentSessionWriteResult {
        let operation = write.failureOperation
        switch write {
        case .create(let new):
            return try await measured(as: write.operationName) { .session(try await self.unmeasuredCreate(new)) }
        default:
            if write.runsOptimistically {
                return try await self.write(operation, as: write.operationName) { tx in
                    try await self.apply(write, prepared: nil, in: tx)
                }
            }
            return try await transaction(operation, as: write.operationName) { tx in
                try await self.apply(write, prepared: nil, in: tx)
            }
        }
    }

    private func unmeasuredCreate(_ new: NewPaymentSession) async throws -> PaymentSession {
        let prepared = try PreparedSession(
            new, maxDataBytes: options.maxDataBytes, now: options.nowMicroseconds, generator: generator)
        if prepared.select {
            return try await write("create session") { try await self.insertNew(prepared, in: $0) }
        }
        switch try await createInOneStatement(prepared) {
        case .created:
            return prepared.session
        case .keyTaken:
            // A client's retry: the key's live session answers it, read in one more round
            // trip, as the transaction would decide from the same committed rows. A key
            // reserved by a deleted session (no live holder) is the transaction's to report.
            if let key = prepared.session.idempotencyKey,
                let holder = try await read("create session", { try await $0.session(idempotencyKey: key) })
            {
                return try SessionRules.retriedCreate(prepared.session, keyHeldBy: holder)
            }
        case .needsTransaction:
            break
        }
        return try await transaction("create session") { try await self.insertNew(prepared, in: $0) }
    }

    /// What the one-statement create did.
    private enum OneStatementCreate {
        /// The session was created.
        case created
        /// Its idempotency key was taken; nothing was written.
        case keyTaken
        /// A constraint refused the row or a conflict needs a retry; nothing was written.
        case needsTransaction
    }

    /// The usual create, a new session on a new key (or none) that selects nothing, in one
    /// round trip (``PostgresCreateSession``, its own transaction); anything but `created`
    /// needs more decisions, having written nothing.
    private func createInOneStatement(_ prepared: PreparedSession) async throws -> OneStatementCreate {
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
            switch outcome {
            case "created":
                sequencer.wakeUp()
                return .created
            case "key":
                return .keyTaken
            default:
                return .needsTransaction
            }
        } catch let error as PSQLError
            where error.serverInfo?[.sqlState] == PostgresCreateSession.refusedState || PostgresFailure.isRetryable(error)
        {
            return .needsTransaction
        } catch let error as CancellationError {
            throw error
        } catch {
            throw PostgresFailure.storeError(error, operation: "create session")
        }
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
        let body: @Sendable (PostgresTransaction) async throws -> [PaymentSessionWriteResult] = { tx in
            var results: [PaymentSessionWriteResult] = []
            for (index, write) in writes.enumerated() {
                results.append(try await self.apply(write, prepared: prepared[index], in: tx))
            }
            return results
        }
        let carts = writes.compactMap(\.namedCartID)
        // A unit of the writes that run optimistically alone runs so too, reading its own
        // writes (see PostgresWriteSet.overlaying); one that purges or inserts whole
        // sessions is a transaction, and so is one with a `deselect` beside other writes:
        // a deselect that finds no selection writes nothing, so no constraint checks that
        // absence when the other writes are applied.
        let unit = writes.count > 1
        if writes.allSatisfy(\.runsOptimistically), !unit || !writes.contains(where: \.isDeselect) {
            return try await write("perform writes", lockingFirst: carts, unit: unit, body)
        }
        return try await transaction("perform writes", lockingFirst: carts, body)
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
        return try await transaction("import sessions", lockingFirst: sessions.map(\.1.cartID)) { tx in
            for (line, session) in sessions {
                do {
                    try await self.insertWhole(session, in: tx)
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
#endif
