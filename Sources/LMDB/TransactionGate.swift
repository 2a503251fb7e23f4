import Foundation

/// Counts this process's live transactions on one environment, so that the map can be
/// resized only when none is active, and remembers which thread holds the write
/// transaction so that a nested `write` fails instead of deadlocking.
///
/// `mdb_env_set_mapsize` remaps the file: a pointer another thread holds into the old
/// map would dangle. While a resize is pending, new transactions wait at the gate.
final class TransactionGate: @unchecked Sendable {
    private let condition = NSCondition()
    private var active = 0
    private var resizePending = false
    private var writer: pthread_t?

    /// Waits while a resize is pending, then counts one more live transaction.
    func enter() {
        condition.lock()
        while resizePending { condition.wait() }
        active += 1
        condition.unlock()
    }

    /// Counts one transaction fewer.
    func leave() {
        condition.lock()
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
}
