#if PostgreSQL
import Logging
import PaymentSessionsCore
import PostgresNIO
import Synchronization

/// The clock of a store's operations: one task, run by the store's `run()`, looks every
/// tick for statements past ``PostgresPaymentSessionStore/Options/operationTimeout`` and
/// operations past their deadline, so that an operation costs a lock and a clock read
/// instead of timers and tasks of its own.
///
/// An operation registers when it starts (``begin(expire:)``), says which connection its
/// statements run on once it has one (``statementsStarted(on:)``), and leaves when it ends
/// (``end(_:)``). A statement past its timeout has its connection closed: a server that
/// crashed without a word would otherwise leave it unanswered for ever, and closing fails
/// it. An operation past its deadline (twice the timeout, the wait for a connection
/// included) is told to give up, whatever its statements are doing.
final class OperationWatch: Sendable {
    /// One registered operation, carried as a task-local value to the statements it runs.
    final class Ticket: Sendable {
        let watch: OperationWatch
        let id: Int
        private let closed = Atomic<Bool>(false)

        init(watch: OperationWatch, id: Int) {
            self.watch = watch
            self.id = id
        }

        /// Whether the watch closed the operation's connection under a statement past its
        /// timeout (the failure that follows is that timeout).
        var closedConnection: Bool { closed.load(ordering: .acquiring) }

        fileprivate func markClosed() { closed.store(true, ordering: .releasing) }

        /// The ticket of the operation the current task runs, if it is watched.
        @TaskLocal static var current: Ticket?
    }

    /// Why an operation was told to give up.
    enum Expiry: Sendable {
        /// It outlived its deadline.
        case deadline
        /// A statement went unanswered past the timeout, and the watch closed its connection.
        case statementTimeout
        /// The store stopped running (its `run()` ended) before it finished.
        case stopped
    }

    /// What the watch knows of one operation.
    struct Watched {
        let ticket: Ticket
        let started: ContinuousClock.Instant
        let expire: @Sendable (Expiry) -> Void
        var connection: PostgresConnection?
        var statementsSince: ContinuousClock.Instant?
        var connectionClosed = false
        var expired = false
    }

    /// What a sweep does.
    enum Action {
        case close(PostgresConnection, Ticket)
        case expire(@Sendable (Expiry) -> Void, Expiry)
    }

    private struct State {
        var running = false
        var nextID = 0
        var watched: [Int: Watched] = [:]
    }

    private let state = Mutex(State())
    /// How long a statement may go unanswered before its connection is closed.
    let statementTimeout: Duration
    /// How long an operation may take, from its start.
    var deadline: Duration { statementTimeout * 2 }

    init(statementTimeout: Duration) {
        self.statementTimeout = statementTimeout
    }

    /// Registers an operation starting now; `expire` is called once if it outlives its
    /// deadline or the watch stops first. `nil` when the watch is not running (the caller
    /// then keeps time itself).
    func begin(expire: @escaping @Sendable (Expiry) -> Void) -> Ticket? {
        let now = ContinuousClock.now
        return state.withLock { state -> Ticket? in
            guard state.running else { return nil }
            state.nextID &+= 1
            let ticket = Ticket(watch: self, id: state.nextID)
            state.watched[state.nextID] = Watched(ticket: ticket, started: now, expire: expire)
            return ticket
        }
    }

    /// The operation's statements now run on `connection`, leased for them.
    func statementsStarted(_ ticket: Ticket, on connection: PostgresConnection) {
        let now = ContinuousClock.now
        state.withLock { state in
            state.watched[ticket.id]?.connection = connection
            state.watched[ticket.id]?.statementsSince = now
        }
    }

    /// The operation's statements are done and its connection back in the pool.
    func statementsEnded(_ ticket: Ticket) {
        state.withLock { state in
            state.watched[ticket.id]?.connection = nil
            state.watched[ticket.id]?.statementsSince = nil
        }
    }

    /// The operation ended: the watch forgets it.
    func end(_ ticket: Ticket) {
        _ = state.withLock { $0.watched.removeValue(forKey: ticket.id) }
    }

    /// Sweeps every tick until the task is cancelled; then every operation still
    /// registered is expired, so that none waits for a watch that is gone.
    func run(logger: Logger) async {
        state.withLock { $0.running = true }
        let tick = Self.tick(for: statementTimeout)
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            perform(sweep(at: .now), logger: logger)
        }
        let left = state.withLock { state -> [Action] in
            state.running = false
            return state.watched.values.filter { !$0.expired }.map { .expire($0.expire, .stopped) }
        }
        perform(left, logger: logger)
    }

    /// How often the watch looks: a tenth of the timeout, between 5 ms and a quarter of a
    /// second, so that a timeout fires at most a tenth late without a busy clock.
    static func tick(for timeout: Duration) -> Duration {
        min(max(timeout / 10, .milliseconds(5)), .milliseconds(250))
    }

    /// What is due at `now`, each at most once per operation.
    func sweep(at now: ContinuousClock.Instant) -> [Action] {
        state.withLock { state in
            var actions: [Action] = []
            for (id, watched) in state.watched {
                let due = Self.due(watched, at: now, statementTimeout: statementTimeout, deadline: deadline)
                if due.close, let connection = watched.connection {
                    state.watched[id]?.connectionClosed = true
                    actions.append(.close(connection, watched.ticket))
                }
                if due.expire {
                    state.watched[id]?.expired = true
                    actions.append(.expire(watched.expire, .deadline))
                }
            }
            return actions
        }
    }

    /// Whether `watched` is due for its connection to be closed or for expiry at `now`.
    static func due(
        _ watched: Watched, at now: ContinuousClock.Instant, statementTimeout: Duration, deadline: Duration
    ) -> (close: Bool, expire: Bool) {
        let close =
            !watched.connectionClosed && watched.connection != nil
            && (watched.statementsSince.map { now - $0 >= statementTimeout } ?? false)
        let expire = !watched.expired && now - watched.started >= deadline
        return (close, expire)
    }

    private func perform(_ actions: [Action], logger: Logger) {
        for action in actions {
            switch action {
            case .close(let connection, let ticket):
                ticket.markClosed()
                logger.warning(
                    "closing a connection whose statement got no answer", metadata: ["timeout": "\(statementTimeout)"])
                // Not waited for: the sweep must not stall on a server that says nothing.
                let _: EventLoopFuture<Void> = connection.close()
            case .expire(let expire, let why):
                expire(why)
            }
        }
    }
}
#endif
