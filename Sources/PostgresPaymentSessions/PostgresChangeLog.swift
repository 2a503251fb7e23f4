#if PostgreSQL
import Foundation
import Logging
import PaymentSessionsCore
import PostgresNIO
import Synchronization

/// The changes one transaction made, written as pending just before it commits, for the
/// sequencer to number (see ``PostgresFeedSequencer``).
///
/// They carry the transaction's id (the column's default, `pg_current_xact_id()`) and their
/// position in the transaction: the order the sequencer numbers them in.
final class PostgresChangeLog: Sendable {
    struct Entry: Sendable {
        var kind: PaymentSessionChange.Kind
        var before: PaymentSessionStatus?
        var after: PaymentSessionStatus?
        var sessionID: String
        var cartID: String
        var sessionJSON: String?
    }

    /// The channel followers listen on; the sequencer notifies it once per batch.
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

    /// The recorded changes, removed from the log.
    func take() -> [Entry] {
        entries.withLock { entries in
            defer { entries.removeAll() }
            return entries
        }
    }

    /// Writes the recorded changes as pending, in one statement; the caller commits next.
    /// Returns whether there were any.
    func flush(on connection: PostgresConnection, committedAt: Int64, logger: Logger) async throws -> Bool {
        let pending = take()
        guard !pending.isEmpty else { return false }
        for try await _ in try await connection.execute(
            InsertPendingChangesStatement(changes: pending, committedAt: committedAt), logger: logger)
        {}
        return true
    }
}
#endif
