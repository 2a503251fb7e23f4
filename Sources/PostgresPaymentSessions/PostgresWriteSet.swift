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
/// and the operation runs as a transaction, which decides.
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
        var rows: [RowWrite] = []
    }

    private let state = Mutex(State())

    /// What was recorded.
    var recorded: State { state.withLock { $0 } }

    /// Whether the operation claimed an idempotency key (without reading it: the apply
    /// finds out whether it was free).
    var hasTentativeClaims: Bool { state.withLock { !$0.keyClaims.isEmpty } }

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

    /// `session`, noted as a row the decision rests on.
    func noting(_ session: PaymentSession) -> PaymentSession {
        expect(session)
        return session
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

/// An operation that cannot run optimistically (it reads a set of rows whose absence no
/// constraint checks, say a cart's sessions to delete them all): it runs as a transaction.
struct NeedsTransaction: Error {}
#endif
