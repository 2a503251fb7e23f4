import Foundation
import Logging

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
/// Taking this lock first moves the wait outside the gate. When `mdb_txn_begin` runs,
/// liblmdb's lock is then free unless a program that does not use this library is writing
/// (the `mdb_load` tool, say), in which case the old wait inside the gate remains.
///
/// On Linux it is a robust, process-shared mutex in `writer.lock` beside `data.mdb`, as
/// liblmdb's own is in `lock.mdb`: taking it uncontended costs no system call, and when a
/// process dies holding it the next taker recovers it. Elsewhere it is a process mutex and an
/// exclusive `flock` of `data.mdb` (two system calls per write).
final class WriterLock: @unchecked Sendable {
    private let logger: Logger
    #if os(Linux)
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let mappedBytes: Int
    /// `writer.lock`, open with a shared `flock` for the environment's life: a process
    /// that can take it exclusively knows nobody uses the mutex.
    private let descriptor: Int32
    #else
    private let threads = NSLock()
    private let fileDescriptor: Int32
    #endif

    /// Opens (creating it when missing) the lock of the environment in `directory`.
    ///
    /// - Parameters:
    ///   - dataFileDescriptor: liblmdb's descriptor of `data.mdb`, open as long as the
    ///     environment is (used where there is no shared mutex).
    ///   - fileMode: The mode of a new `writer.lock`, set exactly.
    init(directory: String, dataFileDescriptor: Int32, fileMode: mode_t, logger: Logger) throws(LMDBError) {
        self.logger = logger
        #if os(Linux)
        let path = directory + "/writer.lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, fileMode)
        if descriptor < 0 { throw LMDBError(.system(errno: errno), operation: "open(\(path))") }
        var keep = false
        defer { if !keep { close(descriptor) } }
        // The first opener (no other process holds the file: an exclusive flock succeeds)
        // initialises the mutex, whatever the file says: after an operating-system crash it
        // may still read "locked" by a thread that no longer exists, and a robust mutex
        // recovers only from owners that died while the system ran. Others wait for that
        // on a shared flock, which everyone then holds while the environment is open.
        let first = flock(descriptor, LOCK_EX | LOCK_NB) == 0
        if !first {
            while flock(descriptor, LOCK_SH) != 0 {
                if errno != EINTR { throw LMDBError(.system(errno: errno), operation: "flock(\(path))") }
            }
        }
        var status = stat()
        if fstat(descriptor, &status) != 0 { throw LMDBError(.system(errno: errno), operation: "fstat(\(path))") }
        let bytes = Int(sysconf(Int32(_SC_PAGESIZE)))
        if Int(status.st_size) < bytes {
            if fchmod(descriptor, fileMode) != 0 || ftruncate(descriptor, off_t(bytes)) != 0 {
                throw LMDBError(.system(errno: errno), operation: "ftruncate(\(path))")
            }
        }
        guard let base = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0), base != MAP_FAILED else {
            throw LMDBError(.system(errno: errno), operation: "mmap(\(path))")
        }
        // The first word says whether the mutex after it has been initialised.
        let ready = base.assumingMemoryBound(to: UInt64.self)
        let mutex = (base + 64).assumingMemoryBound(to: pthread_mutex_t.self)
        if first || ready.pointee != Self.readyMark {
            var attributes = pthread_mutexattr_t()
            pthread_mutexattr_init(&attributes)
            pthread_mutexattr_setpshared(&attributes, Int32(PTHREAD_PROCESS_SHARED))
            pthread_mutexattr_setrobust(&attributes, Int32(PTHREAD_MUTEX_ROBUST))
            let rc = pthread_mutex_init(mutex, &attributes)
            pthread_mutexattr_destroy(&attributes)
            if rc != 0 {
                munmap(base, bytes)
                throw LMDBError(.system(errno: rc), operation: "pthread_mutex_init(\(path))")
            }
            ready.pointee = Self.readyMark
        }
        if first {
            // Now let the others in (a flock conversion may pass through unlocked; whoever
            // slips in then initialises an idle mutex again, which is harmless).
            while flock(descriptor, LOCK_SH) != 0 {
                if errno != EINTR {
                    munmap(base, bytes)
                    throw LMDBError(.system(errno: errno), operation: "flock(\(path))")
                }
            }
        }
        keep = true
        self.mutex = mutex
        self.mappedBytes = bytes
        self.descriptor = descriptor
        #else
        self.fileDescriptor = dataFileDescriptor
        #endif
    }

    #if os(Linux)
    private static let readyMark: UInt64 = 0x5752_4954_4552_4C31  // "WRITERL1"

    deinit {
        munmap(UnsafeMutableRawPointer(mutex) - 64, mappedBytes)
        close(descriptor)
    }
    #endif

    /// Runs `body` holding the lock against this process's other threads and against other
    /// processes.
    func withLock<R>(_ body: () throws -> R) throws -> R {
        #if os(Linux)
        let rc = pthread_mutex_lock(mutex)
        if rc == EOWNERDEAD {
            // Its holder died; what it guarded is liblmdb's business (its own lock is robust
            // too and rolls the dead writer's transaction back).
            pthread_mutex_consistent(mutex)
            logger.warning("recovered the writer lock from a process that died holding it")
        } else if rc != 0 {
            throw LMDBError(.system(errno: rc), operation: "pthread_mutex_lock(writer.lock)")
        }
        defer { pthread_mutex_unlock(mutex) }
        return try body()
        #else
        threads.lock()
        defer { threads.unlock() }
        while flock(fileDescriptor, LOCK_EX) != 0 {
            let code = errno
            if code == EINTR { continue }
            throw LMDBError(.system(errno: code), operation: "flock(data.mdb, LOCK_EX)")
        }
        defer { _ = flock(fileDescriptor, LOCK_UN) }
        return try body()
        #endif
    }
}
