import AsyncHTTPClient
import CheckoutWebhooks
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
/// redelivery, and `Payment-Sessions-Signature` (``WebhookSignature``), so that it can
/// refuse a forged or replayed one: a body carries the session's `data`, client secrets
/// included. A redirect is never followed (a 3xx is a failed delivery: following it could
/// turn the POST into a body-less GET that then counts as delivered), and a plain `http://`
/// URL is refused unless it is a loopback address or ``allowsInsecureURL`` is set.
///
/// Run it as a service of the application; it stops at graceful shutdown.
public struct WebhookDispatcher: Service {
    /// The store whose changes are delivered.
    public let store: any PaymentSessionStoring
    /// Where they are posted.
    public let url: String
    /// The secrets each delivery is signed with: one, or two while receivers move to a new
    /// one.
    public let secrets: [String]
    /// The named consumer whose position the store keeps.
    public let consumer: String
    /// The first wait after a failed delivery, doubled after each failure up to `maxBackoff`.
    public var initialBackoff: Duration = .milliseconds(100)
    public var maxBackoff: Duration = .seconds(10)
    /// How long one delivery may take.
    public var timeout: Duration = .seconds(10)
    let logger: Logger

    /// A dispatcher of `store`'s changes to `url`, signed with `secrets`, keeping its
    /// position as `consumer`.
    ///
    /// - Throws: ``WebhookConfigurationError`` for a URL that is not `https://` (or
    ///   `http://` to a loopback address, or any `http://` with `allowsInsecureURL`), or
    ///   without a secret.
    public init(
        store: any PaymentSessionStoring, url: String, secrets: [String], allowsInsecureURL: Bool = false,
        consumer: String = "webhook", logger: Logger
    ) throws(WebhookConfigurationError) {
        try Self.check(url: url, allowsInsecureURL: allowsInsecureURL)
        guard !secrets.isEmpty, secrets.allSatisfy({ !$0.isEmpty }) else { throw .missingSecret }
        self.store = store
        self.url = url
        self.secrets = secrets
        self.consumer = consumer
        self.logger = logger
    }

    /// Refuses a URL that would send signed bodies where they can be read or changed.
    public static func check(url: String, allowsInsecureURL: Bool) throws(WebhookConfigurationError) {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), let host = parsed.host, !host.isEmpty
        else { throw .invalidURL(withoutCredentials(url)) }
        switch scheme {
        case "https":
            return
        case "http" where allowsInsecureURL || isLoopback(host):
            return
        case "http":
            throw .insecureURL(withoutCredentials(url))
        default:
            throw .invalidURL(withoutCredentials(url))
        }
    }

    /// `localhost`, `127.0.0.0/8` and `::1`: a receiver on the same machine.
    static func isLoopback(_ host: String) -> Bool {
        let name = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if name == "localhost" || name == "::1" { return true }
        let octets = name.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// Delivers changes until the service shuts down. The store going away (a restart, a
    /// failover) does not end it: each step that needs the store waits and tries again, and
    /// the follower resumes after the last change delivered.
    public func run() async throws {
        let client = Self.client
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
                try await deliver(change, with: client)
                try await untilReachable("acknowledge a delivered change") {
                    try await store.acknowledge(consumer: consumer, upTo: change.sequence)
                }
            }
        } catch is CancellationError {
            // Shutting down: the position stays at the last change delivered.
        }
    }

    /// The process's client for deliveries: `HTTPClient.shared`'s configuration, but never
    /// following a redirect. Like `HTTPClient.shared`, it lives as long as the process and
    /// is never shut down, so a dispatcher that stops leaves nothing to close.
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration.singletonConfiguration
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

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
    func deliver(_ change: PaymentSessionChange, with client: HTTPClient) async throws {
        var backoff = initialBackoff
        var attempt = 1
        while true {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "Idempotency-Key", value: "change-\(change.sequence)")
            let body = Array(change.jsonText().utf8)
            // Signed at each attempt, so that a retry is within the receiver's tolerance.
            request.headers.add(name: WebhookSignature.headerName, value: WebhookSignature.header(body: body, secrets: secrets))
            request.body = .bytes(ByteBuffer(bytes: body))
            do {
                let response = try await client.execute(request, timeout: .init(timeout))
                _ = try? await response.body.collect(upTo: 1 << 16)
                if (200..<300).contains(response.status.code) { return }
                // Not followed: a 3xx is the receiver's misconfiguration, reported as such.
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

/// Why a webhook dispatcher cannot start.
public enum WebhookConfigurationError: Error, Equatable, CustomStringConvertible {
    /// Not an `https://` or `http://` URL with a host.
    case invalidURL(String)
    /// A plain `http://` URL to another machine: signed bodies with client secrets would
    /// cross the network in clear.
    case insecureURL(String)
    /// No secret to sign with.
    case missingSecret

    public var description: String {
        switch self {
        case .invalidURL(let url): "webhook URL \(url) is not an https:// URL with a host"
        case .insecureURL(let url):
            "webhook URL \(url) is plain http:// to another machine: use https://, or allow it with --allow-insecure-webhooks"
        case .missingSecret: "a webhook needs a secret to sign its deliveries (--webhook-secret or CHECKOUT_WEBHOOK_SECRET)"
        }
    }
}
