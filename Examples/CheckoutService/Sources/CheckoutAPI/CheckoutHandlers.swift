import Foundation
import HTTPTypes
import OpenAPIRuntime
import PaymentSessions

/// The routes of `openapi.yaml`, on any ``PaymentSessionStoring``: the embedded LMDB
/// store, or a PostgreSQL store shared by several instances of the service.
///
/// Every cart route answers with the cart's payment state, the way Medusa's cart carries
/// `payment_sessions` and `payment_session`:
///
/// ```json
/// {"cart_id":"cart_1","payment_sessions":[{...},{...}],"payment_session":{...}}
/// ```
///
/// Each request's writes are one store operation or one unit (``PaymentSessionStoring/perform(_:)``),
/// so they are all or nothing and the store's rules hold across every instance; on LMDB
/// concurrent requests share group commits. A handler reports a refusal by throwing
/// (``APIError`` or the store's ``PaymentSessionError``); ``APIErrorMiddleware`` answers it.
struct CheckoutHandlers: APIProtocol {
    let store: any PaymentSessionStoring
    let events: CartEvents
    let metrics: ServiceMetrics
    let authorizationReplies = AuthorizationReplies()

    // MARK: Storefront

    func getCartPaymentSessions(
        _ input: Operations.GetCartPaymentSessions.Input
    ) async throws -> Operations.GetCartPaymentSessions.Output {
        try Self.checkIdentifier(input.path.cartId, field: "cart_id")
        return .ok(try await cartState(input.path.cartId))
    }

    /// One session per provider, created or refreshed, all in one transaction, at the
    /// cart's amount (sessions not yet authorized follow a changed amount). With an
    /// `Idempotency-Key`, each provider's session carries `KEY:provider`, so a retried
    /// request returns the sessions it created and the same key for another cart is a 409.
    func initializePaymentSessions(
        _ input: Operations.InitializePaymentSessions.Input
    ) async throws -> Operations.InitializePaymentSessions.Output {
        let cartID = input.path.cartId
        try Self.checkIdentifier(cartID, field: "cart_id")
        guard case .json(let body) = input.body else { throw APIError.invalidBody("expected a JSON body") }
        guard !body.providerIds.isEmpty else { throw APIError.invalidBody("provider_ids must be a non-empty array of strings") }
        // One request must not hold the store's single writer for long: a cart has a
        // handful of providers, so a longer list is refused before any work is done.
        guard body.providerIds.count <= Self.maxProviders else {
            throw APIError.invalidBody("provider_ids has \(body.providerIds.count) entries; at most \(Self.maxProviders)")
        }
        var providers: [String] = []
        var seen: Set<String> = []
        for provider in body.providerIds {
            try Self.checkIdentifier(provider, field: "provider_ids")
            if seen.insert(provider).inserted { providers.append(provider) }
        }
        let key = try Self.idempotencyKey(input.headers.idempotencyKey)
        let amount = try Self.amount(body.amount)
        let currency = try Self.currency(body.currencyCode)
        if amount != nil && currency == nil { throw APIError.invalidBody("currency_code is required with amount") }
        let plan = InitializationPlan(
            cartID: cartID, providers: providers, idempotencyKey: key, amount: amount, currencyCode: currency)
        // The plan is made from a read and run as one unit; a unit that meets a cart changed
        // since the read (by another request or another instance) is planned again.
        var attempt = 1
        while true {
            do {
                try await store.perform(try await plan.writes(in: store))
                break
            } catch let error as PaymentSessionError where attempt < Self.maxPlanAttempts && InitializationPlan.isRace(error) {
                attempt += 1
            }
        }
        return .ok(try await cartState(cartID))
    }

    /// Selects the provider's session.
    func selectPaymentSession(
        _ input: Operations.SelectPaymentSession.Input
    ) async throws -> Operations.SelectPaymentSession.Output {
        guard case .json(let body) = input.body else { throw APIError.invalidBody("expected a JSON body") }
        try Self.checkIdentifier(body.providerId, field: "provider_id")
        _ = try await store.select(id: try await sessionID(cartID: input.path.cartId, providerID: body.providerId))
        return .ok(try await cartState(input.path.cartId))
    }

    /// Replaces the provider's data.
    func updatePaymentSession(
        _ input: Operations.UpdatePaymentSession.Input
    ) async throws -> Operations.UpdatePaymentSession.Output {
        guard case .json(let body) = input.body else { throw APIError.invalidBody("expected a JSON body") }
        let id = try await sessionID(cartID: input.path.cartId, providerID: input.path.providerId)
        _ = try await store.update(id: id, status: nil, data: body.data.members, expectedUpdatedAt: nil)
        return .ok(try await cartState(input.path.cartId))
    }

    /// Back to `pending` (a 409 from an authorized or canceled session, which the status
    /// table forbids).
    func refreshPaymentSession(
        _ input: Operations.RefreshPaymentSession.Input
    ) async throws -> Operations.RefreshPaymentSession.Output {
        let id = try await sessionID(cartID: input.path.cartId, providerID: input.path.providerId)
        _ = try await store.update(id: id, status: .pending, data: nil, expectedUpdatedAt: nil)
        return .ok(try await cartState(input.path.cartId))
    }

    func deletePaymentSession(
        _ input: Operations.DeletePaymentSession.Input
    ) async throws -> Operations.DeletePaymentSession.Output {
        let id = try await sessionID(cartID: input.path.cartId, providerID: input.path.providerId)
        _ = try await store.delete(id: id, force: false)
        return .ok(try await cartState(input.path.cartId))
    }

    /// Authorizes the cart's selected session for the amount, which is required when the
    /// session has one and must match it (409 otherwise, as when no session is selected).
    /// Idempotent: a retry gets the same answer. With an `Idempotency-Key` the first answer
    /// is stored, and a retry with the key gets it back even if the cart changed since; the
    /// key on another cart is a 409.
    func authorizeCart(_ input: Operations.AuthorizeCart.Input) async throws -> Operations.AuthorizeCart.Output {
        let cartID = input.path.cartId
        try Self.checkIdentifier(cartID, field: "cart_id")
        let key = try Self.idempotencyKey(input.headers.idempotencyKey)
        if let key, let stored = authorizationReplies.reply(for: key) {
            guard stored.cartID == cartID else {
                throw APIError(
                    status: .conflict, code: "conflict",
                    message: "idempotency key \(JSONValue.string(key).jsonText) was already used for another cart")
            }
            return .ok(try Self.response(stored.body))
        }
        let amount: Int? =
            switch input.body {
            case .json(let body): try Self.amount(body.amount)
            case nil: nil
            }
        guard let selected = try await store.selectedSession(cartID: cartID) else {
            throw APIError(status: .conflict, code: "conflict", message: "cart \(cartID) has no selected payment session")
        }
        // The store authorizes only the cart's selected session: a selection moved since
        // the read above makes this a conflict, never a hold on the wrong session.
        if let amount {
            _ = try await store.authorize(id: selected.id, amount: amount, currencyCode: nil, data: nil, expectedUpdatedAt: nil)
        } else if selected.amount != nil {
            throw APIError.invalidBody("amount is required: the session is for \(selected.amount ?? 0)")
        } else {
            _ = try await store.update(id: selected.id, status: .authorized, data: nil, expectedUpdatedAt: nil)
        }
        let text = try await cartStateText(cartID)
        if let key { authorizationReplies.store(text, for: key, cartID: cartID) }
        return .ok(try Self.response(text))
    }

    // MARK: Events and operations

    func getCartEvents(_ input: Operations.GetCartEvents.Input) async throws -> Operations.GetCartEvents.Output {
        let cartID = input.path.cartId
        try Self.checkIdentifier(cartID, field: "cart_id")
        var start: Int64?
        if let text = input.headers.lastEventID {
            guard let after = Int64(text), after >= 0 else {
                throw APIError.invalidBody("Last-Event-ID must be a change's sequence number, got \(text)")
            }
            start = after
        } else if let after = input.query.after {
            guard after >= 0 else { throw APIError.invalidBody("after must be a change's sequence number, got \(after)") }
            start = after
        }
        if let limit = input.query.limit, limit < 1 {
            throw APIError.invalidBody("limit must be a positive whole number, got \(limit)")
        }
        let body = try await events.stream(cartID: cartID, after: start, limit: input.query.limit)
        return .ok(.init(body: .textEventStream(body)))
    }

    func getHealth(_ input: Operations.GetHealth.Input) async throws -> Operations.GetHealth.Output {
        .ok(.init(body: .json(.init(status: .ok, sessions: try await store.count()))))
    }

    func getMetrics(_ input: Operations.GetMetrics.Input) async throws -> Operations.GetMetrics.Output {
        .ok(.init(body: .plainText(HTTPBody(metrics.prometheusText()))))
    }

    func getOpenAPIDocument(
        _ input: Operations.GetOpenAPIDocument.Input
    ) async throws -> Operations.GetOpenAPIDocument.Output {
        .ok(.init(body: .yaml(HTTPBody(try OpenAPIDocument.bytes()))))
    }

    // MARK: Helpers

    /// The most providers one initialize request may list.
    static let maxProviders = 16
    /// How many times an initialization is planned before a cart that keeps changing
    /// under it is reported.
    static let maxPlanAttempts = 5
    /// Leaves room for `:provider` in the store's 511-byte idempotency keys.
    static let maxIdempotencyKeyBytes = 200

    /// Refuses an id or provider past the store's bound (or empty) with a 400 before any
    /// transaction begins.
    static func checkIdentifier(_ value: String, field: String) throws {
        let count = value.utf8.count
        guard count > 0, count <= SessionValidation.maxIdentifierBytes else {
            throw APIError.invalidBody("\(field) must be 1 to \(SessionValidation.maxIdentifierBytes) bytes, got \(count)")
        }
    }

    static func idempotencyKey(_ key: String?) throws -> String? {
        guard let key else { return nil }
        guard !key.isEmpty, key.utf8.count <= maxIdempotencyKeyBytes else {
            throw APIError.invalidBody("the Idempotency-Key header is \(key.utf8.count) bytes; 1 to \(maxIdempotencyKeyBytes)")
        }
        return key
    }

    /// An amount: a whole number of the minor unit, 0 to 2^53 - 1.
    static func amount(_ value: Int?) throws -> Int? {
        guard let value else { return nil }
        guard (0...SessionValidation.maxAmount).contains(value) else {
            throw APIError.invalidBody("amount must be a whole number from 0 to \(SessionValidation.maxAmount)")
        }
        return value
    }

    /// A currency code: three lowercase letters, or absent.
    static func currency(_ code: String?) throws -> String? {
        guard let code else { return nil }
        guard (try? SessionValidation.validateCurrencyCode(code)) != nil else {
            throw APIError.invalidBody("currency_code must be three lowercase letters such as usd")
        }
        return code
    }

    func sessionID(cartID: String, providerID: String) async throws -> String {
        try Self.checkIdentifier(cartID, field: "cart_id")
        try Self.checkIdentifier(providerID, field: "provider_id")
        guard let session = try await store.session(cartID: cartID, providerID: providerID) else {
            throw PaymentSessionError.sessionNotFound(id: "\(cartID)/\(providerID)")
        }
        return session.id
    }

    /// The cart's sessions (creation order) and its selected one.
    func cartState(_ cartID: String) async throws -> Components.Responses.CartPaymentState {
        try Self.response(try await cartStateText(cartID))
    }

    /// The cart's state in the library's JSON form, which is what a stored authorize
    /// answer keeps.
    func cartStateText(_ cartID: String) async throws -> String {
        let sessions = try await store.sessions(cartID: cartID)
        var text = #"{"cart_id":"# + JSONValue.string(cartID).jsonText + #","payment_sessions":["#
        text += sessions.map { $0.jsonText() }.joined(separator: ",")
        text += #"],"payment_session":"# + (sessions.first(where: \.isSelected)?.jsonText() ?? "null") + "}"
        return text
    }

    /// A cart state in the library's JSON form, as the document's answer.
    static func response(_ text: String) throws -> Components.Responses.CartPaymentState {
        .init(body: .json(try JSONObjectBody(parsing: text)))
    }
}
