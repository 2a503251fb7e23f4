import CheckoutAPI
import CheckoutWebhooks
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InMemoryTracing
import Metrics
import PaymentSessions
import Prometheus
import Testing
import TestSupport
import Tracing

/// What an operator relies on: the published contract, the API token, bounded event
/// streams, metrics, signatures a receiver in another language can check, and `--version`.
@Suite("Checkout service: operations", .timeLimit(.minutes(2)))
struct ServiceOperationsTests {
    typealias Backend = CheckoutAPITests.Backend

    static let bearer = HTTPField.Name("Authorization")!

    @Test func theServiceServesItsOpenAPIDocument() async throws {
        try await CheckoutAPITests().withService(.lmdb) { client, _ in
            try await client.execute(uri: "/openapi.yaml", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("application/yaml") == true)
                let text = String(buffer: response.body)
                #expect(text.hasPrefix("openapi: 3.1.0"))
                #expect(text.contains("/store/carts/{cart_id}/payment-sessions/{provider_id}/refresh:"))
            }
        }
    }

    /// With a token, the events, health, metrics and the document need it; the storefront
    /// does not.
    @Test func anAPITokenGuardsEveryRouteButTheStorefronts() async throws {
        var configuration = ServiceConfiguration()
        configuration.apiToken = "s3cret-token"
        try await CheckoutAPITests().withService(.lmdb, configuration: configuration) { client, _ in
            for uri in ["/health", "/metrics", "/openapi.yaml", "/store/carts/c/events?limit=1"] {
                for headers: HTTPFields in [[:], [Self.bearer: "Bearer wrong"], [Self.bearer: "s3cret-token"], [Self.bearer: "Bearer s3cret-tokenX"]] {
                    let (status, json) = try await CheckoutAPITests.call(client, .get, uri, headers: headers)
                    #expect(status == .unauthorized, "\(uri) \(headers)")
                    #expect(CheckoutAPITests.errorCode(json) == "unauthorized")
                }
            }
            try await client.execute(uri: "/health", method: .get, headers: [Self.bearer: "Bearer s3cret-token"]) { response in
                #expect(response.status == .ok)
            }
            let (status, _) = try await CheckoutAPITests.call(
                client, .post, "/store/carts/c/payment-sessions", #"{"provider_ids":["manual"]}"#)
            #expect(status == .ok)
        }
    }

    /// Beyond the cap a stream request is a 503 with Retry-After; an idle stream ends by
    /// itself, which frees its place.
    @Test func eventStreamsAreCappedAndEndWhenIdle() async throws {
        var configuration = ServiceConfiguration()
        configuration.maxEventStreams = 1
        configuration.eventStreamIdleTimeout = .seconds(2)
        try await CheckoutAPITests().withService(.lmdb, configuration: configuration) { client, _ in
            // Two streams at once with room for one: whichever comes second is refused, the
            // other stays open until it has been idle for the timeout.
            let began = ContinuousClock.now
            let answers = try await withThrowingTaskGroup(of: (HTTPResponse.Status, String?, String, Duration).self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        try await client.execute(uri: "/store/carts/c/events", method: .get) { response in
                            (response.status, response.headers[.retryAfter], String(buffer: response.body), ContinuousClock.now - began)
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let refused = answers.filter { $0.0 == .serviceUnavailable }
            let served = answers.filter { $0.0 == .ok }
            #expect(refused.count == 1 && served.count == 1, "\(answers.map(\.0))")
            #expect(refused.first?.1 == "1")
            #expect(refused.first?.2.contains("too_many_streams") == true)
            #expect(served.first?.2.isEmpty == true)
            #expect((served.first?.3 ?? .zero) >= .seconds(2))
            // Its place is free again.
            let (created, _) = try await CheckoutAPITests.call(
                client, .post, "/store/carts/c/payment-sessions", #"{"provider_ids":["manual"]}"#)
            #expect(created == .ok)
            try await client.execute(uri: "/store/carts/c/events?after=0&limit=1", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).hasPrefix("id: 1\nevent: created\n"))
            }
        }
    }

    /// `GET /metrics` is Prometheus text with the requests the service answered and the
    /// store's own metrics: operations by name and outcome, their latencies, the group
    /// commit's batches on LMDB, and the feed's lag once a stream has read a change.
    @Test(arguments: Backend.available)
    func metricsAreServedInPrometheusText(backend: Backend) async throws {
        var configuration = ServiceConfiguration()
        configuration.metrics = ServiceMetrics(registry: Self.registry)
        try await CheckoutAPITests().withService(backend, configuration: configuration) { client, _ in
            _ = try await CheckoutAPITests.call(client, .post, "/store/carts/m/payment-sessions", #"{"provider_ids":["manual"]}"#)
            _ = try await CheckoutAPITests.call(client, .post, "/store/carts/m/payment-session", #"{"provider_id":"ghost"}"#)
            try await client.execute(uri: "/store/carts/m/events?after=0&limit=1", method: .get) { _ in }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                let text = String(buffer: response.body)
                let label = #"backend="\#(backend.rawValue)""#
                let lines = text.split(separator: "\n")
                func has(_ prefix: String, _ parts: [String]) -> Bool {
                    lines.contains { line in line.hasPrefix(prefix) && parts.allSatisfy { line.contains($0) } }
                }
                #expect(has("hb_requests", []), "\(text.prefix(600))")
                #expect(has("payment_sessions_operations_total", [label, #"operation="perform(_:)""#, #"outcome="ok""#]))
                #expect(has("payment_sessions_operations_total", [label, #"operation="session(cartID:providerID:)""#]))
                #expect(has("payment_sessions_operation_duration_seconds", [label, #"operation="sessions(cartID:)""#]))
                #expect(has("payment_sessions_feed_lag_seconds", []))
                if backend == .lmdb { #expect(has("payment_sessions_group_commit_batch_size", [label])) }
            }
        }
    }

    /// Each store operation is a span named for the method, with the backend and the
    /// operation as attributes, and a failed one carries its error.
    @Test func storeOperationsAreTraced() async throws {
        let tracer = Self.tracer
        let directory = TemporaryDirectory(prefix: "traced")
        let store = try PaymentSessionStore(path: directory.appending("store"))
        let session = try await store.create(NewPaymentSession(cartID: "traced", providerID: "p"))
        _ = try await store.session(id: session.id)
        await #expect(throws: PaymentSessionError.self) { try await store.select(id: "ps_01M97MV5RWBTEBHAWJDCCJDWFR") }
        let spans = tracer.finishedSpans.filter { $0.attributes.get("db.system") == .string("lmdb") }
        let names = Set(spans.map(\.operationName))
        #expect(names.isSuperset(of: ["payment_sessions.create(_:)", "payment_sessions.session(id:)"]), "\(names)")
        let create = spans.first { $0.operationName == "payment_sessions.create(_:)" }
        #expect(create?.attributes.get("db.operation") == .string("create(_:)"))
        #expect(create?.kind == .client)
        let failed = spans.filter { $0.operationName == "payment_sessions.select(id:)" && !$0.errors.isEmpty }
        #expect(!failed.isEmpty)
    }

    /// The process's tracer, bootstrapped once for this test process.
    static let tracer: InMemoryTracer = {
        let tracer = InMemoryTracer()
        InstrumentationSystem.bootstrap(tracer)
        return tracer
    }()

    /// The process's metrics factory, bootstrapped once for this test process.
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    /// The signature scheme, end to end: a body signed here verifies here and in the
    /// Python receiver the README shows; an altered body, another secret, an old time and
    /// a malformed header are refused.
    @Test func signaturesVerifyHereAndInPythonAndRefuseWhatWasNotSigned() throws {
        let body = Array(#"{"sequence":7,"kind":"authorized","data":{"client_secret":"pi_123"}}"#.utf8)
        let header = WebhookSignature.header(body: body, secrets: ["old", "new"])
        try WebhookSignature.verify(header: header, body: body, secrets: ["new"])
        try WebhookSignature.verify(header: header, body: body, secrets: ["other", "old"])
        #expect(throws: WebhookSignatureError.noMatchingSignature) {
            try WebhookSignature.verify(header: header, body: body + [0x20], secrets: ["new"])
        }
        #expect(throws: WebhookSignatureError.noMatchingSignature) {
            try WebhookSignature.verify(header: header, body: body, secrets: ["other"])
        }
        let old = WebhookSignature.header(body: body, secrets: ["new"], time: Date().addingTimeInterval(-301))
        #expect(throws: WebhookSignatureError.self) { try WebhookSignature.verify(header: old, body: body, secrets: ["new"]) }
        for malformed in ["", "v1=00", "t=1", "t=x,v1=00", "t=1,v1=zz", "garbage"] {
            #expect(throws: WebhookSignatureError.malformed(header: malformed)) {
                try WebhookSignature.verify(header: malformed, body: body, secrets: ["new"])
            }
        }

        // The Python receiver in receivers/, run on the same delivery.
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("receivers/verify_signature.py").path
        let directory = TemporaryDirectory(prefix: "signature")
        let bodyFile = directory.appending("body")
        try Data(body).write(to: URL(fileURLWithPath: bodyFile))
        func python(_ header: String, _ secrets: [String]) throws -> Int32 {
            try ChildProcess(path: "/usr/bin/python3", [script, header, bodyFile] + secrets).finish().status
        }
        #expect(try python(header, ["new"]) == 0)
        #expect(try python(header, ["old"]) == 0)
        #expect(try python(header, ["other"]) == 1)
        #expect(try python(old, ["new"]) == 1)
    }

    /// (The CLI's own tests check `payment-sessions --version`.)
    @Test func theServiceReportsItsVersion() throws {
        let output = try ChildProcess("checkout-service", ["--version"]).finish()
        #expect(output.status == 0 && output.stdout == PaymentSessionsVersion.current + "\n", "\(output)")
    }
}
