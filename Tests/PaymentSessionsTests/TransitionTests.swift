import PaymentSessions
import StoreTestFixtures
import Testing
import TestScheduling

@Suite("Status transitions", .ownThreads)
struct TransitionTests {
    typealias Status = PaymentSessionStatus

    static let pairs: [(Status, Status)] = Status.allCases.flatMap { from in Status.allCases.map { (from, $0) } }

    @Test(arguments: 0..<pairs.count)
    func everyPairOfTheTableIsAllowedOrRefused(index: Int) throws {
        let (from, to) = Self.pairs[index]
        let f = try StoreFixture()
        // Selected (but a canceled one cannot be): only a cart's selected session can be
        // authorized, which `AuthorizationTests` covers.
        let s = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", status: from, select: from != .canceled))
        f.clock.advance()
        // The table itself is pinned to the documented one by the core's own test
        // (`theStatusTableIsTheDocumentedOne`); here the store must follow it.
        let shouldPass = from.canMove(to: to)
        let error = storeError { try f.store.update(id: s.id, status: to) }
        let now = try #require(try f.store.session(id: s.id))
        if shouldPass {
            #expect(error == nil)
            #expect(now.status == to)
            if from == .authorized && to == .authorized {
                // Authorizing again is idempotent: nothing is written.
                #expect(now == s)
            } else {
                #expect(now.updatedAt == f.clock.now)
            }
        } else {
            #expect(error == .invalidTransition(id: s.id, from: from, to: to))
            #expect(error?.code == .invalidTransition)
            #expect(now == s)
        }
    }

    @Test func canceledSessionsDataIsFinalAndTheyCannotBeSelected() throws {
        let f = try StoreFixture()
        let s = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", status: .canceled, data: ["a": 1]))
        #expect(storeError { try f.store.update(id: s.id, data: ["a": 2]) } == .sessionIsFinal(id: s.id))
        #expect(storeError { try f.store.select(id: s.id) } == .notSelectable(id: s.id, status: .canceled))
        #expect(storeError { try f.store.create(NewPaymentSession(cartID: "c", providerID: "q", status: .canceled, select: true)) }?.code
            == .invalidInput)
        #expect(try f.store.session(id: s.id) == s)
        // Same status again only touches updated_at.
        f.clock.advance()
        let touched = try f.store.update(id: s.id, status: .canceled)
        #expect(touched.updatedAt == f.clock.now)
        #expect(touched.data == s.data)
    }

    @Test func cancelingTheSelectedSessionClearsTheSelection() throws {
        let f = try StoreFixture()
        let s = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", select: true))
        let canceled = try f.store.update(id: s.id, status: .canceled)
        #expect(!canceled.isSelected)
        #expect(try f.store.selectedSession(cartID: "c") == nil)
        #expect(try f.store.verify().isClean)
    }

    @Test func optimisticConcurrencyRefusesAStaleCaller() throws {
        let f = try StoreFixture()
        let s = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p"))
        let first = try f.store.update(id: s.id, data: ["v": 1], expectedUpdatedAt: s.updatedAt)
        // Same clock tick: updated_at still moves, so the stale caller is caught.
        #expect(first.updatedAt > s.updatedAt)
        #expect(storeError { try f.store.update(id: s.id, data: ["v": 2], expectedUpdatedAt: s.updatedAt) }
            == .staleUpdate(id: s.id, expected: s.updatedAt, actual: first.updatedAt))
        #expect(try f.store.session(id: s.id)?.data == ["v": 1])
    }
}
