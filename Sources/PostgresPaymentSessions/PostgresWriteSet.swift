#if PostgreSQL
import PaymentSessionsCore
import Synchronization

/// What an operation run optimistically decided: the carts it writes, the rows its decision
/// rests on (with the `updated_at` it read), and its writes in order. One statement,
/// ``PostgresApplyWrites``, applies them as its own transaction, if those rows are unchanged.
///
/// A select switch run as a transaction is seven round trips (`BEGIN`, two locking reads,
/// two updates, the pending changes, `COMMIT`); run so it is three: two plain reads and the
/// apply. The operation's code is the same either way: ``PostgresTransaction`` reads without
/// locks and records here instead of writing when it has a write set.
///
/// Every write moves a session's `updated_at` forward (the rules move it past the previous
/// one), so an unchanged `updated_at` is an unchanged row. What the operation read as absent
/// (no selected session, no session for a pair, a new key) is checked by the unique
/// constraints the writes meet: a refused insert raises ``PostgresCreateSession/refusedState``
/// and the operation runs as a transaction, which decides. A cart read whole (to delete its
/// sessions) is checked by its count of sessions, under the cart's lock.
final class PostgresWriteSet: Sendable {
    enum RowOperation: String, Sendable {
        case insert, update, delete
    }

    struct RowWrite: Sendable {
        var operation: RowOperation
        var session: PaymentSession
        var dataText: String
    }

    struct State: Sendable {
        var carts: [String] = []
        var expected: [(id: String, updatedAt: Int64)] = []
        var keyClaims: [(key: String, sessionID: String)] = []
        var keyReservations: [(key: String, sessionID: String)] = []
        /// Carts whose every session the operation read, and how many there were.
        var completeCarts: [(cart: String, count: Int)] = []
        var rows: [RowWrite] = []
    }

    private let state = Mutex(State())

    /// What was recorded.
    var recorded: State { state.withLock { $0 } }

    /// Whether the operation wrote anything (else there is nothing to apply).
    var isEmpty: Bool { state.withLock { $0.rows.isEmpty && $0.keyClaims.isEmpty && $0.keyReservations.isEmpty } }

    func lock(_ carts: some Sequence<String>) {
        state.withLock { state in
            for cart in carts where !state.carts.contains(cart) { state.carts.append(cart) }
        }
    }

    /// The operation's decision rests on `session` as read: the apply locks its cart and
    /// refuses if it changed.
    func expect(_ session: PaymentSession) {
        state.withLock { state in
            if !state.carts.contains(session.cartID) { state.carts.append(session.cartID) }
            guard !state.expected.contains(where: { $0.id == session.id }) else { return }
            state.expected.append((session.id, session.updatedMicroseconds))
        }
    }

    /// The operation's decision rests on `sessions` being all of `cart`'s (as read, before
    /// its own writes): the apply notes each, and refuses if the cart has another number
    /// of sessions, which, each of these unchanged, means another set.
    func expectComplete(cart: String, sessions: [PaymentSession]) {
        for session in sessions { expect(session) }
        state.withLock { state in
            if !state.carts.contains(cart) { state.carts.append(cart) }
            guard !state.completeCarts.contains(where: { $0.cart == cart }) else { return }
            state.completeCarts.append((cart, sessions.count))
        }
    }

    /// `session`, noted as a row the decision rests on.
    func noting(_ session: PaymentSession) -> PaymentSession {
        expect(session)
        return session
    }

    /// The server's `rows` for a read, as this operation's recorded writes leave them: a
    /// row it wrote is its last version (gone when deleted, dropped when it no longer
    /// matches), and a row it wrote that matches `predicate` is added; with `noting`, rows
    /// from the server that it did not write are noted (``expect(_:)``). So a unit of
    /// several writes reads its own writes, as in a transaction.
    func overlaying(
        _ rows: [PaymentSession], noting: Bool, matching predicate: (PaymentSession) -> Bool
    ) -> [PaymentSession] {
        let written = state.withLock { state in
            var latest: [String: RowWrite] = [:]
            for row in state.rows { latest[row.session.id] = row }
            return latest
        }
        var result: [PaymentSession] = []
        for row in rows {
            if let write = written[row.id] {
                if write.operation != .delete, predicate(write.session) { result.append(write.session) }
            } else {
                result.append(noting ? self.noting(row) : row)
            }
        }
        let seen = Set(rows.map(\.id))
        for (id, write) in written where !seen.contains(id) && write.operation != .delete && predicate(write.session) {
            result.append(write.session)
        }
        return result.sorted { $0.id < $1.id }
    }

    func write(_ operation: RowOperation, _ session: PaymentSession, dataText: String) {
        state.withLock { $0.rows.append(RowWrite(operation: operation, session: session, dataText: dataText)) }
    }

    func claim(key: String, for sessionID: String) {
        state.withLock { $0.keyClaims.append((key, sessionID)) }
    }

    func reserve(key: String, of sessionID: String) {
        state.withLock { $0.keyReservations.append((key, sessionID)) }
    }
}

/// An operation that cannot run optimistically (it reads a set of rows whose completeness
/// nothing checks, say the sessions a purge finds by age): it runs as a transaction.
struct NeedsTransaction: Error {}
#endif
