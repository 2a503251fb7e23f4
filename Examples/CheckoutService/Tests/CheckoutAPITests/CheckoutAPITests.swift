import CheckoutAPI
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import PaymentSessions
import PostgresPaymentSessions
import Testing
import TestSupport

/// The service through Hummingbird's test client, on each backend: a real LMDB store in a
/// temporary directory, and a real PostgreSQL store in a database of its own.
@Suite("Checkout service", .timeLimit(.minutes(2)))
struct CheckoutAPITests {
    enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case lmdb, postgresql
        var testDescription: String { rawValue }
        /// PostgreSQL where a server can be started (or is required, so that its absence fails).
        static var available: [Backend] { PostgresServer.shouldRun ? allCases : [.lmdb] }
    }

    func withService(
        _ backend: Backend, configuration: ServiceConfiguration = ServiceConfiguration(),
        _ body: @Sendable (any TestClientProtocol, any PaymentSessionStoring) async throws -> Void
    ) async throws {
        var logger = Logger(label: "checkout-test")
        logger.logLevel = .warning
        switch backend {
        case .lmdb:
            let directory = TemporaryDirectory(prefix: "checkout")
            var options = PaymentSessionStore.Options()
            options.environment.durability = .noSync
            options.environment.mapSize = 16 << 20
            let store = try PaymentSessionStore(path: directory.appending("store"), options: options)
            try await buildApplication(store: store, configuration: configuration, logger: logger).test(.router) { client in
                try await body(client, store)
            }
            // The embedded store's own consistency check, after every test.
        case .postgresql:
            let url = try PostgresServer.shared().makeDatabase(prefix: "checkout")
            var options = PostgresPaymentSessionStore.Options()
            options.logger = logger
            let store = try PostgresPaymentSessionStore(url: url, options: options)
            let app = try buildApplication(
                store: store, configuration: configuration, logger: logger, services: [store],
                beforeServerStarts: { try await store.prepareSchema() })
            try await app.test(.router) { client in try await body(client, store) }
        }
    }

    /// Sends a request and returns the status and the body parsed as JSON.
    @discardableResult
    static func call(
        _ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil,
        headers: HTTPFields = [:]
    ) async throws -> (status: HTTPResponse.Status, json: [String: JSONValue]) {
        try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }) {
            response in
            let text = String(buffer: response.body)
            guard case .object(let members) = try JSONValue(parsing: text) else {
                Issue.record("not a JSON object: \(text)")
                return (response.status, [:])
            }
            return (response.status, members)
        }
    }

    static func sessions(_ json: [String: JSONValue]) -> [[String: JSONValue]] {
        guard case .array(let values)? = json["payment_sessions"] else { return [] }
        return values.compactMap { if case .object(let members) = $0 { members } else { nil } }
    }

    static func errorCode(_ json: [String: JSONValue]) -> String? {
        guard case .object(let error)? = json["error"], case .string(let code)? = error["code"] else { return nil }
        return code
    }

    @Test(arguments: Backend.available)
    func theWholeCheckoutFlow(backend: Backend) async throws {
        try await withService(backend) { client, store in
            let base = "/store/carts/cart_1"
            var (status, json) = try await Self.call(client, .post, "\(base)/payment-sessions", #"{"provider_ids":["manual","stripe"]}"#)
            #expect(status == .ok)
            #expect(Self.sessions(json).map { $0["provider_id"] } == ["manual", "stripe"])
            #expect(json["payment_session"] == .null)

            (status, json) = try await Self.call(client, .post, "\(base)/payment-session", #"{"provider_id":"stripe"}"#)
            #expect(status == .ok)
            guard case .object(let selected)? = json["payment_session"] else {
                Issue.record("no selected session: \(json)")
                return
            }
            #expect(selected["provider_id"] == "stripe")
            #expect(selected["is_selected"] == true)

            (status, json) = try await Self.call(
                client, .post, "\(base)/payment-sessions/stripe", #"{"data":{"client_secret":"pi_1_secret","amount":4200}}"#)
            #expect(status == .ok)
            let stripe = Self.sessions(json).first { $0["provider_id"] == "stripe" }
            #expect(stripe?["data"] == ["client_secret": "pi_1_secret", "amount": 4200])

            (status, json) = try await Self.call(client, .post, "\(base)/authorize")
            #expect(status == .ok)
            if case .object(let authorized)? = json["payment_session"] { #expect(authorized["status"] == "authorized") }

            (status, json) = try await Self.call(client, .get, "\(base)/payment-sessions")
            #expect(status == .ok)
            #expect(Self.sessions(json).count == 2)

            (status, _) = try await Self.call(client, .delete, "\(base)/payment-sessions/manual")
            #expect(status == .ok)
            #expect(try await store.sessions(cartID: "cart_1").map(\.providerID) == ["stripe"])

            (status, json) = try await Self.call(client, .get, "/health")
            #expect(status == .ok)
            #expect(json["sessions"] == 1)
        }
    }

    @Test(arguments: Backend.available)
    func retriedInitializationWithTheSameKeyReturnsTheSameSessions(backend: Backend) async throws {
        try await withService(backend) { client, store in
            let headers: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "checkout-42"]
            let body = #"{"provider_ids":["stripe"]}"#
            let first = try await Self.call(client, .post, "/store/carts/c1/payment-sessions", body, headers: headers)
            let again = try await Self.call(client, .post, "/store/carts/c1/payment-sessions", body, headers: headers)
            #expect(first.status == .ok && again.status == .ok)
            #expect(Self.sessions(first.json).map { $0["id"] } == Self.sessions(again.json).map { $0["id"] })
            #expect(Self.sessions(again.json).first?["idempotency_key"] == "checkout-42:stripe")
            // The same key for another cart is a mistake, and loud.
            let other = try await Self.call(client, .post, "/store/carts/c2/payment-sessions", body, headers: headers)
            #expect(other.status == .conflict)
            #expect(Self.errorCode(other.json) == "conflict")
            // The answer tells this client nothing about the cart that holds the key.
            let message = other.json["error"]?.objectValue?["message"]?.stringValue ?? ""
            #expect(message.contains("checkout-42:stripe"), "\(message)")
            #expect(!message.contains("c1"), "\(message)")
            #expect(!message.contains("ps_"), "\(message)")
            #expect(try await store.count() == 1)
        }
    }

    /// A request cannot make the store's single writer do unbounded work: lists, strings
    /// and bodies past their bounds are a 400, and nothing is written.
    @Test(arguments: Backend.available)
    func requestsPastTheirBoundsAreRefusedBeforeAnyWrite(backend: Backend) async throws {
        try await withService(backend) { client, store in
            let base = "/store/carts/bounded"
            let manyProviders = (0..<5000).map { "\"p\($0)\"" }.joined(separator: ",")
            let longKey: HTTPFields = [HTTPField.Name("Idempotency-Key")!: String(repeating: "k", count: 400)]
            let cases: [(String, String, HTTPFields)] = [
                ("\(base)/payment-sessions", "{\"provider_ids\":[\(manyProviders)]}", [:]),
                ("\(base)/payment-sessions", "{\"provider_ids\":[\(Array(repeating: "\"same\"", count: 17).joined(separator: ","))]}", [:]),
                ("\(base)/payment-sessions", #"{"provider_ids":[""]}"#, [:]),
                ("\(base)/payment-sessions", #"{"provider_ids":["stripe"]}"#, longKey),
                ("/store/carts/\(String(repeating: "c", count: 300))/payment-sessions", #"{"provider_ids":["stripe"]}"#, [:]),
                ("\(base)/payment-session", "{\"provider_id\":\"\(String(repeating: "p", count: 300))\"}", [:]),
                ("\(base)/payment-sessions/manual", "{\"data\":{\"blob\":\"\(String(repeating: "x", count: 300 << 10))\"}}", [:]),
            ]
            for (uri, body, headers) in cases {
                let (status, json) = try await Self.call(client, .post, uri, body, headers: headers)
                #expect(status == .badRequest, "\(uri) \(body.prefix(60))")
                #expect(Self.errorCode(json) == "invalid_input", "\(uri) \(body.prefix(60))")
            }
            // Sixteen providers, with duplicates among them, is fine.
            let sixteen = (0..<16).map { "\"p\($0 % 8)\"" }.joined(separator: ",")
            let (status, json) = try await Self.call(client, .post, "\(base)/payment-sessions", "{\"provider_ids\":[\(sixteen)]}")
            #expect(status == .ok)
            #expect(Self.sessions(json).count == 8)
            #expect(try await store.count() == 8)
        }
    }

    /// The money flow: initialize at the cart's amount, follow a changed total, authorize
    /// for it (a retry gets the same answer), refuse another amount and a provider switch.
    @Test(arguments: Backend.available)
    func authorizationIsForTheCartsAmountAndHoldsAreNotOrphaned(backend: Backend) async throws {
        try await withService(backend) { client, store in
            let base = "/store/carts/money"
            var (status, json) = try await Self.call(
                client, .post, "\(base)/payment-sessions", #"{"provider_ids":["stripe","manual"],"amount":4200,"currency_code":"usd"}"#)
            #expect(status == .ok)
            #expect(Self.sessions(json).map { $0["amount"] } == [4200, 4200])
            (status, json) = try await Self.call(
                client, .post, "\(base)/payment-sessions", #"{"provider_ids":["stripe","manual"],"amount":5100,"currency_code":"usd"}"#)
            #expect(Self.sessions(json).map { $0["amount"] } == [5100, 5100])
            _ = try await Self.call(client, .post, "\(base)/payment-session", #"{"provider_id":"stripe"}"#)
            (status, json) = try await Self.call(client, .post, "\(base)/authorize", #"{}"#)
            #expect(status == .badRequest)
            (status, json) = try await Self.call(client, .post, "\(base)/authorize", #"{"amount":4200}"#)
            #expect(status == .conflict)
            #expect(Self.errorCode(json) == "conflict")
            let (first, authorized) = try await Self.call(client, .post, "\(base)/authorize", #"{"amount":5100}"#)
            #expect(first == .ok)
            let session = try #require(authorized["payment_session"]?.objectValue)
            #expect(session["status"] == "authorized" && session["amount"] == 5100)
            #expect(session["payment_authorized_at"]?.stringValue != nil)
            let (again, retried) = try await Self.call(client, .post, "\(base)/authorize", #"{"amount":5100}"#)
            #expect(again == .ok)
            #expect(retried == authorized)
            // Switching provider now would orphan the hold.
            (status, json) = try await Self.call(client, .post, "\(base)/payment-session", #"{"provider_id":"manual"}"#)
            #expect(status == .conflict)
            let message = json["error"]?.objectValue?["message"]?.stringValue ?? ""
            #expect(message.contains("cancel that authorization before switching provider"), "\(message)")
            // A changed total does not move the authorized session's amount.
            (status, json) = try await Self.call(
                client, .post, "\(base)/payment-sessions", #"{"provider_ids":["stripe","manual"],"amount":6000,"currency_code":"usd"}"#)
            #expect(Self.sessions(json).map { $0["amount"] } == [5100, 6000])
        }
    }

    /// An `Idempotency-Key` on authorize returns the stored answer, even after the cart
    /// changed; the same key on another cart is a 409.
    @Test(arguments: Backend.available)
    func authorizeWithAnIdempotencyKeyReplaysTheStoredAnswer(backend: Backend) async throws {
        try await withService(backend) { client, store in
            let base = "/store/carts/keyed"
            let headers: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "auth-1"]
            _ = try await Self.call(client, .post, "\(base)/payment-sessions", #"{"provider_ids":["stripe"],"amount":100,"currency_code":"eur"}"#)
            _ = try await Self.call(client, .post, "\(base)/payment-session", #"{"provider_id":"stripe"}"#)
            let (status, first) = try await Self.call(client, .post, "\(base)/authorize", #"{"amount":100}"#, headers: headers)
            #expect(status == .ok)
            // The provider voided the hold meanwhile: authorizing again would be refused, but
            // the retry of the same request gets the answer it was given.
            let id = try #require(try await store.selectedSession(cartID: "keyed")).id
            _ = try await store.update(id: id, status: .canceled, data: nil, expectedUpdatedAt: nil)
            let (replayStatus, replay) = try await Self.call(client, .post, "\(base)/authorize", #"{"amount":100}"#, headers: headers)
            #expect(replayStatus == .ok)
            #expect(replay == first)
            let (otherStatus, _) = try await Self.call(client, .post, "/store/carts/other/authorize", #"{"amount":100}"#, headers: headers)
            #expect(otherStatus == .conflict)
        }
    }

    @Test(arguments: Backend.available)
    func concurrentSelectsLeaveExactlyOneSelected(backend: Backend) async throws {
        try await withService(backend) { client, store in
            let providers = ["manual", "stripe", "paypal", "adyen", "klarna"]
            let list = providers.map { "\"\($0)\"" }.joined(separator: ",")
            _ = try await Self.call(client, .post, "/store/carts/race/payment-sessions", "{\"provider_ids\":[\(list)]}")
            try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for round in 0..<100 {
                    let provider = providers[round % providers.count]
                    group.addTask {
                        try await Self.call(client, .post, "/store/carts/race/payment-session", "{\"provider_id\":\"\(provider)\"}").status
                    }
                }
                for try await status in group { #expect(status == .ok) }
            }
            #expect(try await store.sessions(cartID: "race").filter(\.isSelected).count == 1)
            #expect(try await store.selectedSession(cartID: "race") != nil)
        }
    }

    @Test(arguments: Backend.available)
    func everyErrorHasItsStatusAndAJSONBody(backend: Backend) async throws {
        try await withService(backend) { client, store in
            let base = "/store/carts/cart_e"
            _ = try await Self.call(client, .post, "\(base)/payment-sessions", #"{"provider_ids":["manual"]}"#)
            let cases: [(HTTPRequest.Method, String, String?, HTTPResponse.Status, String)] = [
                (.post, "\(base)/payment-sessions", "not json", .badRequest, "invalid_input"),
                (.post, "\(base)/payment-sessions", #"{"provider_ids":[]}"#, .badRequest, "invalid_input"),
                (.post, "\(base)/payment-sessions", #"{"provider_ids":[1]}"#, .badRequest, "invalid_input"),
                (.post, "\(base)/payment-sessions", "{\"provider_ids\":[\"\(String(repeating: "p", count: 300))\"]}", .badRequest, "invalid_input"),
                (.post, "\(base)/payment-session", #"{"provider_id":"stripe"}"#, .notFound, "not_found"),
                (.post, "\(base)/payment-session", #"{}"#, .badRequest, "invalid_input"),
                (.post, "\(base)/payment-sessions/manual", #"{"data":[1]}"#, .badRequest, "invalid_input"),
                (.post, "\(base)/payment-sessions/ghost", #"{"data":{}}"#, .notFound, "not_found"),
                (.delete, "\(base)/payment-sessions/ghost", nil, .notFound, "not_found"),
                (.post, "\(base)/authorize", nil, .conflict, "conflict"),
            ]
            for (method, uri, body, expectedStatus, expectedCode) in cases {
                let (status, json) = try await Self.call(client, method, uri, body)
                #expect(status == expectedStatus, "\(method) \(uri) \(body ?? "")")
                #expect(Self.errorCode(json) == expectedCode, "\(method) \(uri) \(body ?? "")")
            }
            // An invalid transition: an authorized session cannot go back to pending.
            _ = try await Self.call(client, .post, "\(base)/payment-session", #"{"provider_id":"manual"}"#)
            _ = try await Self.call(client, .post, "\(base)/authorize")
            let (status, json) = try await Self.call(client, .post, "\(base)/payment-sessions/manual/refresh")
            #expect(status == .conflict)
            #expect(Self.errorCode(json) == "invalid_transition")
            // Nothing the failures touched was written.
            #expect(try await store.sessions(cartID: "cart_e").map(\.status) == [.authorized])
        }
    }

    /// A write whose outcome the store cannot know is a 503 that tells the client to retry
    /// with the same key, never the 500 that says it was not applied.
    @Test func anUnknownOutcomeIsA503AskingForARetryWithTheSameKey() async throws {
        let unknown = PaymentSessionError.storage(
            StorageFailure(
                backend: .postgresql, kind: .outcomeUnknown, operation: "create session", code: "outcome_unknown",
                message: "the connection was lost after the commit was sent"))
        let error = APIError(unknown)
        #expect(error.status == .serviceUnavailable && error.code == "outcome_unknown")
        #expect(error.message.contains("Idempotency-Key") && !error.message.contains("not applied"))
        let refused = APIError(
            .storage(StorageFailure(backend: .postgresql, kind: .unavailable, operation: "create session", code: "", message: "gone")))
        #expect(refused.status == .internalServerError && refused.message.contains("not applied"))
    }
}
