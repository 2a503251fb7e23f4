import Foundation
import LMDB

/// The dedicated writer thread behind the store's `async` writes.
///
/// LMDB allows one write transaction at a time and each costs two `fsync`s at commit.
/// Requests that arrive while a commit is in flight queue up here; the thread takes
/// them as one batch, runs the callers' closures in one transaction, commits once, and
/// only then resumes the callers. One pair of `fsync`s serves the whole batch. When a
/// closure throws, the batch is rerun with each closure in its own nested transaction,
/// so that one caller's error rolls back only that caller's changes.
///
/// Like GRDB's serial writer queue, this keeps the write transaction on one OS thread
/// (LMDB's writer lock is a thread-owned mutex) and off the cooperative pool.
final class GroupCommitWriter: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: [any GroupCommitRequest] = []
    private var threadRunning = false
    private var stopping = false
    private let limits: PaymentSessionStore.GroupCommitLimits
    private let perform: ([any GroupCommitRequest]) -> [any GroupCommitRequest]

    /// - Parameter perform: Runs one batch and returns the requests it left for the next.
    init(
        limits: PaymentSessionStore.GroupCommitLimits,
        perform: @escaping ([any GroupCommitRequest]) -> [any GroupCommitRequest]
    ) {
        self.limits = limits
        self.perform = perform
    }

    /// Queues `request`, starting the thread on first use.
    func submit(_ request: any GroupCommitRequest) {
        condition.lock()
        if stopping {
            condition.unlock()
            request.finish(error: PaymentSessionError.storage(.init(.badTransaction, operation: "store is closing")))
            return
        }
        pending.append(request)
        if !threadRunning {
            threadRunning = true
            let thread = Thread { [self] in loop() }
            thread.name = "payment-sessions.group-commit"
            thread.start()
        }
        condition.signal()
        condition.unlock()
    }

    /// Lets queued requests finish, then ends the thread and waits for it.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while threadRunning { condition.wait() }
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while pending.isEmpty && !stopping { condition.wait() }
            if pending.isEmpty {
                threadRunning = false
                condition.broadcast()
                condition.unlock()
                return
            }
            let count = min(pending.count, limits.maxCount)
            let batch = Array(pending.prefix(count))
            pending.removeFirst(count)
            condition.unlock()

            let leftovers = perform(batch)
            if !leftovers.isEmpty {
                condition.lock()
                pending.insert(contentsOf: leftovers, at: 0)
                condition.unlock()
            }
        }
    }
}

/// What a batch needs of the store, without the store itself (whose deinit stops the writer).
struct BatchContext: Sendable {
    let environment: Environment
    let layout: StoreLayout
    let options: PaymentSessionStore.Options
    let generator: PaymentSessionIDGenerator
}

extension PaymentSessionStore {
    /// Bounds on one group commit, so that a caller's latency stays bounded however many
    /// writes queue behind it.
    public struct GroupCommitLimits: Sendable, Hashable {
        /// The most callers in one commit.
        public var maxCount = 256
        /// Once the batch has put this many bytes of keys and values, the rest wait for
        /// the next commit.
        public var maxBytes = 4 << 20

        /// Defaults: 256 callers, 4 MiB.
        public init() {}
    }

}

extension BatchContext {
    /// Runs one batch of async writes in one LMDB transaction; returns the requests
    /// that did not fit.
    func performBatch(_ batch: [any GroupCommitRequest]) -> [any GroupCommitRequest] {
        // Most batches have no failing closure: run them straight in the transaction, which
        // saves a nested transaction per caller (liblmdb copies every page a child touches).
        // When a closure throws, the attempt is abandoned and the batch runs again with a
        // nested transaction per caller, so that the failure rolls back only its own changes.
        // Closures may run twice anyway (map growth), so rerunning them is within the contract.
        if let leftovers = performBatch(batch, isolated: false) { return leftovers }
        return performBatch(batch, isolated: true) ?? []
    }

    /// One attempt at a batch; `nil` when `isolated` is `false` and a closure threw
    /// (nothing was committed then, and no caller was resumed).
    private func performBatch(_ batch: [any GroupCommitRequest], isolated: Bool) -> [any GroupCommitRequest]? {
        var outcomes: [(request: any GroupCommitRequest, error: (any Error)?)] = []
        var leftovers: [any GroupCommitRequest] = []
        var commitError: (any Error)?
        do {
            try environment.write { txn in
                // The closure reruns from scratch when the map must grow.
                outcomes = []
                leftovers = []
                for (index, request) in batch.enumerated() {
                    if !outcomes.isEmpty && txn.writtenBytes >= options.groupCommit.maxBytes {
                        leftovers = Array(batch[index...])
                        break
                    }
                    guard request.claim() else { continue }
                    guard isolated else {
                        try request.apply(
                            PaymentSessionStore.WriteTransaction(
                                transaction: txn, layout: layout, options: options, generator: generator))
                        outcomes.append((request, nil))
                        continue
                    }
                    do {
                        try txn.nested { child in
                            try request.apply(
                                PaymentSessionStore.WriteTransaction(
                                    transaction: child, layout: layout, options: options, generator: generator))
                        }
                        outcomes.append((request, nil))
                    } catch {
                        if Self.isMapFull(error) { throw error }  // grow the map and rerun the batch
                        outcomes.append((request, error))
                    }
                }
            }
        } catch {
            if !isolated && !Self.isMapFull(error) { return nil }
            commitError = (error as? LMDBError).map(PaymentSessionError.storage) ?? error
        }
        for (request, error) in outcomes {
            request.finish(error: error ?? commitError)
        }
        if let commitError {
            // Nothing was committed: every other request of the batch fails the same way
            // (finishing is idempotent, so those already resumed are left alone).
            for request in batch { request.finish(error: commitError) }
            return []
        }
        return leftovers
    }

    private static func isMapFull(_ error: any Error) -> Bool {
        switch error {
        case let error as LMDBError: error.code == .mapFull
        case PaymentSessionError.storage(let error): error.code == .mapFull
        default: false
        }
    }
}
