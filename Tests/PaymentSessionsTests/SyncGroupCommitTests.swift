import Foundation
import LMDB
import Synchronization
@_spi(StorageTesting) import PaymentSessions
import TestSupport
import StoreTestFixtures
import Testing
import TestScheduling

/// Synchronous writes made by several threads at once share commits, with the semantics of
/// a write of their own: durable on return, all or nothing, a failure rolls back only its
/// own changes.
@Suite("Sync API with shared commits", .ownThreads)
struct SyncGroupCommitTests {
    struct Boom: Error, Equatable { let index: Int }

    /// Runs `body(i)` on `count` threads at once; returns when all have returned.
    func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for i in 0..<count {
            group.enter()
            let thread = Thread {
                body(i)
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
    }

    /// Holds the first writer's transaction open until `followers` other threads are about
    /// to write, so that they queue behind it.
    final class Gate: Sendable {
        let started = Atomic(0)
        let leaderIn = DispatchSemaphore(value: 0)

        func waitForFollowers(_ followers: Int) {
            let deadline = Date().addingTimeInterval(10)
            while started.load(ordering: .acquiring) < followers && Date() < deadline { usleep(1_000) }
            usleep(100_000)  // from "about to write" to queued
        }

        /// Called by a follower: waits until the leader's transaction is open, then counts
        /// itself as about to write.
        func followerStarts() {
            leaderIn.wait()
            leaderIn.signal()
            started.add(1, ordering: .releasing)
        }
    }

    @Test func concurrentSyncWritersShareCommitsAndAllSurviveReopening() throws {
        let directory = TemporaryDirectory(prefix: "sync-group")
        let path = directory.appending("store")
        let ids = Locked([String]())
        let failures = Locked([String]())
        var commits = 0
        do {
            let store = try PaymentSessionStore(path: path)  // full durability
            let before = try store.rawStorage.lastTransactionID()
            onThreads(16) { thread in
                for i in 0..<20 {
                    do {
                        let session = try store.create(
                            NewPaymentSession(cartID: "cart_\((thread * 20 + i) % 40)", providerID: "t\(thread)-\(i)", select: i % 3 == 0))
                        ids.withLock { $0.append(session.id) }
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                }
            }
            commits = try store.rawStorage.lastTransactionID() - before
        }
        #expect(failures.value.isEmpty, "\(failures.value)")
        #expect(ids.value.count == 320)
        #expect(commits < 320, "16 threads' sync writes should share commits: \(commits) commits for 320 writes")
        let reopened = try PaymentSessionStore(path: path)
        #expect(try reopened.count() == 320)
        for id in ids.value { #expect(try reopened.session(id: id) != nil) }
        let report = try reopened.verify()
        #expect(report.isClean, "\(report.problems)")
        for cart in 0..<40 {
            #expect(try reopened.sessions(cartID: "cart_\(cart)").filter(\.isSelected).count <= 1)
        }
    }

    @Test func writersQueuedBehindAnOpenTransactionCommitInOneBatchOnTheLeadersThread() throws {
        let f = try StoreFixture(fast: false)
        let gate = Gate()
        let followers = 6
        let leaderThread = Locked<String?>(nil)
        let ranOn = Locked([Int: String]())
        let before = try f.store.rawStorage.lastTransactionID()
        onThreads(followers + 1) { thread in
            if thread == 0 {
                _ = try? f.store.write { tx in
                    leaderThread.withLock { $0 = "\(pthread_self())" }
                    gate.leaderIn.signal()
                    gate.waitForFollowers(followers)
                    return try tx.create(NewPaymentSession(cartID: "leader", providerID: "p"))
                }
            } else {
                gate.followerStarts()
                _ = try? f.store.write { tx in
                    ranOn.withLock { $0[thread] = "\(pthread_self())" }
                    return try tx.create(NewPaymentSession(cartID: "follower_\(thread)", providerID: "p"))
                }
            }
        }
        let commits = try f.store.rawStorage.lastTransactionID() - before
        #expect(try f.store.count() == followers + 1)
        // The followers queued while the leader's transaction was open: they join its batch
        // (or, at worst, the next one), not a commit each.
        #expect(commits <= 2, "\(commits) commits for \(followers + 1) writes")
        let foreign = ranOn.value.values.filter { $0 == leaderThread.value }.count
        #expect(foreign > 0, "no follower's closure ran in the leader's batch")
    }

    @Test func aFailingClosureRollsBackOnlyItsOwnChangesAndItsCallerGetsItsError() throws {
        let f = try StoreFixture(fast: false)
        let outcomes = Locked([Int: Result<String, Boom>]())
        let unexpected = Locked([String]())
        onThreads(24) { i in
            do {
                let id = try f.store.write { tx in
                    let session = try tx.create(NewPaymentSession(cartID: "cart_\(i % 6)", providerID: "p\(i)"))
                    try tx.select(id: session.id)
                    if i % 3 == 1 { throw Boom(index: i) }
                    return session.id
                }
                outcomes.withLock { $0[i] = .success(id) }
            } catch let boom as Boom {
                outcomes.withLock { $0[i] = .failure(boom) }
            } catch {
                unexpected.withLock { $0.append("\(i): \(error)") }
            }
        }
        #expect(unexpected.value.isEmpty, "\(unexpected.value)")
        for i in 0..<24 {
            switch outcomes.value[i] {
            case .success(let id)?:
                #expect(i % 3 != 1)
                #expect(try f.store.session(id: id) != nil)
            case .failure(let boom)?:
                #expect(i % 3 == 1)
                #expect(boom == Boom(index: i), "a caller got another caller's error")
            case nil:
                Issue.record("thread \(i) has no outcome")
            }
        }
        let all = try f.store.sessions(limit: 1000)
        #expect(all.count == 16)
        #expect(Set(all.map(\.providerID)) == Set((0..<24).filter { $0 % 3 != 1 }.map { "p\($0)" }))
        let report = try f.store.verify()
        #expect(report.isClean, "\(report.problems)")
        for cart in 0..<6 { #expect(try f.store.sessions(cartID: "cart_\(cart)").filter(\.isSelected).count <= 1) }
    }

    @Test func typedStoreErrorsReachTheirOwnCallersInASharedCommit() throws {
        let f = try StoreFixture(fast: false)
        let existing = try f.store.create(NewPaymentSession(cartID: "cart", providerID: "taken", idempotencyKey: "key-taken"))
        let errors = Locked([Int: PaymentSessionError]())
        let created = Atomic(0)
        onThreads(12) { i in
            do {
                if i % 2 == 0 {
                    // The same (cart, provider) as the existing session: refused.
                    try f.store.create(NewPaymentSession(cartID: "cart", providerID: "taken"))
                } else {
                    try f.store.create(NewPaymentSession(cartID: "cart_\(i)", providerID: "p"))
                }
                created.add(1, ordering: .relaxed)
            } catch let error as PaymentSessionError {
                errors.withLock { $0[i] = error }
            } catch {
                Issue.record("untyped error \(error)")
            }
        }
        #expect(created.load(ordering: .relaxed) == 6)
        #expect(errors.value.keys.sorted() == [0, 2, 4, 6, 8, 10])
        for error in errors.value.values { #expect(error.code == .conflict, "\(error)") }
        #expect(try f.store.sessions(cartID: "cart").map(\.id) == [existing.id])
    }

    @Test func aClosureThatThrowsWhileWritingAloneRunsOnceOnTheCallingThread() throws {
        let f = try StoreFixture(fast: false)
        var runs = 0
        var thread = ""
        #expect(throws: Boom(index: 7)) {
            try f.store.write { tx in
                runs += 1
                thread = "\(pthread_self())"
                _ = try tx.create(NewPaymentSession(cartID: "cart", providerID: "p"))
                throw Boom(index: 7)
            }
        }
        #expect(runs == 1)
        #expect(thread == "\(pthread_self())")
        #expect(try f.store.count() == 0)
    }

    @Test func writingFromInsideAWriteClosureIsRefusedWhicheverThreadRunsIt() throws {
        let f = try StoreFixture(fast: false)
        let gate = Gate()
        let nestedErrors = Locked([LMDBError.Code]())
        onThreads(4) { thread in
            if thread == 0 {
                _ = try? f.store.write { tx in
                    gate.leaderIn.signal()
                    gate.waitForFollowers(3)
                    return try tx.create(NewPaymentSession(cartID: "leader", providerID: "p"))
                }
            } else {
                gate.followerStarts()
                _ = try? f.store.write { tx in
                    do {
                        try f.store.create(NewPaymentSession(cartID: "inner_\(thread)", providerID: "p"))
                    } catch PaymentSessionError.storage(let failure) {
                        if let code = failure.lmdbError?.code { nestedErrors.withLock { $0.append(code) } }
                    }
                    return try tx.create(NewPaymentSession(cartID: "outer_\(thread)", providerID: "p"))
                }
            }
        }
        #expect(nestedErrors.value == [.nestedWriteTransaction, .nestedWriteTransaction, .nestedWriteTransaction])
        #expect(try f.store.count() == 4)
        for thread in 1...3 { #expect(try f.store.sessions(cartID: "inner_\(thread)").isEmpty) }
    }

    @Test func syncAndAsyncWritersShareTheSameCommits() async throws {
        let f = try StoreFixture(fast: false)
        let before = try f.store.rawStorage.lastTransactionID()
        let store = f.store
        async let threads: Void = Task.detached {
            onThreads(8) { thread in
                for i in 0..<10 { _ = try? store.create(NewPaymentSession(cartID: "sync_\(thread)_\(i)", providerID: "p")) }
            }
        }.value
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for i in 0..<10 { try await store.create(NewPaymentSession(cartID: "async_\(task)_\(i)", providerID: "p")) }
                }
            }
            try await group.waitForAll()
        }
        await threads
        let commits = try store.rawStorage.lastTransactionID() - before
        #expect(try await store.count() == 160)
        #expect(commits < 160, "\(commits) commits for 160 writes")
        let report = try store.verify()
        #expect(report.isClean, "\(report.problems)")
    }

    @Test func withSharingOffEachSyncWriteCommitsOnItsOwnThread() throws {
        let f = try StoreFixture(fast: true) { $0.groupCommit.sharesSynchronousCommits = false }
        let before = try f.store.rawStorage.lastTransactionID()
        let foreign = Atomic(0)
        onThreads(8) { thread in
            let me = "\(pthread_self())"
            for i in 0..<25 {
                _ = try? f.store.write { tx in
                    if "\(pthread_self())" != me { foreign.add(1, ordering: .relaxed) }
                    return try tx.create(NewPaymentSession(cartID: "cart_\(thread)_\(i)", providerID: "p"))
                }
            }
        }
        #expect(try f.store.rawStorage.lastTransactionID() - before == 200)
        #expect(foreign.load(ordering: .relaxed) == 0)
        #expect(try f.store.count() == 200)
    }

    @Test func aBatchLimitBelowOneCountsAsOne() async throws {
        let f = try StoreFixture(fast: true) { $0.groupCommit.maxCount = 0 }
        #expect(f.store.options.groupCommit.maxCount == 1)
        let store = f.store
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<8 { group.addTask { try await store.create(NewPaymentSession(cartID: "async_\(i)", providerID: "p")) } }
            try await group.waitForAll()
        }
        onThreads(4) { i in _ = try? store.create(NewPaymentSession(cartID: "sync_\(i)", providerID: "p")) }
        #expect(try await store.count() == 12)
    }

    @Test func manyThreadsMixingWritesKeepEveryInvariant() throws {
        let f = try StoreFixture(fast: true)
        let unexpected = Locked([String]())
        onThreads(12) { thread in
            var rng = SplitMix(seed: UInt64(thread) &* 0x9E37_79B9)
            for step in 0..<150 {
                let cart = "cart_\(Int(rng.next() % 8))"
                do {
                    switch rng.next() % 5 {
                    case 0, 1:
                        try f.store.createOrUpdate(cartID: cart, providerID: "p\(rng.next() % 3)")
                    case 2:
                        if let session = try f.store.sessions(cartID: cart).randomElement() { try f.store.select(id: session.id) }
                    case 3:
                        try f.store.write { tx in
                            let sessions = try tx.sessions(cartID: cart)
                            for session in sessions where session.status == .pending { try tx.update(id: session.id, status: .requiresMore) }
                            if step % 7 == 0 { throw Boom(index: step) }
                        }
                    default:
                        try f.store.deleteSessions(cartID: cart, force: false)
                    }
                } catch is Boom {
                } catch let error as PaymentSessionError where error.code == .notFound || error.code == .conflict || error.code == .invalidTransition {
                } catch {
                    unexpected.withLock { $0.append("\(error)") }
                }
            }
        }
        #expect(unexpected.value.isEmpty, "\(unexpected.value.prefix(5))")
        let report = try f.store.verify()
        #expect(report.isClean, "\(report.problems)")
        let changes = try f.store.changes(after: 0, limit: 1_000_000)
        #expect(changes.map(\.sequence) == Array(stride(from: 1, through: Int64(changes.count), by: 1)))
    }
}
