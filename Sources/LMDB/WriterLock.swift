import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The right to begin a write transaction, taken before the environment's gate.
///
/// liblmdb's own writer lock is taken inside `mdb_txn_begin`, after which it reads the
/// map at once, so a thread waiting for it must already count as a user of the map: while
/// another process holds the lock (a long import, a writer stopped in a debugger), that
/// waiting thread would hold back every map growth in this process until it timed out.
/// Taking this lock first moves the wait outside the gate: a thread in this process waits
/// for the others on a mutex, and a process waits for the others on an exclusive `flock`
/// of `data.mdb`. When `mdb_txn_begin` runs, liblmdb's lock is then free unless a program
/// that does not use this library is writing (the `mdb_load` tool, say), in which case
/// the old wait inside the gate remains.
///
/// `flock` (not `fcntl`) because liblmdb holds `fcntl` locks on `lock.mdb`, and `fcntl`
/// locks are dropped when any descriptor of the file closes; `flock` locks belong to the
/// open file description and never interact with them.
final class WriterLock: @unchecked Sendable {
    private let threads = NSLock()
    private let fileDescriptor: Int32

    /// - Parameter fileDescriptor: liblmdb's descriptor of `data.mdb` (`mdb_env_get_fd`),
    ///   open for as long as the environment is.
    init(fileDescriptor: Int32) {
        self.fileDescriptor = fileDescriptor
    }

    /// Runs `body` holding the lock against this process's other threads and, through
    /// `flock`, against other processes.
    func withLock<R>(_ body: () throws -> R) throws -> R {
        threads.lock()
        defer { threads.unlock() }
        while flock(fileDescriptor, LOCK_EX) != 0 {
            let code = errno
            if code == EINTR { continue }
            throw LMDBError(.system(errno: code), operation: "flock(data.mdb, LOCK_EX)")
        }
        defer { _ = flock(fileDescriptor, LOCK_UN) }
        return try body()
    }
}
