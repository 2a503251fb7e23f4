import Foundation
import Hummingbird
import Logging
import OpenAPIHummingbird
import OpenAPIRuntime
import PaymentSessions
import Prometheus
import ServiceLifecycle

/// What an operator sets about the service beyond its store and address.
public struct ServiceConfiguration: Sendable {
    /// The most event streams open at once; beyond it a request is a 503.
    public var maxEventStreams = 256
    /// How long an event stream may go without an event before it ends (a client
    /// reconnects with `Last-Event-ID`).
    public var eventStreamIdleTimeout: Duration = .seconds(300)
    /// When set, the events, health, metrics and document routes require it as a bearer
    /// token; the storefront's routes stay open.
    public var apiToken: String?
    /// Where `GET /metrics` reads from: the registry the process bootstrapped swift-metrics
    /// with. `nil` serves an empty registry.
    public var metrics: ServiceMetrics?

    public init() {}
}

/// The service: the routes generated from `openapi.yaml`, request logging and metrics, and
/// the address to listen on.
///
/// - Parameters:
///   - services: run beside the server and stopped after it (a PostgreSQL store's pool,
///     the webhook dispatcher).
///   - beforeServerStarts: runs once `services` run and before the first request is
///     accepted (a PostgreSQL store's schema check: a server that cannot be reached stops
///     the service at start rather than at a checkout).
///   - onListening: told the port once the server listens (the one the system chose for port 0).
public func buildApplication(
    store: any PaymentSessionStoring, configuration: ServiceConfiguration = ServiceConfiguration(),
    hostname: String = "127.0.0.1", port: Int = 8080, logger: Logger, services: [any Service] = [],
    beforeServerStarts: (@Sendable () async throws -> Void)? = nil, onListening: @escaping @Sendable (Int) -> Void = { _ in }
) throws -> some ApplicationProtocol {
    let router = Router()
    router.add(middleware: LogRequestsMiddleware(.debug))
    router.add(middleware: MetricsMiddleware())
    router.add(middleware: JSONErrorsMiddleware())
    let handlers = CheckoutHandlers(
        store: store,
        events: CartEvents(
            store: store, maxStreams: configuration.maxEventStreams, idleTimeout: configuration.eventStreamIdleTimeout),
        metrics: configuration.metrics ?? ServiceMetrics(registry: PrometheusCollectorRegistry()))
    try handlers.registerHandlers(
        on: router,
        middlewares: [APIErrorMiddleware(), APITokenMiddleware(token: configuration.apiToken), RequestBodyLimitMiddleware()])
    var app = Application(
        router: router, configuration: .init(address: .hostname(hostname, port: port), serverName: "checkout-service"),
        onServerRunning: { channel in onListening(channel.localAddress?.port ?? port) },
        logger: logger)
    app.addServices(services)
    if let beforeServerStarts { app.beforeServerStarts(perform: beforeServerStarts) }
    return app
}
