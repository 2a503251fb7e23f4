#if PostgreSQL
import Synchronization

/// Which carts an operation's transaction has locked, and whether it locked each before the
/// transaction had an id: the order the feed depends on (see ``PostgresFeedSequencer``).
///
/// A transaction gets its id at its first write or row lock. A cart locked after that, by
/// a transaction that found the cart only as it went (a unit of writes on several carts, a
/// purge meeting a session updated meanwhile), may have been written by another transaction
/// that got a larger id and committed first. The transaction then runs to its end, is
/// rolled back instead of committed, and runs again with every cart it met locked first,
/// in one statement in sorted order, before its first write. An operation on one cart
/// never runs twice for this.
///
/// One value lives through every attempt of one operation; ``beginAttempt()`` clears what
/// belongs to an attempt.
final class PostgresCartLocks: Sendable {
    private struct State {
        /// Carts the next attempt locks before anything else.
        var lockFirst: Set<String> = []
        /// Carts this attempt holds.
        var held: Set<String> = []
        /// Whether this attempt's transaction has an id (it wrote or locked a row).
        var hasTransactionID = false
        /// Whether this attempt locked a cart after it had an id.
        var outOfOrder = false
    }

    private let state: Mutex<State>

    /// Locks for an operation that will lock `carts` first, in its first attempt too: a
    /// unit of writes names most of its carts before it runs (its creates'), and locking
    /// them as it meets them would put every cart after the first out of order and run
    /// the unit twice.
    init(lockingFirst carts: some Sequence<String> = [String]()) {
        state = Mutex(State(lockFirst: Set(carts)))
    }

    /// Starts an attempt: returns the carts to lock first, sorted.
    func beginAttempt() -> [String] {
        state.withLock { state in
            state.held = []
            state.hasTransactionID = false
            state.outOfOrder = false
            return state.lockFirst.sorted()
        }
    }

    /// Of `carts`, those this attempt does not hold yet, sorted and without repeats.
    func notHeld(_ carts: some Sequence<String>) -> [String] {
        state.withLock { state in Set(carts).subtracting(state.held).sorted() }
    }

    /// Records that the attempt now holds `carts`: in order when the transaction had no id
    /// before the statement that took them.
    func didLock(_ carts: some Sequence<String>, hadTransactionID: Bool) {
        state.withLock { state in
            for cart in carts where state.held.insert(cart).inserted && hadTransactionID {
                state.outOfOrder = true
                state.lockFirst.insert(cart)
            }
        }
    }

    /// Whether the transaction has an id.
    var hasTransactionID: Bool { state.withLock { $0.hasTransactionID } }

    /// Records that the transaction wrote or locked a row, and so has an id.
    func didWrite() {
        state.withLock { $0.hasTransactionID = true }
    }

    /// Throws ``RetryTransaction`` when the attempt locked a cart out of order: called
    /// before its commit.
    func checkOrder() throws {
        if state.withLock({ $0.outOfOrder }) {
            throw RetryTransaction(reason: "locked a cart after the transaction's first write")
        }
    }
}
#endif
