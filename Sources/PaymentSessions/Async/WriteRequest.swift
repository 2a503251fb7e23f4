import Foundation

/// One caller's write waiting for the group-commit writer.
protocol GroupCommitRequest: AnyObject, Sendable {
    /// Marks the request as being applied; `false` when it was cancelled first (skip it).
    func claim() -> Bool
    /// Runs the caller's closure in (nested) transaction `tx`, keeping its result.
    func apply(_ tx: PaymentSessionStore.WriteTransaction) throws
    /// Resumes the caller: with its result once the batch committed, or with `error`.
    func finish(error: (any Error)?)
}

/// A write request returning `R`, resumed exactly once: by cancellation while it waits,
/// or by the writer after the commit that holds it (or after it failed).
final class WriteRequest<R: Sendable>: GroupCommitRequest, @unchecked Sendable {
    private enum State {
        case waiting, cancelled, applying, finished
    }

    private let lock = NSLock()
    private var state = State.waiting
    private var continuation: CheckedContinuation<R, any Error>?
    /// Written only by the writer thread between `claim` and `finish`.
    private var result: R?
    private let body: @Sendable (PaymentSessionStore.WriteTransaction) throws -> R

    init(_ body: @escaping @Sendable (PaymentSessionStore.WriteTransaction) throws -> R) {
        self.body = body
    }

    /// Stores the continuation; `false` (and the continuation resumed with
    /// `CancellationError`) when the task was cancelled before it got here.
    func attach(_ continuation: CheckedContinuation<R, any Error>) -> Bool {
        lock.lock()
        if state == .cancelled {
            lock.unlock()
            continuation.resume(throwing: CancellationError())
            return false
        }
        self.continuation = continuation
        lock.unlock()
        return true
    }

    /// The task was cancelled: resume now with `CancellationError` unless the writer
    /// has started applying the change (then it will be committed and reported).
    func cancel() {
        lock.lock()
        guard state == .waiting else {
            lock.unlock()
            return
        }
        state = .cancelled
        let waiting = continuation
        continuation = nil
        lock.unlock()
        waiting?.resume(throwing: CancellationError())
    }

    func claim() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        switch state {
        case .waiting, .applying:
            state = .applying
            return true
        case .cancelled, .finished:
            return false
        }
    }

    func apply(_ tx: PaymentSessionStore.WriteTransaction) throws {
        result = try body(tx)
    }

    func finish(error: (any Error)?) {
        lock.lock()
        guard state != .finished else {
            lock.unlock()
            return
        }
        state = .finished
        let waiting = continuation
        continuation = nil
        lock.unlock()
        if let error {
            waiting?.resume(throwing: error)
        } else if let result {
            waiting?.resume(returning: result)
        } else {
            waiting?.resume(throwing: PaymentSessionError.storage(.init(.badTransaction, operation: "group commit: no result")))
        }
    }
}
