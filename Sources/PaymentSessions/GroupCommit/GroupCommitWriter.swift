import Foundation
import LMDB

/// Shares commits among every writer of one store in this process, sync and async.
///
/// LMDB allows one write transaction at a time and each durable commit costs two `fsync`s.
/// Writes that arrive while a commit is in flight queue here; one **leader** takes them as a
/// batch, runs their closures in one transaction, commits once, and only then lets their
/// callers go. One pair of `fsync`s serves the whole batch.
///
/// Who leads:
/// - A synchronous caller that finds nobody leading leads at once, on its own thread, with
///   its own write first. Alone, it does what a plain write transaction does, plus two
///   uncontended lock operations.
/// - A synchronous caller that finds a leader queues its write and sleeps until a leader has
///   committed it, or until it is handed the lead.
/// - An `async` write queues; when nobody leads, the dedicated writer thread is woken to
///   lead (an `async` caller must not block its task's thread, and LMDB's writer lock is
///   owned by a thread, so the writes of a batch run on the leader's thread).
///
/// A leader closes its batch before it commits: from then on new arrivals wait for the next
/// leader, which is chosen at once (a queued synchronous caller if there is one, or else the
/// writer thread) so that it is awake and waiting for the writer lock while the `fsync`s run.
final class GroupCommitWriter: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: [any GroupCommitRequest] = []
    /// Whether someone is charged with committing what is pending: a batch still taking
    /// requests, a synchronous caller handed the lead, or the writer thread. Guarded by
    /// `condition`; whenever `pending` is not empty, this is `true`.
    private var hasLeader = false
    /// The writer thread has been handed the lead.
    private var writerThreadLeads = false
    private var threadRunning = false
    private var stopping = false
    /// The writer thread, while it runs; guarded by `condition`.
    private var writerThread: pthread_t?
    let limits: PaymentSessionStore.GroupCommitLimits
    private let perform: (_ batch: [any GroupCommitRequest], _ lease: BatchLease) -> Void

    /// - Parameter perform: Runs one batch, starting with the requests given, taking more
    ///   through the lease, and closing the lease before it commits.
    /// - Parameter limits: Bounds on a batch; `maxCount` is at least 1.
    init(
        limits: PaymentSessionStore.GroupCommitLimits,
        perform: @escaping (_ batch: [any GroupCommitRequest], _ lease: BatchLease) -> Void
    ) {
        self.limits = limits
        self.perform = perform
    }

    // MARK: Async writes

    /// Queues an `async` write; the writer thread commits it unless a leader takes it first.
    func submit(_ request: any GroupCommitRequest) {
        condition.lock()
        defer { condition.unlock() }
        if stopping {
            request.finish(error: PaymentSessionError.lmdb(LMDBError(.badTransaction, operation: "store is closing")))
            return
        }
        pending.append(request)
        if !hasLeader {
            hasLeader = true
            handLeadLocked()
        }
    }

    // MARK: Sync writes

    /// Runs `request`, a synchronous caller's write, in a shared commit, returning once the
    /// commit holding it has ended (its outcome is then in `request`).
    ///
    /// - Parameter checkCanBegin: Throws when the calling thread must not write (it holds
    ///   the write transaction itself, or pins the map). Checked before the caller leads or
    ///   queues: a leader that could not begin its transaction would fail the requests it had
    ///   taken from the queue with its own error.
    func commitSynchronously(
        _ request: some SyncWriteRequestBase & GroupCommitRequest, checkCanBegin: () throws -> Void
    ) throws {
        do {
            try checkCanBegin()
        } catch {
            request.finish(error: error)
            throw error
        }
        condition.lock()
        if !hasLeader {
            hasLeader = true
            condition.unlock()
            return lead(with: request)
        }
        request.prepareToWait()
        pending.append(request)
        condition.unlock()
        if request.waitForOutcomeOrLead() {
            lead(with: request)
        }
    }

    /// Runs a batch led by the calling thread, `first` first.
    private func lead(with first: any GroupCommitRequest) {
        let lease = BatchLease(writer: self)
        perform([first], lease)
        lease.close(leftovers: [])
    }

    // MARK: Leases

    /// Removes and returns up to `limit` queued requests, oldest first.
    fileprivate func take(_ limit: Int) -> [any GroupCommitRequest] {
        condition.lock()
        defer { condition.unlock() }
        return takeLocked(limit)
    }

    /// Ends a batch's intake: `leftovers` go back to the head of the queue, and the lead
    /// passes to the next leader, or lapses when nothing is queued.
    fileprivate func closeBatch(leftovers: [any GroupCommitRequest]) {
        condition.lock()
        defer { condition.unlock() }
        pending.insert(contentsOf: leftovers, at: 0)
        if pending.isEmpty {
            hasLeader = false
        } else {
            handLeadLocked()
        }
    }

    /// Hands the lead to whoever waited longest: the oldest queued request, if it is a
    /// synchronous caller's (it is woken anyway, so this costs no extra wake-up), or else
    /// the writer thread, which takes the oldest first. Lock held; `hasLeader` is `true`.
    ///
    /// Passing the lead to any queued synchronous caller instead would starve an `async`
    /// write for as long as synchronous writers keep arriving, when a batch holds only its
    /// leader's write (`maxCount` 1).
    private func handLeadLocked() {
        if let next = pending.first as? SyncWriteRequestBase {
            pending.removeFirst()
            next.handLead()
            return
        }
        writerThreadLeads = true
        if !threadRunning {
            threadRunning = true
            let thread = Thread { [self] in writerThreadLoop() }
            thread.name = "payment-sessions.group-commit"
            thread.start()
        }
        condition.broadcast()
    }

    private func takeLocked(_ limit: Int) -> [any GroupCommitRequest] {
        let count = min(pending.count, limit)
        let taken = Array(pending.prefix(count))
        pending.removeFirst(count)
        return taken
    }

    // MARK: The writer thread

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

    private func writerThreadLoop() {
        condition.lock()
        writerThread = pthread_self()
        condition.unlock()
        while true {
            condition.lock()
            while !writerThreadLeads && !stopping { condition.wait() }
            if !writerThreadLeads {
                threadRunning = false
                writerThread = nil
                condition.broadcast()
                condition.unlock()
                return
            }
            writerThreadLeads = false
            let batch = takeLocked(limits.maxCount)
            condition.unlock()
            let lease = BatchLease(writer: self)
            if batch.isEmpty {
                lease.close(leftovers: [])
            } else {
                perform(batch, lease)
                lease.close(leftovers: [])
            }
        }
    }
}

/// A leader's right to take queued requests into its batch, until it closes the batch.
///
/// Used by the leading thread only. Closing is idempotent, so the leader closes it once more
/// when the batch is over, whatever path the batch took.
final class BatchLease {
    private let writer: GroupCommitWriter
    /// Whether the batch no longer takes requests (the lead has passed on).
    private(set) var isClosed = false

    init(writer: GroupCommitWriter) {
        self.writer = writer
    }

    /// Up to `limit` more queued requests, oldest first; none once closed.
    func take(_ limit: Int) -> [any GroupCommitRequest] {
        isClosed || limit <= 0 ? [] : writer.take(limit)
    }

    /// Stops taking requests and passes the lead on; `leftovers`, taken but not applied, go
    /// back to the head of the queue for the next leader.
    func close(leftovers: [any GroupCommitRequest]) {
        guard !isClosed else { return }
        isClosed = true
        writer.closeBatch(leftovers: leftovers)
    }
}
