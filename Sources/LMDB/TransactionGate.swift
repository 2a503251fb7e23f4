import Foundation
import Synchronization

/// Counts this process's users of the memory map (write transactions for their whole
/// life; read operations and cursors while they run), so that the map is resized only
/// when none is active, and remembers which thread holds the write transaction so that
/// a nested `write` fails instead of deadlocking.
///
/// `mdb_env_set_mapsize` remaps the file: a pointer another thread holds into the old
/// map would dangle. An idle read transaction holds none (liblmdb keeps page numbers and
/// a reader slot in `lock.mdb`, re-resolving pages through the map on each call), so
/// only its running operations count. While a resize is pending, new users wait.
///
/// Entering and leaving is on every read's path, so it is one atomic compare-and-swap
/// each way plus a thread-local depth (a lock and a list of holders cost many times as
/// much); the lock is only for waiting, on the rare resize.
final class TransactionGate: @unchecked Sendable {
    /// Bit 0: a resize is pending. Bit 1: the map was lost (a remap failed after liblmdb
    /// unmapped the old one), so nobody may enter again. The bits above: active users.
    private let state = Atomic<Int>(0)
    private static let resizePending = 1
    private static let unusable = 2
    private static let user = 4
    /// Why the environment became unusable; written once, under `condition`'s lock,
    /// before the `unusable` bit is set.
    private var failure: LMDBError?
    /// Waiting only: users for a pending resize to end, the resizer for users to leave.
    private let condition = NSCondition()
    /// This thread's entries (a thread that holds one may enter again without waiting:
    /// a read inside a write closure, a get inside a cursor walk; otherwise a pending
    /// resize would wait for it while it waits for the resize).
    private let depthKey: pthread_key_t
    /// The thread holding the write transaction; guarded by `condition`'s lock.
    private var writer: pthread_t?

    /// - Throws: `LMDBError` when the process has no thread-local key left
    ///   (`PTHREAD_KEYS_MAX`, 1024; each open environment takes one).
    init() throws(LMDBError) {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key, nil)
        guard rc == 0 else { throw LMDBError(.system(errno: rc), operation: "pthread_key_create (environment gate)") }
        depthKey = key
    }

    deinit { pthread_key_delete(depthKey) }

    private var depth: Int {
        get { Int(bitPattern: pthread_getspecific(depthKey)) }
        set { pthread_setspecific(depthKey, UnsafeRawPointer(bitPattern: newValue)) }
    }

    /// The number of users inside now.
    private var activeUsers: Int { state.load(ordering: .acquiring) >> 2 }

    /// Waits while a resize is pending (unless this thread already holds an entry), then
    /// counts one more user of the map.
    ///
    /// - Throws: The error that made the environment unusable, once a remap has failed.
    func enter() throws(LMDBError) {
        let held = depth
        if held > 0 {
            // A thread already inside cannot have seen the map lost: a resize runs only
            // when nobody is inside.
            state.wrappingAdd(Self.user, ordering: .acquiringAndReleasing)
            depth = held + 1
            return
        }
        while true {
            var current = state.load(ordering: .acquiring)
            if current & Self.unusable != 0 { throw unusableError() }
            while current & Self.resizePending == 0 {
                let (exchanged, original) = state.compareExchange(
                    expected: current, desired: current + Self.user, ordering: .acquiringAndReleasing)
                if exchanged {
                    depth = 1
                    return
                }
                current = original
                if current & Self.unusable != 0 { throw unusableError() }
            }
            condition.lock()
            while state.load(ordering: .acquiring) & Self.resizePending != 0 { condition.wait() }
            condition.unlock()
        }
    }

    /// Counts one more user of the map for an operation that will not enter this gate
    /// again before it leaves (a get or an index walk whose body only decodes bytes): the
    /// same as ``enter()`` but without the thread-local depth.
    ///
    /// Why: the depth's `pthread_getspecific` and `pthread_setspecific` calls, in and out,
    /// were a measurable part of the cheapest read. The depth exists so that a thread
    /// already inside does not wait on a pending resize that waits for it; a leaf entry
    /// runs no code that could enter again, so nothing needs to know it is inside. While a
    /// resize is pending it still consults the depth, for a thread inside by another entry
    /// (a get within a write closure).
    ///
    /// - Important: Nothing checks the rule: an ``enter()`` inside a leaf entry would wait
    ///   forever on a resize pending meanwhile. Only the package's decoders run inside one.
    @inline(__always)
    func enterLeaf() throws(LMDBError) {
        var current = state.load(ordering: .acquiring)
        while current & (Self.resizePending | Self.unusable) == 0 {
            let (exchanged, original) = state.compareExchange(
                expected: current, desired: current + Self.user, ordering: .acquiringAndReleasing)
            if exchanged { return }
            current = original
        }
        try enterWhileResizing()
    }

    /// ``enterLeaf()`` found a resize pending or the map lost: the full entry, which
    /// waits unless this thread is already inside, minus the depth it records.
    @inline(never)
    private func enterWhileResizing() throws(LMDBError) {
        try enter()
        depth -= 1
    }

    /// Counts one user fewer after ``enterLeaf()``.
    @inline(__always)
    func leaveLeaf() {
        let after = state.wrappingSubtract(Self.user, ordering: .acquiringAndReleasing).newValue
        if after == Self.resizePending { wakeResizer() }
    }

    /// Counts one user fewer.
    func leave() {
        depth -= 1
        let after = state.wrappingSubtract(Self.user, ordering: .acquiringAndReleasing).newValue
        if after == Self.resizePending { wakeResizer() }
    }

    /// The last user left while a resize waits for that.
    private func wakeResizer() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    /// The error recorded when the map was lost.
    private func unusableError() -> LMDBError {
        condition.lock()
        defer { condition.unlock() }
        return failure ?? LMDBError(.panic, operation: "environment unusable")
    }

    /// Whether a remap failed and the environment can no longer be used.
    var isUnusable: Bool { state.load(ordering: .acquiring) & Self.unusable != 0 }

    /// Whether the calling thread holds an entry (it runs inside a read operation or a
    /// cursor, or holds the write transaction).
    var callerIsInside: Bool { depth > 0 }

    /// Whether the calling thread holds this environment's write transaction.
    func callerIsWriter() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard let writer else { return false }
        return pthread_equal(writer, pthread_self()) != 0
    }

    /// Records (or clears) the calling thread as the holder of the write transaction.
    func setWriter(_ holding: Bool) {
        condition.lock()
        writer = holding ? pthread_self() : nil
        condition.unlock()
    }

    /// Runs `resize` once no transaction of this process is live, holding new ones back
    /// meanwhile. When another thread is already resizing, waits for it to finish and
    /// returns `false` without calling `resize`: the caller simply retries its work.
    ///
    /// When `resize` throws ``MapLost``, the environment becomes unusable: every later
    /// ``enter()`` throws the error it carries.
    ///
    /// - Throws: `LMDBError` with ``LMDBError/Code/mapFull`` when transactions stay
    ///   live past `timeout` (a long-lived reader, or a read open on the calling thread);
    ///   what `resize` throws.
    func whenQuiescent(timeout: Duration, operation: String, _ resize: () throws -> Void) throws -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if let failure, isUnusable { throw failure }
        if state.load(ordering: .acquiring) & Self.resizePending != 0 {
            while state.load(ordering: .acquiring) & Self.resizePending != 0 { condition.wait() }
            if let failure, isUnusable { throw failure }
            return false
        }
        if depth > 0 {
            throw LMDBError(
                .mapFull,
                operation: "\(operation): this thread has a read operation or cursor open on the environment; cannot remap")
        }
        state.bitwiseOr(Self.resizePending, ordering: .acquiringAndReleasing)
        defer {
            state.bitwiseAnd(~Self.resizePending, ordering: .acquiringAndReleasing)
            condition.broadcast()
        }
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let deadline = Date(timeIntervalSinceNow: seconds)
        while activeUsers > 0 {
            if !condition.wait(until: deadline) && activeUsers > 0 {
                throw LMDBError(
                    .mapFull,
                    operation: "\(operation): \(activeUsers) transaction(s) of this process stayed open for \(timeout); cannot remap")
            }
        }
        do {
            try resize()
        } catch let lost as MapLost {
            failure = lost.error
            state.bitwiseOr(Self.unusable, ordering: .acquiringAndReleasing)
            throw lost.error
        }
        return true
    }
}

/// Thrown by a resize whose remap failed after liblmdb had unmapped the old map: the
/// environment has no map any more, and touching it would be a `SIGSEGV`.
struct MapLost: Error {
    let error: LMDBError
}
