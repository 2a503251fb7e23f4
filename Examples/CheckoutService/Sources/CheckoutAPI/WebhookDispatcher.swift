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

    /// Delivers changes until the service shuts down. The store going away (a restart, a
    /// failover) does not end it: each step that needs the store waits and tries again, and
    /// the follower resumes after the last change delivered.
    public func run() async throws {
        do {
            // A consumer new to the store starts with the changes after it was configured.
            let start: Int64 = try await untilReachable("read the webhook's position") {
                if let position = try await store.position(consumer: consumer) { return position }
                let last = try await store.changeFeedState().last
                try await store.acknowledge(consumer: consumer, upTo: last)
                return last
            }
            logger.info("delivering changes", metadata: ["webhook.url": .string(Self.withoutCredentials(url)), "webhook.after": "\(start)"])
            for try await change in store.followChanges(after: start).cancelOnGracefulShutdown() {
                try await deliver(change)
                try await untilReachable("acknowledge a delivered change") {
                    try await store.acknowledge(consumer: consumer, upTo: change.sequence)
                }
            }
        } catch is CancellationError {
            // Shutting down: the position stays at the last change delivered.
        }
    }

    /// Runs `step` until it succeeds or fails for a reason other than the store being
    /// unreachable, pausing longer after each failure.
    func untilReachable<R: Sendable>(_ step: String, _ body: () async throws -> R) async throws -> R {
        var backoff = initialBackoff
        while true {
            do {
                return try await body()
            } catch let error as PaymentSessionError {
                guard case .storage(let failure) = error, [.unavailable, .timeout].contains(failure.kind) else { throw error }
                logger.warning("store unreachable; trying again", metadata: ["step": "\(step)", "error": "\(error)"])
            }
            try await Task.sleep(for: backoff)
            backoff = min(backoff * 2, maxBackoff)
        }
    }

    /// `url` without a user name or password, for logs.
    public static func withoutCredentials(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        let authorityEnd = rest.firstIndex(where: { "/?#".contains($0) }) ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { return url }
        return String(url[..<scheme.upperBound]) + String(rest[rest.index(after: at)...])
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
