import Foundation
import Logging
import PaymentSessionsCore
import PostgresNIO

extension PostgresPaymentSessionStore {
    // MARK: Running statements

    /// Runs `body` in one transaction, again from the start when a concurrent transaction
    /// got in its way (see the type's documentation), and maps every failure to a
    /// ``PaymentSessionError``.
    func transaction<R>(_ operation: String, _ body: (PostgresTransaction) async throws -> R) async throws -> R {
        try await prepareSchema()
        let logger = options.logger
        var attempt = 1
        while true {
            do {
                return try await client.withConnection { connection in
                    try await Self.withDeadline(options.operationTimeout, on: connection) {
                    try await connection.query("BEGIN", logger: logger)
                    do {
                        let tx = PostgresTransaction(
                            connection: connection, logger: logger, options: options, now: options.nowMicroseconds)
                        let result = try await body(tx)
                        try await connection.query("COMMIT", logger: logger)
                        return result
                    } catch {
                        // A server error leaves the connection in an aborted transaction;
                        // a lost connection has nothing to roll back.
                        if PostgresFailure.connectionIsUsable(after: error) {
                            _ = try? await connection.query("ROLLBACK", logger: logger)
                        }
                        throw error
                    }
                    }
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
            } catch {
                throw PostgresFailure.storeError(error, operation: operation)
            }
        }
    }

    /// Runs `body` on `connection`, closing the connection if `body` is not done within
    /// `timeout`: a statement whose connection died without a word (a server that
    /// crashed mid-statement) would otherwise wait forever. Closing fails the statement,
    /// which reports ``StorageFailure/Kind/timeout``, and the pool replaces the connection.
    static func withDeadline<R>(
        _ timeout: Duration, on connection: PostgresConnection, isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> sending R
    ) async throws -> sending R {
        let expired = Flag()
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            expired.raise()
            try? await connection.close()
        }
        defer { watchdog.cancel() }
        do {
            return try await body()
        } catch {
            if expired.isRaised {
                throw PaymentSessionError.storage(
                    StorageFailure(
                        backend: .postgresql, kind: .timeout, operation: "statement", code: "deadline",
                        message: "no answer from the server within \(timeout); the connection was closed",
                        underlying: error))
            }
            throw error
        }
    }

    /// Runs one read statement (its own snapshot) on a leased connection.
    func read<R>(_ operation: String, _ body: (PostgresTransaction) async throws -> R) async throws -> R {
        try await prepareSchema()
        do {
            return try await client.withConnection { connection in
                try await Self.withDeadline(options.operationTimeout, on: connection) {
                    try await body(
                        PostgresTransaction(
                            connection: connection, logger: options.logger, options: options, now: options.nowMicroseconds))
                }
            }
        } catch {
            throw PostgresFailure.storeError(error, operation: operation)
        }
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
        let prepared = try PreparedSession(
            new, maxDataBytes: options.maxDataBytes, now: options.nowMicroseconds, generator: generator)
        return try await transaction("create session") { try await create(prepared, in: $0) }
    }

    /// Creates or refreshes a cart's session for a provider.
    @discardableResult
    public func createOrUpdate(
        cartID: String, providerID: String, data: [String: JSONValue]? = nil
    ) async throws -> (session: PaymentSession, created: Bool) {
        let result = try await transaction("create or update session") { tx in
            try await createOrUpdate(cartID: cartID, providerID: providerID, data: data, in: tx)
        }
        return (result.session, result.created)
    }

    /// Changes status and/or data.
    @discardableResult
    public func update(
        id: String, status: PaymentSessionStatus? = nil, data: [String: JSONValue]? = nil, expectedUpdatedAt: Date? = nil
    ) async throws -> PaymentSession {
        try await transaction("update session") { tx in
            try await update(id: id, status: status, data: data, expectedUpdatedAt: expectedUpdatedAt, in: tx)
        }
    }

    /// Selects a session, deselecting the cart's previous one.
    @discardableResult
    public func select(id: String) async throws -> PaymentSession {
        try await transaction("select session") { try await select(id: id, in: $0) }
    }

    /// Clears a cart's selection.
    @discardableResult
    public func deselect(cartID: String) async throws -> PaymentSession? {
        try await transaction("deselect cart") { try await deselect(cartID: cartID, in: $0) }
    }

    /// Authorizes the cart's selected session for `amount`; idempotent.
    @discardableResult
    public func authorize(
        id: String, amount: Int, currencyCode: String? = nil, data: [String: JSONValue]? = nil,
        expectedUpdatedAt: Date? = nil
    ) async throws -> PaymentSession {
        try await transaction("authorize session") { tx in
            try await authorize(
                id: id, amount: amount, currencyCode: currencyCode, data: data, expectedUpdatedAt: expectedUpdatedAt, in: tx)
        }
    }

    /// Sets a session's amount while nothing is held.
    @discardableResult
    public func update(
        id: String, amount: Int, currencyCode: String? = nil, expectedUpdatedAt: Date? = nil
    ) async throws -> PaymentSession {
        try await transaction("update amount") { tx in
            try await updateAmount(id: id, amount: amount, currencyCode: currencyCode, expectedUpdatedAt: expectedUpdatedAt, in: tx)
        }
    }

    /// Marks whether the provider holds state for the session.
    @discardableResult
    public func update(id: String, isInitiated: Bool) async throws -> PaymentSession {
        try await transaction("update is_initiated") { try await setInitiated(id: id, isInitiated: isInitiated, in: $0) }
    }

    /// Deletes a session (an authorized one only with `force`).
    @discardableResult
    public func delete(id: String, force: Bool = false) async throws -> PaymentSession {
        try await transaction("delete session") { try await delete(id: id, force: force, in: $0) }
    }

    /// Deletes all of a cart's sessions, all or none.
    @discardableResult
    public func deleteSessions(cartID: String, force: Bool = false) async throws -> Int {
        try await transaction("delete cart sessions") { try await deleteSessions(cartID: cartID, force: force, in: $0) }
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
            for session in try await tx.sessions(updatedBefore: cutoff) {
                switch SessionRules.purgeVerdict(
                    session, cutoff: cutoff, statuses: statuses, includeAuthorized: includeAuthorized)
                {
                case .stays: break
                case .keptAuthorized: kept += 1
                case .purged:
                    try await tx.remove(session)
                    purged += 1
                }
            }
            let dropped = try await tx.dropExpiredReservations()
            return PurgeReport(purged: purged, keptAuthorized: kept, reservationsDropped: dropped)
        }
    }

    /// Stores a whole session as given (imports, migrations between backends).
    public func insert(_ session: PaymentSession) async throws {
        try await transaction("insert session") { try await insert(session, in: $0) }
    }

    /// Runs `writes` as one transaction: all take effect, or none.
    public func perform(_ writes: [PaymentSessionWrite]) async throws -> [PaymentSessionWriteResult] {
        // Creates are checked and given their ids before the transaction, once: a retried
        // transaction creates the same sessions.
        var prepared: [Int: PreparedSession] = [:]
        for (index, write) in writes.enumerated() {
            if case .create(let new) = write {
                prepared[index] = try PreparedSession(
                    new, maxDataBytes: options.maxDataBytes, now: options.nowMicroseconds, generator: generator)
            }
        }
        return try await transaction("perform writes") { tx in
            var results: [PaymentSessionWriteResult] = []
            for (index, write) in writes.enumerated() {
                results.append(try await apply(write, prepared: prepared[index], in: tx))
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
            return try await client.withConnection { connection in
                let logger = options.logger
                try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
                do {
                    let tx = PostgresTransaction(
                        connection: connection, logger: logger, options: options, now: options.nowMicroseconds)
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
            for (line, session) in sessions {
                do {
                    try await insert(session, in: tx)
                } catch let error as PaymentSessionError {
                    throw PaymentSessionError.importFailed(line: line, error: error)
                }
            }
            return sessions.count
        }
    }
}
