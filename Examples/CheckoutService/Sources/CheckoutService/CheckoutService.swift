import ArgumentParser
import CheckoutAPI
import Foundation
import Hummingbird
import Logging
import Metrics
import PaymentSessions
import PostgresPaymentSessions
import Prometheus
import ServiceLifecycle

/// `checkout-service --port 8080 --store PATH|URL`: the checkout HTTP service.
@main
struct CheckoutService: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkout-service",
        abstract: "A checkout HTTP service with Medusa-style payment session endpoints.",
        discussion: """
            The store is an LMDB directory (embedded, one machine) or a postgres:// URL (shared \
            by every instance that names it; the password may come from PGPASSWORD or ~/.pgpass). \
            Once listening, the service prints `listening on HOST:PORT` on stdout (with --port 0, \
            the port the system chose). Its routes are described by GET /openapi.yaml; its \
            metrics, in Prometheus' text format, are at GET /metrics.
            """,
        version: PaymentSessionsVersion.current)

    @Option(help: "The address to listen on.")
    var hostname = "127.0.0.1"

    @Option(help: "The port to listen on (0: any free port).")
    var port = 8080

    @Option(help: "The store: an LMDB directory (created when missing) or a postgres:// URL. Default: $PAYMENT_SESSIONS_STORE, else ./payment-sessions.lmdb.")
    var store: String?

    @Option(help: "POST every change of the store's feed to this URL, in order, signed, retrying until a 2xx (consumer \"webhook\"). https://, or http:// to a loopback address.")
    var webhook: String?

    @Option(help: "The secret that signs each webhook delivery (Payment-Sessions-Signature). Required with --webhook. Default: $CHECKOUT_WEBHOOK_SECRET.")
    var webhookSecret: String?

    @Option(help: "A second secret that signs beside --webhook-secret while receivers move to it. Default: $CHECKOUT_WEBHOOK_NEXT_SECRET.")
    var webhookNextSecret: String?

    @Flag(help: "Allow a plain http:// webhook URL to another machine (signed bodies, client secrets included, cross the network in clear).")
    var allowInsecureWebhooks = false

    @Option(help: "The most event streams open at once; beyond it a request is a 503.")
    var maxEventStreams = 256

    @Option(help: "Seconds an event stream may go without an event before it ends (the client reconnects with Last-Event-ID).")
    var eventStreamIdleTimeout = 300

    @Option(help: "Require this bearer token on every route but the storefront's (events, health, metrics, the document). Default: $CHECKOUT_API_TOKEN.")
    var apiToken: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be 0 to 65535, got \(port)") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not a level") }
        guard maxEventStreams > 0 else { throw ValidationError("--max-event-streams must be positive, got \(maxEventStreams)") }
        guard eventStreamIdleTimeout > 0 else {
            throw ValidationError("--event-stream-idle-timeout must be positive, got \(eventStreamIdleTimeout)")
        }
        if let webhook {
            guard !secrets.isEmpty else {
                throw ValidationError("--webhook needs --webhook-secret (or CHECKOUT_WEBHOOK_SECRET) to sign its deliveries")
            }
            do {
                try WebhookDispatcher.check(url: webhook, allowsInsecureURL: allowInsecureWebhooks)
            } catch {
                throw ValidationError(error.description)
            }
        }
        if let token = resolvedAPIToken, token.isEmpty { throw ValidationError("--api-token must not be empty") }
    }

    var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// The signing secrets: the current one, then the next while receivers move.
    var secrets: [String] {
        [webhookSecret ?? environment["CHECKOUT_WEBHOOK_SECRET"], webhookNextSecret ?? environment["CHECKOUT_WEBHOOK_NEXT_SECRET"]]
            .compactMap { $0 }.filter { !$0.isEmpty }
    }

    var resolvedAPIToken: String? { apiToken ?? environment["CHECKOUT_API_TOKEN"] }

    func run() async throws {
        let logger = {
            var logger = Logger(label: "checkout-service")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
            return logger
        }()
        // Once per process, before the store exists, so that its metrics go to /metrics.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        var configuration = ServiceConfiguration()
        configuration.maxEventStreams = maxEventStreams
        configuration.eventStreamIdleTimeout = .seconds(eventStreamIdleTimeout)
        configuration.apiToken = resolvedAPIToken
        configuration.metrics = ServiceMetrics(registry: registry)

        let location = store ?? environment["PAYMENT_SESSIONS_STORE"] ?? "./payment-sessions.lmdb"
        let hostname = hostname
        let announce: @Sendable (Int) -> Void = { port in
            // A line of its own on stdout, so that scripts and tests learn the port.
            FileHandle.standardOutput.write(Data("listening on \(hostname):\(port)\n".utf8))
        }
        if PostgresStoreURL.isPostgres(location) {
            var options = PostgresPaymentSessionStore.Options()
            options.logger = logger
            let sessions = try PostgresPaymentSessionStore(url: location, options: options)
            let app = try buildApplication(
                store: sessions, configuration: configuration, hostname: hostname, port: port, logger: logger,
                services: [sessions] + dispatchers(sessions, logger),
                beforeServerStarts: {
                    try await sessions.prepareSchema()
                    logger.info("store open", metadata: ["store": .string(sessions.location)])
                }, onListening: announce)
            try await app.runService()
        } else {
            var options = PaymentSessionStore.Options()
            options.logger = logger
            let sessions = try PaymentSessionStore(path: location, options: options)
            let count = try await sessions.count()
            logger.info("store open", metadata: ["path": .string(location), "sessions": .stringConvertible(count)])
            let app = try buildApplication(
                store: sessions, configuration: configuration, hostname: hostname, port: port, logger: logger,
                services: dispatchers(sessions, logger), onListening: announce)
            try await app.runService()
        }
    }

    /// The webhook dispatcher, when `--webhook` names a URL.
    func dispatchers(_ store: any PaymentSessionStoring, _ logger: Logger) throws -> [any Service] {
        guard let webhook else { return [] }
        do {
            return [
                try WebhookDispatcher(
                    store: store, url: webhook, secrets: secrets, allowsInsecureURL: allowInsecureWebhooks, logger: logger)
            ]
        } catch {
            throw ValidationError(error.description)
        }
    }
}
