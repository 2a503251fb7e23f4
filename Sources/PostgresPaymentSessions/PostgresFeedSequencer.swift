#if PostgreSQL
import Logging
import PaymentSessionsCore
import PostgresNIO
import Synchronization

/// Numbers the changes writers leave in `payment_session_pending_changes`: the one place
/// where the feed is put in order, so that no writer waits for another's commit.
///
/// A write inserts its changes with its own transaction id (`pg_current_xact_id()`) and
/// their position in the transaction, and commits; it takes no row, lock or notification
/// that writers of other carts take. The sequencer (the schema's
/// `payment_session_sequence_changes`, one statement) then, under a transaction-level
/// advisory lock that any store process may take:
/// 1. finds the **horizon**: the smallest id of this store's writers still running, or
///    else the next id to be given out. A writer of this store holds a cart's advisory lock
///    from before it has an id until it ends, so they are the transactions in `pg_locks`
///    that hold one of the store's cart locks and an id;
/// 2. moves every pending change below the horizon into `payment_session_changes`,
///    numbered densely after the last number (`payment_session_change_counter`), in
///    `(xact, position)` order;
/// 3. notifies followers once per batch.
///
/// No transaction below the horizon can still add a change, so a number is never given
/// before a change that should come first: the feed stays gap-free, and every committed
/// change appears once. Transactions that are not this store's writers (other schemas,
/// other applications, a long report) do not hold the horizon back, as the cluster-wide
/// `pg_snapshot_xmin` would.
///
/// Transaction ids are taken at a transaction's first write, not at its commit. For a
/// session's changes to be in commit order, a write transaction locks each cart it writes
/// (`payment_session_lock_cart`) before it has an id: a transaction that then changes the
/// cart after another's commit got its id after that commit. ``PostgresCartLocks`` keeps
/// that order.
///
/// A store write transaction left open (a stopped process, a debugger) holds the horizon
/// back: changes committed after it began stay pending, never lost or reordered, and the
/// feed catches up when it ends.
///
/// Each store process runs a sequencer loop beside its pool (``PostgresPaymentSessionStore/run()``),
/// woken after each of its commits with changes and again while committed changes wait
/// behind the horizon; readers of the feed run batches before they read, so a process
/// that reads the feed sees every change committed before (unless held back), also from
/// processes that exited before their loop ran.
final class PostgresFeedSequencer: Sendable {
    /// Mixed into `hashtext(schema)`, the first key of a cart's advisory lock (`hashtext(cart)`
    /// is the second).
    static let cartLockSeed: Int32 = 0x5053_4331
    /// The seed of `hashtextextended(schema)`, the key of the sequencer's advisory lock.
    static let sequencerLockSeed: Int64 = 0x5053_4332

    /// What one batch did.
    struct Batch: Sendable, Equatable {
        /// Changes numbered by this batch.
        var moved: Int64
        /// Committed changes left pending (of transactions below the target, when one was
        /// given): their transactions are above the horizon.
        var heldBack: Int64
        /// The feed's last number after the batch.
        var last: Int64
        /// Above the id of every transaction that had ended when the batch began (`xid8` as text).
        var nextTransaction: String
    }

    /// The pause before the next batch while changes wait behind the horizon, at first
    /// and at most.
    static let shortestPause = Duration.milliseconds(1)
    static let longestPause = Duration.milliseconds(200)

    private let wakeUps: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init() {
        (wakeUps, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks the loop for a batch soon: called after a commit that wrote changes.
    func wakeUp() {
        wake.yield()
    }

    /// Runs one batch on `connection`, outside any transaction of its own (the function
    /// is one statement, so one transaction). With a `target`, only the changes of
    /// transactions below it count as held back.
    static func sequence(on connection: PostgresConnection, target: String? = nil, logger: Logger) async throws -> Batch {
        let rows = try await connection.execute(SequenceChanges(target: target), logger: logger)
        for try await (moved, heldBack, last, next) in rows {
            return Batch(moved: moved, heldBack: heldBack, last: last, nextTransaction: next)
        }
        throw PaymentSessionError.corruptRecord(
            key: "payment_session_change_counter", reason: "the sequencer returned no row: the counter row is missing")
    }

    /// Runs batches until every change committed before the first one is numbered, or
    /// `timeout` has passed (a transaction left open elsewhere holds them back): what a
    /// reader of the feed runs, so that it sees what committed before it asked.
    static func catchUp(on connection: PostgresConnection, timeout: Duration, logger: Logger) async throws -> Batch {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var batch = try await sequence(on: connection, logger: logger)
        let target = batch.nextTransaction
        var pause = Duration.milliseconds(1)
        while batch.heldBack > 0 && clock.now < deadline {
            try await Task.sleep(for: min(pause, deadline - clock.now))
            pause = min(pause * 2, .milliseconds(50))
            batch = try await sequence(on: connection, target: target, logger: logger)
        }
        return batch
    }

    /// Runs batches when woken, until the task is cancelled: again while committed changes
    /// wait behind the horizon, after a pause that grows only while batches number nothing
    /// (a transaction held open elsewhere) and starts short again once one does (under a
    /// steady load the horizon moves every few milliseconds, and a pause grown to its cap
    /// would hold a change back that long); after a failure, a few more times, then at the
    /// next wake-up (readers sequence too, so nothing waits for ever).
    func run(_ batch: @escaping @Sendable () async throws -> Batch, logger: Logger) async {
        for await _ in wakeUps {
            var pause = Self.shortestPause
            var failures = 0
            while !Task.isCancelled {
                do {
                    let result = try await batch()
                    failures = 0
                    if result.heldBack == 0 { break }
                    if result.moved > 0 { pause = Self.shortestPause }
                } catch {
                    if Task.isCancelled { return }
                    failures += 1
                    logger.notice(
                        "could not number the feed's pending changes",
                        metadata: ["error": "\(error)", "attempt": "\(failures)"])
                    if failures >= 5 { break }
                }
                do { try await Task.sleep(for: pause) } catch { return }
                pause = min(pause * 2, Self.longestPause)
            }
        }
    }
}

/// `payment_session_sequence_changes(target)` as a prepared statement.
struct SequenceChanges: PostgresPreparedStatement {
    static let name = "payment_session_sequence_changes"
    static let sql = "SELECT moved, held_back, last, next_xact FROM payment_session_sequence_changes($1)"
    typealias Row = (Int64, Int64, Int64, String)

    var target: String?

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(target)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
#endif
