import Foundation
import HTTPTypes
import Hummingbird
import Logging
import PaymentSessions
import ServiceLifecycle

/// Medusa-style store endpoints for a cart's payment sessions, on any
/// ``PaymentSessionStoring``: the embedded LMDB store, or a PostgreSQL store shared by
/// several instances of the service.
///
/// Every cart endpoint answers with the cart's payment state, the way Medusa's cart
/// carries `payment_sessions` and `payment_session`:
///
/// ```json
/// {"cart_id":"cart_1","payment_sessions":[{...},{...}],"payment_session":{...}}
/// ```
///
/// Each request's writes are one store operation or one unit (``PaymentSessionStoring/perform(_:)``),
/// so they are all or nothing and the store's rules hold across every instance; on LMDB
/// concurrent requests share group commits.
public struct CheckoutRoutes: Sendable {
    public let store: any PaymentSessionStoring
    let authorizationReplies = AuthorizationReplies()

    public init(store: any PaymentSessionStoring) {
        self.store = store
    }

    /// Adds the endpoints to `router`.
    public func register(on router: Router<some RequestContext>) {
        router.get("health") { _, _ in try await health() }
        let cart = router.group("store/carts/:cart_id")
        cart.get("payment-sessions") { _, context in
            try await answering { try await cartState(try context.parameters.require("cart_id")) }
        }
        cart.post("payment-sessions") { request, context in
            try await answering { try await initialize(request, cartID: try context.parameters.require("cart_id")) }
        }
        cart.post("payment-session") { request, context in
            try await answering { try await select(request, cartID: try context.parameters.require("cart_id")) }
        }
        cart.post("payment-sessions/:provider_id") { request, context in
            try await answering {
                try await updateData(
                    request, cartID: try context.parameters.require("cart_id"),
                    providerID: try context.parameters.require("provider_id"))
            }
        }
        cart.post("payment-sessions/:provider_id/refresh") { _, context in
            try await answering {
                try await refresh(
                    cartID: try context.parameters.require("cart_id"), providerID: try context.parameters.require("provider_id"))
            }
        }
        cart.delete("payment-sessions/:provider_id") { _, context in
            try await answering {
                try await delete(
                    cartID: try context.parameters.require("cart_id"), providerID: try context.parameters.require("provider_id"))
            }
        }
        cart.post("authorize") { request, context in
            try await answering { try await authorize(request, cartID: try context.parameters.require("cart_id")) }
        }
        cart.get("events") { request, context in
            try await answering {
                try await CartEvents(store: store).response(cartID: try context.parameters.require("cart_id"), request: request)
            }
        }
    }

    // MARK: Handlers

    func health() async throws -> Response {
        let sessions = try await store.count()
        return .json(JSONValue.object(["status": "ok", "sessions": .number(JSONNumber(sessions))]).jsonText)
    }

    /// `POST .../payment-sessions` `{"provider_ids":["manual","stripe"],"amount":4200,"currency_code":"usd"}`:
    /// one session per provider, created or refreshed, all in one transaction, at the cart's
    /// amount (optional; sessions not yet authorized follow a changed amount). With an
    /// `Idempotency-Key` header, each provider's session carries `KEY:provider`, so a retried
    /// request returns the sessions it created and the same key for another cart is a 409.
    func initialize(_ request: Request, cartID: String) async throws -> Response {
        try Self.checkIdentifier(cartID, field: "cart_id")
        let body = try await Self.jsonObject(request)
        guard case .array(let values)? = body["provider_ids"], !values.isEmpty else {
            throw APIError.invalidBody("provider_ids must be a non-empty array of strings")
        }
        // One request must not hold the store's single writer for long: a cart has a
        // handful of providers, so a longer list is refused before any work is done.
        guard values.count <= Self.maxProviders else {
            throw APIError.invalidBody("provider_ids has \(values.count) entries; at most \(Self.maxProviders)")
        }
        var providers: [String] = []
        var seen: Set<String> = []
        for value in values {
            guard case .string(let provider) = value else {
                throw APIError.invalidBody("provider_ids must be a non-empty array of strings")
            }
            try Self.checkIdentifier(provider, field: "provider_ids")
            if seen.insert(provider).inserted { providers.append(provider) }
        }
        let key = request.headers[Self.idempotencyKey]
        if let key, key.utf8.count > Self.maxIdempotencyKeyBytes {
            throw APIError.invalidBody("the Idempotency-Key header is \(key.utf8.count) bytes; at most \(Self.maxIdempotencyKeyBytes)")
        }
        let amount = try Self.amount(in: body, required: false)
        let currency = try Self.currency(in: body)
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
        return try await cartState(cartID)
    }

    /// `POST .../payment-session` `{"provider_id":"stripe"}`: selects that provider's session.
    func select(_ request: Request, cartID: String) async throws -> Response {
        let providerID = try Self.string("provider_id", in: try await Self.jsonObject(request))
        _ = try await store.select(id: try await sessionID(cartID: cartID, providerID: providerID))
        return try await cartState(cartID)
    }

    /// `POST .../payment-sessions/{provider_id}` `{"data":{...}}`: replaces the provider's data.
    func updateData(_ request: Request, cartID: String, providerID: String) async throws -> Response {
        let body = try await Self.jsonObject(request)
        guard case .object(let data)? = body["data"] else { throw APIError.invalidBody("data must be a JSON object") }
        _ = try await store.update(
            id: try await sessionID(cartID: cartID, providerID: providerID), status: nil, data: data, expectedUpdatedAt: nil)
        return try await cartState(cartID)
    }

    /// `POST .../payment-sessions/{provider_id}/refresh`: back to `pending` (a 409 from an
    /// authorized or canceled session, which the status table forbids).
    func refresh(cartID: String, providerID: String) async throws -> Response {
        _ = try await store.update(
            id: try await sessionID(cartID: cartID, providerID: providerID), status: .pending, data: nil, expectedUpdatedAt: nil)
        return try await cartState(cartID)
    }

    /// `DELETE .../payment-sessions/{provider_id}`.
    func delete(cartID: String, providerID: String) async throws -> Response {
        _ = try await store.delete(id: try await sessionID(cartID: cartID, providerID: providerID), force: false)
        return try await cartState(cartID)
    }

    /// `POST .../authorize` `{"amount":4200}`: authorizes the cart's selected session for
    /// the amount, which is required when the session has one and must match it (409
    /// otherwise, as when no session is selected). Idempotent: a retry gets the same answer.
    /// With an `Idempotency-Key` header the first answer is stored, and a retry with the key
    /// gets it back even if the cart changed since; the key on another cart is a 409.
    func authorize(_ request: Request, cartID: String) async throws -> Response {
        try Self.checkIdentifier(cartID, field: "cart_id")
        let key = request.headers[Self.idempotencyKey]
        if let key, key.utf8.count > Self.maxIdempotencyKeyBytes {
            throw APIError.invalidBody("the Idempotency-Key header is \(key.utf8.count) bytes; at most \(Self.maxIdempotencyKeyBytes)")
        }
        if let key, let stored = authorizationReplies.reply(for: key) {
            guard stored.cartID == cartID else {
                throw APIError(
                    status: .conflict, code: "conflict",
                    message: "idempotency key \(JSONValue.string(key).jsonText) was already used for another cart")
            }
            return .json(stored.body)
        }
        let body = try await Self.optionalJSONObject(request)
        let amount = try Self.amount(in: body, required: false)
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
        return .json(text)
    }

    // MARK: Helpers

    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    /// The largest request body: room for the largest `data` the store accepts by default
    /// (64 KiB of compact JSON) written with whitespace.
    static let maxBodyBytes = 256 << 10
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

    /// The cart's sessions (creation order) and its selected one, in the schema's JSON form.
    func cartState(_ cartID: String) async throws -> Response {
        .json(try await cartStateText(cartID))
    }

    func cartStateText(_ cartID: String) async throws -> String {
        let sessions = try await store.sessions(cartID: cartID)
        var text = #"{"cart_id":"# + JSONValue.string(cartID).jsonText + #","payment_sessions":["#
        text += sessions.map { $0.jsonText() }.joined(separator: ",")
        text += #"],"payment_session":"# + (sessions.first(where: \.isSelected)?.jsonText() ?? "null") + "}"
        return text
    }

    /// `amount` from a body: a whole number of the minor unit, 0 to 2^53 - 1.
    static func amount(in body: [String: JSONValue], required: Bool) throws -> Int? {
        guard let value = body["amount"], value != .null else {
            if required { throw APIError.invalidBody("amount is required") }
            return nil
        }
        guard case .number(let number) = value, let amount = Int(number.text), (0...SessionValidation.maxAmount).contains(amount)
        else { throw APIError.invalidBody("amount must be a whole number from 0 to \(SessionValidation.maxAmount)") }
        return amount
    }

    /// `currency_code` from a body: three lowercase letters, or absent.
    static func currency(in body: [String: JSONValue]) throws -> String? {
        guard let value = body["currency_code"], value != .null else { return nil }
        guard case .string(let code) = value, (try? SessionValidation.validateCurrencyCode(code)) != nil else {
            throw APIError.invalidBody("currency_code must be three lowercase letters such as usd")
        }
        return code
    }

    /// The body as a JSON object, or an empty object when there is no body.
    static func optionalJSONObject(_ request: Request) async throws -> [String: JSONValue] {
        let bytes = try await body(of: request)
        return bytes.isEmpty ? [:] : try parseObject(bytes)
    }

    /// The request's body, refused past ``maxBodyBytes``.
    static func body(of request: Request) async throws -> [UInt8] {
        do {
            return Array(try await request.body.collect(upTo: maxBodyBytes).readableBytesView)
        } catch {
            throw APIError(status: .badRequest, code: "invalid_input", message: "request body over \(maxBodyBytes) bytes")
        }
    }

    func sessionID(cartID: String, providerID: String) async throws -> String {
        guard let session = try await store.session(cartID: cartID, providerID: providerID) else {
            throw PaymentSessionError.sessionNotFound(id: "\(cartID)/\(providerID)")
        }
        return session.id
    }

    /// The request body as a JSON object, parsed exactly (numbers keep their digits).
    static func jsonObject(_ request: Request) async throws -> [String: JSONValue] {
        try parseObject(try await body(of: request))
    }

    static func parseObject(_ bytes: [UInt8]) throws -> [String: JSONValue] {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw APIError.invalidBody(error.description)
        }
        guard case .object(let members) = value else { throw APIError.invalidBody("expected a JSON object") }
        return members
    }

    static func string(_ field: String, in body: [String: JSONValue]) throws -> String {
        guard case .string(let text)? = body[field] else { throw APIError.invalidBody("\(field) must be a string") }
        try checkIdentifier(text, field: field)
        return text
    }
}

/// The service: routes, request logging, and the address to listen on.
///
/// - Parameters:
///   - services: run beside the server and stopped after it (a PostgreSQL store's pool).
///   - beforeServerStarts: runs once `services` run and before the first request is
///     accepted (a PostgreSQL store's schema check: a server that cannot be reached stops
///     the service at start rather than at a checkout).
///   - onListening: told the port once the server listens (the one the system chose for port 0).
public func buildApplication(
    store: any PaymentSessionStoring, hostname: String = "127.0.0.1", port: Int = 8080, logger: Logger,
    services: [any Service] = [], beforeServerStarts: (@Sendable () async throws -> Void)? = nil,
    onListening: @escaping @Sendable (Int) -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = Router()
    router.add(middleware: LogRequestsMiddleware(.debug))
    CheckoutRoutes(store: store).register(on: router)
    var app = Application(
        router: router, configuration: .init(address: .hostname(hostname, port: port), serverName: "checkout-service"),
        onServerRunning: { channel in onListening(channel.localAddress?.port ?? port) },
        logger: logger)
    app.addServices(services)
    if let beforeServerStarts { app.beforeServerStarts(perform: beforeServerStarts) }
    return app
}
