import ArgumentParser
import CheckoutAPI
import Hummingbird
import Logging
import PaymentSessions

/// `checkout-service --port 8080 --store PATH`: the checkout HTTP service.
@main
struct CheckoutService: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkout-service",
        abstract: "A checkout HTTP service with Medusa-style payment session endpoints, embedding the store.")

    @Option(help: "The address to listen on.")
    var hostname = "127.0.0.1"

    @Option(help: "The port to listen on.")
    var port = 8080

    @Option(help: "The store directory (created when missing).")
    var store = "./payment-sessions.lmdb"

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be 0 to 65535, got \(port)") }
    }

    func run() async throws {
        var logger = Logger(label: "checkout-service")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        var options = PaymentSessionStore.Options()
        options.logger = logger
        let sessions = try PaymentSessionStore(path: store, options: options)
        let count = try await sessions.count()
        logger.info("store open", metadata: ["path": .string(store), "sessions": .stringConvertible(count)])
        let app = buildApplication(store: sessions, hostname: hostname, port: port, logger: logger)
        try await app.runService()
    }
}
