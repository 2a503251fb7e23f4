import Foundation
import PaymentSessions
import StoreTestFixtures
import Testing
import TestSupport
import TestScheduling

@Suite("Selection under concurrency", .ownThreads)
struct SelectionRaceTests {
    @Test func manyThreadsSelectingInTheSameCartsLeaveOneSelectionEach() throws {
        let f = try StoreFixture()
        let carts = (0..<5).map { "cart_\($0)" }
        var created: [String] = []
        for cart in carts {
            for provider in ["manual", "stripe", "paypal", "adyen"] {
                created.append(try f.store.create(NewPaymentSession(cartID: cart, providerID: provider)).id)
            }
        }
        let ids = created
        let threads = 8
        let rounds = 150
        let failures = Counter()
        let group = DispatchGroup()
        for t in 0..<threads {
            group.enter()
            Thread {
                defer { group.leave() }
                var rng = SystemRandomNumberGenerator()
                for i in 0..<rounds {
                    let id = ids.randomElement(using: &rng)!
                    do {
                        switch (t + i) % 5 {
                        case 0: try f.store.deselect(cartID: carts.randomElement(using: &rng)!)
                        case 1:
                            // Select two sessions of one cart in one transaction: the last wins.
                            try f.store.write { tx in
                                try tx.select(id: id)
                                try tx.select(id: ids.randomElement(using: &rng)!)
                            }
                        default: try f.store.select(id: id)
                        }
                        // A reader on another thread never sees two selected in a cart.
                        let cart = carts.randomElement(using: &rng)!
                        let selected = try f.store.sessions(cartID: cart).filter(\.isSelected)
                        if selected.count > 1 { failures.add() }
                    } catch {
                        failures.add()
                    }
                }
            }.start()
        }
        group.wait()
        #expect(failures.value == 0)
        for cart in carts {
            let sessions = try f.store.sessions(cartID: cart)
            let selected = sessions.filter(\.isSelected)
            #expect(selected.count <= 1)
            #expect(try f.store.selectedSession(cartID: cart)?.id == selected.first?.id)
        }
        let report = try f.store.verify()
        #expect(report.isClean, "\(report.problems)")
        #expect(report.sessions == 20)
    }
}
