import Foundation
import PaymentSessionsCore
import Testing

/// The rules as the core states them, over values: no store, no disk. Each backend asks
/// these functions what to do and writes the answer its own way, so a rule that is right
/// here is right on both; the conformance suite checks that each stores the answer alike.
@Suite("Core: the rules over values")
struct SessionRulesTests {
    static let id = "ps_01JD0000000000000000000001"
    /// A fixed instant, in microseconds since 1970.
    static let t0: Int64 = 1_780_000_000_000_000

    static func session(
        _ status: PaymentSessionStatus, selected: Bool = false, amount: Int? = nil, currency: String? = nil,
        authorized: Bool = false, data: [String: JSONValue] = ["k": "v"]
    ) -> PaymentSession {
        PaymentSession(
            id: id, cartID: "cart_1", providerID: "stripe", isSelected: selected, status: status, data: data,
            amount: amount, currencyCode: currency,
            paymentAuthorizedAt: authorized ? Timestamp.date(microseconds: t0) : nil,
            createdAt: Timestamp.date(microseconds: t0), updatedAt: Timestamp.date(microseconds: t0))
    }

    /// What may follow what, written out as TheRules.md gives it; staying is always allowed.
    static let documentedMoves: [PaymentSessionStatus: Set<PaymentSessionStatus>] = [
        .pending: [.requiresMore, .authorized, .error, .canceled],
        .requiresMore: [.pending, .authorized, .error, .canceled],
        .error: [.pending, .canceled],
        .authorized: [.canceled],
        .canceled: [],
    ]

    @Test func theStatusTableIsTheDocumentedOne() {
        for from in PaymentSessionStatus.allCases {
            for to in PaymentSessionStatus.allCases {
                let documented = from == to || Self.documentedMoves[from, default: []].contains(to)
                #expect(from.canMove(to: to) == documented, "\(from) -> \(to)")
            }
        }
    }

    /// Every pair of statuses through `update`: a move outside the table is refused with
    /// both ends named; a move inside it (but to `authorized`, which has rules of its own)
    /// is a write that sets the status and moves `updated_at`.
    @Test func updateFollowsTheTableForEveryPair() throws {
        for from in PaymentSessionStatus.allCases {
            for to in PaymentSessionStatus.allCases where to != .authorized && from != .authorized {
                let session = Self.session(from)
                do {
                    let change = try SessionRules.update(
                        session, status: to, data: nil, expectedUpdatedAt: nil, maxDataBytes: 1 << 16, now: Self.t0 + 10)
                    #expect(from.canMove(to: to), "\(from) -> \(to) was allowed")
                    #expect(change.isWrite && change.session.status == to)
                    #expect(change.session.updatedMicroseconds == Self.t0 + 10)
                } catch {
                    #expect(!from.canMove(to: to), "\(from) -> \(to) was refused: \(error)")
                    #expect(error == .invalidTransition(id: Self.id, from: from, to: to))
                }
            }
        }
    }

    @Test func updatedAtMovesStrictlyForwardWhenTheClockStandsStillOrStepsBack() throws {
        for now in [Self.t0, Self.t0 - 1_000_000] {
            let change = try SessionRules.update(
                Self.session(.pending), status: .requiresMore, data: nil, expectedUpdatedAt: nil, maxDataBytes: 1 << 16,
                now: now)
            #expect(change.session.updatedMicroseconds == Self.t0 + 1)
        }
    }

    @Test func aStaleExpectedUpdatedAtIsRefused() {
        let session = Self.session(.pending)
        let stale = Timestamp.date(microseconds: Self.t0 - 1)
        #expect(throws: PaymentSessionError.staleUpdate(id: Self.id, expected: stale, actual: session.updatedAt)) {
            try SessionRules.update(
                session, status: .error, data: nil, expectedUpdatedAt: stale, maxDataBytes: 1 << 16, now: Self.t0 + 1)
        }
    }

    @Test func cancelingTheSelectedSessionDeselectsIt() throws {
        let change = try SessionRules.update(
            Self.session(.pending, selected: true), status: .canceled, data: nil, expectedUpdatedAt: nil,
            maxDataBytes: 1 << 16, now: Self.t0 + 1)
        #expect(change.deselected && !change.session.isSelected && change.session.status == .canceled)
    }

    @Test func aCanceledSessionKeepsItsData() throws {
        let canceled = Self.session(.canceled)
        #expect(throws: PaymentSessionError.sessionIsFinal(id: Self.id)) {
            try SessionRules.update(
                canceled, status: nil, data: ["k": "other"], expectedUpdatedAt: nil, maxDataBytes: 1 << 16, now: Self.t0 + 1)
        }
        #expect(throws: PaymentSessionError.sessionIsFinal(id: Self.id)) {
            try SessionRules.updateAmount(canceled, amount: 100, currencyCode: "usd", expectedUpdatedAt: nil, now: Self.t0 + 1)
        }
    }

    // MARK: Authorization

    @Test func onlyTheSelectedSessionIsAuthorizedForItsAmount() throws {
        func authorize(_ session: PaymentSession, _ amount: Int) throws(PaymentSessionError) -> SessionChange {
            try SessionRules.authorize(
                session, amount: amount, currencyCode: nil, data: nil, expectedUpdatedAt: nil, maxDataBytes: 1 << 16,
                now: Self.t0 + 1)
        }
        #expect(throws: PaymentSessionError.notSelected(id: Self.id, cartID: "cart_1")) {
            try authorize(Self.session(.pending, amount: 4200, currency: "usd"), 4200)
        }
        #expect(throws: PaymentSessionError.amountMismatch(id: Self.id, expected: 4200, actual: 4300)) {
            try authorize(Self.session(.pending, selected: true, amount: 4200, currency: "usd"), 4300)
        }
        let held = try authorize(Self.session(.pending, selected: true, amount: 4200, currency: "usd"), 4200)
        #expect(held.isWrite && held.session.status == .authorized)
        #expect(held.session.money.authorizedAt == held.session.updatedMicroseconds)

        // A retry writes nothing, and another amount is a conflict, never a second hold.
        let retried = try authorize(held.session, 4200)
        #expect(!retried.isWrite && retried.session.updatedMicroseconds == held.session.updatedMicroseconds)
        #expect(throws: PaymentSessionError.amountMismatch(id: Self.id, expected: 4200, actual: 1)) {
            try authorize(held.session, 1)
        }
        for status in [PaymentSessionStatus.error, .canceled] {
            #expect(throws: PaymentSessionError.invalidTransition(id: Self.id, from: status, to: .authorized)) {
                try authorize(Self.session(status, selected: true, amount: 4200, currency: "usd"), 4200)
            }
        }
    }

    @Test func anAmountCannotBeAuthorizedWithoutACurrency() {
        #expect(throws: PaymentSessionError.self) {
            try SessionRules.authorize(
                Self.session(.pending, selected: true), amount: 100, currencyCode: nil, data: nil, expectedUpdatedAt: nil,
                maxDataBytes: 1 << 16, now: Self.t0 + 1)
        }
        for (amount, currency) in [(-1, "usd"), (1 << 53, "usd"), (100, "USD"), (100, "us"), (100, "usdx")] {
            #expect(throws: PaymentSessionError.self, "\(amount) \(currency)") {
                try SessionRules.validateAuthorization(amount: amount, currencyCode: currency)
            }
        }
        #expect(throws: Never.self) { try SessionRules.validateAuthorization(amount: (1 << 53) - 1, currencyCode: "usd") }
    }

    @Test func anAuthorizedSessionKeepsItsAmount() throws {
        let held = Self.session(.authorized, selected: true, amount: 4200, currency: "usd", authorized: true)
        let same = try SessionRules.updateAmount(held, amount: 4200, currencyCode: nil, expectedUpdatedAt: nil, now: Self.t0 + 1)
        #expect(!same.isWrite)
        #expect(throws: PaymentSessionError.amountMismatch(id: Self.id, expected: 4200, actual: 5100)) {
            try SessionRules.updateAmount(held, amount: 5100, currencyCode: nil, expectedUpdatedAt: nil, now: Self.t0 + 1)
        }
        let open = try SessionRules.updateAmount(
            Self.session(.pending, amount: 4200, currency: "usd"), amount: 5100, currencyCode: nil, expectedUpdatedAt: nil,
            now: Self.t0 + 1)
        #expect(open.isWrite && open.session.amount == 5100)
    }

    // MARK: Selection, deletion, purge

    @Test func anAuthorizedSelectionIsNeverReleasedNorDeletedUnforced() throws {
        let held = Self.session(.authorized, selected: true, amount: 4200, currency: "usd", authorized: true)
        #expect(throws: PaymentSessionError.authorizedSessionSelected(cartID: "cart_1", authorizedID: Self.id)) {
            try SessionRules.release(held, now: Self.t0 + 1)
        }
        #expect(throws: PaymentSessionError.sessionAuthorized(id: Self.id)) { try SessionRules.checkDeletable(held, force: false) }
        #expect(throws: Never.self) { try SessionRules.checkDeletable(held, force: true) }
        let released = try SessionRules.release(Self.session(.pending, selected: true), now: Self.t0)
        #expect(!released.isSelected && released.updatedMicroseconds > Self.t0)
        #expect(throws: PaymentSessionError.notSelectable(id: Self.id, status: .canceled)) {
            try SessionRules.needsSelecting(Self.session(.canceled))
        }
        #expect(try SessionRules.needsSelecting(Self.session(.pending, selected: true)) == false)
    }

    @Test func purgeKeepsAuthorizedSessionsUnlessTold() {
        let cutoff = Self.t0 + 1
        for status in PaymentSessionStatus.allCases {
            let session = Self.session(status, authorized: status == .authorized)
            let verdict = SessionRules.purgeVerdict(session, cutoff: cutoff, statuses: nil, includeAuthorized: false)
            #expect(verdict == (status == .authorized ? .keptAuthorized : .purged), "\(status)")
            #expect(SessionRules.purgeVerdict(session, cutoff: cutoff, statuses: nil, includeAuthorized: true) == .purged)
            #expect(SessionRules.purgeVerdict(session, cutoff: Self.t0, statuses: nil, includeAuthorized: true) == .stays)
            #expect(SessionRules.purgeVerdict(session, cutoff: cutoff, statuses: [], includeAuthorized: true) == .stays)
        }
    }

    /// Reservation times may come from damaged bytes: any value answers, none traps.
    @Test func reservationsExpireAtTheirRetentionAndExtremeTimesDoNotTrap() {
        let day: TimeInterval = 86_400
        let dayMicroseconds: Int64 = 86_400_000_000
        #expect(!SessionRules.reservationExpired(reservedAt: Self.t0, now: Self.t0 + dayMicroseconds - 1, retention: day))
        #expect(SessionRules.reservationExpired(reservedAt: Self.t0, now: Self.t0 + dayMicroseconds, retention: day))
        #expect(SessionRules.reservationExpired(reservedAt: .min, now: .max, retention: day))
        #expect(SessionRules.reservationExpired(reservedAt: .max, now: .min + 1, retention: day))
        #expect(!SessionRules.reservationExpired(reservedAt: Self.t0 + 1_000, now: Self.t0, retention: day))
        #expect(SessionRules.retentionMicroseconds(-5) == 0)
        #expect(SessionRules.retentionMicroseconds(.infinity) == 1_000_000_000_000 * 1_000_000)
    }
}
