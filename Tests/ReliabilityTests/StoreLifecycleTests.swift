import Foundation
import LMDB
@_spi(StorageTesting) import PaymentSessions
import Synchronization
import TestSupport
import StoreTestFixtures
import Testing
import TestScheduling

/// Opening, closing, file modes and long operations of a whole store: the faults that
/// used to stall a process, leak an environment or expose the data.
@Suite("Store lifecycle", .ownThreads)
struct StoreLifecycleTests {
    /// The store's last reference is dropped on its own writer thread (a write closure
    /// captured it): its deinit must not wait for that thread, which would be waiting for
    /// itself. The environment is then released.
    @Test func aStoreReleasedOnItsOwnWriterThreadClosesInsteadOfDeadlocking() async throws {
        let directory = TemporaryDirectory(prefix: "deinit")
        var options = PaymentSessionStore.Options()
        options.environment.durability = .noSync
        var store: PaymentSessionStore? = try PaymentSessionStore(path: directory.appending("store"), options: options)
        weak let environment = store?.rawStorage.environment
        // Hold LMDB's writer from a thread that keeps only the environment (and only until
        // it is released), so that the writer thread is stuck beginning its batch.
        let holding = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        Self.holdWriter(of: try #require(store?.rawStorage.environment), holding: holding, until: release)
        holding.wait()
        let task = Self.writeCapturingTheStore(try #require(store))
        store = nil
        try await Task.sleep(for: .milliseconds(100))
        // Cancelled while queued: the caller returns at once and lets go of the store; the
        // request's closure, queued on the writer thread, now holds its last reference.
        task.cancel()
        #expect(await (task.result).isCancelled)
        release.signal()
        var released = false
        for _ in 0..<500 where !released {
            try await Task.sleep(for: .milliseconds(10))
            released = environment == nil
        }
        #expect(released, "the store's environment was never released (its deinit waited for its own thread)")
    }

    /// Opening a store and reading from it never waits for a writer, even one in another
    /// process that holds the write lock indefinitely.
    @Test func openingAndReadingAStoreNeverWaitsForAWriterInAnotherProcess() throws {
        let directory = TemporaryDirectory(prefix: "reader")
        let path = directory.appending("store")
        let id = try {
            let store = try PaymentSessionStore(path: path)
            return try store.create(NewPaymentSession(cartID: "c", providerID: "p")).id
        }()
        let holder = try ChildProcess("LMDBProbe", ["hold-write", path, "meta", "ghost"])
        defer { holder.kill() }
        #expect(holder.readLine() == "holding")
        let result = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            let outcome: String
            do {
                let store = try PaymentSessionStore(path: path)
                let found = try store.session(id: id)?.id ?? "missing"
                _ = try store.verify()
                _ = try store.statistics()
                outcome = found
            } catch {
                outcome = "\(error)"
            }
            result.withLock { $0 = outcome }
            done.signal()
        }.start()
        #expect(done.wait(timeout: .now() + 10) == .success, "opening the store waited for the other process's writer")
        holder.kill()
        _ = done.wait(timeout: .now() + 10)
        #expect(result.withLock { $0 } == id)
    }

    /// New stores and backups are readable by their owner only, whatever the umask
    /// (the CLI tests run the same with umask 000); an existing store keeps its mode.
    @Test func newStoresAndBackupsAreOwnerOnlyAndExistingModesAreKept() throws {
        let directory = TemporaryDirectory(prefix: "modes")
        let path = directory.appending("deep/store")
        let store = try PaymentSessionStore(path: path)
        try store.create(NewPaymentSession(cartID: "c", providerID: "p", data: ["client_secret": "pi_secret"]))
        #expect(Self.mode(path) == 0o700)
        #expect(Self.mode(directory.appending("deep")) == 0o700)
        #expect(Self.mode(path + "/data.mdb") == 0o600)
        #expect(Self.mode(path + "/lock.mdb") == 0o600)
        #expect(Self.mode(path + "/writer.lock") == 0o600)
        let backup = directory.appending("backups/today")
        try store.backup(to: backup)
        #expect(Self.mode(backup) == 0o700)
        #expect(Self.mode(backup + "/data.mdb") == 0o600)
        try store.backup(to: directory.appending("compact"), compact: true)
        #expect(Self.mode(directory.appending("compact") + "/data.mdb") == 0o600)

        let shared = directory.appending("shared")
        do {
            _ = try PaymentSessionStore(path: shared)
        }
        chmod(shared + "/data.mdb", 0o640)
        // A store made before the writer lock existed gets one with data.mdb's mode, so
        // that whoever may write the store may take it.
        unlink(shared + "/writer.lock")
        _ = try PaymentSessionStore(path: shared).count()
        #expect(Self.mode(shared + "/data.mdb") == 0o640)
        #expect(Self.mode(shared + "/writer.lock") == 0o640)
    }

    /// An export whose consumer is slow (three seconds in all) runs while creates make the
    /// map grow several times; growth may wait only two seconds, so it must not wait for
    /// the export.
    @Test func aSlowExportDoesNotHoldBackMapGrowth() throws {
        let f = try StoreFixture {
            $0.environment.mapSize = 1 << 20
            $0.environment.growthTimeout = .seconds(2)
        }
        try f.store.write { tx in
            for i in 0..<600 { try tx.create(NewPaymentSession(cartID: "export-\(i)", providerID: "p")) }
        }
        let exporting = DispatchSemaphore(value: 0)
        let exported = Mutex(0)
        let exportResult = Mutex<Int?>(nil)
        let exportDone = DispatchSemaphore(value: 0)
        Thread {
            let count = try? f.store.exportJSONLines { _ in
                if exported.withLock({ count in
                    count += 1
                    return count == 1
                }) { exporting.signal() }
                usleep(5000)
            }
            exportResult.withLock { $0 = count }
            exportDone.signal()
        }.start()
        exporting.wait()
        let blob = JSONValue.string(String(repeating: "x", count: 16 << 10))
        for i in 0..<200 {
            try f.store.create(NewPaymentSession(cartID: "grow-\(i)", providerID: "p", data: ["blob": blob]))
        }
        #expect(exported.withLock { $0 } < 600, "the creates finished only after the export: growth waited for it")
        #expect(exportDone.wait(timeout: .now() + 30) == .success)
        #expect(exportResult.withLock { $0 } == 600)
        #expect(try f.store.statistics().mapBytes >= 4 << 20)
    }

    /// A backup taken while writers grow the map is a complete, verifiable store.
    @Test func aBackupTakenWhileWritersGrowTheMapIsComplete() throws {
        let f = try StoreFixture { $0.environment.mapSize = 1 << 20 }
        let stop = Mutex(false)
        let writes = Mutex(0)
        // Bounded (about 20 MiB), so that a failing test cannot leave it filling the disk.
        let writer = Thread {
            let blob = JSONValue.string(String(repeating: "y", count: 4 << 10))
            var i = 0
            while !stop.withLock({ $0 }) && i < 5_000 {
                _ = try? f.store.create(NewPaymentSession(cartID: "w-\(i)", providerID: "p", data: ["blob": blob]))
                i += 1
                writes.withLock { $0 = i }
            }
        }
        writer.start()
        defer { stop.withLock { $0 = true } }
        let backups = TemporaryDirectory(prefix: "backups")
        for round in 0..<5 {
            usleep(50_000)
            let path = backups.appending("b\(round)")
            try f.store.backup(to: path)
            var options = PaymentSessionStore.Options()
            options.createIfMissing = false
            let copy = try PaymentSessionStore(path: path, options: options)
            #expect(try copy.verify().isClean)
            #expect(try copy.count() > 0 || round == 0)
        }
        stop.withLock { $0 = true }
        #expect(writes.withLock { $0 } > 10)
    }

    /// An async write whose closure holds the store; the caller keeps no reference.
    static func writeCapturingTheStore(_ store: PaymentSessionStore) -> Task<Void, any Error> {
        Task { try await store.write { _ in _ = store } }
    }

    static func holdWriter(of env: Environment, holding: DispatchSemaphore, until release: DispatchSemaphore) {
        Thread {
            try? env.write { _ in
                holding.signal()
                release.wait()
            }
        }.start()
    }

    static func mode(_ path: String) -> mode_t {
        var status = stat()
        guard stat(path, &status) == 0 else { return 0 }
        return status.st_mode & 0o777
    }
}

extension Result {
    /// Whether this is a failure with `CancellationError`.
    var isCancelled: Bool {
        if case .failure(let error) = self { return error is CancellationError }
        return false
    }
}
