import Foundation
import PaymentSessions
import Testing
import TestScheduling

@Suite("Conformance: units of writes, deletes, purge, import and export", .ownThreads) struct UnitsAndPurgeConformanceTests {
    @Test(arguments: Backend.available)
    func aUnitTakesEffectWhole(backend: Backend) async throws {
        try await withStore(backend) { store in
            let id = PaymentSessionID.generate()
            let results = try await store.perform([
                .create(NewPaymentSession(cartID: "c", providerID: "p", id: id)),
                .select(id: id),
                .updateAmount(id: id, amount: 4200, currencyCode: "eur", expectedUpdatedAt: nil),
                .authorize(id: id, amount: 4200, currencyCode: nil, data: nil, expectedUpdatedAt: nil),
                .createOrUpdate(cartID: "c", providerID: "q", data: nil),
                .deselect(cartID: "nothing-selected"),
            ])
            #expect(results.count == 6)
            #expect(results[3].session?.status == .authorized)
            if case .createdOrUpdated(_, let created) = results[4] { #expect(created) } else { Issue.record("\(results[4])") }
            #expect(results[5] == .deselected(nil))
            #expect(try await store.session(id: id) == results[3].session)
        }
    }

    @Test(arguments: Backend.available)
    func aUnitWhoseLastWriteFailsWritesNothing(backend: Backend) async throws {
        try await withStore(backend) { store in
            let existing = try await store.create(NewPaymentSession(cartID: "c", providerID: "p", select: true))
            let id = PaymentSessionID.generate()
            let error = await expectStoreError {
                _ = try await store.perform([
                    .create(NewPaymentSession(cartID: "c", providerID: "q", id: id)),
                    .select(id: id),
                    .update(id: existing.id, status: .canceled, data: nil, expectedUpdatedAt: nil),
                    .update(id: existing.id, status: .pending, data: nil, expectedUpdatedAt: nil),
                ])
            }
            #expect(error == .invalidTransition(id: existing.id, from: .canceled, to: .pending))
            #expect(try await contents(of: store) == [existing])
            try await expectInvariants(store)
        }
    }

    /// Every write method is a ``PaymentSessionWrite`` applied: purge and insert too, so a
    /// unit may hold them, and a unit that fails after them leaves them undone.
    @Test(arguments: Backend.available)
    func purgeAndInsertAreWritesOfAUnitLikeTheOthers(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let old = try await store.create(NewPaymentSession(cartID: "a", providerID: "p"))
            clock.advance(seconds: 100)
            let cutoff = clock.now
            let copy = PaymentSession(
                id: PaymentSessionID.generate(), cartID: "b", providerID: "p", status: .requiresMore, data: ["k": "v"],
                createdAt: cutoff, updatedAt: cutoff)
            let failing = await expectStoreError {
                _ = try await store.perform([
                    .purge(notUpdatedSince: cutoff, statuses: nil, includeAuthorized: false),
                    .insert(copy),
                    .select(id: old.id),
                ])
            }
            #expect(failing == .sessionNotFound(id: old.id))
            #expect(try await contents(of: store) == [old])

            let results = try await store.perform([
                .purge(notUpdatedSince: cutoff, statuses: nil, includeAuthorized: false),
                .insert(copy),
            ])
            #expect(results.count == 2 && results[1] == .inserted)
            guard case .purged(let report) = results[0] else { Issue.record("\(results[0])"); return }
            #expect(report.purged == 1)
            #expect(try await contents(of: store) == [copy])
            // The method and the applied write are one path.
            try await store.insert(PaymentSession(
                id: PaymentSessionID.generate(), cartID: "c", providerID: "p", createdAt: cutoff, updatedAt: cutoff))
            #expect(try await store.apply(.deleteSessions(cartID: "c", force: false)) == .count(1))
            try await expectInvariants(store)
        }
    }

    @Test(arguments: Backend.available)
    func purgeDeletesWhatWasNotUpdatedSinceTheCutoff(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            let old = try await store.create(NewPaymentSession(cartID: "a", providerID: "p", select: true))
            let oldError = try await store.create(NewPaymentSession(cartID: "b", providerID: "p", status: .error))
            clock.advance(seconds: 100)
            let cutoff = clock.now
            let fresh = try await store.create(NewPaymentSession(cartID: "c", providerID: "p"))
            let onlyErrors = try await store.purge(notUpdatedSince: cutoff, statuses: [.error], includeAuthorized: false)
            #expect(onlyErrors.purged == 1)
            #expect(try await store.session(id: oldError.id) == nil)
            #expect(try await store.purge(notUpdatedSince: cutoff, statuses: nil, includeAuthorized: false).purged == 1)
            #expect(try await contents(of: store) == [fresh])
            #expect(try await store.selectedSession(cartID: "a") == nil)
            _ = old
            try await expectInvariants(store)
        }
    }

    @Test(arguments: Backend.available)
    func exportThenImportIntoAnEmptyStoreKeepsEverything(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            try await seed(store, clock: clock)
            let original = try await contents(of: store)
            var lines: [String] = []
            let exported = try await store.exportJSONLines { lines.append($0) }
            #expect(exported == lines.count && exported == 6)
            for target in Backend.available {
                try await withStore(target) { copy in
                    #expect(try await copy.importJSONLines(lines.joined(separator: "\n") + "\n") == exported)
                    #expect(try await contents(of: copy) == original, "\(backend) -> \(target)")
                    try await expectInvariants(copy)
                    // A second import clashes on the first line, and writes nothing.
                    let again = await expectStoreError { _ = try await copy.importJSONLines(lines.joined(separator: "\n")) }
                    if case .importFailed(let line, let error)? = again {
                        #expect(line == 1 && error.code == .conflict, "\(error)")
                    } else {
                        Issue.record("expected importFailed, got \(String(describing: again))")
                    }
                }
            }
        }
    }

    @Test(arguments: Backend.available)
    func anImportWithTwoSelectedSessionsOfOneCartImportsNothing(backend: Backend) async throws {
        try await withStore(backend) { store in
            let a = PaymentSession(id: PaymentSessionID.generate(), cartID: "c", providerID: "a", isSelected: true, status: .pending, data: [:], idempotencyKey: nil, createdAt: Date(), updatedAt: Date())
            let b = PaymentSession(id: PaymentSessionID.generate(), cartID: "c", providerID: "b", isSelected: true, status: .pending, data: [:], idempotencyKey: nil, createdAt: Date(), updatedAt: Date())
            let error = await expectStoreError { _ = try await store.importJSONLines(a.jsonText() + "\n" + b.jsonText()) }
            #expect(error?.code == .invalidInput)
            if case .importFailed(let line, _)? = error { #expect(line == 2) }
            let count = try await store.count()
            #expect(count == 0)
        }
    }

    /// Sessions in every status, selected and not, with keys and money.
    func seed(_ store: any PaymentSessionStoring, clock: ManualClock) async throws {
        _ = try await store.create(NewPaymentSession(cartID: "c1", providerID: "a", data: ["n": 1.5], idempotencyKey: "k1"))
        clock.advance()
        let selected = try await store.create(
            NewPaymentSession(cartID: "c1", providerID: "b", select: true, amount: 990, currencyCode: "jpy", isInitiated: true))
        clock.advance()
        _ = try await store.authorize(id: selected.id, amount: 990, currencyCode: nil, data: ["auth": "ok"], expectedUpdatedAt: nil)
        _ = try await store.create(NewPaymentSession(cartID: "c2", providerID: "a", status: .requiresMore, idempotencyKey: "k2"))
        _ = try await store.create(NewPaymentSession(cartID: "c2", providerID: "b", status: .error))
        let canceled = try await store.create(NewPaymentSession(cartID: "c3", providerID: "a", select: true))
        _ = try await store.update(id: canceled.id, status: .canceled, data: nil, expectedUpdatedAt: nil)
        _ = try await store.create(NewPaymentSession(cartID: "c3", providerID: "b", select: true, amount: 5, currencyCode: "eur"))
    }
}
