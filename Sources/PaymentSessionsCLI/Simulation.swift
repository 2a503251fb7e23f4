import Foundation
import PaymentSessions
import Synchronization

/// A checkout workload: customers on many carts initialise sessions for one to three
/// providers, switch their selection, update provider data, authorize or cancel, retry
/// creates with idempotency keys, and abandon or complete carts, from several threads at once.
final class Simulation: Sendable {
    /// The kinds of operation the workload performs.
    enum Kind: String, CaseIterable, Sendable {
        case viewCart = "view_cart"
        case initialize
        case retryCreate = "retry_create"
        case select
        case updateData = "update_data"
        case requireMore = "requires_more"
        case updateAmount = "update_amount"
        case authorize
        case authorizeRetry = "authorize_retry"
        case switchAfterAuthorize = "switch_after_authorize"
        case cancel
        case abandon
        case complete
    }

    /// Per-kind results, merged from every worker.
    struct Tally: Sendable {
        var latencies: [Kind: [UInt64]] = [:]
        /// Operations refused by a rule (another customer got there first): expected.
        var rejected: [Kind: Int] = [:]
        /// Storage failures and broken expectations: must be zero.
        var failures: [String] = []

        mutating func merge(_ other: Tally) {
            for (kind, values) in other.latencies { latencies[kind, default: []] += values }
            for (kind, count) in other.rejected { rejected[kind, default: 0] += count }
            failures += other.failures
        }
    }

    static let providers = ["manual", "stripe", "paypal", "adyen"]

    let store: PaymentSessionStore
    let carts: Int
    let workers: Int
    let duration: Double
    /// Makes cart ids unique to this run, so that runs on one store do not collide.
    let runTag: String
    let completed = Atomic<Int>(0)

    init(store: PaymentSessionStore, carts: Int, workers: Int, duration: Double) {
        self.store = store
        self.carts = carts
        self.workers = workers
        self.duration = duration
        let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz")
        runTag = String((0..<6).map { _ in alphabet.randomElement()! })
    }

    /// Runs the workers to the deadline, calling `progress` about ten times a second.
    func run(progress: (Double, Int) -> Void) -> Tally {
        let results = Mutex(Tally())
        let group = DispatchGroup()
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start + UInt64(duration * 1e9)
        for worker in 0..<workers {
            group.enter()
            Thread {
                let tally = self.work(worker: worker, until: deadline)
                results.withLock { $0.merge(tally) }
                group.leave()
            }.start()
        }
        while group.wait(timeout: .now() + .milliseconds(100)) == .timedOut {
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            progress(min(elapsed / duration, 1), completed.load(ordering: .relaxed))
        }
        progress(1, completed.load(ordering: .relaxed))
        return results.withLock { $0 }
    }

    private func work(worker: Int, until deadline: UInt64) -> Tally {
        var tally = Tally()
        var rng = SystemRandomNumberGenerator()
        while DispatchTime.now().uptimeNanoseconds < deadline {
            let cart = "cart_\(runTag)_\(Int.random(in: 0..<carts, using: &rng))"
            step(cart: cart, tally: &tally, rng: &rng)
        }
        return tally
    }

    /// One customer action on `cart`, chosen from what the cart looks like now.
    private func step(cart: String, tally: inout Tally, rng: inout SystemRandomNumberGenerator) {
        guard let sessions = measure(.viewCart, &tally, { try store.sessions(cartID: cart) }) else { return }
        let live = sessions.filter { $0.status != .canceled }
        if live.isEmpty {
            let providers = Array(Self.providers.shuffled(using: &rng).prefix(Int.random(in: 1...3, using: &rng)))
            let total = Int.random(in: 100...99_999, using: &rng)
            // A fresh key per checkout attempt: the keys of a cart's deleted sessions stay
            // reserved, so a new checkout on the cart needs new ones.
            let attempt = UInt32.random(in: 0...UInt32.max, using: &rng)
            _ = measure(.initialize, &tally) {
                try store.write { tx in
                    for provider in providers {
                        if sessions.isEmpty {
                            try tx.create(NewPaymentSession(
                                cartID: cart, providerID: provider, data: ["attempt": 1],
                                idempotencyKey: "init-\(cart)-\(provider)-\(attempt)", amount: total, currencyCode: "eur"))
                        } else {
                            // Every session was canceled: Medusa's initialise step replaces them.
                            let (session, _) = try tx.createOrUpdate(cartID: cart, providerID: provider, data: ["attempt": 1])
                            try tx.update(id: session.id, amount: total, currencyCode: "eur")
                        }
                    }
                }
            }
            return
        }
        let target = live[Int.random(in: 0..<live.count, using: &rng)]
        let selected = sessions.first(where: \.isSelected)
        let roll = Int.random(in: 0..<100, using: &rng)
        if roll < 5 {
            _ = measure(.abandon, &tally) { try store.deleteSessions(cartID: cart) }
        } else if roll < 15, let key = target.idempotencyKey {
            // A client retry after a timeout: the same idempotency key returns the same session.
            let again = measure(.retryCreate, &tally) {
                try store.create(NewPaymentSession(cartID: cart, providerID: target.providerID, idempotencyKey: key))
            }
            if let again, again.id != target.id, (try? store.session(id: target.id)) != nil {
                tally.failures.append("idempotent retry returned \(again.id), expected \(target.id)")
            }
        } else if roll < 45 {
            _ = measure(.select, &tally) { try store.select(id: target.id) }
        } else if roll < 65 {
            let data: [String: JSONValue] = [
                "attempt": .number(JSONNumber(Int.random(in: 2...9, using: &rng))),
                "client_secret": .string("secret_\(UInt32.random(in: 0...UInt32.max, using: &rng))"),
                "amount": .number(JSONNumber(Int.random(in: 100...99_999, using: &rng))), "currency": "eur",
            ]
            _ = measure(.updateData, &tally) { try store.update(id: target.id, data: data) }
        } else if roll < 70 {
            _ = measure(.requireMore, &tally) { try store.update(id: target.id, status: .requiresMore) }
        } else if roll < 74 {
            // The cart's total changed: every session follows it while nothing is held (an
            // authorized one refuses another amount).
            let total = Int.random(in: 100...99_999, using: &rng)
            _ = measure(.updateAmount, &tally) {
                try store.write { tx in
                    for session in live { _ = try? tx.update(id: session.id, amount: total) }
                    _ = try tx.update(id: target.id, amount: total)
                }
            }
        } else if roll < 85, let selected {
            let amount = selected.amount ?? 0
            let authorized = measure(.authorize, &tally) { try store.authorize(id: selected.id, amount: amount) }
            if let authorized, Int.random(in: 0..<3, using: &rng) == 0 {
                // The provider answered but the client timed out: it authorizes again.
                let again = measure(.authorizeRetry, &tally) { try store.authorize(id: selected.id, amount: amount) }
                // Other customers may change its data meanwhile; the authorization stays one.
                if let again, again.paymentAuthorizedAt != authorized.paymentAuthorizedAt {
                    tally.failures.append("authorize retry of \(selected.id) wrote a second authorization")
                }
            }
        } else if roll < 90, let selected, selected.status == .authorized, let other = live.first(where: { $0.id != selected.id }) {
            // The customer switches provider after authorizing: refused, the hold would be orphaned.
            if measure(.switchAfterAuthorize, &tally, { try store.select(id: other.id) }) != nil,
                (try? store.session(id: selected.id))?.status == .authorized
            {
                tally.failures.append("switched \(cart) away from authorized \(selected.id)")
            }
        } else if roll < 94 {
            _ = measure(.cancel, &tally) { try store.update(id: target.id, status: .canceled) }
        } else if let selected, selected.status == .authorized {
            // The order was placed with the authorized selection (the payment captured): the
            // cart's sessions go, the authorized one included.
            _ = measure(.complete, &tally) { try store.deleteSessions(cartID: cart, force: true) }
        } else {
            _ = measure(.select, &tally) { try store.select(id: target.id) }
        }
    }

    /// Times `body`, counting rule refusals (another customer got there first) as
    /// rejected and anything else as a failure.
    private func measure<R>(_ kind: Kind, _ tally: inout Tally, _ body: () throws -> R) -> R? {
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            tally.latencies[kind, default: []].append(DispatchTime.now().uptimeNanoseconds - start)
            completed.add(1, ordering: .relaxed)
        }
        do {
            return try body()
        } catch let error as PaymentSessionError where error.code != .storage {
            tally.rejected[kind, default: 0] += 1
        } catch {
            tally.failures.append("\(kind.rawValue): \(error)")
        }
        return nil
    }
}
