import ArgumentParser
import CheckoutAPI
import Foundation
import Hummingbird
import Logging
import PaymentSessions
import PostgresPaymentSessions
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
            the port the system chose).
            """)

    @Option(help: "The address to listen on.")
    var hostname = "127.0.0.1"

    @Option(help: "The port to listen on (0: any free port).")
    var port = 8080

    @Option(help: "The store: an LMDB directory (created when missing) or a postgres:// URL. Default: $PAYMENT_SESSIONS_STORE, else ./payment-sessions.lmdb.")
    var store: String?

    @Option(help: "POST every change of the store's feed to this URL, in order, retrying until a 2xx (consumer \"webhook\").")
    var webhook: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be 0 to 65535, got \(port)") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not a level") }
    }

    func run() async throws {
        let logger = {
            var logger = Logger(label: "checkout-service")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
            return logger
        }()
        let location = store ?? ProcessInfo.processInfo.environment["PAYMENT_SESSIONS_STORE"] ?? "./payment-sessions.lmdb"
        let hostname = hostname
        let announce: @Sendable (Int) -> Void = { port in
            // A line of its own on stdout, so that scripts and tests learn the port.
            FileHandle.standardOutput.write(Data("listening on \(hostname):\(port)\n".utf8))
        }
        if PostgresStoreURL.isPostgres(location) {
            var options = PostgresPaymentSessionStore.Options()
            options.logger = logger
            let sessions = try PostgresPaymentSessionStore(url: location, options: options)
            let app = buildApplication(
                store: sessions, hostname: hostname, port: port, logger: logger, services: [sessions] + dispatchers(sessions, logger),
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
            let app = buildApplication(
                store: sessions, hostname: hostname, port: port, logger: logger, services: dispatchers(sessions, logger),
                onListening: announce)
            try await app.runService()
        }
    }

    /// The webhook dispatcher, when `--webhook` names a URL.
    func dispatchers(_ store: any PaymentSessionStoring, _ logger: Logger) -> [any Service] {
        webhook.map { [WebhookDispatcher(store: store, url: $0, logger: logger)] } ?? []
    }
}
