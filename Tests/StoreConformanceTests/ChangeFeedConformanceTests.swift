import Foundation
import PaymentSessions
import Synchronization
import Testing
import TestScheduling

/// The change feed on each backend: one change per session a write changed, in commit
/// order, gap-free; consumers' positions; trimming; followers.
@Suite("Conformance: the change feed", .ownThreads)
struct ChangeFeedConformanceTests {
    /// Every change, from the start.
    static func feed(_ store: any PaymentSessionStoring) async throws -> [PaymentSessionChange] {
        try await store.changes(after: 0, limit: 100_000)
    }

    @Test(arguments: Backend.available)
    func everyWriteAppendsOneChangePerSessionItChangedInOrder(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let a = try await store.create(NewPaymentSession(cartID: "c", providerID: "a", idempotencyKey: "k", select: true))
            let b = try await store.create(NewPaymentSession(cartID: "c", providerID: "b", amount: 100, currencyCode: "usd"))
            clock.advance()
            _ = try await store.select(id: b.id)  // two changes: b selected, a deselected
            _ = try await store.authorize(id: b.id, amount: 100, currencyCode: nil, data: nil, expectedUpdatedAt: nil)
            _ = try await store.update(id: a.id, status: nil, data: ["x": 1], expectedUpdatedAt: nil)
            _ = try await store.update(id: a.id, status: .canceled, data: nil, expectedUpdatedAt: nil)
            _ = try await store.delete(id: a.id, force: false)
            let changes = try await Self.feed(store)
            #expect(changes.map(\.sequence) == Array(1...Int64(changes.count)))
            #expect(changes.map(\.kind) == [.created, .created, .deselected, .selected, .authorized, .updated, .canceled, .deleted])
            #expect(changes.map(\.sessionID) == [a.id, b.id, a.id, b.id, b.id, a.id, a.id, a.id])
            #expect(changes.allSatisfy { $0.cartID == "c" })
            #expect(changes[0].statusBefore == nil && changes[0].statusAfter == .pending && changes[0].session == a)
            #expect(changes[4].statusBefore == .pending && changes[4].statusAfter == .authorized)
            #expect(changes[4].session == (try await store.session(id: b.id)))
            #expect(changes[4].committedAt == clock.now)
            #expect(changes[7].statusBefore == .canceled && changes[7].statusAfter == nil && changes[7].session == nil)
            // A write that changes nothing (a retried create, a retried authorization, a
            // select of the selected) appends nothing.
            _ = try await store.create(NewPaymentSession(cartID: "other", providerID: "p", idempotencyKey: "k2"))
            let before = try await store.changeFeedState().last
            _ = try await store.create(NewPaymentSession(cartID: "other", providerID: "p", idempotencyKey: "k2"))
            _ = try await store.authorize(id: b.id, amount: 100, currencyCode: nil, data: nil, expectedUpdatedAt: nil)
            _ = try await store.select(id: b.id)
            #expect(try await store.changeFeedState().last == before)
            // A unit that fails appends nothing; one that succeeds appends its changes together.
            let failing = await expectStoreError {
                try await store.perform([
                    .create(NewPaymentSession(cartID: "u", providerID: "p")), .select(id: PaymentSessionID.generate()),
                ])
            }
            #expect(failing?.code == .notFound)
            #expect(try await store.changeFeedState().last == before)
            let id = PaymentSessionID.generate()
            try await store.perform([.create(NewPaymentSession(cartID: "u", providerID: "p", id: id)), .select(id: id)])
            #expect(try await store.changes(after: before, limit: 10).map(\.kind) == [.created, .selected])
        }
    }

    /// Replaying the feed from the start rebuilds exactly the sessions the store holds.
    @Test(arguments: Backend.available)
    func replayingTheFeedRebuildsTheStore(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            try await ImportExportConformanceTests.populate(store, clock: clock)
            _ = try await store.deleteSessions(cartID: "cart_1", force: false)
            clock.advance(seconds: 60)
            _ = try await store.purge(notUpdatedSince: clock.now, statuses: [.canceled], includeAuthorized: false)
            let imported = PaymentSession(
                id: "ps_01G901XNSRM2YS3ASN9H5KG3FZ", cartID: "imported", providerID: "p", createdAt: clock.now, updatedAt: clock.now)
            _ = try await store.importJSONLines(imported.jsonText())
            let changes = try await Self.feed(store)
            #expect(changes.map(\.sequence) == Array(1...Int64(changes.count)))
            #expect(changes.contains { $0.kind == .purged } && changes.last?.kind == .imported)
            #expect(try await Self.replay(changes) == contents(of: store))
        }
    }

    /// The sessions a feed describes, in id order.
    static func replay(_ changes: [PaymentSessionChange]) -> [PaymentSession] {
        var sessions: [String: PaymentSession] = [:]
        for change in changes { sessions[change.sessionID] = change.session }
        return sessions.values.sorted { $0.id < $1.id }
    }

    @Test(arguments: Backend.available)
    func consumersKeepTheirPositionWhichOnlyMovesForward(backend: Backend) async throws {
        try await withStore(backend) { store in
            for provider in ["a", "b", "c"] { _ = try await store.create(NewPaymentSession(cartID: "c", providerID: provider)) }
            #expect(try await store.position(consumer: "webhooks") == nil)
            try await store.acknowledge(consumer: "webhooks", upTo: 2)
            try await store.acknowledge(consumer: "webhooks", upTo: 1)  // a redelivery's late acknowledgement
            #expect(try await store.position(consumer: "webhooks") == 2)
            try await store.acknowledge(consumer: "analytics", upTo: 3)
            let state = try await store.changeFeedState()
            #expect(state.first == 1 && state.last == 3 && state.consumers == ["webhooks": 2, "analytics": 3])
            let past = await expectStoreError { try await store.acknowledge(consumer: "webhooks", upTo: 4) }
            #expect(past == .invalidInput(field: "sequence", value: "4", reason: "is past the last change, 3"))
            #expect(await expectStoreError { try await store.acknowledge(consumer: "", upTo: 1) }?.code == .invalidInput)
            #expect(await expectStoreError { _ = try await store.changes(after: -1, limit: 10) }?.code == .invalidInput)
            #expect(await expectStoreError { _ = try await store.changes(after: 4, limit: 10) }?.code == .invalidInput)
            #expect(try await store.changes(after: 3, limit: 10).isEmpty)
            // A consumer that is gone for good stops holding changes back.
            #expect(try await store.removeConsumer("webhooks"))
            #expect(try await !store.removeConsumer("webhooks"))
            #expect(try await store.changeFeedState().consumers == ["analytics": 3])
        }
    }

    /// Trimmed: what every consumer acknowledged, and whatever is past the retention; a
    /// reader after a trimmed position is told the oldest one kept, and numbering goes on
    /// after a trim that took every change.
    @Test(arguments: Backend.available)
    func changesAreTrimmedOnceAcknowledgedOrPastTheRetention(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock, settings: StoreSettings(changeRetention: 3600)) { store in
            for provider in ["a", "b", "c", "d"] { _ = try await store.create(NewPaymentSession(cartID: "c", providerID: provider)) }
            // Without consumers, nothing is trimmed before the retention.
            #expect(try await store.trimChanges() == 0)
            try await store.acknowledge(consumer: "slow", upTo: 1)
            try await store.acknowledge(consumer: "fast", upTo: 3)
            #expect(try await store.trimChanges() == 1)
            #expect(try await store.changeFeedState().first == 2)
            let trimmed = await expectStoreError { _ = try await store.changes(after: 0, limit: 10) }
            #expect(trimmed == .changesTrimmed(after: 0, oldestAvailable: 2))
            #expect(trimmed?.code == .notFound)
            #expect(try await store.changes(after: 1, limit: 10).map(\.sequence) == [2, 3, 4])
            // Past the retention, the rest goes, acknowledged or not, and purge reports it.
            clock.advance(seconds: 3601)
            _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "e"))
            let report = try await store.purge(notUpdatedSince: Date(timeIntervalSince1970: 0), statuses: nil, includeAuthorized: false)
            #expect(report.changesTrimmed == 3)
            let state = try await store.changeFeedState()
            #expect(state.first == 5 && state.last == 5)
            #expect(try await store.changes(after: 4, limit: 10).map(\.sequence) == [5])
            // A trim that empties the feed keeps its number: the next change follows it.
            clock.advance(seconds: 3601)
            #expect(try await store.trimChanges() == 1)
            let emptied = try await store.changeFeedState()
            #expect(emptied.first == nil && emptied.last == 5)
            _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "f"))
            #expect(try await store.changes(after: 5, limit: 10).map(\.sequence) == [6])
        }
    }

    /// A follower gets what is there, then each change as it commits, and ends when its
    /// task is cancelled.
    @Test(arguments: Backend.available)
    func aFollowerSeesEveryChangeOnceAndInOrderAsItCommits(backend: Backend) async throws {
        try await withStore(backend) { store in
            _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "before"))
            let seen = Mutex<[Int64]>([])
            let follower = Task {
                for try await change in store.followChanges(after: 0, pageSize: 2) {
                    seen.withLock { $0.append(change.sequence) }
                }
            }
            for provider in ["p1", "p2", "p3", "p4", "p5"] {
                _ = try await store.create(NewPaymentSession(cartID: "c", providerID: provider))
                try await Task.sleep(for: .milliseconds(20))
            }
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(10)
            while seen.withLock({ $0.count }) < 6 && clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(seen.withLock { $0 } == [1, 2, 3, 4, 5, 6])
            follower.cancel()
            try await follower.value
        }
    }
}
