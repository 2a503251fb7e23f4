import Foundation
import PaymentSessions
import PropertyBased
import Testing
import TestSupport
import TestScheduling

/// A deliberately simple in-memory reference: the rules of the store written out again,
/// as plainly as possible, without indexes.
struct ReferenceModel {
    var sessions: [String: PaymentSession] = [:]
    /// Idempotency keys of deleted sessions, still reserved (the test clock never passes
    /// the 24-hour retention).
    var reserved: [String: String] = [:]

    func sessions(cart: String) -> [PaymentSession] {
        sessions.values.filter { $0.cartID == cart }.sorted { $0.id < $1.id }
    }

    func selected(cart: String) -> PaymentSession? { sessions(cart: cart).first(where: \.isSelected) }

    func byKey(_ key: String) -> PaymentSession? { sessions.values.first { $0.idempotencyKey == key } }

    func byPair(_ cart: String, _ provider: String) -> PaymentSession? {
        sessions.values.first { $0.cartID == cart && $0.providerID == provider }
    }

    /// `updated_at` moves to now, and always forward.
    static func touch(_ session: inout PaymentSession, now: Int64) {
        session.updatedAt = Timestamp.date(microseconds: max(now, Timestamp.microseconds(session.updatedAt) + 1))
    }

    /// Removes `session`, reserving its idempotency key.
    mutating func remove(_ session: PaymentSession) {
        sessions[session.id] = nil
        if let key = session.idempotencyKey { reserved[key] = session.id }
    }

    /// The rules of authorizing `session` (a model of `authorize`), applied on success.
    mutating func authorize(
        _ session: PaymentSession, amount: Int?, currencyCode: String?, now: Int64
    ) -> Result<PaymentSession?, PaymentSessionError> {
        var session = session
        let id = session.id
        if session.status == .authorized && session.paymentAuthorizedAt != nil {
            if let amount, let held = session.amount, held != amount {
                return .failure(.amountMismatch(id: id, expected: held, actual: amount))
            }
            if let amount, session.amount == nil {
                return .failure(.invalidInput(field: "amount", value: String(amount), reason: "session \(id) was authorized without an amount"))
            }
            if let currencyCode, currencyCode != session.currencyCode { return .failure(Self.currencyRefusal(session, currencyCode)) }
            return .success(session)
        }
        guard session.status == .authorized || session.status == .pending || session.status == .requiresMore else {
            return .failure(.invalidTransition(id: id, from: session.status, to: .authorized))
        }
        guard session.isSelected else { return .failure(.notSelected(id: id, cartID: session.cartID)) }
        if let amount, let held = session.amount, held != amount {
            return .failure(.amountMismatch(id: id, expected: held, actual: amount))
        }
        if let currencyCode, let own = session.currencyCode, own != currencyCode {
            return .failure(Self.currencyRefusal(session, currencyCode))
        }
        session.status = .authorized
        if let amount { session.amount = amount }
        session.currencyCode = currencyCode ?? session.currencyCode
        Self.touch(&session, now: now)
        session.paymentAuthorizedAt = session.updatedAt
        sessions[id] = session
        return .success(session)
    }

    static func currencyRefusal(_ session: PaymentSession, _ code: String) -> PaymentSessionError {
        .invalidInput(field: "currency_code", value: code, reason: "session \(session.id) is in \(session.currencyCode ?? "no currency")")
    }

    mutating func deselect(cart: String, now: Int64) -> PaymentSession? {
        guard var current = selected(cart: cart) else { return nil }
        current.isSelected = false
        Self.touch(&current, now: now)
        sessions[current.id] = current
        return current
    }

    /// The outcome the store must produce for `operation`, applied to the model on success.
    /// `createdID` is the id the store generated (the model cannot predict ids).
    mutating func apply(_ operation: Operation, now: Int64, createdID: String?) -> Result<PaymentSession?, PaymentSessionError> {
        switch operation {
        case .create(let cart, let provider, let status, let key, let select):
            if select && status == .canceled {
                return .failure(.invalidInput(field: "select", value: "true", reason: "a canceled session cannot be selected"))
            }
            if status == .authorized && !select {
                return .failure(.invalidInput(
                    field: "select", value: "false", reason: "an authorized session must be created selected (the cart's payment)"))
            }
            if let key, let existing = byKey(key) {
                guard existing.cartID == cart, existing.providerID == provider else {
                    return .failure(.idempotencyConflict(key: key, existingID: existing.id, existingCartID: existing.cartID,
                        existingProviderID: existing.providerID))
                }
                return .success(existing)
            }
            if let key, let gone = reserved[key] { return .failure(.sessionGone(key: key, id: gone)) }
            if select, let current = selected(cart: cart), current.status == .authorized {
                return .failure(.authorizedSessionSelected(cartID: cart, authorizedID: current.id))
            }
            if let existing = byPair(cart, provider) {
                return .failure(.duplicateSession(cartID: cart, providerID: provider, existingID: existing.id))
            }
            guard let id = createdID else {
                return .failure(.storage(StorageFailure(backend: .lmdb, kind: .failed, operation: "model: no id", code: "", message: "")))
            }
            if select { _ = deselect(cart: cart, now: now) }
            let date = Timestamp.date(microseconds: now)
            let session = PaymentSession(id: id, cartID: cart, providerID: provider, isSelected: select, status: status,
                data: ["n": .number(JSONNumber(now))], idempotencyKey: key,
                paymentAuthorizedAt: status == .authorized ? date : nil, createdAt: date, updatedAt: date)
            sessions[id] = session
            return .success(session)
        case .select(let id):
            guard var session = sessions[id] else { return .failure(.sessionNotFound(id: id)) }
            if session.status == .canceled { return .failure(.notSelectable(id: id, status: .canceled)) }
            if session.isSelected { return .success(session) }
            if let current = selected(cart: session.cartID), current.status == .authorized {
                return .failure(.authorizedSessionSelected(cartID: current.cartID, authorizedID: current.id))
            }
            _ = deselect(cart: session.cartID, now: now)
            session.isSelected = true
            Self.touch(&session, now: now)
            sessions[id] = session
            return .success(session)
        case .deselect(let cart):
            if let current = selected(cart: cart), current.status == .authorized {
                return .failure(.authorizedSessionSelected(cartID: cart, authorizedID: current.id))
            }
            return .success(deselect(cart: cart, now: now))
        case .setStatus(let id, let status):
            guard var session = sessions[id] else { return .failure(.sessionNotFound(id: id)) }
            let allowed: Set<PaymentSessionStatus> =
                switch session.status {
                case .pending: [.pending, .requiresMore, .authorized, .error, .canceled]
                case .requiresMore: [.pending, .requiresMore, .authorized, .error, .canceled]
                case .error: [.error, .pending, .canceled]
                case .authorized: [.authorized, .canceled]
                case .canceled: [.canceled]
                }
            guard allowed.contains(status) else {
                return .failure(.invalidTransition(id: id, from: session.status, to: status))
            }
            if status == .authorized {
                return authorize(session, amount: session.amount, currencyCode: nil, now: now)
            }
            session.status = status
            if status == .canceled { session.isSelected = false }
            Self.touch(&session, now: now)
            sessions[id] = session
            return .success(session)
        case .setData(let id, let value):
            guard var session = sessions[id] else { return .failure(.sessionNotFound(id: id)) }
            let data: [String: JSONValue] = ["v": .number(JSONNumber(value))]
            if session.status == .canceled && data != session.data { return .failure(.sessionIsFinal(id: id)) }
            session.data = data
            Self.touch(&session, now: now)
            sessions[id] = session
            return .success(session)
        case .delete(let id):
            guard let session = sessions[id] else { return .failure(.sessionNotFound(id: id)) }
            if session.status == .authorized { return .failure(.sessionAuthorized(id: id)) }
            remove(session)
            return .success(session)
        case .deleteCart(let cart):
            let all = sessions(cart: cart)
            if let authorized = all.first(where: { $0.status == .authorized }) {
                return .failure(.sessionAuthorized(id: authorized.id))
            }
            for session in all { remove(session) }
            return .success(nil)
        case .purge(let olderThan, let statuses):
            let cutoff = now - olderThan
            for session in sessions.values.sorted(by: { $0.id < $1.id })
            where Timestamp.microseconds(session.updatedAt) < cutoff && statuses.contains(session.status) && session.status != .authorized {
                remove(session)
            }
            return .success(nil)
        case .authorize(let id, let amount):
            guard let session = sessions[id] else { return .failure(.sessionNotFound(id: id)) }
            return authorize(session, amount: amount, currencyCode: "eur", now: now)
        case .setAmount(let id, let amount):
            guard var session = sessions[id] else { return .failure(.sessionNotFound(id: id)) }
            switch session.status {
            case .canceled:
                return .failure(.sessionIsFinal(id: id))
            case .authorized:
                guard let held = session.amount else {
                    return .failure(.invalidInput(field: "amount", value: String(amount), reason: "session \(id) was authorized without an amount"))
                }
                guard held == amount else { return .failure(.amountMismatch(id: id, expected: held, actual: amount)) }
                if session.currencyCode != "eur" { return .failure(Self.currencyRefusal(session, "eur")) }
                return .success(session)
            case .pending, .requiresMore, .error:
                if session.amount == amount && session.currencyCode == "eur" { return .success(session) }
                session.amount = amount
                session.currencyCode = "eur"
                Self.touch(&session, now: now)
                sessions[id] = session
                return .success(session)
            }
        case .failingBatch(let cart):
            if let current = selected(cart: cart), current.status == .authorized {
                return .failure(.authorizedSessionSelected(cartID: cart, authorizedID: current.id))
            }
            return .failure(.sessionNotFound(id: Operation.missingID))
        }
    }
}

/// One step of a random run.
enum Operation: CustomStringConvertible {
    static let carts = ["cart_a", "cart_b", "cart_c"]
    static let providers = ["manual", "stripe", "paypal"]
    static let keys = ["k1", "k2", "k3", "k4"]
    static let missingID = "ps_01G901XNSRM2YS3ASN9H5KG3FZ"

    case create(cart: String, provider: String, status: PaymentSessionStatus, key: String?, select: Bool)
    case select(id: String)
    case deselect(cart: String)
    case setStatus(id: String, status: PaymentSessionStatus)
    case setData(id: String, value: Int)
    case delete(id: String)
    case deleteCart(cart: String)
    case purge(olderThan: Int64, statuses: Set<PaymentSessionStatus>)
    /// A write closure that creates and selects, then fails: nothing may remain.
    case failingBatch(cart: String)
    /// `authorize(id:amount:currencyCode: "eur")`.
    case authorize(id: String, amount: Int)
    /// `update(id:amount:currencyCode: "eur")`.
    case setAmount(id: String, amount: Int)

    /// Decodes one random number into an operation on the model's current ids.
    init(_ seed: UInt32, ids: [String]) {
        var bits = seed
        func take(_ n: Int) -> Int {
            defer { bits /= UInt32(n) }
            return Int(bits % UInt32(n))
        }
        let kind = take(23)
        let cart = Self.carts[take(3)]
        let pickID = ids.isEmpty || take(8) == 0 ? Self.missingID : ids[take(ids.count)]
        let status = PaymentSessionStatus.allCases[take(5)]
        switch kind {
        case 0..<6:
            let key = take(3) == 0 ? Self.keys[take(4)] : nil
            self = .create(cart: cart, provider: Self.providers[take(3)], status: take(4) == 0 ? status : .pending, key: key,
                select: take(3) == 0)
        case 6..<9: self = .select(id: pickID)
        case 9: self = .deselect(cart: cart)
        case 10..<14: self = .setStatus(id: pickID, status: status)
        case 14..<16: self = .setData(id: pickID, value: take(3))
        case 16: self = .delete(id: pickID)
        case 17: self = .deleteCart(cart: cart)
        case 18: self = .purge(olderThan: Int64(take(20)) * 1000, statuses: take(2) == 0 ? [.canceled, .error] : Set(PaymentSessionStatus.allCases))
        case 19: self = .failingBatch(cart: cart)
        case 20, 21: self = .authorize(id: pickID, amount: [100, 200][take(2)])
        default: self = .setAmount(id: pickID, amount: [100, 200][take(2)])
        }
    }

    var description: String {
        switch self {
        case .create(let c, let p, let s, let k, let sel): "create(\(c), \(p), \(s), key: \(k ?? "-"), select: \(sel))"
        case .select(let id): "select(\(id))"
        case .deselect(let c): "deselect(\(c))"
        case .setStatus(let id, let s): "status(\(id), \(s))"
        case .setData(let id, let v): "data(\(id), \(v))"
        case .delete(let id): "delete(\(id))"
        case .deleteCart(let c): "deleteCart(\(c))"
        case .purge(let age, let s): "purge(\(age)µs, \(s.map(\.rawValue).sorted()))"
        case .failingBatch(let c): "failingBatch(\(c))"
        case .authorize(let id, let amount): "authorize(\(id), \(amount))"
        case .setAmount(let id, let amount): "amount(\(id), \(amount))"
        }
    }

    /// Runs the operation against the store; `now` is the test clock's time.
    func run(on store: any PaymentSessionStoring, now: Int64) async throws(PaymentSessionError) -> PaymentSession? {
        do {
            switch self {
            case .create(let cart, let provider, let status, let key, let select):
                return try await store.create(NewPaymentSession(cartID: cart, providerID: provider, status: status,
                    data: ["n": .number(JSONNumber(now))], idempotencyKey: key, select: select))
            case .select(let id): return try await store.select(id: id)
            case .deselect(let cart): return try await store.deselect(cartID: cart)
            case .setStatus(let id, let status):
                return try await store.update(id: id, status: status, data: nil, expectedUpdatedAt: nil)
            case .setData(let id, let value):
                return try await store.update(id: id, status: nil, data: ["v": .number(JSONNumber(value))], expectedUpdatedAt: nil)
            case .delete(let id): return try await store.delete(id: id, force: false)
            case .deleteCart(let cart):
                _ = try await store.deleteSessions(cartID: cart, force: false)
                return nil
            case .purge(let olderThan, let statuses):
                _ = try await store.purge(
                    notUpdatedSince: Timestamp.date(microseconds: now - olderThan), statuses: statuses, includeAuthorized: false)
                return nil
            case .authorize(let id, let amount):
                return try await store.authorize(id: id, amount: amount, currencyCode: "eur", data: nil, expectedUpdatedAt: nil)
            case .setAmount(let id, let amount):
                return try await store.update(id: id, amount: amount, currencyCode: "eur", expectedUpdatedAt: nil)
            case .failingBatch(let cart):
                let id = PaymentSessionID.generate()
                try await store.perform([
                    .create(NewPaymentSession(cartID: cart, providerID: "batch", select: true, id: id)),
                    .update(id: id, status: .authorized, data: nil, expectedUpdatedAt: nil),
                    .select(id: Self.missingID),
                ])
                return nil
            }
        } catch let error as PaymentSessionError {
            throw error
        } catch {
            throw .storage(StorageFailure(backend: store.backend, kind: .failed, operation: "\(error)", code: "", message: "unexpected"))
        }
    }
}

@Suite("Model-based: random operation sequences against a reference model, on each backend", .ownThreads)
struct ModelBasedConformanceTests {
    /// Runs × steps per run; `MODEL_RUNS` raises it for a long local run.
    static let runs = Int(ProcessInfo.processInfo.environment["MODEL_RUNS"] ?? "") ?? 30

    @Test(arguments: Backend.available)
    func theStoreAgreesWithTheModelAfterEveryStep(backend: Backend) async {
        await propertyCheck(count: Self.runs, input: Gen.uint32().array(of: 50...100)) { seeds in
            do {
                try await Self.check(seeds, on: backend)
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
    }

    static func check(_ seeds: [UInt32], on backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { store in
            var model = ReferenceModel()
            var history: [String] = []
            for seed in seeds {
                clock.advance(milliseconds: Int64(seed % 3))
                let operation = Operation(seed, ids: model.sessions.keys.sorted())
                history.append(operation.description)
                let now = clock.microseconds
                let actual: Result<PaymentSession?, PaymentSessionError>
                do throws(PaymentSessionError) {
                    actual = .success(try await operation.run(on: store, now: now))
                } catch {
                    actual = .failure(error)
                }
                let createdID: String? = if case .success(let s?) = actual { s.id } else { nil }
                var expectedModel = model
                let expected = expectedModel.apply(operation, now: now, createdID: createdID)
                guard actual == expected else {
                    Issue.record("step \(history.count): \(operation)\nexpected \(expected)\nactual \(actual)\nhistory:\n\(history.joined(separator: "\n"))")
                    return
                }
                if case .success = expected { model = expectedModel }
                try await compare(store, model, history)
            }
            // The feed, replayed from the start, rebuilds the store; its numbers have no gap.
            let changes = try await store.changes(after: 0, limit: 100_000)
            #expect(changes.map(\.sequence) == Array(stride(from: 1, through: Int64(changes.count), by: 1)))
            #expect(ChangeFeedConformanceTests.replay(changes) == model.sessions.values.sorted { $0.id < $1.id })
        }
    }

    /// Every query agrees with the model, and the invariants hold.
    static func compare(_ store: any PaymentSessionStoring, _ model: ReferenceModel, _ history: [String]) async throws {
        let all = model.sessions.values.sorted { $0.id < $1.id }
        let context = Comment(rawValue: history.joined(separator: "\n"))
        #expect(try await store.count() == all.count, context)
        #expect(try await store.sessions(after: nil, limit: 1000) == all, context)
        for cart in Operation.carts + ["batch"] {
            let sessions = try await store.sessions(cartID: cart)
            #expect(sessions == model.sessions(cart: cart), context)
            #expect(try await store.selectedSession(cartID: cart) == model.selected(cart: cart), context)
            #expect(sessions.filter(\.isSelected).count <= 1, context)
            #expect(Set(sessions.map(\.providerID)).count == sessions.count, context)
        }
        for key in Operation.keys {
            #expect(try await store.session(idempotencyKey: key) == model.byKey(key), context)
        }
        for session in all where session.status == .authorized {
            // A hold is never orphaned: an authorized session is its cart's selection.
            #expect(session.isSelected, context)
        }
        for session in all where session.status == .canceled { #expect(!session.isSelected, context) }
        let report = try await store.checkRules()
        #expect(report.isClean, "\(report.problems)\n\(context)")
        if let store = store as? PaymentSessionStore {
            let verified = try store.verify()
            #expect(verified.isClean, "\(verified.problems)\n\(context)")
        }
    }
}
