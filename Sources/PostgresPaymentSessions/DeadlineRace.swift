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
