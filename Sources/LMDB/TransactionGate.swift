import Foundation

/// Counts this process's users of the memory map (write transactions for their whole
/// life; read operations and cursors while they run), so that the map is resized only
/// when none is active, and remembers which thread holds the write transaction so that
/// a nested `write` fails instead of deadlocking.
///
/// `mdb_env_set_mapsize` remaps the file: a pointer another thread holds into the old
/// map would dangle. An idle read transaction holds none (liblmdb keeps page numbers and
/// a reader slot in `lock.mdb`, re-resolving pages through the map on each call), so
/// only its running operations count. While a resize is pending, new users wait.
final class TransactionGate: @unchecked Sendable {
    private let condition = NSCondition()
    private var active = 0
    /// Entries per thread: a thread that already holds one may enter again without
    /// waiting (a read inside a write closure, a get inside a cursor walk), or a pending
    /// resize would wait for it while it waits for the resize.
    /// A short list, not a dictionary: there are rarely more than a few threads inside at
    /// once, and scanning it costs less than hashing (this is on every read's path).
    private var holders: [(thread: pthread_t, count: Int)] = []
    private var resizePending = false
    private var writer: pthread_t?

    /// Waits while a resize is pending (unless this thread already holds an entry), then
    /// counts one more user of the map.
    func enter() {
        condition.lock()
        let me = pthread_self()
        if let slot = holderIndex(me) {
            holders[slot].count += 1
        } else {
            while resizePending { condition.wait() }
            holders.append((me, 1))
        }
        active += 1
        condition.unlock()
    }

    /// Counts one user fewer.
    func leave() {
        condition.lock()
        if let slot = holderIndex(pthread_self()) {
            if holders[slot].count > 1 {
                holders[slot].count -= 1
            } else {
                holders.swapAt(slot, holders.count - 1)
                holders.removeLast()
            }
        }
        active -= 1
        if active == 0 && resizePending { condition.broadcast() }
        condition.unlock()
    }

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
    /// - Throws: `LMDBError` with ``LMDBError/Code/mapFull`` when transactions stay
    ///   live past `timeout` (a long-lived reader, or a read open on the calling thread).
    func whenQuiescent(timeout: Duration, operation: String, _ resize: () throws -> Void) throws -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if resizePending {
            while resizePending { condition.wait() }
            return false
        }
        if holderIndex(pthread_self()) != nil {
            throw LMDBError(
                .mapFull,
                operation: "\(operation): this thread has a read operation or cursor open on the environment; cannot remap")
        }
        resizePending = true
        defer {
            resizePending = false
            condition.broadcast()
        }
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let deadline = Date(timeIntervalSinceNow: seconds)
        while active > 0 {
            if !condition.wait(until: deadline) && active > 0 {
                throw LMDBError(
                    .mapFull,
                    operation: "\(operation): \(active) transaction(s) of this process stayed open for \(timeout); cannot remap")
            }
        }
        try resize()
        return true
    }

    /// Where `thread` is in `holders`; the lock must be held.
    private func holderIndex(_ thread: pthread_t) -> Int? {
        for index in holders.indices where pthread_equal(holders[index].thread, thread) != 0 { return index }
        return nil
    }
}
