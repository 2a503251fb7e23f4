import Foundation
import Logging
import PaymentSessionsCore
import PostgresNIO
import Synchronization

/// The changes one transaction made, numbered and written just before it commits.
///
/// Numbers come from the one row of `payment_session_change_counter`, taken last: the
/// transaction that takes it holds its lock only until its `COMMIT`, so transactions
/// number their changes in the order they commit, and a number is never taken by a
/// transaction that then rolls back. The feed is gap-free and in commit order, which a
/// sequence (`BIGSERIAL`) would not give: its values are taken when a row is inserted, and
/// transactions commit in another order, or not at all. The price is that writers with
/// changes queue on that row for the span of their commits (not of their transactions);
/// it is the one thing writers on different carts share.
final class PostgresChangeLog: Sendable {
    struct Entry: Sendable {
        var kind: PaymentSessionChange.Kind
        var before: PaymentSessionStatus?
        var after: PaymentSessionStatus?
        var sessionID: String
        var cartID: String
        var sessionJSON: String?
    }

    /// The channel followers listen on; a commit with changes notifies it.
    static let channel = "payment_session_changes"

    private let entries = Mutex<[Entry]>([])

    func record(
        _ kind: PaymentSessionChange.Kind, before: PaymentSession?, after: PaymentSession?, sessionID: String, cartID: String
    ) {
        let entry = Entry(
            kind: kind, before: before?.status, after: after?.status, sessionID: sessionID, cartID: cartID,
            sessionJSON: after?.jsonText())
        entries.withLock { $0.append(entry) }
    }

    /// Numbers and writes the recorded changes, and notifies followers (delivered at
    /// commit); the caller commits next.
    func flush(on connection: PostgresConnection, committedAt: Int64, logger: Logger) async throws {
        let pending = entries.withLock { entries in
            defer { entries.removeAll() }
            return entries
        }
        guard !pending.isEmpty else { return }
        // One round trip: take the numbers, write the changes (arrays bound as parameters,
        // one row each, numbered in order), notify the followers.
        let count = Int64(pending.count)
        let rows = try await connection.query(
            """
            WITH counter AS (
                UPDATE payment_session_change_counter SET last = last + \(count) RETURNING last
            ), written AS (
                INSERT INTO payment_session_changes
                    (sequence, session_id, cart_id, kind, status_before, status_after, committed_at_us, session)
                SELECT counter.last - \(count) + changes.position, session_id, cart_id, kind, NULLIF(status_before, ''),
                    NULLIF(status_after, ''), \(committedAt), NULLIF(session, '')
                FROM counter, unnest(\(pending.map(\.sessionID))::TEXT[], \(pending.map(\.cartID))::TEXT[],
                    \(pending.map(\.kind.rawValue))::TEXT[], \(pending.map { $0.before?.rawValue ?? "" })::TEXT[],
                    \(pending.map { $0.after?.rawValue ?? "" })::TEXT[], \(pending.map { $0.sessionJSON ?? "" })::TEXT[])
                    WITH ORDINALITY AS changes (session_id, cart_id, kind, status_before, status_after, session, position)
                RETURNING sequence
            )
            SELECT pg_notify(\(Self.channel), last::TEXT), (SELECT count(*) FROM written) FROM counter
            """, logger: logger)
        var written: Int64?
        for try await (_, inserted) in rows.decode((String, Int64).self) { written = inserted }
        guard written == count else {
            throw PaymentSessionError.corruptRecord(
                key: "payment_session_change_counter", reason: "the counter row is missing, or the changes were not written")
        }
    }
}
