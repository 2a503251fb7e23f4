import Foundation
import PaymentSessions
import Synchronization

/// A checkout workload: customers on many carts initialise sessions for one to three
/// providers, switch their selection, update provider data, authorize or cancel, retry
/// creates with idempotency keys, and abandon or complete carts, from several concurrent
/// workers, through the store protocol, so that both backends run the same workload.
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

    let store: any PaymentSessionStoring
    let carts: Int
    let workers: Int
    let duration: Double
    /// Makes cart ids unique to this run, so that runs on one store do not collide.
    let runTag: String
    let completed = Atomic<Int>(0)

    init(store: any PaymentSessionStoring, carts: Int, workers: Int, duration: Double) {
        self.store = store
        self.carts = carts
        self.workers = workers
        self.duration = duration
        let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz")
        runTag = String((0..<6).map { _ in alphabet.randomElement()! })
    }

    /// Runs the workers (tasks) to the deadline, calling `progress` about ten times a second.
    func run(progress: @escaping @Sendable (Double, Int) -> Void) async -> Tally {
        let start = ContinuousClock.now
        let deadline = start + .nanoseconds(Int64(duration * 1e9))
        return await withTaskGroup(of: Tally?.self) { group in
            for _ in 0..<workers {
                group.addTask { await self.work(until: deadline) }
            }
            group.addTask {
                while ContinuousClock.now < deadline {
                    let elapsed = ContinuousClock.now - start
                    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                    progress(min(seconds / self.duration, 1), self.completed.load(ordering: .relaxed))
                    try? await Task.sleep(for: .milliseconds(100))
                }
                return nil
            }
            var tally = Tally()
            for await result in group { if let result { tally.merge(result) } }
            progress(1, completed.load(ordering: .relaxed))
            return tally
        }
    }

    private func work(until deadline: ContinuousClock.Instant) async -> Tally {
        var tally = Tally()
        var rng = SystemRandomNumberGenerator()
        while ContinuousClock.now < deadline {
            let cart = "cart_\(runTag)_\(Int.random(in: 0..<carts, using: &rng))"
            await step(cart: cart, tally: &tally, rng: &rng)
        }
        return tally
    }

    /// One customer action on `cart`, chosen from what the cart looks like now.
    private func step(cart: String, tally: inout Tally, rng: inout SystemRandomNumberGenerator) async {
        guard let sessions = await measure(.viewCart, &tally, { try await store.sessions(cartID: cart) }) else { return }
        let live = sessions.filter { $0.status != .canceled }
        if live.isEmpty {
            let providers = Array(Self.providers.shuffled(using: &rng).prefix(Int.random(in: 1...3, using: &rng)))
            let total = Int.random(in: 100...99_999, using: &rng)
            // A fresh key per checkout attempt: the keys of a cart's deleted sessions stay
            // reserved, so a new checkout on the cart needs new ones.
            let attempt = UInt32.random(in: 0...UInt32.max, using: &rng)
            var writes: [PaymentSessionWrite] = []
            for (provider, id) in zip(providers, PaymentSessionID.generate(count: providers.count)) {
                // Every session was canceled: Medusa's initialise step replaces them.
                if let canceled = sessions.first(where: { $0.providerID == provider }) {
                    writes.append(.delete(id: canceled.id, force: false))
                }
                writes.append(.create(NewPaymentSession(
                    cartID: cart, providerID: provider, data: ["attempt": 1],
                    idempotencyKey: "init-\(cart)-\(provider)-\(attempt)", id: id, amount: total, currencyCode: "eur")))
            }
            _ = await measure(.initialize, &tally) { try await store.perform(writes) }
            return
        }
        let target = live[Int.random(in: 0..<live.count, using: &rng)]
        let selected = sessions.first(where: \.isSelected)
        let roll = Int.random(in: 0..<100, using: &rng)
        if roll < 5 {
            _ = await measure(.abandon, &tally) { try await store.deleteSessions(cartID: cart, force: false) }
        } else if roll < 15, let key = target.idempotencyKey {
            // A client retry after a timeout: the same idempotency key returns the same session.
            let again = await measure(.retryCreate, &tally) {
                try await store.create(NewPaymentSession(cartID: cart, providerID: target.providerID, idempotencyKey: key))
            }
            if let again, again.id != target.id, (try? await store.session(id: target.id)) != nil {
                tally.failures.append("idempotent retry returned \(again.id), expected \(target.id)")
            }
        } else if roll < 45 {
            _ = await measure(.select, &tally) { try await store.select(id: target.id) }
        } else if roll < 65 {
            let data: [String: JSONValue] = [
                "attempt": .number(JSONNumber(Int.random(in: 2...9, using: &rng))),
                "client_secret": .string("secret_\(UInt32.random(in: 0...UInt32.max, using: &rng))"),
                "amount": .number(JSONNumber(Int.random(in: 100...99_999, using: &rng))), "currency": "eur",
            ]
            _ = await measure(.updateData, &tally) {
                try await store.update(id: target.id, status: nil, data: data, expectedUpdatedAt: nil)
            }
        } else if roll < 70 {
            _ = await measure(.requireMore, &tally) {
                try await store.update(id: target.id, status: .requiresMore, data: nil, expectedUpdatedAt: nil)
            }
        } else if roll < 74 {
            // The cart's total changed: every session not holding an authorization follows it,
            // in one unit (refused as a whole when the target holds one).
            let total = Int.random(in: 100...99_999, using: &rng)
            let writes = live.filter { $0.status != .authorized || $0.id == target.id }.map {
                PaymentSessionWrite.updateAmount(id: $0.id, amount: total, currencyCode: "eur", expectedUpdatedAt: nil)
            }
            _ = await measure(.updateAmount, &tally) { try await store.perform(writes) }
        } else if roll < 85, let selected {
            let amount = selected.amount ?? 0
            let authorized = await measure(.authorize, &tally) {
                try await store.authorize(id: selected.id, amount: amount, currencyCode: nil, data: nil, expectedUpdatedAt: nil)
            }
            if let authorized, Int.random(in: 0..<3, using: &rng) == 0 {
                // The provider answered but the client timed out: it authorizes again.
                let again = await measure(.authorizeRetry, &tally) {
                    try await store.authorize(id: selected.id, amount: amount, currencyCode: nil, data: nil, expectedUpdatedAt: nil)
                }
                // Other customers may change its data meanwhile; the authorization stays one.
                if let again, again.paymentAuthorizedAt != authorized.paymentAuthorizedAt {
                    tally.failures.append("authorize retry of \(selected.id) wrote a second authorization")
                }
            }
        } else if roll < 90, let selected, selected.status == .authorized, let other = live.first(where: { $0.id != selected.id }) {
            // The customer switches provider after authorizing: refused, the hold would be orphaned.
            if await measure(.switchAfterAuthorize, &tally, { try await store.select(id: other.id) }) != nil,
                (try? await store.session(id: selected.id))?.status == .authorized
            {
                tally.failures.append("switched \(cart) away from authorized \(selected.id)")
            }
        } else if roll < 94 {
            _ = await measure(.cancel, &tally) {
                try await store.update(id: target.id, status: .canceled, data: nil, expectedUpdatedAt: nil)
            }
        } else if let selected, selected.status == .authorized {
            // The order was placed with the authorized selection (the payment captured): the
            // cart's sessions go, the authorized one included.
            _ = await measure(.complete, &tally) { try await store.deleteSessions(cartID: cart, force: true) }
        } else {
            _ = await measure(.select, &tally) { try await store.select(id: target.id) }
        }
    }

    /// Times `body`, counting rule refusals (another customer got there first) as
    /// rejected and anything else as a failure.
    private func measure<R>(_ kind: Kind, _ tally: inout Tally, _ body: () async throws -> R) async -> R? {
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            tally.latencies[kind, default: []].append(DispatchTime.now().uptimeNanoseconds - start)
            completed.add(1, ordering: .relaxed)
        }
        do {
            return try await body()
        } catch let error as PaymentSessionError where error.code != .storage {
            tally.rejected[kind, default: 0] += 1
        } catch {
            tally.failures.append("\(kind.rawValue): \(error)")
        }
        return nil
    }
}
