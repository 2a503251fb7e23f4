import CLMDB
import Synchronization

/// Reset read-only transactions kept for reuse (`mdb_txn_reset` / `mdb_txn_renew`).
///
/// Beginning a read transaction allocates liblmdb's transaction struct and, under
/// `MDB_NOTLS`, finds a free reader slot under the reader-table lock; renewing a reset one
/// does neither. A reset transaction keeps its reader slot (marked idle, so it pins no
/// snapshot and holds back no page reuse), which is why the pool is small: each kept
/// handle occupies one of the environment's `maxReaders` slots.
final class ReadTransactionPool: Sendable {
    /// How many reset transactions to keep at most.
    let capacity: Int
    /// One kept handle (its address; 0 when empty) taken and given back with one atomic
    /// operation: the common case of one reader at a time skips the lock and the array.
    private let hot = Atomic<UInt>(0)
    /// The others, up to `capacity - 1`.
    private let handles: Mutex<[IdleHandle]>

    /// A reset transaction: owned by the pool alone, so it may move between threads
    /// (`MDB_NOTLS`).
    private struct IdleHandle: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    init(capacity: Int) {
        self.capacity = capacity
        var initial: [IdleHandle] = []
        initial.reserveCapacity(capacity)
        self.handles = Mutex(initial)
    }

    /// A reset transaction renewed on the current snapshot, or `nil` when none is kept
    /// (or renewing failed, e.g. `MDB_MAP_RESIZED`: the caller then begins a fresh one,
    /// whose error handling covers that case).
    func renewed() -> OpaquePointer? {
        let hotBits = hot.exchange(0, ordering: .acquiring)
        let kept = hotBits != 0 ? OpaquePointer(bitPattern: hotBits) : handles.withLock({ $0.popLast() })?.pointer
        guard let handle = kept else { return nil }
        if mdb_txn_renew(handle) == MDB_SUCCESS { return handle }
        mdb_txn_abort(handle)
        return nil
    }

    /// Ends the live read transaction `handle`: reset and kept, or aborted when the pool is full.
    func recycle(_ handle: OpaquePointer) {
        mdb_txn_reset(handle)
        if hot.compareExchange(expected: 0, desired: UInt(bitPattern: Int(bitPattern: handle)), ordering: .releasing).exchanged {
            return
        }
        let kept = handles.withLock { handles in
            guard handles.count < capacity - 1 else { return false }
            handles.append(IdleHandle(pointer: handle))
            return true
        }
        if !kept { mdb_txn_abort(handle) }
    }

    /// Aborts every kept transaction (before the environment closes).
    func drain() {
        let idle = handles.withLock { handles in
            defer { handles.removeAll() }
            return handles
        }
        for handle in idle { mdb_txn_abort(handle.pointer) }
        if let handle = OpaquePointer(bitPattern: hot.exchange(0, ordering: .acquiring)) { mdb_txn_abort(handle) }
    }
}
