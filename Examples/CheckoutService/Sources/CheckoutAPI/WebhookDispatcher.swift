import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import PaymentSessions
import ServiceLifecycle

/// Delivers every change of the store's feed to a webhook URL, in order, as a `POST` of
/// the change's JSON line, and acknowledges a change only after a 2xx: at-least-once
/// delivery that survives a restart of the service (the position is the store's) and of
/// the receiver (a failed delivery is retried with backoff, never skipped).
///
/// Each request carries `Idempotency-Key: change-SEQUENCE`, so that a receiver can drop a
/// redelivery. Run it as a service of the application; it stops at graceful shutdown.
public struct WebhookDispatcher: Service {
    /// The store whose changes are delivered.
    public let store: any PaymentSessionStoring
    /// Where they are posted.
    public let url: String
    /// The named consumer whose position the store keeps.
    public let consumer: String
    /// The first wait after a failed delivery, doubled after each failure up to `maxBackoff`.
    public var initialBackoff: Duration = .milliseconds(100)
    public var maxBackoff: Duration = .seconds(10)
    /// How long one delivery may take.
    public var timeout: Duration = .seconds(10)
    let logger: Logger

    /// A dispatcher of `store`'s changes to `url`, keeping its position as `consumer`.
    public init(store: any PaymentSessionStoring, url: String, consumer: String = "webhook", logger: Logger) {
        self.store = store
        self.url = url
        self.consumer = consumer
        self.logger = logger
    }

    public func run() async throws {
        // A consumer new to the store starts with the changes after it was configured.
        let start: Int64
        if let position = try await store.position(consumer: consumer) {
            start = position
        } else {
            start = try await store.changeFeedState().last
            try await store.acknowledge(consumer: consumer, upTo: start)
        }
        logger.info("delivering changes", metadata: ["webhook.url": .string(url), "webhook.after": "\(start)"])
        do {
            for try await change in store.followChanges(after: start).cancelOnGracefulShutdown() {
                try await deliver(change)
                try await store.acknowledge(consumer: consumer, upTo: change.sequence)
            }
        } catch is CancellationError {
            // Shutting down: the position stays at the last change delivered.
        }
    }

    /// Posts `change` until the receiver answers 2xx, waiting longer after each failure.
    func deliver(_ change: PaymentSessionChange) async throws {
        var backoff = initialBackoff
        var attempt = 1
        while true {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "Idempotency-Key", value: "change-\(change.sequence)")
            request.body = .bytes(ByteBuffer(string: change.jsonText()))
            do {
                let response = try await HTTPClient.shared.execute(request, timeout: .init(timeout))
                _ = try? await response.body.collect(upTo: 1 << 16)
                if (200..<300).contains(response.status.code) { return }
                logger.warning(
                    "webhook refused a change",
                    metadata: ["webhook.status": "\(response.status.code)", "change": "\(change.sequence)", "attempt": "\(attempt)"])
            } catch {
                logger.warning("webhook unreachable", metadata: ["error": "\(error)", "change": "\(change.sequence)", "attempt": "\(attempt)"])
            }
            try await Task.sleep(for: backoff)
            backoff = min(backoff * 2, maxBackoff)
            attempt += 1
        }
    }
}
