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
    /// first.
    ///
    /// The work runs in a task of its own so that the caller resumes at the deadline even
    /// when the work does not end when cancelled (postgres-nio was seen to leave a request
    /// pending for ever after a server crash). A work that lost the race, or whose caller
    /// was cancelled, is cancelled and left to end in its own time.
    static func first(
        within limit: Duration, expired: @escaping @Sendable () -> any Error,
        _ work: @escaping @Sendable () async throws -> R
    ) async -> Result<R, any Error> {
        let race = DeadlineRace<R>()
        let worker = Task {
            do {
                race.finish(with: .success(try await work()))
            } catch {
                race.finish(with: .failure(error))
            }
        }
        let timer = Task {
            try await Task.sleep(for: limit)
            race.finish(with: .failure(expired()))
        }
        return await withTaskCancellationHandler {
            let result = await race.value()
            timer.cancel()
            if case .failure = result { worker.cancel() }
            return result
        } onCancel: {
            worker.cancel()
        }
    }
}
