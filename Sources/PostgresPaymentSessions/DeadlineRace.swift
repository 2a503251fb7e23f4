#if PostgreSQL
import Synchronization

/// The first of several results, delivered to one waiter: the operation's, or its
/// deadline's (see `PostgresPaymentSessionStore.withDeadline`).
final class DeadlineRace<R: Sendable>: Sendable {
    private struct State {
        var result: Result<R, any Error>?
        var waiter: CheckedContinuation<Result<R, any Error>, Never>?
    }
    private let state = Mutex(State())

    /// Delivers `result` unless another came first.
    func finish(with result: Result<R, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<Result<R, any Error>, Never>? in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: result)
    }

    /// The first result, once there is one.
    func value() async -> Result<R, any Error> {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Result<R, any Error>? in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

extension DeadlineRace {
    /// `work`'s result, or `expired()`'s error once `limit` has passed, whichever comes
    /// first, timed by a timer of its own (for what runs outside a store's watch).
    static func first(
        within limit: Duration, expired: @escaping @Sendable () -> any Error,
        _ work: @escaping @Sendable () async throws -> R
    ) async -> Result<R, any Error> {
        let race = DeadlineRace<R>()
        let timer = Task {
            try await Task.sleep(for: limit)
            race.finish(with: .failure(expired()))
        }
        defer { timer.cancel() }
        return await race.run(work)
    }

    /// `work`'s result, or `expired(why)`'s error once `watch` expires it (see
    /// ``OperationWatch``), whichever comes first; `expired(.statementTimeout)`'s in place
    /// of a failure that followed the watch closing the connection. `work` runs with the
    /// operation's ticket as ``OperationWatch/Ticket/current``. Timed by a timer of its own
    /// when the watch is not running.
    static func first(
        watchedBy watch: OperationWatch, expired: @escaping @Sendable (OperationWatch.Expiry) -> any Error,
        _ work: @escaping @Sendable () async throws -> R
    ) async -> Result<R, any Error> {
        let race = DeadlineRace<R>()
        guard let ticket = watch.begin(expire: { race.finish(with: .failure(expired($0))) }) else {
            return await first(within: watch.deadline, expired: { expired(.deadline) }, work)
        }
        defer { watch.end(ticket) }
        let result = await race.run { try await OperationWatch.Ticket.$current.withValue(ticket) { try await work() } }
        if case .failure(let error) = result, ticket.closedConnection, !(error is CancellationError) {
            // The lost connection this failure speaks of is the watch's doing.
            return .failure(expired(.statementTimeout))
        }
        return result
    }

    /// Runs `work` in a task of its own and returns the first result, its own or another
    /// delivered meanwhile (a deadline's). The task is its own so that the caller resumes
    /// at the deadline even when the work does not end when cancelled (postgres-nio was
    /// seen to leave a request pending for ever after a server crash). A work that lost
    /// the race, or whose caller was cancelled, is cancelled and left to end in its own
    /// time.
    private func run(_ work: @escaping @Sendable () async throws -> R) async -> Result<R, any Error> {
        let worker = Task {
            do {
                self.finish(with: .success(try await work()))
            } catch {
                self.finish(with: .failure(error))
            }
        }
        return await withTaskCancellationHandler {
            let result = await self.value()
            if case .failure = result { worker.cancel() }
            return result
        } onCancel: {
            worker.cancel()
        }
    }
}
#endif
