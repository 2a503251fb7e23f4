import Foundation
import LMDB
import PaymentSessions
import TestSupport
import StoreTestFixtures
import Testing
import TestScheduling

/// Whether this machine lets the tests mount a small tmpfs (root in a container usually can).
let canMountTmpfs: Bool = {
    let probe = TemporaryDirectory(prefix: "mount-probe")
    guard run("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe.path]) == 0 else { return false }
    _ = run("/bin/umount", [probe.path])
    return true
}()

/// Runs `tool` to its end: its exit status, or -1 when it could not start. Through
/// `ChildProcess`, which reaps with `waitpid`: `Foundation.Process.waitUntilExit` once
/// waited for ever here on a `mount` that had exited (left a zombie, never noticed).
@discardableResult
func run(_ tool: String, _ arguments: [String]) -> Int32 {
    guard let output = try? ChildProcess(path: tool, arguments).finish() else { return -1 }
    return output.killedBySignal ? -1 : output.status
}

@Suite("Disk faults: typed errors, no crash, data still readable", .serialized, .ownThreads)
struct DiskFaultTests {
    /// Fills a store on a 2 MiB tmpfs until the disk is full, then checks what survived.
    @Test(.enabled(if: canMountTmpfs, "needs permission to mount tmpfs"))
    func diskFullIsATypedErrorAndAcknowledgedDataSurvives() throws {
        let mountPoint = TemporaryDirectory(prefix: "tmpfs")
        #expect(run("/bin/mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mountPoint.path]) == 0)
        defer { _ = run("/bin/umount", ["-l", mountPoint.path]) }
        let path = mountPoint.appending("store")
        let output = try ChildProcess.run("StoreTorture", ["fill", path])
        #expect(output.status == 0, "\(output.stderr)")
        let lines = output.stdout.split(separator: "\n")
        let last = try #require(lines.last)
        #expect(last.hasPrefix("E storage"), "\(last)")
        let acknowledged = lines.filter { $0.hasPrefix("C ") }.map { String($0.dropFirst(2)) }
        #expect(acknowledged.count > 10)
        // The fault gone (space freed by reading, not writing): everything acknowledged is readable.
        var options = PaymentSessionStore.Options()
        options.createIfMissing = false
        let store = try PaymentSessionStore(path: path, options: options)
        for id in acknowledged { #expect(try store.session(id: id) != nil) }
        #expect(try store.verify().isClean)
        // A write on the full disk fails with a typed error and changes nothing.
        let before = try store.count()
        let error = storeError { try store.create(NewPaymentSession(cartID: "more", providerID: "p", data: ["blob": .string(String(repeating: "z", count: 60_000))])) }
        #expect(error?.code == .storage)
        #expect(try store.count() == before)
    }

    @Test(.enabled(if: canMountTmpfs, "needs permission to mount tmpfs"))
    func readOnlyFileSystemIsATypedErrorAndReadsStillWork() throws {
        let mountPoint = TemporaryDirectory(prefix: "rofs")
        #expect(run("/bin/mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", mountPoint.path]) == 0)
        defer { _ = run("/bin/umount", ["-l", mountPoint.path]) }
        let path = mountPoint.appending("store")
        let id: String
        do {
            let store = try PaymentSessionStore(path: path)
            id = try store.create(NewPaymentSession(cartID: "c", providerID: "p")).id
        }
        let readOnly = try ChildProcess(path: "/bin/mount", ["-o", "remount,ro", mountPoint.path]).finish()
        #expect(readOnly.status == 0, "\(readOnly.stderr)")
        // Opening for writing on a read-only file system: a typed storage error.
        let error = storeError { _ = try PaymentSessionStore(path: path) }
        #expect(error?.code == .storage, "\(String(describing: error))")
        // Read-only opening still reads (LMDB needs no writes for that with MDB_RDONLY... but
        // its lock file must be writable, so remount read-write to read).
        #expect(run("/bin/mount", ["-o", "remount,rw", mountPoint.path]) == 0)
        let store = try PaymentSessionStore(path: path)
        #expect(try store.session(id: id) != nil)
    }

    @Test func fileSizeLimitIsATypedErrorNotASignal() throws {
        let directory = TemporaryDirectory(prefix: "ulimit")
        let path = directory.appending("store")
        let torture = ChildProcess.productsDirectory.appendingPathComponent("StoreTorture").path
        // SIGXFSZ ignored, so that a write past the limit fails with EFBIG instead of killing.
        let shell = try ChildProcess(
            path: "/bin/bash", ["-c", "trap '' XFSZ; ulimit -f 3072; exec \"$0\" fill \"$1\"", torture, path]
        ).finish()
        #expect(!shell.killedBySignal)
        let lines = shell.stdout.split(separator: "\n")
        #expect(lines.last?.hasPrefix("E storage") == true, "\(lines.suffix(2))")
        let acknowledged = lines.filter { $0.hasPrefix("C ") }.map { String($0.dropFirst(2)) }
        #expect(acknowledged.count > 10)
        let store = try PaymentSessionStore(path: path)
        for id in acknowledged { #expect(try store.session(id: id) != nil) }
        #expect(try store.verify().isClean)
    }

    @Test func truncatedDataFileIsRefusedNotMapped() throws {
        let directory = TemporaryDirectory(prefix: "truncated")
        let path = directory.appending("store")
        do {
            let store = try PaymentSessionStore(path: path)
            try store.write { tx in
                for i in 0..<300 { try tx.create(NewPaymentSession(cartID: "c\(i)", providerID: "p", data: ["n": .number(JSONNumber(i))])) }
            }
        }
        let file = path + "/data.mdb"
        let size = try #require(try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int)
        #expect(truncate(file, off_t(size / 2)) == 0)
        let error = storeError { _ = try PaymentSessionStore(path: path) }
        guard case .storage(let lmdb)? = error else {
            Issue.record("expected a storage error, got \(String(describing: error))")
            return
        }
        #expect(lmdb.kind == .corrupted)
        #expect(lmdb.lmdbError?.code == .corrupted)
        #expect(lmdb.operation.contains("truncated"))
    }

    @Test func missingDataFileIsNotFoundForReadersAndANewStoreForWriters() throws {
        let directory = TemporaryDirectory(prefix: "missing-data")
        let path = directory.appending("store")
        do { _ = try PaymentSessionStore(path: path) }
        try FileManager.default.removeItem(atPath: path + "/data.mdb")
        var readOnly = PaymentSessionStore.Options()
        readOnly.createIfMissing = false
        #expect(storeError { _ = try PaymentSessionStore(path: path, options: readOnly) } == .storeNotFound(location: path))
        #expect(try PaymentSessionStore(path: path).count() == 0)
    }

    @Test func garbageDataFileIsATypedError() throws {
        let directory = TemporaryDirectory(prefix: "garbage")
        let path = directory.appending("store")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        var bytes = [UInt8](repeating: 0, count: 16384)
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
        try Data(bytes).write(to: URL(fileURLWithPath: path + "/data.mdb"))
        #expect(storeError { _ = try PaymentSessionStore(path: path) }?.code == .storage)
    }
}
