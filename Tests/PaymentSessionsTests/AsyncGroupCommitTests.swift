import Foundation
import Synchronization
@_spi(StorageTesting) import PaymentSessions
import TestSupport
import StoreTestFixtures
import Testing
import TestScheduling

@Suite("Async API with group commit", .ownThreads)
struct AsyncGroupCommitTests {
    struct Boom: Error {}
    final class Counter: Sendable { let value = Atomic(0) }

    @Test func hundredsOfConcurrentDurableWritesAreAllPresentAfterReopening() async throws {
        let directory = TemporaryDirectory(prefix: "async")
        let path = directory.appending("store")
        var ids: [String] = []
        var commits = 0
        do {
            let store = try PaymentSessionStore(path: path)  // full durability
            let before = (try store.rawStorage.lastTransactionID())
            ids = try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<300 {
                    group.addTask {
                        try await store.create(NewPaymentSession(cartID: "cart_\(i % 40)", providerID: "p\(i)", select: i % 3 == 0)).id
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            commits = (try store.rawStorage.lastTransactionID()) - before
        }  // the store closes: its writer thread stops, the environment closes
        #expect(ids.count == 300)
        #expect(commits < 300, "group commit should batch: \(commits) commits for 300 writes")
        let reopened = try PaymentSessionStore(path: path)
        #expect(try await reopened.count() == 300)
        for id in ids { #expect(try await reopened.session(id: id) != nil) }
        let report = try reopened.verify()
        #expect(report.isClean, "\(report.problems)")
        for cart in 0..<40 {
            #expect(try await reopened.sessions(cartID: "cart_\(cart)").filter(\.isSelected).count <= 1)
        }
    }

    @Test func aFailingClosureRollsBackOnlyItsOwnChanges() async throws {
        let f = try StoreFixture(fast: false)
        let results = await withTaskGroup(of: (Int, Bool).self) { group in
            for i in 0..<120 {
                group.addTask {
                    do {
                        try await f.store.write { tx in
                            let s = try tx.create(NewPaymentSession(cartID: "cart_\(i % 10)", providerID: "p\(i)"))
                            try tx.select(id: s.id)
                            if i % 2 == 1 { throw Boom() }
                        }
                        return (i, true)
                    } catch {
                        return (i, false)
                    }
                }
            }
            return await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
        }
        for (i, succeeded) in results {
            #expect(succeeded == (i % 2 == 0))
            let present = try await f.store.sessions(cartID: "cart_\(i % 10)").contains { $0.providerID == "p\(i)" }
            #expect(present == succeeded, "p\(i)")
        }
        #expect(try await f.store.count() == 60)
        #expect(try f.store.verify().isClean)
    }

    @Test func concurrentAsyncSelectsKeepOneSelectionPerCart() async throws {
        let f = try StoreFixture(fast: false)
        var created: [String] = []
        for cart in 0..<4 {
            for provider in ["a", "b", "c", "d"] {
                created.append(try await f.store.create(NewPaymentSession(cartID: "c\(cart)", providerID: provider)).id)
            }
        }
        let ids = created
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<200 {
                group.addTask {
                    if i % 7 == 0 {
                        try await f.store.deselect(cartID: "c\(i % 4)")
                    } else {
                        try await f.store.select(id: ids[(i * 7) % ids.count])
                    }
                }
            }
            try await group.waitForAll()
        }
        for cart in 0..<4 {
            #expect(try await f.store.sessions(cartID: "c\(cart)").filter(\.isSelected).count <= 1)
        }
        #expect(try f.store.verify().isClean)
    }

    @Test func syncAndAsyncWritesTogether() async throws {
        let f = try StoreFixture(fast: false)
        // A plain thread's closure cannot `await`, so these are the synchronous creates
        // (inside a task, `try await` would pick the async overload).
        let syncDone = DispatchSemaphore(value: 0)
        let syncFailures = Mutex<[String]>([])
        Thread {
            for i in 0..<50 {
                do {
                    let session: PaymentSession = try f.store.create(NewPaymentSession(cartID: "sync", providerID: "p\(i)"))
                    if session.cartID != "sync" { syncFailures.withLock { $0.append("wrong cart") } }
                } catch {
                    syncFailures.withLock { $0.append("\(error)") }
                }
            }
            syncDone.signal()
        }.start()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<50 {
                group.addTask { try await f.store.create(NewPaymentSession(cartID: "async", providerID: "p\(i)")) }
            }
            try await group.waitForAll()
        }
        await withCheckedContinuation { continuation in
            Thread {
                syncDone.wait()
                continuation.resume()
            }.start()
        }
        #expect(syncFailures.withLock { $0 }.isEmpty)
        #expect(try await f.store.sessions(cartID: "sync").count == 50)
        #expect(try await f.store.sessions(cartID: "async").count == 50)
    }

    @Test func aTaskCancelledBeforeItsChangeIsAppliedGetsCancellationErrorAndWritesNothing() async throws {
        let f = try StoreFixture(fast: false)
        // Hold LMDB's writer lock from another thread, so the writer thread cannot begin.
        let holding = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        Thread {
            try? f.store.write { _ in
                holding.signal()
                release.wait()
            }
        }.start()
        holding.wait()
        let task = Task { try await f.store.create(NewPaymentSession(cartID: "c", providerID: "cancelled")) }
        try await Task.sleep(for: .milliseconds(50))
        task.cancel()
        let outcome = await task.result
        release.signal()
        #expect(throws: CancellationError.self) { try outcome.get() }
        // The writer goes on with later requests, and never applies the cancelled one.
        try await f.store.create(NewPaymentSession(cartID: "c", providerID: "later"))
        #expect(try await f.store.sessions(cartID: "c").map(\.providerID) == ["later"])
    }

    @Test func aTaskCancelledAfterItsChangeWasAppliedIsCommitted() async throws {
        let f = try StoreFixture(fast: false)
        let applied = DispatchSemaphore(value: 0)
        let task = Task {
            try await f.store.write { tx in
                let s = try tx.create(NewPaymentSession(cartID: "c", providerID: "kept"))
                applied.signal()
                Thread.sleep(forTimeInterval: 0.1)  // the test cancels meanwhile
                return s
            }
        }
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                applied.wait()
                continuation.resume()
            }
        }
        task.cancel()
        let session = try await task.value
        #expect(try await f.store.session(id: session.id) == session)
    }

    @Test func alreadyCancelledTaskDoesNotEnqueue() async throws {
        let f = try StoreFixture(fast: false)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await f.store.create(NewPaymentSession(cartID: "c", providerID: "p"))
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(try await f.store.count() == 0)
    }

    @Test func batchLimitOfOneCommitsEachWriteAlone() async throws {
        let f = try StoreFixture(fast: false) { $0.groupCommit.maxCount = 1 }
        let before = (try f.store.rawStorage.lastTransactionID())
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<20 {
                group.addTask { try await f.store.create(NewPaymentSession(cartID: "c", providerID: "p\(i)")) }
            }
            try await group.waitForAll()
        }
        #expect((try f.store.rawStorage.lastTransactionID()) - before == 20)
    }

    /// A batch of one write (`maxCount` 1) leads from the head of the queue: an `async` write
    /// queued behind synchronous writers commits while they keep writing, instead of waiting
    /// for as long as a synchronous caller is there to take the lead.
    @Test func anAsyncWriteIsNotStarvedBySynchronousWritersThatKeepLeading() async throws {
        let f = try StoreFixture(fast: false) { $0.groupCommit.maxCount = 1 }
        let stop = Atomic<Bool>(false)
        let writers = DispatchGroup()
        for thread in 0..<3 {
            writers.enter()
            Thread { [store = f.store] in
                var index = 0
                while !stop.load(ordering: .acquiring) {
                    _ = try? store.create(NewPaymentSession(cartID: "sync-\(thread)", providerID: "p\(index)"))
                    index += 1
                }
                writers.leave()
            }.start()
        }
        defer {
            stop.store(true, ordering: .releasing)
            writers.wait()
        }
        // Let the synchronous writers take turns leading before the async write queues.
        try await Task.sleep(for: .milliseconds(100))
        let committed = await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await f.store.create(NewPaymentSession(cartID: "async", providerID: "p"))) != nil }
            group.addTask {
                try? await Task.sleep(for: .seconds(30))
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        #expect(committed, "the async write did not commit within 30 s while synchronous writers kept leading")
    }

    /// Writes queued while a batch is being applied join it and share its commit, failures
    /// among them included; with `joinsLateArrivals` off they wait for the next commit.
    @Test(arguments: [true, false])
    func writesArrivingWhileABatchIsAppliedJoinIt(joinsLateArrivals: Bool) async throws {
        let f = try StoreFixture(fast: false) { $0.groupCommit.joinsLateArrivals = joinsLateArrivals }
        let before = (try f.store.rawStorage.lastTransactionID())
        let applying = DispatchSemaphore(value: 0)
        let calling = Counter()  // writes about to be queued
        let first = Task {
            try await f.store.write { tx in
                applying.signal()
                // Until the others have called `write` (a task may start late on a loaded
                // machine), then a margin for the few instructions that queue them.
                let deadline = Date().addingTimeInterval(30)
                while calling.value.load(ordering: .acquiring) < 20 && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
                Thread.sleep(forTimeInterval: 0.2)
                return try tx.create(NewPaymentSession(cartID: "c", providerID: "first"))
            }
        }
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                applying.wait()
                continuation.resume()
            }
        }
        let succeeded = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<20 {
                group.addTask {
                    do {
                        calling.value.add(1, ordering: .releasing)
                        if i.isMultiple(of: 2) {
                            // The async `create` (input prepared on the caller's task): in the
                            // batch's rerun after p7's failure too.
                            try await f.store.create(
                                NewPaymentSession(cartID: "c", providerID: "p\(i)", dataJSON: #"{"i": \#(i)}"#.utf8))
                        } else {
                            try await f.store.write { tx in
                                try tx.create(NewPaymentSession(cartID: "c", providerID: "p\(i)"))
                                if i == 7 { throw Boom() }
                            }
                        }
                        return true
                    } catch {
                        return false
                    }
                }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        _ = try await first.value
        #expect(succeeded == 19)
        #expect((try f.store.rawStorage.lastTransactionID()) - before == (joinsLateArrivals ? 1 : 2))
        let providers = Set(try await f.store.sessions(cartID: "c").map(\.providerID))
        #expect(providers.count == 20)
        #expect(providers.contains("first") && !providers.contains("p7"))
        #expect(try await f.store.read { try $0.session(cartID: "c", providerID: "p4") }?.data == ["i": 4])
        #expect(try f.store.verify().isClean)
    }

    @Test func errorsFromAsyncOperationsAreTheTypedStoreErrors() async throws {
        let f = try StoreFixture(fast: false)
        let s = try await f.store.create(NewPaymentSession(cartID: "c", providerID: "p", status: .authorized, select: true))
        do {
            try await f.store.update(id: s.id, status: .pending)
            Issue.record("accepted an invalid transition")
        } catch let error as PaymentSessionError {
            #expect(error == .invalidTransition(id: s.id, from: .authorized, to: .pending))
        }
        #expect(try await f.store.session(id: s.id) == s)
    }
}
