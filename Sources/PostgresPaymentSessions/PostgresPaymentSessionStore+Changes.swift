#if PostgreSQL
import Foundation
import Logging
public import PaymentSessionsCore
import PostgresNIO

extension PostgresPaymentSessionStore {
    // MARK: Change feed

    /// Up to `limit` changes after `sequence`: in commit order within a cart, and in
    /// transaction order across carts.
    ///
    /// It first numbers the changes committed so far (see `PostgresFeedSequencer`), so that
    /// a caller sees every change committed before it asked, unless a transaction still
    /// open elsewhere holds them back longer than ``Options/feedCatchUp``. Numbers are given
    /// in order and never to a change that a later commit could precede, so the changes
    /// visible to one statement never have a hole that a later commit fills: a hole is a trim.
    public func changes(after sequence: Int64, limit: Int) async throws -> [PaymentSessionChange] {
        guard limit >= 0 else { throw PaymentSessionError.invalidInput(field: "limit", value: String(limit), reason: "must be 0 or more") }
        return try await readChanges(after: sequence, limit: limit, numberingFirst: true)
    }

    /// ``changes(after:limit:)``; without `numberingFirst`, only what is numbered already
    /// (the listener's reads, right after a sequencer's notification).
    func readChanges(
        after sequence: Int64, limit: Int, numberingFirst: Bool, pool: PostgresServers.Pool = .operations
    ) async throws -> [PaymentSessionChange] {
        try await read("read changes", pool: pool) { tx in
            let last = numberingFirst ? try await self.catchUp(tx).last : try await Self.lastNumber(tx)
            try SessionRules.checkFeedPosition(sequence, last: last, field: "after")
            let rows = try await tx.connection.query(
                """
                SELECT sequence, session_id, cart_id, kind, status_before, status_after, committed_at, session
                FROM payment_session_changes WHERE sequence > \(sequence) ORDER BY sequence LIMIT \(Int64(max(1, limit)))
                """, logger: tx.logger)
            var changes: [PaymentSessionChange] = []
            for try await row in rows.decode((Int64, String, String, String, String?, String?, PostgresTimestamp, String?).self) {
                changes.append(try Self.change(row))
            }
            // The first change kept after `sequence` must be the next one: anything else was
            // trimmed. Judged from the page itself, not from `last` (read in an earlier
            // snapshot, before commits and a trim that the page may already see).
            if let next = changes.first?.sequence, next != sequence + 1 {
                throw PaymentSessionError.changesTrimmed(after: sequence, oldestAvailable: next)
            }
            if changes.isEmpty, sequence < last {
                throw PaymentSessionError.changesTrimmed(after: sequence, oldestAvailable: last + 1)
            }
            return limit == 0 ? [] : changes
        }
    }

    /// Where the feed stands, once the changes committed so far are numbered.
    public func changeFeedState() async throws -> ChangeFeedState {
        try await read("read the change feed's state") { tx in
            _ = try await self.catchUp(tx)
            let rows = try await tx.connection.query(
                "SELECT (SELECT min(sequence) FROM payment_session_changes), (SELECT last FROM payment_session_change_counter)",
                logger: tx.logger)
            var first: Int64?
            var last: Int64 = 0
            for try await (oldest, newest) in rows.decode((Int64?, Int64?).self) {
                first = oldest
                last = newest ?? 0
            }
            return ChangeFeedState(first: first, last: last, consumers: try await Self.consumers(tx))
        }
    }

    /// `consumer`'s acknowledged position, or `nil`.
    public func position(consumer: String) async throws -> Int64? {
        try SessionValidation.validateIdentifier(consumer, field: "consumer")
        return try await read("read a consumer's position") { tx in try await Self.consumers(tx)[consumer] }
    }

    /// The feed's last number as it stands: one read, no numbering.
    func lastNumberedChange(pool: PostgresServers.Pool = .operations) async throws -> Int64 {
        try await read("read the feed's last number", pool: pool) { tx in try await Self.lastNumber(tx) }
    }

    private static func lastNumber(_ tx: PostgresTransaction) async throws -> Int64 {
        let rows = try await tx.connection.query("SELECT last FROM payment_session_change_counter", logger: tx.logger)
        var last: Int64 = 0
        for try await value in rows.decode(Int64.self) { last = value }
        return last
    }

    /// Numbers the changes committed so far that no open transaction holds back (one batch
    /// of the sequencer; see `PostgresFeedSequencer`).
    func sequenceChanges() async throws -> PostgresFeedSequencer.Batch {
        try await read("number changes", pool: .feed) { tx in
            try await PostgresFeedSequencer.sequence(on: tx.connection, logger: tx.logger)
        }
    }

    /// Numbers the changes committed before the call, waiting up to ``Options/feedCatchUp``
    /// for store transactions that hold them back: what every reader of the feed runs first.
    private func catchUp(_ tx: PostgresTransaction) async throws -> PostgresFeedSequencer.Batch {
        try await PostgresFeedSequencer.catchUp(on: tx.connection, timeout: options.feedCatchUp, logger: tx.logger)
    }

    /// Records that `consumer` handled every change up to `sequence`; a position only moves forward.
    public func acknowledge(consumer: String, upTo sequence: Int64) async throws {
        try SessionValidation.validateIdentifier(consumer, field: "consumer")
        // Numbered first: a position is checked against the changes committed before it.
        let last = try await read("number changes") { try await self.catchUp($0).last }
        try SessionRules.checkFeedPosition(sequence, last: last, field: "sequence")
        _ = try await transaction("acknowledge changes") { tx in
            try await tx.connection.query(
                """
                INSERT INTO payment_session_consumers (name, position) VALUES (\(consumer), \(sequence))
                ON CONFLICT (name) DO UPDATE SET position = GREATEST(payment_session_consumers.position, EXCLUDED.position)
                """, logger: tx.logger)
        }
    }

    /// Forgets `consumer`; `false` when there was no such consumer.
    @discardableResult
    public func removeConsumer(_ consumer: String) async throws -> Bool {
        try SessionValidation.validateIdentifier(consumer, field: "consumer")
        return try await transaction("remove a consumer") { tx in
            let rows = try await tx.connection.query(
                "DELETE FROM payment_session_consumers WHERE name = \(consumer) RETURNING name", logger: tx.logger)
            var removed = false
            for try await _ in rows { removed = true }
            return removed
        }
    }

    /// Deletes the changes every named consumer acknowledged and those older than
    /// ``Options/changeRetention``; returns how many. Always a prefix of the feed: the
    /// newest change to trim, by either rule, and every change before it.
    @discardableResult
    public func trimChanges() async throws -> Int {
        try await transaction("trim changes") { tx in try await Self.trimChanges(in: tx, retention: self.options.changeRetention) }
    }

    static func trimChanges(in tx: PostgresTransaction, retention: TimeInterval) async throws -> Int {
            let cutoff = tx.now - SessionRules.retentionMicroseconds(retention)
            let rows = try await tx.connection.query(
                """
                WITH bound AS (
                    SELECT GREATEST(
                        COALESCE((SELECT min(position) FROM payment_session_consumers), 0),
                        COALESCE((SELECT max(sequence) FROM payment_session_changes WHERE committed_at < \(PostgresTimestamp(cutoff))), 0)) AS upto
                )
                DELETE FROM payment_session_changes WHERE sequence <= (SELECT upto FROM bound) RETURNING sequence
                """, logger: tx.logger)
            var count = 0
            for try await _ in rows { count += 1 }
            return count
    }

    /// Returns once a change after `sequence` may exist, or after `timeout`. The store's one
    /// listening connection (see `PostgresChangeListener`) knows the feed's last number as
    /// of the latest notification: when it is past `sequence` this returns at once, else it
    /// sleeps until the listener reads new changes. While the listener is reconnecting, it
    /// sleeps a quarter second at most.
    public func waitForChanges(after sequence: Int64, timeout: Duration) async throws {
        try await prepareSchema()
        let (generation, listening, last) = listener.snapshot(feed)
        if let last, last > sequence { return }
        await listener.wait(
            beyond: generation, timeout: listening ? timeout : min(timeout, PostgresChangeListener.pollWhileDisconnected))
        try Task.checkCancellation()
    }

    /// The changes after `sequence` from what the listener read for this process's
    /// followers, when it holds them all; else ``changes(after:limit:)``.
    public func changesForFollower(after sequence: Int64, limit: Int) async throws -> [PaymentSessionChange] {
        if limit > 0, let page = listener.changes(after: sequence, limit: limit) { return page }
        return try await changes(after: sequence, limit: limit)
    }

    /// How the listener reaches the feed: through the feed's own pool.
    private var feed: PostgresChangeListener.Feed {
        PostgresChangeListener.Feed(
            listen: { heard in
                try await self.servers.client(.feed).withConnection { connection in
                    // Closed when the listener is cancelled: it is cancelled to reconnect when
                    // its connection seems dead, and postgres-nio would hand that connection
                    // back to the pool, where the next LISTEN would likely lease it again.
                    try await withTaskCancellationHandler {
                        try await connection.listen(on: PostgresChangeLog.channel) { notifications in
                            await heard()
                            for try await _ in notifications { await heard() }
                        }
                    } onCancel: {
                        let _: EventLoopFuture<Void> = connection.close()
                    }
                }
            },
            lastSequence: { try await self.lastNumberedChange(pool: .feed) },
            changes: { after, limit in
                try await self.readChanges(after: after, limit: limit, numberingFirst: false, pool: .feed)
            },
            numberPending: { try await self.sequenceChanges().last })
    }

    private static func consumers(_ tx: PostgresTransaction) async throws -> [String: Int64] {
        let rows = try await tx.connection.query("SELECT name, position FROM payment_session_consumers", logger: tx.logger)
        var positions: [String: Int64] = [:]
        for try await (name, position) in rows.decode((String, Int64).self) { positions[name] = position }
        return positions
    }

    private static func change(
        _ row: (Int64, String, String, String, String?, String?, PostgresTimestamp, String?)
    ) throws(PaymentSessionError) -> PaymentSessionChange {
        let (sequence, sessionID, cartID, kindText, before, after, committedAt, sessionText) = row
        func corrupt(_ reason: String) -> PaymentSessionError { .corruptRecord(key: "changes/\(sequence)", reason: reason) }
        guard let kind = PaymentSessionChange.Kind(rawValue: kindText) else { throw corrupt("unknown kind \(kindText)") }
        func status(_ text: String?) throws(PaymentSessionError) -> PaymentSessionStatus? {
            guard let text else { return nil }
            guard let status = PaymentSessionStatus(rawValue: text) else { throw corrupt("unknown status \(text)") }
            return status
        }
        var session: PaymentSession?
        if let sessionText {
            do {
                session = try PaymentSession(jsonText: sessionText)
            } catch {
                throw corrupt("session does not read: \(error)")
            }
        }
        return PaymentSessionChange(
            sequence: sequence, sessionID: sessionID, cartID: cartID, kind: kind, statusBefore: try status(before),
            statusAfter: try status(after), committedAt: Timestamp.date(microseconds: committedAt.microseconds), session: session)
    }
}
#endif
