import Foundation
import Logging
import PaymentSessions
import PostgresNIO
import PostgresPaymentSessions
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport
import TestScheduling

/// The examples of README's "Two backends", of the `PostgresPaymentSessions` page, of "The
/// change feed" and of "The rules" (DocC), as written there (the PostgreSQL address is the
/// test server's), so that they keep compiling and working.
@Suite("README: two backends", .ownThreads) struct ReadmeBackendExampleTests {
    func startPayment(cart: String, provider: String, in store: some PaymentSessionStoring) async throws -> PaymentSession {
        let (session, _) = try await store.createOrUpdate(cartID: cart, providerID: provider, data: nil)
        return try await store.select(id: session.id)
    }

    @Test func theSameCheckoutCodeRunsOnBothBackends() async throws {
        let directory = TemporaryDirectory(prefix: "readme")
        let embedded = try PaymentSessionStore(path: directory.appending("sessions"))
        #expect(try await startPayment(cart: "cart_1", provider: "stripe", in: embedded).isSelected)

        guard PostgresServer.shouldRun else { return }
        let server = try PostgresServer.shared()
        let configuration = PostgresClient.Configuration(
            host: "127.0.0.1", port: server.port, username: server.user,
            password: ProcessInfo.processInfo.environment["PGPASSWORD"], database: try server.makeDatabase().split(separator: "/").last.map(String.init),
            tls: .disable)
        try await PostgresPaymentSessionStore.withStore(configuration) { store in
            let session = try await startPayment(cart: "cart_1", provider: "stripe", in: store)
            #expect(session.isSelected)
        }
    }

    @Test(.enabled(if: PostgresServer.shouldRun, Comment(rawValue: PostgresServer.skipReason)))
    func aStoreNamedByAURLRunsInAServiceGroup() async throws {
        let logger = Logger(label: "readme") { _ in SwiftLogNoOpLogHandler() }
        let url = try PostgresServer.shared().makeDatabase(prefix: "readme")
        let shared = try PostgresPaymentSessionStore(url: url)
        let services = ServiceGroup(services: [shared], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await services.run() }
            let session = try await startPayment(cart: "cart_1", provider: "stripe", in: shared)
            #expect(try await shared.selectedSession(cartID: "cart_1") == session)
            #expect(try await shared.checkRules().isClean)
            await services.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    }

    // Deliver every change to a webhook, exactly in order, resuming after a restart.
    func deliverChanges(from store: some PaymentSessionStoring, to send: (String) async throws -> Void) async throws {
        let start = try await store.position(consumer: "webhooks") ?? 0
        for try await change in store.followChanges(after: start) {
            try await send(change.jsonText())  // {"sequence":7,"session_id":...,"kind":"authorized",...}
            try await store.acknowledge(consumer: "webhooks", upTo: change.sequence)
        }
    }

    /// "The change feed"'s consumer loop delivers every change once, and a second loop (a restart)
    /// resumes after what the first acknowledged.
    @Test(arguments: Backend.available)
    func theConsumerLoopResumesWhereItLeftOff(backend: Backend) async throws {
        try await withStore(backend) { store in
            let delivered = SharedLines()
            /// Runs the loop until `count` changes are delivered and acknowledged, then stops it.
            func runLoop(until count: Int64) async throws {
                let loop = Task { try await deliverChanges(from: store) { delivered.append($0) } }
                for _ in 0..<500 where try await store.position(consumer: "webhooks") != count {
                    try await Task.sleep(for: .milliseconds(20))
                }
                loop.cancel()
                do { try await loop.value } catch is CancellationError {}
            }
            _ = try await startPayment(cart: "cart_1", provider: "stripe", in: store)  // created, selected
            try await runLoop(until: 2)
            _ = try await startPayment(cart: "cart_1", provider: "manual", in: store)  // created, deselected, selected
            try await runLoop(until: 5)
            let sequences = delivered.lines.compactMap { try? JSONValue(parsing: $0).objectValue?["sequence"] }
            #expect(sequences == [1, 2, 3, 4, 5])
        }
    }

    @Test(arguments: Backend.available)
    func aUnitOfWritesAsTheRulesArticleShowsIt(backend: Backend) async throws {
        try await withStore(backend) { store in
            let id = PaymentSessionID.generate()
            try await store.perform([
                .create(NewPaymentSession(cartID: "cart_1", providerID: "stripe", id: id, amount: 4200, currencyCode: "eur")),
                .select(id: id),
            ])
            #expect(try await store.selectedSession(cartID: "cart_1")?.amount == 4200)
        }
    }
}

/// Lines delivered by a consumer loop, shared with the test that reads them.
final class SharedLines: Sendable {
    private let state = Mutex<[String]>([])

    var lines: [String] { state.withLock { $0 } }

    func append(_ line: String) { state.withLock { $0.append(line) } }
}
