import Foundation
import Synchronization
import LMDB

/// An `async` write request returning `R`, resumed exactly once: by cancellation while it waits,
/// or by the writer after the commit that holds it (or after it failed).
///
/// The exactly-once rule is kept by `Mutex`-guarded state, which is why the continuation
/// can be the unchecked kind (checked continuations cost an allocation and a check per
/// resume, on every async write).
final class AsyncWriteRequest<R: Sendable>: GroupCommitRequest, @unchecked Sendable {
    private enum Phase {
        case waiting, cancelled, applying, finished
    }

    private struct State {
        var phase = Phase.waiting
        var continuation: UnsafeContinuation<R, any Error>?
    }

    private let state = Mutex(State())
    /// Written only by the writer thread between `claim` and `finish`.
    private var result: R?
    private let body: @Sendable (PaymentSessionStore.WriteTransaction) throws -> R

    init(_ body: @escaping @Sendable (PaymentSessionStore.WriteTransaction) throws -> R) {
        self.body = body
    }

    /// Stores the continuation; `false` (and the continuation resumed with
    /// `CancellationError`) when the task was cancelled before it got here.
    func attach(_ continuation: UnsafeContinuation<R, any Error>) -> Bool {
        let attached = state.withLock { state in
            guard state.phase != .cancelled else { return false }
            state.continuation = continuation
            return true
        }
        if !attached { continuation.resume(throwing: CancellationError()) }
        return attached
    }

    /// The task was cancelled: resume now with `CancellationError` unless the writer
    /// has started applying the change (then it will be committed and reported).
    func cancel() {
        let waiting: UnsafeContinuation<R, any Error>?? = state.withLock { state in
            guard state.phase == .waiting else { return .none }
            state.phase = .cancelled
            defer { state.continuation = nil }
            return .some(state.continuation)
        }
        if case .some(let continuation?) = waiting { continuation.resume(throwing: CancellationError()) }
    }

    func claim() -> Bool {
        state.withLock { state in
            switch state.phase {
            case .waiting, .applying:
                state.phase = .applying
                return true
            case .cancelled, .finished:
                return false
            }
        }
    }

    func apply(_ tx: PaymentSessionStore.WriteTransaction) throws {
        result = try body(tx)
    }

    func finish(error: (any Error)?) {
        let waiting: UnsafeContinuation<R, any Error>?? = state.withLock { state in
            guard state.phase != .finished else { return .none }
            state.phase = .finished
            defer { state.continuation = nil }
            return .some(state.continuation)
        }
        guard case .some(let continuation?) = waiting else { return }
        if let error {
            continuation.resume(throwing: error)
        } else if let result {
            continuation.resume(returning: result)
        } else {
            continuation.resume(throwing: PaymentSessionError.lmdb(LMDBError(.badTransaction, operation: "group commit: no result")))
        }
    }
}
