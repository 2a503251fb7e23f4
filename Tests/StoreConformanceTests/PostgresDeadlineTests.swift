import Foundation
import Logging
import PaymentSessions
import PostgresNIO
import PostgresPaymentSessions
import Testing
import TestSupport
import TestScheduling

/// How the PostgreSQL store keeps time: a statement the server does not answer has its
/// connection closed after the operation timeout, an operation gives up at its deadline,
/// and none outlives the store.
@Suite(
    "PostgreSQL deadlines", .enabled(if: PostgresServer.shouldRun, "no PostgreSQL server binaries here: install postgresql, or set PG_BIN"),
    .ownThreads)
struct PostgresDeadlineTests {
    static let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    /// Runs `body` while another client holds the store's sessions table locked against
    /// every statement, reads included.
    static func withTableLocked(_ configuration: PostgresClient.Configuration, _ body: () async throws -> Void) async throws {
        try await withLockHeldByAnotherClient(configuration, "LOCK TABLE payment_sessions IN ACCESS EXCLUSIVE MODE", body)
    }

    /// The watch closes the connection of a statement left unanswered past the timeout: the
    /// read fails as that timeout, before its deadline (twice the timeout) would have ended
    /// it, and the store goes on with the next read.
    @Test func aStatementUnansweredPastTheTimeoutHasItsConnectionClosedBeforeTheDeadline() async throws {
        let (configuration, _) = try postgresConfiguration()
        var options = PostgresPaymentSessionStore.Options()
        options.logger = Self.quiet
        let session = try await PostgresPaymentSessionStore.withStore(configuration, options: options) { store in
            try await store.create(NewPaymentSession(cartID: "c", providerID: "p"))
        }
        options.operationTimeout = .seconds(2)
        try await PostgresPaymentSessionStore.withStore(configuration, options: options) { store in
            try await Self.withTableLocked(configuration) {
                let error = await expectStoreError { _ = try await store.session(id: session.id) }
                guard case .storage(let failure)? = error else {
                    Issue.record("expected a storage error, got \(String(describing: error))")
                    return
                }
                #expect(failure.kind == .timeout && failure.code == "operation_timeout", "\(failure)")
            }
            #expect(try await store.session(id: session.id) == session)
        }
    }

    /// An operation still waiting when the store stops running fails at once, as an
    /// unavailable store (its connection closed by the pool, or, should that not end it,
    /// expired by the watch with code `stopped`), instead of waiting out its deadline;
    /// nothing was written.
    @Test func anOperationRunningWhenTheStoreStopsFailsAsUnavailable() async throws {
        let (configuration, schema) = try postgresConfiguration()
        var options = PostgresPaymentSessionStore.Options()
        options.logger = Self.quiet
        options.operationTimeout = .seconds(120)
        let store = PostgresPaymentSessionStore(configuration: configuration, options: options)
        let running = Task { try await store.run() }
        let session = try await store.create(NewPaymentSession(cartID: "c", providerID: "p"))
        try await Self.withTableLocked(configuration) {
            let select = Task { try await store.select(id: session.id) }
            // The select is waiting for the lock once the server says so.
            let deadline = ContinuousClock.now + .seconds(30)
            while try PostgresServer.shared().psqlOutput(
                "SELECT count(*) FROM pg_locks WHERE relation = '\(schema).payment_sessions'::regclass AND NOT granted"
            ).trimmingCharacters(in: .whitespacesAndNewlines) == "0" {
                try #require(ContinuousClock.now < deadline, "the select never waited for the table lock")
                try await Task.sleep(for: .milliseconds(20))
            }
            let stopped = ContinuousClock.now
            running.cancel()
            let error = await expectStoreError { _ = try await select.value }
            #expect(ContinuousClock.now - stopped < .seconds(60), "the operation waited for its deadline")
            guard case .storage(let failure)? = error else {
                Issue.record("expected a storage error, got \(String(describing: error))")
                return
            }
            // The pool closing its connections may fail it first; otherwise the watch does.
            #expect(failure.kind == .unavailable, "\(failure)")
        }
        _ = try? await running.value
        try await PostgresPaymentSessionStore.withStore(configuration, options: options) { store in
            let selected = try await store.session(id: session.id)?.isSelected
            #expect(selected == false)
        }
    }
}
