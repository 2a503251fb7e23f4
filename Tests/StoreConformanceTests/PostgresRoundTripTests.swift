import Logging
import PaymentSessions
import PostgresNIO
import PostgresPaymentSessions
import Testing
import TestSupport
import TestScheduling

/// How many statements (round trips: postgres-nio sends one at a time) each operation
/// costs, counted by the server itself (`pg_stat_statements`), in a database of the test's
/// own so that no other test's statements count.
@Suite("PostgreSQL round trips", .enabled(if: PostgresServer.shouldRun, "no PostgreSQL server binaries here: install postgresql, or set PG_BIN"), .ownThreads)
struct PostgresRoundTripTests {
    static let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    /// Counts the statements run in `database` since the last reset, by statement (the
    /// sequencer's loop, which runs beside every store, left out).
    static func statements(in database: String, on counter: PostgresClient) async throws -> [String: Int] {
        let rows = try await counter.query(
            """
            SELECT s.query, sum(s.calls)::BIGINT FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
            WHERE d.datname = \(database) AND s.query NOT LIKE '%payment_session_sequence_changes%'
            GROUP BY s.query
            """, logger: quiet)
        var counts: [String: Int] = [:]
        for try await (query, calls) in rows.decode((String, Int64).self) { counts[query] = Int(calls) }
        return counts
    }

    @Test func aCreateIsOneOrTwoRoundTripsASelectSwitchThreeAUnitOneAndAGetOne() async throws {
        let server = try PostgresServer.shared()
        try #require(server.countsStatements, "pg_stat_statements is missing from this PostgreSQL")
        let database = "round_trips_\(UInt32.random(in: 0...UInt32.max))"
        try server.psql(database: "postgres", "CREATE DATABASE \(database)")
        try server.psql(database: "postgres", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        var configuration = PostgresClient.Configuration(
            host: "127.0.0.1", port: server.port, username: server.user, password: nil, database: database, tls: .disable)
        let counter = PostgresClient(
            configuration: .init(
                host: "127.0.0.1", port: server.port, username: server.user, password: nil, database: "postgres",
                tls: .disable),
            backgroundLogger: Self.quiet)
        configuration.options.maximumConnections = 2
        var options = PostgresPaymentSessionStore.Options()
        options.logger = Self.quiet
        options.operationTimeout = postgresTestTimeout
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await counter.run() }
            defer { group.cancelAll() }
            try await PostgresPaymentSessionStore.withStore(configuration, options: options) { store in
                // Each statement prepared once per connection before counting.
                let warm = try await store.create(NewPaymentSession(cartID: "warm", providerID: "p", idempotencyKey: "warm"))
                _ = try await store.session(id: warm.id)
                let rounds = 10
                try await counter.query("SELECT pg_stat_statements_reset()", logger: Self.quiet)
                var created: [PaymentSession] = []
                for i in 0..<rounds {
                    created.append(try await store.create(NewPaymentSession(cartID: "c\(i)", providerID: "p")))
                    created.append(
                        try await store.create(NewPaymentSession(cartID: "k\(i)", providerID: "p", idempotencyKey: "key-\(i)")))
                }
                for session in created { #expect(try await store.session(id: session.id) == session) }
                let counts = try await Self.statements(in: database, on: counter)
                #expect(counts.values.reduce(0, +) == 4 * rounds, "\(counts)")
                #expect(counts.filter { $0.key.contains("payment_session_create_committed(") }.values.reduce(0, +) == 2 * rounds)

                // Moving a selection: a create that selects reads the cart's selection and
                // applies its writes (2); a select switch reads the session and the cart's
                // selection and applies (3); an update reads and applies (2). Each writes what
                // it says.
                try await counter.query("SELECT pg_stat_statements_reset()", logger: Self.quiet)
                let first = try await store.create(
                    NewPaymentSession(cartID: "s", providerID: "a", idempotencyKey: "s-a", select: true))
                #expect(try await Self.statements(in: database, on: counter).values.reduce(0, +) == 2)
                let second = try await store.create(NewPaymentSession(cartID: "s", providerID: "b", select: true))
                try await counter.query("SELECT pg_stat_statements_reset()", logger: Self.quiet)
                let switched = try await store.select(id: first.id)
                #expect(try await Self.statements(in: database, on: counter).values.reduce(0, +) == 3)
                try await counter.query("SELECT pg_stat_statements_reset()", logger: Self.quiet)
                _ = try await store.update(id: second.id, data: ["intent": "pi_2"])
                #expect(try await Self.statements(in: database, on: counter).values.reduce(0, +) == 2)
                #expect(try await store.selectedSession(cartID: "s") == switched)
                #expect(try await store.session(id: second.id)?.isSelected == false)
                #expect(try await store.session(id: second.id)?.data == ["intent": "pi_2"])

                // A retried create (its key taken): the one-statement create finds the key
                // taken, and a read of the key's session answers (2), the same session.
                try await counter.query("SELECT pg_stat_statements_reset()", logger: Self.quiet)
                #expect(try await store.create(NewPaymentSession(cartID: "k0", providerID: "p", idempotencyKey: "key-0")) == created[1])
                #expect(try await Self.statements(in: database, on: counter).values.reduce(0, +) == 2)

                // A unit of creates on several carts is one statement: nothing to read, the
                // carts locked in sorted order by the apply, no transaction.
                try await counter.query("SELECT pg_stat_statements_reset()", logger: Self.quiet)
                let unit = try await store.perform((0..<3).map { .create(NewPaymentSession(cartID: "unit\($0)", providerID: "p")) })
                let unitCounts = try await Self.statements(in: database, on: counter)
                #expect(unitCounts.values.reduce(0, +) == 1, "\(unitCounts)")
                for case .session(let session) in unit { #expect(try await store.session(id: session.id) == session) }

                // Deleting a cart's sessions reads them and applies (2).
                try await counter.query("SELECT pg_stat_statements_reset()", logger: Self.quiet)
                #expect(try await store.deleteSessions(cartID: "s", force: false) == 2)
                #expect(try await Self.statements(in: database, on: counter).values.reduce(0, +) == 2)
                #expect(try await store.sessions(cartID: "s").isEmpty)
            }
        }
    }
}
