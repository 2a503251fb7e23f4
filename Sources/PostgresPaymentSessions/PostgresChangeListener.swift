#if PostgreSQL
import Logging
import PaymentSessionsCore
import PostgresNIO
import Synchronization

/// One `LISTEN` connection per store, shared by every follower in the process, and the
/// changes it has read for them.
///
/// A follower that waits for changes needs to hear the sequencer's notification. Holding a
/// pooled connection per waiting follower took the pool from everything else (hundreds of
/// open event streams left no connection for a create), and each follower reading the feed
/// after each notification multiplied the reads by the followers. So one task holds one
/// connection and listens; on each notification it reads the new changes once, keeps the
/// latest few thousand, and wakes the waiters, whose next page comes from memory.
/// (The notification's payload is not trusted: every store in the database notifies the
/// same channel, so the listener reads the feed itself and wakes no one when nothing moved.)
///
/// When the connection is lost (a restart, a failover), the listener forgets what it read
/// and wakes every waiter (a change may have gone unheard, so they read the feed
/// themselves), then connects again with a growing pause; meanwhile waiters sleep for a
/// short while only, so followers poll until it is back.
final class PostgresChangeListener: Sendable {
    /// How to reach the feed, given by the store when the first follower waits.
    struct Feed: Sendable {
        /// Holds a connection listening; calls `heard` once the `LISTEN` is in place and
        /// then on each notification.
        let listen: @Sendable (_ heard: @escaping @Sendable () async -> Void) async throws -> Void
        /// The feed's last number.
        let lastSequence: @Sendable () async throws -> Int64
        /// Numbered changes after a sequence, up to a limit, without numbering any.
        let changes: @Sendable (_ after: Int64, _ limit: Int) async throws -> [PaymentSessionChange]
        /// Runs one batch of the sequencer (which notifies when it numbers anything); the
        /// feed's last number after it.
        let numberPending: @Sendable () async throws -> Int64
    }

    private struct Waiter {
        let continuation: CheckedContinuation<Void, Never>
        let deadline: ContinuousClock.Instant
    }

    private struct State {
        /// Moves when new changes are read, and whenever the connection comes or goes.
        var generation: UInt64 = 0
        var listening = false
        /// Every change after `coveredFrom` is in `recent` (nil: nothing is covered).
        var coveredFrom: Int64?
        var recent: [PaymentSessionChange] = []
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
        var task: Task<Void, Never>?
        var feed: Feed?
        /// Ends the waits whose timeout passed; runs while anyone waits. One timer for every
        /// waiter: a task and a timer per wait cost more than the wait, with hundreds of them.
        var ticker: Task<Void, Never>?
        var stopped = false

        var last: Int64? { recent.last?.sequence ?? coveredFrom }
    }

    private let state = Mutex(State())
    private let logger: Logger
    /// How long a waiter sleeps at most while the listener is not connected.
    static let pollWhileDisconnected: Duration = .milliseconds(250)
    /// How many changes the listener keeps for followers that are behind.
    static let keptChanges = 4096

    init(logger: Logger) {
        self.logger = logger
    }

    /// The generation to wait beyond, whether the listener is connected, and the feed's
    /// last number as the listener knows it (nil when it does not). Starts the listener.
    func snapshot(_ feed: @autoclosure () -> Feed) -> (generation: UInt64, listening: Bool, last: Int64?) {
        state.withLock { state in
            if state.task == nil && !state.stopped {
                let feed = feed()
                state.feed = feed
                state.task = Task { await self.loop(feed) }
            }
            return (state.generation, state.listening, state.listening ? state.last : nil)
        }
    }

    /// The changes after `sequence`, from memory, when the listener is connected and holds
    /// every change after it; `nil` otherwise (the caller reads the feed).
    func changes(after sequence: Int64, limit: Int) -> [PaymentSessionChange]? {
        state.withLock { state in
            guard state.listening, let coveredFrom = state.coveredFrom, sequence >= coveredFrom,
                sequence <= (state.last ?? coveredFrom)
            else { return nil }
            let start = state.recent.firstIndex { $0.sequence > sequence } ?? state.recent.endIndex
            return Array(state.recent[start...].prefix(limit))
        }
    }

    /// Returns once the listener read new changes after `generation`, or the connection came
    /// or went, or `timeout` passed (give or take a tenth of a second), or the task is
    /// cancelled.
    func wait(beyond generation: UInt64, timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        let id = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Bool in
                    if state.generation > generation || state.stopped || Task.isCancelled { return true }
                    state.waiters[id] = Waiter(continuation: continuation, deadline: deadline)
                    if state.ticker == nil { state.ticker = Task { await self.tick() } }
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.continuation.resume()
        }
    }

    /// Every tenth of a second, ends the waits whose time is up; every second, runs a batch
    /// of the sequencer. A change left pending by a process that ended before numbering it
    /// (a command-line run, a killed writer) is numbered only by a later batch: this is that
    /// batch while followers wait here, one per process, where each follower ran its own.
    ///
    /// The batch also checks the listener: one that has not heard, a second later, of what
    /// the previous batch found numbered (its notification long delivered), or a batch that
    /// finds the server gone, means its connection is dead without knowing it (a partition,
    /// a failover to another host), and it connects again. (Comparing with the same batch
    /// would find it behind whenever writes are steady: their notifications are in flight.)
    private func tick() async {
        var ticks = 0
        var numberedBefore: Int64?
        while true {
            try? await Task.sleep(for: .milliseconds(100))
            ticks += 1
            if ticks.isMultiple(of: 10), let feed = state.withLock({ $0.feed }) {
                do {
                    let heard = state.withLock { $0.listening ? $0.last : nil }
                    if let heard, let numberedBefore, heard < numberedBefore {
                        reconnect()
                    }
                    numberedBefore = try await feed.numberPending()
                } catch where PostgresServers.meansServerGone(error) {
                    reconnect()
                    numberedBefore = nil
                } catch {
                    numberedBefore = nil
                }
            }
            let now = ContinuousClock.now
            let (due, done) = state.withLock { state -> ([Waiter], Bool) in
                let due = state.waiters.filter { $0.value.deadline <= now }
                for id in due.keys { state.waiters.removeValue(forKey: id) }
                if state.waiters.isEmpty { state.ticker = nil }
                return (Array(due.values), state.waiters.isEmpty)
            }
            for waiter in due { waiter.continuation.resume() }
            if done { return }
        }
    }

    /// Drops the connection and connects again (an operation found the server gone: the
    /// listening connection may not know yet).
    func reconnect() {
        let task = state.withLock { state -> Task<Void, Never>? in
            defer { state.task = nil }
            return state.task
        }
        task?.cancel()
        update { $0.listening = false }
    }

    /// Ends the listener and releases every waiter (the store stops running).
    func stop() {
        let task = state.withLock { state -> Task<Void, Never>? in
            state.stopped = true
            defer { state.task = nil }
            return state.task
        }
        task?.cancel()
        update { $0.listening = false }
    }

    /// Changes the state and wakes every waiter.
    private func update(_ change: (inout State) -> Void) {
        let woken = state.withLock { state -> [Waiter] in
            change(&state)
            state.generation += 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in woken { waiter.continuation.resume() }
    }

    /// Reads what was numbered since the listener last looked; wakes the waiters when
    /// something was.
    private func readNew(_ feed: Feed, connecting: Bool) async {
        do {
            if connecting || state.withLock({ $0.coveredFrom == nil }) {
                _ = try await feed.numberPending()
                let last = try await feed.lastSequence()
                update { state in
                    state.coveredFrom = last
                    state.recent = []
                    state.listening = true
                }
                return
            }
            var found: [PaymentSessionChange] = []
            while true {
                guard let last = state.withLock({ $0.last }) else { return }
                let page = try await feed.changes(found.last?.sequence ?? last, 1000)
                found += page
                if page.count < 1000 { break }
            }
            guard !found.isEmpty else { return }
            update { state in
                guard let last = state.last, found.first?.sequence == last + 1 else {
                    state.coveredFrom = nil
                    return
                }
                state.recent += found
                if state.recent.count > Self.keptChanges {
                    let dropped = state.recent.count - Self.keptChanges
                    state.coveredFrom = state.recent[dropped - 1].sequence
                    state.recent.removeFirst(dropped)
                }
            }
        } catch {
            // Trimmed, or the read failed: followers read the feed themselves until the
            // listener connects again.
            update { $0.coveredFrom = nil }
        }
    }

    private func loop(_ feed: Feed) async {
        var pause: Duration = .milliseconds(100)
        while !Task.isCancelled {
            let connected = Atomic<Bool>(false)
            do {
                try await feed.listen { [self] in
                    let first = !connected.exchange(true, ordering: .relaxed)
                    await readNew(feed, connecting: first)
                }
            } catch {
                if Task.isCancelled { break }
                logger.info(
                    "the change listener lost its connection; connecting again",
                    metadata: ["error": "\(error)", "pause": "\(pause)"])
            }
            update { state in
                state.listening = false
                state.coveredFrom = nil
                state.recent = []
            }
            if connected.load(ordering: .relaxed) { pause = .milliseconds(100) }
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, .seconds(5))
        }
    }
}
#endif
