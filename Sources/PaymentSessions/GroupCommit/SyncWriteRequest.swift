import Foundation
import LMDB

/// What the group-commit writer needs of a synchronous caller's write, whatever its result
/// type: to wake the caller with its outcome, or to hand it the lead.
///
/// A synchronous caller blocks until its write is committed, so its closure (which is not
/// `Sendable`, and may capture the caller's locals) can run on the leader's thread while the
/// caller sleeps, as `DispatchQueue.sync` runs a closure on the queue's thread: the caller's
/// state is never touched by two threads at once, and the wake-up orders the memory.
class SyncWriteRequestBase: @unchecked Sendable {
    private enum Phase {
        case running, waiting, leading, finished
    }

    /// Guarded by the writer's lock until the request is queued, then by `semaphore`'s
    /// hand-over: one thread writes it before signalling, the woken caller reads it after.
    private var phase = Phase.running
    private var semaphore: DispatchSemaphore?

    /// Called under the writer's lock before the request is queued: the caller will sleep.
    /// (A caller that leads at once never allocates a semaphore.)
    final func prepareToWait() {
        phase = .waiting
        semaphore = DispatchSemaphore(value: 0)
    }

    /// Sleeps until a leader has finished the request (`false`) or handed this caller the
    /// lead (`true`).
    final func waitForOutcomeOrLead() -> Bool {
        semaphore?.wait()
        return phase == .leading
    }

    /// Wakes the caller to lead the next batch. Called under the writer's lock, on a request
    /// just removed from the queue.
    final func handLead() {
        phase = .leading
        semaphore?.signal()
    }

    /// Marks the outcome as final and wakes a sleeping caller.
    final func markFinished() {
        phase = .finished
        semaphore?.signal()
    }

    final var isFinished: Bool { phase == .finished }
}

/// A synchronous caller's write transaction closure in a shared commit.
///
/// The closure is held only until the request is finished: the store wraps it with
/// `withoutActuallyEscaping`, which checks that nothing keeps it once the call returns.
final class SyncWriteRequest<R>: SyncWriteRequestBase, GroupCommitRequest, @unchecked Sendable {
    private var body: ((PaymentSessionStore.WriteTransaction) throws -> R)?
    private var outcome: Result<R, any Error>?

    init(_ body: @escaping (PaymentSessionStore.WriteTransaction) throws -> R) {
        self.body = body
    }

    func claim() -> Bool { !isFinished }

    func apply(_ tx: PaymentSessionStore.WriteTransaction) throws {
        guard let body else { throw LMDBError(.badTransaction, operation: "group commit: write applied after it finished") }
        outcome = .success(try body(tx))
    }

    func finish(error: (any Error)?) {
        guard !isFinished else { return }
        if let error {
            outcome = .failure(error)
        } else if outcome == nil {
            outcome = .failure(PaymentSessionError.lmdb(LMDBError(.badTransaction, operation: "group commit: no result")))
        }
        body = nil
        markFinished()
    }

    /// The committed result, or the error; called by the caller once the writer returned.
    func result() throws -> R {
        guard isFinished, let outcome else {
            throw PaymentSessionError.lmdb(LMDBError(.badTransaction, operation: "group commit: write not finished"))
        }
        return try outcome.get()
    }
}
