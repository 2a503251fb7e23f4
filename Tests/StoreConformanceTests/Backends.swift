import Foundation
import Logging
import PaymentSessions
import PostgresNIO
import PostgresPaymentSessions
import Synchronization
import Testing
import TestSupport
import LMDB

/// The backends every conformance test runs against.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case lmdb
    case postgresql

    var testDescription: String { rawValue }

    /// The backends to run here: PostgreSQL only where a server can be started (or one is
    /// required, so that its absence fails the run).
    static var available: [Backend] {
        PostgresServer.shouldRun ? allCases : [.lmdb]
    }
}

/// A clock the test moves by hand, so that timestamps are predictable.
final class ManualClock: Sendable {
    private let micros = Mutex<Int64>(1_780_000_000_000_000)

    var now: Date { Timestamp.date(microseconds: micros.withLock { $0 }) }
    var microseconds: Int64 { micros.withLock { $0 } }

    func advance(milliseconds: Int64 = 1) { micros.withLock { $0 += milliseconds * 1000 } }
    func advance(seconds: Double) { micros.withLock { $0 += Int64(seconds * 1_000_000) } }
}

/// What a test may set on either backend.
struct StoreSettings: Sendable {
    var maxDataBytes = 64 << 10
    var idempotencyRetention: TimeInterval = 24 * 3600
    var changeRetention: TimeInterval = 7 * 24 * 3600
}

/// Runs `body` with a fresh, empty store of `backend` on `clock`: an LMDB store in a
/// temporary directory, or a PostgreSQL store in a schema of its own on the test server.
func withStore(
    _ backend: Backend, clock: ManualClock = ManualClock(), settings: StoreSettings = StoreSettings(),
    _ body: (any PaymentSessionStoring) async throws -> Void
) async throws {
    let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
    switch backend {
    case .lmdb:
        let directory = TemporaryDirectory(prefix: "conformance")
        var options = PaymentSessionStore.Options()
        options.clock = { clock.now }
        options.environment.durability = .noSync
        options.environment.mapSize = 16 << 20
        options.maxDataBytes = settings.maxDataBytes
        options.idempotencyRetention = settings.idempotencyRetention
        options.changeRetention = settings.changeRetention
        options.logger = quiet
        let store = try PaymentSessionStore(path: directory.appending("store"), options: options)
        try await body(store)
    case .postgresql:
        var options = PostgresPaymentSessionStore.Options()
        options.clock = { clock.now }
        options.maxDataBytes = settings.maxDataBytes
        options.idempotencyRetention = settings.idempotencyRetention
        options.changeRetention = settings.changeRetention
        options.logger = quiet
        options.operationTimeout = postgresTestTimeout
        let (configuration, _) = try postgresConfiguration()
        try await PostgresPaymentSessionStore.withStore(configuration, options: options) { store in
            try await body(store)
        }
    }
}

/// How long a test's PostgreSQL operation may take: the suites beside it (the crash and
/// power-loss checks) keep both cores busy for minutes, and a task of this suite may wait
/// that long for a thread; the store's default would call that a timeout. The tests of
/// timeouts set their own.
let postgresTestTimeout: Duration = .seconds(60)

/// A configuration for the test server whose connections use a fresh schema.
func postgresConfiguration(schema: String? = nil) throws -> (PostgresClient.Configuration, schema: String) {
    let server = try PostgresServer.shared()
    let schema = try schema ?? server.makeSchema()
    var configuration = PostgresClient.Configuration(
        host: "127.0.0.1", port: server.port, username: server.user, password: nil, database: server.database,
        tls: .disable)
    configuration.options.additionalStartupParameters = [("search_path", schema)]
    configuration.options.maximumConnections = 3
    return (configuration, schema)
}

/// Runs `body` while another client, in a transaction of its own, holds the lock that
/// `lockStatement` takes (a row's `FOR UPDATE`, a `LOCK TABLE`), and rolls that
/// transaction back afterwards.
func withLockHeldByAnotherClient(
    _ configuration: PostgresClient.Configuration, _ lockStatement: PostgresQuery, _ body: () async throws -> Void
) async throws {
    let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
    try await withConnectionOfAnotherClient(configuration) { connection in
        try await connection.query("BEGIN", logger: quiet)
        try await connection.query(lockStatement, logger: quiet)
        do {
            try await body()
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: quiet)
            throw error
        }
        try await connection.query("ROLLBACK", logger: quiet)
    }
}

/// Runs `body` on a connection of a client of its own, beside the store's: what another
/// process would do to the database meanwhile.
func withConnectionOfAnotherClient<R>(
    _ configuration: PostgresClient.Configuration, _ body: (PostgresConnection) async throws -> R
) async throws -> R {
    let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
    let client = PostgresClient(configuration: configuration, backgroundLogger: quiet)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await client.run() }
        defer { group.cancelAll() }
        return try await client.withConnection { try await body($0) }
    }
}

/// The `PaymentSessionError` that `body` throws; records an issue when it throws none.
func expectStoreError(
    _ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation
) async -> PaymentSessionError? {
    do {
        try await body()
        Issue.record("expected an error", sourceLocation: sourceLocation)
        return nil
    } catch let error as PaymentSessionError {
        return error
    } catch {
        Issue.record("expected a PaymentSessionError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Everything a store holds, in id order, for comparing stores.
func contents(of store: any PaymentSessionStoring) async throws -> [PaymentSession] {
    var all: [PaymentSession] = []
    var after: String?
    while true {
        let page = try await store.sessions(after: after, limit: 100)
        all += page
        guard let last = page.last else { return all }
        after = last.id
    }
}

/// The store's invariants, checked through the public API: at most one selected session
/// per cart, the selection index agrees with the sessions, one session per (cart,
/// provider), idempotency keys unique and found.
func expectInvariants(_ store: any PaymentSessionStoring, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let sessions = try await contents(of: store)
    let byCart = Dictionary(grouping: sessions, by: \.cartID)
    for (cart, cartSessions) in byCart {
        let selected = cartSessions.filter(\.isSelected)
        #expect(selected.count <= 1, "cart \(cart) has \(selected.count) selected", sourceLocation: sourceLocation)
        #expect(try await store.selectedSession(cartID: cart)?.id == selected.first?.id, sourceLocation: sourceLocation)
        #expect(Set(cartSessions.map(\.providerID)).count == cartSessions.count, sourceLocation: sourceLocation)
        #expect(try await store.sessions(cartID: cart) == cartSessions.sorted { $0.id < $1.id }, sourceLocation: sourceLocation)
    }
    for session in sessions {
        #expect(!(session.isSelected && session.status == .canceled), sourceLocation: sourceLocation)
        if let key = session.idempotencyKey {
            #expect(try await store.session(idempotencyKey: key)?.id == session.id, sourceLocation: sourceLocation)
        }
    }
    #expect(try await store.checkRules().problems == [], sourceLocation: sourceLocation)
    let counts = try await store.sessionCounts()
    #expect(counts.sessions == sessions.count, sourceLocation: sourceLocation)
    #expect(counts.carts == byCart.count, sourceLocation: sourceLocation)
    #expect(counts.selected == sessions.filter(\.isSelected).count, sourceLocation: sourceLocation)
}
