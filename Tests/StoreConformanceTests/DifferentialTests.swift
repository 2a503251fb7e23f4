import Foundation
import PaymentSessions
import Testing
import TestSupport
import TestScheduling

/// The backends side by side: the same random operations, with the same ids and the same
/// clock, must give the same results (sessions or errors) and leave the same sessions.
/// A behaviour only one backend shows is a bug or a documented difference.
///
/// `CONFORMANCE_SEQUENCES` sets how many sequences run (default 20 of 60 operations;
/// thousands when run by hand).
@Suite("Conformance: both backends side by side", .ownThreads) struct DifferentialTests {
    static let sequences = Int(ProcessInfo.processInfo.environment["CONFORMANCE_SEQUENCES"] ?? "") ?? 20

    @Test(.enabled(if: Backend.available.count > 1, "needs both backends"))
    func randomOperationsGiveTheSameResultsOnBothBackends() async throws {
        try await compareBackends(seeds: 0..<UInt64(Self.sequences), writesPerUnit: 1...1)
    }

    /// Units of several writes, each often reading what an earlier one wrote (the same few
    /// carts and sessions): PostgreSQL runs most of them optimistically, reading its own
    /// recorded writes, and must decide as LMDB's write transaction does.
    @Test(.enabled(if: Backend.available.count > 1, "needs both backends"))
    func randomUnitsOfWritesGiveTheSameResultsOnBothBackends() async throws {
        try await compareBackends(seeds: 1_000..<(1_000 + UInt64(Self.sequences)), writesPerUnit: 2...4)
    }

    /// Runs a sequence of random units for each seed on both backends, comparing every
    /// outcome, then their sessions, counts and feeds.
    private func compareBackends(seeds: Range<UInt64>, writesPerUnit: ClosedRange<Int>) async throws {
        for seed in seeds {
            let lmdbClock = ManualClock()
            let postgresClock = ManualClock()
            try await withStore(.lmdb, clock: lmdbClock, settings: StoreSettings(idempotencyRetention: 5)) { lmdb in
                try await withStore(.postgresql, clock: postgresClock, settings: StoreSettings(idempotencyRetention: 5)) { postgres in
                    var generator = SplitMix(seed: seed)
                    var ids: [String] = []
                    // `createOrUpdate` names its sessions itself: the LMDB id of each, to
                    // the PostgreSQL id of the same session.
                    var renames: [String: String] = [:]
                    for step in 0..<60 {
                        let size = writesPerUnit.lowerBound
                            + Int(generator.next() % UInt64(writesPerUnit.count))
                        let writes = (0..<size).map { _ in Self.randomWrite(&generator, ids: &ids) }
                        var left = await Self.outcome { try await lmdb.perform(writes) }
                        var right = await Self.outcome { try await postgres.perform(writes) }
                        if case .results(let l) = left, case .results(let r) = right {
                            for case (.createdOrUpdated(let a, created: true), .createdOrUpdated(let b, created: true)) in zip(l, r) {
                                renames[a.id] = b.id
                            }
                        }
                        // A unit that failed may name a session an earlier write of it created
                        // with an id of the store's own (`createOrUpdate`), on each backend
                        // another, and never renamed since nothing stayed.
                        let known = Set(ids).union(renames.values)
                        left = left.renamed(renames).maskingUnknownIDs(known)
                        right = right.renamed([:]).maskingUnknownIDs(known)
                        #expect(left == right, "seed \(seed) step \(step): \(writes)")
                        if left != right { return }
                        let advance = Int64(generator.next() % 3_000)
                        lmdbClock.advance(milliseconds: advance)
                        postgresClock.advance(milliseconds: advance)
                    }
                    let leftContents = try await contents(of: lmdb).map { Self.renamed($0, renames) }
                    let rightContents = try await contents(of: postgres)
                    #expect(
                        leftContents.sorted { $0.id < $1.id } == rightContents.sorted { $0.id < $1.id }, "seed \(seed)")
                    #expect(try await lmdb.sessionCounts() == postgres.sessionCounts())
                    // The same changes, in the same order, on both feeds.
                    func summary(_ change: PaymentSessionChange, _ renames: [String: String]) -> String {
                        "\(change.sequence) \(renames[change.sessionID] ?? change.sessionID) \(change.kind) "
                            + "\(change.statusBefore?.rawValue ?? "-") \(change.statusAfter?.rawValue ?? "-")"
                    }
                    let leftFeed = try await lmdb.changes(after: 0, limit: 100_000).map { summary($0, renames) }
                    let rightFeed = try await postgres.changes(after: 0, limit: 100_000).map { summary($0, [:]) }
                    #expect(leftFeed == rightFeed, "seed \(seed)")
                    try await expectInvariants(lmdb)
                    try await expectInvariants(postgres)
                }
            }
        }
    }

    enum Outcome: Equatable {
        case results([PaymentSessionWriteResult])
        case error(PaymentSessionError)
        case unexpected(String)

        /// An error's text with every session id not in `known` replaced by one placeholder.
        func maskingUnknownIDs(_ known: Set<String>) -> Outcome {
            guard case .unexpected(var text) = self else { return self }
            for match in text.matches(of: /ps_[0-9A-Z]{26}/).reversed() where !known.contains(String(text[match.range])) {
                text.replaceSubrange(match.range, with: "ps_(named by the store)")
            }
            return .unexpected(text)
        }

        func renamed(_ renames: [String: String]) -> Outcome {
            if case .error(let error) = self {
                // Errors name sessions in their text: compare that, with the ids renamed.
                var text = "\(error.code): \(error)"
                for (from, to) in renames { text = text.replacingOccurrences(of: from, with: to) }
                return .unexpected(text)
            }
            guard case .results(let results) = self else { return self }
            return .results(
                results.map { result in
                    switch result {
                    case .session(let session): .session(DifferentialTests.renamed(session, renames))
                    case .createdOrUpdated(let session, let created):
                        .createdOrUpdated(DifferentialTests.renamed(session, renames), created: created)
                    case .deselected(let session): .deselected(session.map { DifferentialTests.renamed($0, renames) })
                    case .count, .purged, .inserted: result
                    }
                })
        }
    }

    static func renamed(_ session: PaymentSession, _ renames: [String: String]) -> PaymentSession {
        var session = session
        session.id = renames[session.id] ?? session.id
        return session
    }

    static func outcome(_ body: () async throws -> [PaymentSessionWriteResult]) async -> Outcome {
        do {
            return .results(try await body())
        } catch let error as PaymentSessionError {
            return .error(error)
        } catch {
            return .unexpected("\(error)")
        }
    }

    static func randomWrite(_ generator: inout SplitMix, ids: inout [String]) -> PaymentSessionWrite {
        func pick<T>(_ values: [T]) -> T { values[Int(generator.next() % UInt64(values.count))] }
        let carts = ["c1", "c2", "c3"]
        let providers = ["stripe", "paypal", "manual"]
        let statuses = PaymentSessionStatus.allCases
        // Mostly ids that exist, sometimes one that does not.
        let id = ids.isEmpty || generator.next() % 10 == 0 ? PaymentSessionID.generate() : pick(ids)
        switch generator.next() % 12 {
        case 0, 1:
            let newID = PaymentSessionID.generate()
            ids.append(newID)
            let amount: Int? = generator.next() % 2 == 0 ? Int(generator.next() % 1000) : nil
            return .create(
                NewPaymentSession(
                    cartID: pick(carts), providerID: pick(providers), status: pick([.pending, .pending, .requiresMore, .error]),
                    idempotencyKey: generator.next() % 3 == 0 ? pick(["k1", "k2", "k3"]) : nil,
                    select: generator.next() % 2 == 0, id: newID, amount: amount, currencyCode: amount == nil ? nil : "eur"))
        case 2: return .createOrUpdate(cartID: pick(carts), providerID: pick(providers), data: generator.next() % 2 == 0 ? ["v": 1] : nil)
        case 3: return .update(id: id, status: pick(statuses), data: nil, expectedUpdatedAt: nil)
        case 4: return .select(id: id)
        case 5: return .deselect(cartID: pick(carts))
        case 6: return .authorize(id: id, amount: Int(generator.next() % 1000), currencyCode: pick([nil, "eur", "usd"]), data: nil, expectedUpdatedAt: nil)
        case 7: return .updateAmount(id: id, amount: Int(generator.next() % 1000), currencyCode: pick([nil, "eur"]), expectedUpdatedAt: nil)
        case 8: return .setInitiated(id: id, isInitiated: generator.next() % 2 == 0)
        case 9: return .delete(id: id, force: generator.next() % 2 == 0)
        case 10: return .deleteSessions(cartID: pick(carts), force: generator.next() % 4 == 0)
        default: return .update(id: id, status: nil, data: ["step": .number(JSONNumber(Int(generator.next() % 100)))], expectedUpdatedAt: nil)
        }
    }
}
