import CheckoutAPI
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import PaymentSessions
import PostgresPaymentSessions
import Synchronization
import TestSupport
import Testing

/// The service's use of the change feed: a cart's events as server-sent events, and the
/// webhook dispatcher against a receiver that fails and restarts.
@Suite("Checkout service: the change feed", .timeLimit(.minutes(2)))
struct ChangeFeedServiceTests {
    @Test(arguments: CheckoutAPITests.Backend.available)
    func aCartsEventsStreamItsChangesAsServerSentEvents(backend: CheckoutAPITests.Backend) async throws {
        try await CheckoutAPITests().withService(backend) { client, store in
            _ = try await CheckoutAPITests.call(client, .post, "/store/carts/other/payment-sessions", #"{"provider_ids":["manual"]}"#)
            _ = try await CheckoutAPITests.call(client, .post, "/store/carts/c/payment-sessions", #"{"provider_ids":["manual","stripe"]}"#)
            _ = try await CheckoutAPITests.call(client, .post, "/store/carts/c/payment-session", #"{"provider_id":"stripe"}"#)
            // From the start, the cart's four changes: two created, stripe selected... and
            // nothing of the other cart.
            try await client.execute(uri: "/store/carts/c/events?after=0&limit=3", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/event-stream")
                let events = String(buffer: response.body).split(separator: "\n\n").map(String.init)
                #expect(events.count == 3)
                #expect(events.first?.hasPrefix("id: 2\nevent: created\ndata: {\"sequence\":2,") == true)
                #expect(events.last?.hasPrefix("id: 4\nevent: selected\n") == true)
            }
            // Resuming after an event id, as a reconnecting browser does.
            try await client.execute(uri: "/store/carts/c/events?limit=1", method: .get, headers: [HTTPField.Name("Last-Event-ID")!: "3"]) { response in
                #expect(String(buffer: response.body).hasPrefix("id: 4\n"))
            }
            try await client.execute(uri: "/store/carts/c/events?after=x", method: .get) { response in
                #expect(response.status == .badRequest)
            }
            _ = store
        }
    }

    /// A loopback receiver that checks signatures, answers 500 to the first delivery of
    /// every third change, and is stopped for a while: every change arrives signed, in order
    /// of first arrival, and the dispatcher's position ends at the last one.
    @Test func theWebhookDispatcherDeliversEveryChangeInOrderThroughFailuresAndRestarts() async throws {
        let logger = Self.quietLogger
        let directory = TemporaryDirectory(prefix: "webhook")
        var options = PaymentSessionStore.Options()
        options.environment.durability = .noSync
        let store = try PaymentSessionStore(path: directory.appending("store"), options: options)
        let refusedOnce = Mutex<Set<Int>>([])
        let receiver = WebhookReceiver(secrets: ["whsec_test"]) { sequence in
            sequence % 3 == 0 && refusedOnce.withLock({ $0.insert(sequence).inserted }) ? .internalServerError : .ok
        }
        let port = try await receiver.start()
        var dispatcher = try WebhookDispatcher(store: store, url: "http://127.0.0.1:\(port)/hook", secrets: ["whsec_test"], logger: logger)
        dispatcher.initialBackoff = .milliseconds(10)
        dispatcher.maxBackoff = .milliseconds(200)
        let dispatching = Task { [dispatcher] in try await dispatcher.run() }
        // The dispatcher starts after what is in the feed when it first runs.
        for _ in 0..<100 where try store.position(consumer: "webhook") == nil { try await Task.sleep(for: .milliseconds(10)) }

        for i in 0..<6 { _ = try await store.create(NewPaymentSession(cartID: "c\(i)", providerID: "p")) }
        try await receiver.waitForDeliveries(6)
        // The receiver goes away; changes made meanwhile wait for it.
        await receiver.stop()
        for i in 6..<12 { _ = try await store.create(NewPaymentSession(cartID: "c\(i)", providerID: "p")) }
        try await Task.sleep(for: .milliseconds(300))
        _ = try await receiver.start(port: port)
        try await receiver.waitForDeliveries(12)
        dispatching.cancel()
        _ = await dispatching.result
        await receiver.stop()

        var firstArrivals: [Int] = []
        for sequence in receiver.sequences where !firstArrivals.contains(sequence) { firstArrivals.append(sequence) }
        #expect(firstArrivals == Array(1...12))
        #expect(refusedOnce.withLock { $0 } == [3, 6, 9, 12])
        #expect(receiver.badSignatures == 0)
        #expect(try store.position(consumer: "webhook") ?? 0 >= 11)
    }

    /// While a secret is rotated the dispatcher signs with both: a receiver that has only
    /// the old one and a receiver that has only the new one both accept, and one with
    /// neither refuses every delivery (which then stays undelivered, never skipped).
    @Test func aRotatedSecretSignsBesideTheOldOneAndAStrangerIsRefused() async throws {
        let directory = TemporaryDirectory(prefix: "webhook-rotation")
        var options = PaymentSessionStore.Options()
        options.environment.durability = .noSync
        let store = try PaymentSessionStore(path: directory.appending("store"), options: options)
        for (receiverSecrets, delivered) in [(["old"], true), (["new"], true), (["other"], false)] {
            let consumer = "hook-\(receiverSecrets[0])"
            let receiver = WebhookReceiver(secrets: receiverSecrets)
            let port = try await receiver.start()
            var dispatcher = try WebhookDispatcher(
                store: store, url: "http://localhost:\(port)/hook", secrets: ["old", "new"], consumer: consumer,
                logger: Self.quietLogger)
            dispatcher.initialBackoff = .milliseconds(10)
            dispatcher.maxBackoff = .milliseconds(50)
            let dispatching = Task { [dispatcher] in try await dispatcher.run() }
            for _ in 0..<100 where try store.position(consumer: consumer) == nil { try await Task.sleep(for: .milliseconds(10)) }
            let session = try await store.create(NewPaymentSession(cartID: "rotation", providerID: consumer))
            let sequence = try store.changes(after: 0).first { $0.sessionID == session.id }?.sequence ?? 0
            if delivered {
                try await receiver.waitForDeliveries(1)
                #expect(receiver.sequences == [Int(sequence)], "\(receiverSecrets)")
            } else {
                for _ in 0..<200 where receiver.badSignatures < 3 { try await Task.sleep(for: .milliseconds(10)) }
                #expect(receiver.sequences.isEmpty)
                #expect(receiver.badSignatures >= 3)
                #expect(try store.position(consumer: consumer) ?? 0 < sequence)
            }
            dispatching.cancel()
            _ = await dispatching.result
            await receiver.stop()
        }
    }

    /// A 3xx is a failed delivery: the dispatcher does not follow it (a followed redirect
    /// could turn the POST into a body-less GET that counts as delivered), and delivers once
    /// the receiver answers 2xx.
    @Test func aRedirectIsAFailedDeliveryAndIsNotFollowed() async throws {
        let directory = TemporaryDirectory(prefix: "webhook-redirect")
        var options = PaymentSessionStore.Options()
        options.environment.durability = .noSync
        let store = try PaymentSessionStore(path: directory.appending("store"), options: options)
        let redirects = Mutex(0)
        let receiver = WebhookReceiver(secrets: ["s"]) { _ in
            redirects.withLock { count in
                count += 1
                return count <= 3 ? (count == 2 ? .seeOther : .temporaryRedirect) : .ok
            }
        }
        let port = try await receiver.start()
        var dispatcher = try WebhookDispatcher(store: store, url: "http://127.0.0.1:\(port)/hook", secrets: ["s"], logger: Self.quietLogger)
        dispatcher.initialBackoff = .milliseconds(10)
        let dispatching = Task { [dispatcher] in try await dispatcher.run() }
        for _ in 0..<100 where try store.position(consumer: "webhook") == nil { try await Task.sleep(for: .milliseconds(10)) }
        _ = try await store.create(NewPaymentSession(cartID: "moved", providerID: "p"))
        try await receiver.waitForDeliveries(1)
        dispatching.cancel()
        _ = await dispatching.result
        await receiver.stop()
        #expect(redirects.withLock { $0 } == 4)
        #expect(receiver.followedRedirects == 0)
        #expect(receiver.sequences.count == 1)
    }

    /// Signed bodies carry client secrets: a webhook URL must be https://, or http:// to a
    /// loopback address unless insecure URLs are allowed, and it needs a secret.
    @Test func aWebhookMustBeHTTPSOrLoopbackAndSigned() throws {
        let directory = TemporaryDirectory(prefix: "webhook-urls")
        let store = try PaymentSessionStore(path: directory.appending("store"))
        func attempt(_ url: String, secrets: [String] = ["s"], insecure: Bool = false) -> WebhookConfigurationError? {
            do {
                _ = try WebhookDispatcher(store: store, url: url, secrets: secrets, allowsInsecureURL: insecure, logger: Self.quietLogger)
                return nil
            } catch {
                return error
            }
        }
        #expect(attempt("https://hooks.example.com/payments") == nil)
        #expect(attempt("http://127.0.0.1:9/hook") == nil)
        #expect(attempt("http://localhost/hook") == nil)
        #expect(attempt("http://[::1]:8/hook") == nil)
        #expect(attempt("http://hooks.example.com/hook") == .insecureURL("http://hooks.example.com/hook"))
        #expect(attempt("http://user:pw@10.0.0.5/hook") == .insecureURL("http://10.0.0.5/hook"))
        #expect(attempt("http://hooks.example.com/hook", insecure: true) == nil)
        #expect(attempt("ftp://hooks.example.com/hook") == .invalidURL("ftp://hooks.example.com/hook"))
        #expect(attempt("not a url") == .invalidURL("not a url"))
        #expect(attempt("https://hooks.example.com/hook", secrets: []) == .missingSecret)
        #expect(attempt("https://hooks.example.com/hook", secrets: [""]) == .missingSecret)
        // The message never carries the URL's credentials.
        #expect(!(attempt("http://user:pw@10.0.0.5/hook")?.description.contains("pw") ?? true))
    }

    static var quietLogger: Logger {
        var logger = Logger(label: "webhook-test")
        logger.logLevel = .critical
        return logger
    }

    /// The dispatcher on a PostgreSQL store keeps running while the server restarts: the
    /// change made after the restart is delivered, after every change before it, once each.
    @Test(.enabled(if: PostgresServer.shouldRun)) func theWebhookDispatcherOutlivesAPostgreSQLRestart() async throws {
        let logger = Self.quietLogger
        let server = try PostgresServer.startNew()
        defer { try? server.stop(mode: "immediate") }
        var options = PostgresPaymentSessionStore.Options()
        options.logger = logger
        options.operationTimeout = .seconds(2)
        let store = try PostgresPaymentSessionStore(url: server.url(), options: options)
        let receiver = WebhookReceiver(secrets: ["whsec_restart"])
        let port = try await receiver.start()
        let running = Task { try await store.run() }
        defer { running.cancel() }
        try await store.prepareSchema()
        var dispatcher = try WebhookDispatcher(
            store: store, url: "http://user:hook-secret@127.0.0.1:\(port)/hook", secrets: ["whsec_restart"], logger: logger)
        dispatcher.initialBackoff = .milliseconds(20)
        dispatcher.maxBackoff = .milliseconds(500)
        let dispatching = Task { [dispatcher] in try await dispatcher.run() }
        for _ in 0..<500 where try await store.position(consumer: "webhook") == nil { try await Task.sleep(for: .milliseconds(10)) }
        _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "before"))
        try await receiver.waitForDeliveries(1, seconds: 30)
        try server.restart(mode: "fast")
        // The first write after the restart may find the store still reconnecting.
        var created = false
        for _ in 0..<100 where !created {
            do {
                _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "after"))
                created = true
            } catch let error as PaymentSessionError where error.code == .storage {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        #expect(created)
        try await receiver.waitForDeliveries(2, seconds: 30)
        #expect(receiver.sequences == [1, 2])
        #expect(WebhookDispatcher.withoutCredentials("http://user:hook-secret@127.0.0.1:\(port)/hook") == "http://127.0.0.1:\(port)/hook")
        #expect(!dispatching.isCancelled)
        dispatching.cancel()
        _ = await dispatching.result
        await receiver.stop()
    }
}
