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
    /// The writer thread, while it runs; guarded by `condition`.
    private var writerThread: pthread_t?
    private let limits: PaymentSessionStore.GroupCommitLimits
    private let perform: ([any GroupCommitRequest], _ takeMore: (Int) -> [any GroupCommitRequest]) -> [any GroupCommitRequest]

    /// - Parameter perform: Runs one batch and returns the requests it left for the next.
    ///   Its second argument takes up to that many more queued requests, without waiting,
    ///   for the batch to absorb before it commits.
    init(
        limits: PaymentSessionStore.GroupCommitLimits,
        perform: @escaping ([any GroupCommitRequest], _ takeMore: (Int) -> [any GroupCommitRequest]) -> [any GroupCommitRequest]
    ) {
        self.limits = limits
        self.perform = perform
    }

    /// Queues `request`, starting the thread on first use.
    func submit(_ request: any GroupCommitRequest) {
        condition.lock()
        if stopping {
            condition.unlock()
            request.finish(error: PaymentSessionError.lmdb(LMDBError(.badTransaction, operation: "store is closing")))
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
    ///
    /// Called on the writer thread itself (the store's last reference was held by a
    /// write closure, so the store's deinit runs there), it only asks the thread to end:
    /// waiting would wait for itself forever. The thread then finishes its loop and
    /// releases what it holds on its way out.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        let onWriterThread = writerThread.map { pthread_equal($0, pthread_self()) != 0 } ?? false
        while threadRunning && !onWriterThread { condition.wait() }
        condition.unlock()
    }

    private func loop() {
        condition.lock()
        writerThread = pthread_self()
        condition.unlock()
        while true {
            condition.lock()
            while pending.isEmpty && !stopping { condition.wait() }
            if pending.isEmpty {
                threadRunning = false
                writerThread = nil
                condition.broadcast()
                condition.unlock()
                return
            }
            let batch = takeLocked(limits.maxCount)
            condition.unlock()

            let leftovers = perform(batch) { [self] limit in
                condition.lock()
                defer { condition.unlock() }
                return takeLocked(limit)
            }
            if !leftovers.isEmpty {
                condition.lock()
                pending.insert(contentsOf: leftovers, at: 0)
                condition.unlock()
            }
        }
    }
}

extension GroupCommitWriter {
    /// Removes and returns up to `limit` queued requests, oldest first. Lock held.
    private func takeLocked(_ limit: Int) -> [any GroupCommitRequest] {
        let count = min(pending.count, limit)
        let taken = Array(pending.prefix(count))
        pending.removeFirst(count)
        return taken
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
        /// Whether requests that arrive while a batch is being applied join it before it
        /// commits, within ``maxCount`` and ``maxBytes`` (the default).
        ///
        /// Fewer, larger commits: a commit's `fsync`s cost much the same for a few creates
        /// as for a dozen (BENCHMARKS.md has the measurements). The price is that a batch's
        /// first callers also wait for the latecomers' closures.
        /// Turn it off to commit exactly the requests that were queued when the batch began.
        public var joinsLateArrivals = true

        /// Defaults: 256 callers, 4 MiB, late arrivals join.
        public init() {}
    }

}

extension BatchContext {
    /// Runs one batch of async writes in one LMDB transaction; returns the requests
    /// that did not fit.
    ///
    /// Requests that arrive while the batch is being applied join it (`takeMore`), up to
    /// the limits, unless ``PaymentSessionStore/GroupCommitLimits/joinsLateArrivals`` is
    /// off. Why: under a steady load the callers settle into two cohorts that take turns,
    /// one waiting for its commit while the other's requests come back in, so each commit
    /// holds half the callers; the `fsync`s cost much the same for a small batch as for a
    /// larger one, and taking the early returners costs no waiting.
    func performBatch(
        _ batch: [any GroupCommitRequest], takeMore: (Int) -> [any GroupCommitRequest]
    ) -> [any GroupCommitRequest] {
        // Most batches have no failing closure: run them straight in the transaction, which
        // saves a nested transaction per caller (liblmdb copies every page a child touches).
        // When a closure throws, the attempt is abandoned and the batch runs again with a
        // nested transaction per caller, so that the failure rolls back only its own changes.
        // Closures may run twice anyway (map growth), so rerunning them is within the contract.
        var requests = batch
        if let leftovers = performBatch(&requests, isolated: false, takeMore: takeMore) { return leftovers }
        return performBatch(&requests, isolated: true) { _ in [] } ?? []
    }

    /// One attempt at a batch; `nil` when `isolated` is `false` and a closure threw
    /// (nothing was committed then, and no caller was resumed). Requests taken with
    /// `takeMore` are appended to `requests`, so that a rerun includes them.
    private func performBatch(
        _ requests: inout [any GroupCommitRequest], isolated: Bool, takeMore: (Int) -> [any GroupCommitRequest]
    ) -> [any GroupCommitRequest]? {
        let limits = options.groupCommit
        var outcomes: [(request: any GroupCommitRequest, error: (any Error)?)] = []
        var leftovers: [any GroupCommitRequest] = []
        var commitError: (any Error)?
        do {
            try environment.write { txn in
                // The closure reruns from scratch when the map must grow.
                outcomes = []
                leftovers = []
                var index = 0
                while true {
                    if index == requests.count {
                        guard limits.joinsLateArrivals, requests.count < limits.maxCount, txn.writtenBytes < limits.maxBytes else { break }
                        let arrived = takeMore(limits.maxCount - requests.count)
                        if arrived.isEmpty { break }
                        requests += arrived
                    }
                    if !outcomes.isEmpty && txn.writtenBytes >= limits.maxBytes {
                        leftovers = Array(requests[index...])
                        break
                    }
                    let request = requests[index]
                    index += 1
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
            commitError = (error as? LMDBError).map(PaymentSessionError.lmdb) ?? error
        }
        for (request, error) in outcomes {
            request.finish(error: error ?? commitError)
        }
        if let commitError {
            // Nothing was committed: every other request of the batch fails the same way
            // (finishing is idempotent, so those already resumed are left alone).
            for request in requests { request.finish(error: commitError) }
            return []
        }
        return leftovers
    }

    private static func isMapFull(_ error: any Error) -> Bool {
        switch error {
        case let error as LMDBError: error.code == .mapFull
        case PaymentSessionError.storage(let error): error.lmdbError?.code == .mapFull
        default: false
        }
    }
}
