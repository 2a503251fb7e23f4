import Foundation
import LMDB
import Metrics

/// One write waiting for a shared commit: an `async` caller's or a synchronous caller's.
protocol GroupCommitRequest: AnyObject, Sendable {
    /// Marks the request as being applied; `false` when it was cancelled or finished first
    /// (skip it).
    func claim() -> Bool
    /// Runs the caller's closure in (nested) transaction `tx`, keeping its result.
    func apply(_ tx: PaymentSessionStore.WriteTransaction) throws
    /// Releases the caller: with its result once the batch committed, or with `error`.
    /// Idempotent.
    func finish(error: (any Error)?)
}

extension PaymentSessionStore {
    /// Bounds on one shared commit, so that a caller's latency stays bounded however many
    /// writes queue behind it.
    public struct GroupCommitLimits: Sendable, Hashable {
        /// The most callers in one commit (at least 1: smaller values count as 1).
        public var maxCount = 256
        /// Once the batch has put this many bytes of keys and values, the rest wait for
        /// the next commit.
        public var maxBytes = 4 << 20
        /// Whether requests that arrive while a batch is being applied join it before it
        /// commits, within ``maxCount`` and ``maxBytes`` (the default).
        ///
        /// Fewer, larger commits: a commit's `fsync`s cost much the same for a few creates
        /// as for a dozen. The price is that a batch's first callers also wait for the
        /// latecomers' closures. Turn it off to commit exactly the requests that were
        /// queued when the batch began.
        public var joinsLateArrivals = true
        /// Whether synchronous writes share commits too (the default).
        ///
        /// When `true`, a synchronous write made while another thread of the process is
        /// writing joins that thread's commit, and **its closure may run on that thread**
        /// while the caller sleeps (as `DispatchQueue.sync` may run a closure on another
        /// thread). Turn it off when a write closure depends on the thread it runs on: it
        /// takes a lock its caller holds, or reads thread-local state. Each synchronous
        /// write then commits on its own, on the calling thread.
        public var sharesSynchronousCommits = true

        /// Defaults: 256 callers, 4 MiB, late arrivals join, synchronous writes share.
        public init() {}
    }
}

/// What a batch needs of the store, without the store itself (whose deinit stops the writer).
struct BatchContext: Sendable {
    let environment: Environment
    let layout: StoreLayout
    let options: PaymentSessionStore.Options
    let generator: PaymentSessionIDGenerator
    /// `payment_sessions_group_commit_batch_size`, when the process records metrics.
    let batchSizes: Recorder?
}

extension BatchContext {
    /// How one attempt at a batch ended.
    private enum Attempt {
        /// Committed, or failed to commit; every request taken is finished.
        case ended
        /// The closure of `requests[index]` threw in a shared (not isolated) transaction,
        /// which was rolled back; nothing is finished. `first` says no other request's
        /// changes were in that transaction.
        case closureFailed(index: Int, error: any Error, first: Bool)
    }

    /// Runs one batch: `batch`, the requests already queued, and (unless
    /// ``PaymentSessionStore/GroupCommitLimits/joinsLateArrivals`` is off) those that arrive
    /// while it is being applied, up to the limits, in one transaction and one commit.
    ///
    /// Most batches have no failing closure: they run straight in the transaction, which
    /// saves a nested transaction per caller (liblmdb copies every page a child touches).
    /// When the first closure applied throws, it alone is answered with its error and the
    /// rest run again without it, so a caller writing alone sees its closure run once, as
    /// in a plain transaction. When a later closure throws, the batch runs again with a
    /// nested transaction per caller, so that the failure rolls back only its own changes
    /// (closures may run twice anyway, on map growth, so rerunning them is within the
    /// contract).
    ///
    /// Why late arrivals join: under a steady load the callers settle into two cohorts that
    /// take turns, one waiting for its commit while the other's requests come back in, so
    /// each commit holds half the callers; the `fsync`s cost much the same for a small batch
    /// as for a larger one, and taking the early returners costs no waiting.
    func performBatch(_ batch: [any GroupCommitRequest], lease: BatchLease) {
        let limits = options.groupCommit
        var requests = batch
        requests += lease.take(limits.maxCount - requests.count)
        var isolated = false
        while true {
            if requests.isEmpty {
                requests = lease.take(limits.maxCount)
                if requests.isEmpty { return }
            }
            switch attempt(&requests, isolated: isolated, lease: lease) {
            case .ended:
                return
            case .closureFailed(let index, let error, let first):
                if first {
                    // Only cancelled requests came before it: nothing else to roll back.
                    requests[index].finish(error: error)
                    requests.removeSubrange(...index)
                } else {
                    isolated = true
                }
            }
        }
    }

    /// One attempt at a batch. Requests taken through `lease` are appended to `requests`,
    /// so that a rerun includes them; those left for the next commit are removed.
    private func attempt(
        _ requests: inout [any GroupCommitRequest], isolated: Bool, lease: BatchLease
    ) -> Attempt {
        let limits = options.groupCommit
        var outcomes: [(request: any GroupCommitRequest, error: (any Error)?)] = []
        var failure: (index: Int, error: any Error, first: Bool)?
        do {
            try environment.write { txn in
                // The closure reruns from scratch when the map must grow.
                outcomes = []
                failure = nil
                var index = 0
                while true {
                    if index == requests.count {
                        guard limits.joinsLateArrivals, txn.writtenBytes < limits.maxBytes else { break }
                        let arrived = lease.take(limits.maxCount - requests.count)
                        if arrived.isEmpty { break }
                        requests += arrived
                    }
                    if !lease.isClosed && !outcomes.isEmpty && txn.writtenBytes >= limits.maxBytes {
                        lease.close(leftovers: Array(requests[index...]))
                        requests.removeSubrange(index...)
                        break
                    }
                    let request = requests[index]
                    index += 1
                    guard request.claim() else { continue }
                    let tx = PaymentSessionStore.WriteTransaction(
                        transaction: txn, layout: layout, options: options, generator: generator)
                    guard isolated else {
                        do {
                            try request.apply(tx)
                        } catch {
                            // A full map is the transaction's, not the closure's: the map
                            // grows and the batch reruns (or, if it cannot grow, all fail).
                            if !Self.isMapFull(error) { failure = (index - 1, error, outcomes.isEmpty) }
                            throw error
                        }
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
                // The intake ends before the commit, so that the next leader is awake and
                // waiting for the writer lock while this commit's fsyncs run.
                lease.close(leftovers: [])
            }
        } catch {
            if let failure {
                return .closureFailed(index: failure.index, error: failure.error, first: failure.first)
            }
            // Nothing was committed: every request of the batch fails the same way.
            lease.close(leftovers: [])
            let commitError = (error as? LMDBError).map(PaymentSessionError.lmdb) ?? error
            for request in requests { request.finish(error: commitError) }
            return .ended
        }
        batchSizes?.record(outcomes.count)
        for (request, error) in outcomes {
            request.finish(error: error)
        }
        return .ended
    }

    private static func isMapFull(_ error: any Error) -> Bool {
        switch error {
        case let error as LMDBError: error.code == .mapFull
        case PaymentSessionError.storage(let error): error.lmdbError?.code == .mapFull
        default: false
        }
    }
}
