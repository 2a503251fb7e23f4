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
@Suite("Checkout service: the change feed")
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

    /// A loopback receiver that answers 500 to the first delivery of every third change,
    /// and is stopped for a while: every change arrives, in order of first arrival, and the
    /// dispatcher's position ends at the last one.
    @Test func theWebhookDispatcherDeliversEveryChangeInOrderThroughFailuresAndRestarts() async throws {
        var logger = Logger(label: "webhook-test")
        logger.logLevel = .critical
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("webhook-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var options = PaymentSessionStore.Options()
        options.environment.durability = .noSync
        let store = try PaymentSessionStore(path: directory.path, options: options)
        let received = Mutex<[Int]>([])
        let refusedOnce = Mutex<Set<Int>>([])

        /// Runs the receiver on `port` (0: any) until the returned task is cancelled.
        func startReceiver(port: Int) async throws -> (Task<Void, any Error>, Int) {
            let router = Router()
            router.post("hook") { request, _ -> HTTPResponse.Status in
                let body = try await request.body.collect(upTo: 1 << 20)
                guard case .number(let number)? = try JSONValue(parsing: String(buffer: body)).objectValue?["sequence"],
                    let sequence = Int(number.text)
                else { return .badRequest }
                if sequence % 3 == 0, refusedOnce.withLock({ $0.insert(sequence).inserted }) { return .internalServerError }
                received.withLock { $0.append(sequence) }
                return .ok
            }
            let listening = AsyncStream<Int>.makeStream()
            let app = Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
                onServerRunning: { listening.continuation.yield($0.localAddress?.port ?? port) }, logger: logger)
            let task = Task { try await app.runService(gracefulShutdownSignals: []) }
            var iterator = listening.stream.makeAsyncIterator()
            return (task, await iterator.next() ?? port)
        }

        var (receiver, port) = try await startReceiver(port: 0)
        var dispatcher = WebhookDispatcher(store: store, url: "http://127.0.0.1:\(port)/hook", logger: logger)
        dispatcher.initialBackoff = .milliseconds(10)
        dispatcher.maxBackoff = .milliseconds(200)
        let dispatching = Task { [dispatcher] in try await dispatcher.run() }
        // The dispatcher starts after what is in the feed when it first runs.
        for _ in 0..<100 where try store.position(consumer: "webhook") == nil { try await Task.sleep(for: .milliseconds(10)) }

        func waitForDeliveries(_ count: Int) async throws {
            for _ in 0..<1000 where received.withLock({ Set($0).count }) < count { try await Task.sleep(for: .milliseconds(10)) }
        }
        for i in 0..<6 { _ = try await store.create(NewPaymentSession(cartID: "c\(i)", providerID: "p")) }
        try await waitForDeliveries(6)
        // The receiver goes away; changes made meanwhile wait for it.
        receiver.cancel()
        _ = await receiver.result
        for i in 6..<12 { _ = try await store.create(NewPaymentSession(cartID: "c\(i)", providerID: "p")) }
        try await Task.sleep(for: .milliseconds(300))
        (receiver, _) = try await startReceiver(port: port)
        try await waitForDeliveries(12)
        dispatching.cancel()
        _ = await dispatching.result
        receiver.cancel()
        _ = await receiver.result

        let deliveries = received.withLock { $0 }
        var firstArrivals: [Int] = []
        for sequence in deliveries where !firstArrivals.contains(sequence) { firstArrivals.append(sequence) }
        #expect(firstArrivals == Array(1...12))
        #expect(refusedOnce.withLock { $0 } == [3, 6, 9, 12])
        #expect(try store.position(consumer: "webhook") ?? 0 >= 11)
    }

    /// The dispatcher on a PostgreSQL store keeps running while the server restarts: the
    /// change made after the restart is delivered, after every change before it, once each.
    @Test(.enabled(if: PostgresServer.shouldRun)) func theWebhookDispatcherOutlivesAPostgreSQLRestart() async throws {
        var logger = Logger(label: "webhook-restart-test")
        logger.logLevel = .critical
        let server = try PostgresServer.startNew()
        defer { try? server.stop(mode: "immediate") }
        var options = PostgresPaymentSessionStore.Options()
        options.logger = logger
        options.operationTimeout = .seconds(2)
        let store = try PostgresPaymentSessionStore(url: server.url(), options: options)
        let received = Mutex<[Int]>([])
        let router = Router()
        router.post("hook") { request, _ -> HTTPResponse.Status in
            let body = try await request.body.collect(upTo: 1 << 20)
            guard case .number(let number)? = try JSONValue(parsing: String(buffer: body)).objectValue?["sequence"],
                let sequence = Int(number.text)
            else { return .badRequest }
            received.withLock { $0.append(sequence) }
            return .ok
        }
        let listening = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { listening.continuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
        let receiver = Task { try await app.runService(gracefulShutdownSignals: []) }
        defer { receiver.cancel() }
        var ports = listening.stream.makeAsyncIterator()
        let port = await ports.next() ?? 0
        let running = Task { try await store.run() }
        defer { running.cancel() }
        try await store.prepareSchema()
        var dispatcher = WebhookDispatcher(store: store, url: "http://user:hook-secret@127.0.0.1:\(port)/hook", logger: logger)
        dispatcher.initialBackoff = .milliseconds(20)
        dispatcher.maxBackoff = .milliseconds(500)
        let dispatching = Task { [dispatcher] in try await dispatcher.run() }
        defer { dispatching.cancel() }
        for _ in 0..<500 where try await store.position(consumer: "webhook") == nil { try await Task.sleep(for: .milliseconds(10)) }
        func waitForDeliveries(_ count: Int) async throws {
            for _ in 0..<1500 where received.withLock({ Set($0).count }) < count { try await Task.sleep(for: .milliseconds(20)) }
        }
        _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "before"))
        try await waitForDeliveries(1)
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
        try await waitForDeliveries(2)
        #expect(received.withLock { $0 } == [1, 2])
        #expect(WebhookDispatcher.withoutCredentials("http://user:hook-secret@127.0.0.1:\(port)/hook") == "http://127.0.0.1:\(port)/hook")
        #expect(!dispatching.isCancelled)
    }
}
