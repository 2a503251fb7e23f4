import Foundation
import InMemoryLogging
import Logging
import PaymentSessions
import PostgresNIO
import PostgresPaymentSessions
import Synchronization
import Testing
import TestSupport
import TestScheduling

/// What only the PostgreSQL backend has: its schema, the rules the database enforces by
/// itself, and the faults of a server on a network.
@Suite("PostgreSQL store", .enabled(if: PostgresServer.shouldRun, "no PostgreSQL server binaries here: install postgresql, or set PG_BIN"), .ownThreads)
struct PostgresStoreTests {
    static let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    static func options() -> PostgresPaymentSessionStore.Options {
        var options = PostgresPaymentSessionStore.Options()
        options.logger = quiet
        options.operationTimeout = postgresTestTimeout
        return options
    }

    @Test func aDatabaseWithoutTheStoreIsAMissingStoreWhenCreationIsOff() async throws {
        let (configuration, _) = try postgresConfiguration()
        var options = Self.options()
        options.createIfMissing = false
        let error = await expectStoreError {
            try await PostgresPaymentSessionStore.withStore(configuration, options: options) { _ in }
        }
        guard case .storeNotFound(let location)? = error else {
            Issue.record("expected storeNotFound, got \(String(describing: error))")
            return
        }
        #expect(location.hasPrefix("postgres://payments@127.0.0.1:") && location.hasSuffix("/payments"))
    }

    @Test func aNewerSchemaIsRefused() async throws {
        let (configuration, schema) = try postgresConfiguration()
        try await PostgresPaymentSessionStore.withStore(configuration, options: Self.options()) { _ in }
        try PostgresServer.shared().psql("UPDATE \(schema).payment_session_schema SET version = 99")
        let error = await expectStoreError {
            try await PostgresPaymentSessionStore.withStore(configuration, options: Self.options()) { _ in }
        }
        #expect(error == .unsupportedFormat(found: 99, supported: 6))
    }

    /// A store of version 1 (before the change feed) is migrated when opened, by a read
    /// as well: its sessions stay, and its feed starts empty.
    @Test func aVersionOneStoreIsMigratedAndItsFeedStartsEmpty() async throws {
        let server = try PostgresServer.shared()
        let (configuration, schema) = try postgresConfiguration()
        let session = try await PostgresPaymentSessionStore.withStore(configuration, options: Self.options()) { store in
            try await store.create(NewPaymentSession(cartID: "c", providerID: "p"))
        }
        try Self.dropVersionFour(schema)
        try Self.dropVersionThree(schema)
        try server.psql(
            """
            DROP TABLE \(schema).payment_session_changes, \(schema).payment_session_change_counter,
                \(schema).payment_session_consumers;
            UPDATE \(schema).payment_session_schema SET version = 1
            """)
        var readOnly = Self.options()
        readOnly.createIfMissing = false
        try await PostgresPaymentSessionStore.withStore(configuration, options: readOnly) { store in
            #expect(try await store.session(id: session.id) == session)
            #expect(try await store.changeFeedState() == ChangeFeedState(first: nil, last: 0, consumers: [:]))
            _ = try await store.select(id: session.id)
            #expect(try await store.changes(after: 0, limit: 10).map(\.kind) == [.selected])
        }
    }

    /// Takes a store's schema back to version 3, rows and all: `data` as text and times as
    /// microseconds since 1970 in `BIGINT` columns named `*_us`, the sequencer writing them,
    /// and no one-statement writes.
    static func dropVersionFour(_ schema: String) throws {
        func microseconds(_ column: String) -> String {
            "ALTER COLUMN \(column) TYPE BIGINT USING (extract(epoch FROM \(column)) * 1000000)::BIGINT"
        }
        func renames(_ table: String, _ columns: String...) -> String {
            columns.map { "ALTER TABLE \(table) RENAME COLUMN \($0) TO \($0)_us;" }.joined(separator: "\n")
        }
        try PostgresServer.shared().psql(
            """
            SET search_path TO \(schema);
            ALTER TABLE payment_sessions DROP COLUMN data;
            DROP FUNCTION payment_session_data_jsonb(TEXT);
            DO $$
            DECLARE routine regprocedure;
            BEGIN
                -- Version 6 keeps two of each apply (overloads): every one goes.
                FOR routine IN SELECT p.oid::regprocedure FROM pg_proc p
                    WHERE p.pronamespace = current_schema()::regnamespace AND p.proname IN (
                        'payment_session_create_committed', 'payment_session_apply_committed', 'payment_session_create',
                        'payment_session_apply', 'payment_session_time')
                LOOP
                    EXECUTE 'DROP ROUTINE ' || routine;
                END LOOP;
            END $$;
            ALTER TABLE payment_sessions RENAME COLUMN data_text TO data;
            ALTER TABLE payment_sessions \(microseconds("payment_authorized_at")), \(microseconds("created_at")),
                \(microseconds("updated_at"));
            \(renames("payment_sessions", "payment_authorized_at", "created_at", "updated_at"))
            ALTER TABLE payment_session_idempotency_keys \(microseconds("deleted_at"));
            \(renames("payment_session_idempotency_keys", "deleted_at"))
            ALTER TABLE payment_session_changes \(microseconds("committed_at"));
            \(renames("payment_session_changes", "committed_at"))
            ALTER TABLE payment_session_pending_changes \(microseconds("committed_at"));
            \(renames("payment_session_pending_changes", "committed_at"))
            DO $$ BEGIN
                EXECUTE replace(pg_get_functiondef('payment_session_sequence_changes'::regproc), 'committed_at', 'committed_at_us');
            END $$;
            UPDATE payment_session_schema SET version = 3
            """)
    }

    /// Takes a store's schema back to version 2: what version 3 added goes (the feed's
    /// pending changes, the cart lock, the sequencer); version 2's tables stay as they are.
    static func dropVersionThree(_ schema: String) throws {
        try PostgresServer.shared().psql(
            """
            DROP TABLE \(schema).payment_session_pending_changes;
            DROP FUNCTION \(schema).payment_session_lock_cart(TEXT), \(schema).payment_session_sequence_changes(TEXT);
            UPDATE \(schema).payment_session_schema SET version = 2
            """)
    }

    /// A store of version 2 (its feed numbered by a counter row every writer took) is
    /// migrated in place: its sessions, consumers and numbered changes stay, and new
    /// changes are numbered after the last one.
    @Test func aVersionTwoStoreWithRowsIsMigratedInPlaceAndItsFeedGoesOn() async throws {
        let (configuration, schema) = try postgresConfiguration()
        let (sessions, before) = try await PostgresPaymentSessionStore.withStore(configuration, options: Self.options()) {
            store in
            var sessions: [PaymentSession] = []
            for cart in 0..<5 {
                sessions.append(try await store.create(NewPaymentSession(cartID: "c\(cart)", providerID: "p", select: true)))
            }
            _ = try await store.update(id: sessions[0].id, data: ["intent": "pi_1"])
            try await store.acknowledge(consumer: "billing", upTo: 3)
            return (sessions, try await store.changes(after: 0, limit: 100))
        }
        #expect(before.count == 6)
        try Self.dropVersionFour(schema)
        try Self.dropVersionThree(schema)
        try await PostgresPaymentSessionStore.withStore(configuration, options: Self.options()) { store in
            #expect(try await store.sessions(after: nil, limit: 100).map(\.id) == sessions.map(\.id).sorted())
            #expect(try await store.changes(after: 0, limit: 100) == before)
            #expect(try await store.position(consumer: "billing") == 3)
            _ = try await store.delete(id: sessions[1].id)
            let after = try await store.changes(after: 6, limit: 100)
            #expect(after.map(\.sequence) == [7] && after.map(\.kind) == [.deleted])
        }
    }

    /// A version 3 store with rows (`data` as text, times as microseconds in `BIGINT`) is
    /// migrated in place to `jsonb` and `timestamptz`: every session reads back exactly, to
    /// the microsecond and to the byte of its data; a deleted session's key stays reserved;
    /// the feed goes on after its last number; and an operator queries `data` as `jsonb`
    /// and the times as `timestamptz`.
    @Test func aVersionThreeStoreWithRowsIsMigratedInPlaceToJSONBAndTimestamps() async throws {
        let (configuration, schema) = try postgresConfiguration()
        let clock = ManualClock()
        var options = Self.options()
        options.clock = { clock.now }
        let data: [String: JSONValue] = try JSONValue(parsing: #"{"z":1.50,"a":{"y":1e3,"b":"é"},"intent":"pi_1"}"#).objectValue!
        let (sessions, gone, before) = try await PostgresPaymentSessionStore.withStore(configuration, options: options) {
            store in
            var sessions: [PaymentSession] = []
            for cart in 0..<3 {
                clock.advance(seconds: 0.000_137)
                sessions.append(
                    try await store.create(NewPaymentSession(cartID: "c\(cart)", providerID: "p", data: data, amount: 4200, currencyCode: "eur")))
            }
            clock.advance(seconds: 1.000_001)
            sessions[0] = try await store.select(id: sessions[0].id)
            sessions[0] = try await store.authorize(id: sessions[0].id, amount: 4200, currencyCode: "eur")
            let gone = try await store.create(NewPaymentSession(cartID: "c9", providerID: "p", idempotencyKey: "k-gone"))
            try await store.delete(id: gone.id)
            return (sessions, gone, try await store.changes(after: 0, limit: 100))
        }
        try Self.dropVersionFour(schema)
        try await PostgresPaymentSessionStore.withStore(configuration, options: options) { store in
            for session in sessions {
                let read = try #require(try await store.session(id: session.id))
                #expect(read == session && read.jsonText() == session.jsonText())
            }
            #expect(try await store.changes(after: 0, limit: 100) == before)
            let error = await expectStoreError {
                _ = try await store.create(NewPaymentSession(cartID: "c9", providerID: "p", idempotencyKey: "k-gone"))
            }
            #expect(error == .sessionGone(key: "k-gone", id: gone.id))
            _ = try await store.update(id: sessions[1].id, status: .requiresMore)
            let next = try await store.changes(after: Int64(before.count), limit: 10)
            #expect(next.map(\.sequence) == [Int64(before.count) + 1] && next.map(\.kind) == [.updated])
            let authorized = sessions[0]
            let rows = try await store.client.query(
                """
                SELECT data->>'intent', (data->'a'->>'y')::numeric = 1000, data_text,
                    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                    payment_authorized_at IS NOT NULL AND payment_authorized_at <= updated_at
                FROM payment_sessions WHERE id = \(authorized.id)
                """)
            var found = false
            for try await (intent, thousand, text, created, authorizedInOrder) in rows.decode(
                (String, Bool, String, String, Bool).self)
            {
                found = true
                #expect(intent == "pi_1" && thousand && authorizedInOrder)
                // The store's compact form (keys in code-point order, numbers as spelled), which
                // `jsonb` would not give back (keys by length, `1e3` as `1000`).
                #expect(text == #"{"a":{"b":"é","y":1e3},"intent":"pi_1","z":1.50}"#)
                #expect(created == Timestamp.rfc3339(authorized.createdAt))
            }
            #expect(found)
        }
    }

    /// `data` that `jsonb` cannot hold (a `\u0000` escape, a number beyond `numeric`) is
    /// stored and read back exactly, as on LMDB; only its `jsonb` copy is `NULL`.
    @Test func dataThatJSONBCannotHoldIsKeptExactlyWithANullJSONBCopy() async throws {
        let (configuration, _) = try postgresConfiguration()
        try await PostgresPaymentSessionStore.withStore(configuration, options: Self.options()) { store in
            let nul = try await store.create(NewPaymentSession(cartID: "c", providerID: "nul", data: ["s": "a\u{0}b"]))
            let huge = try await store.create(
                NewPaymentSession(cartID: "c", providerID: "huge", data: ["n": .number(JSONNumber(text: "1e999999")!)]))
            let plain = try await store.create(NewPaymentSession(cartID: "c", providerID: "plain", data: ["n": 1]))
            for session in [nul, huge, plain] { #expect(try await store.session(id: session.id) == session) }
            let rows = try await store.client.query("SELECT id, data IS NULL FROM payment_sessions ORDER BY provider_id")
            var nullJSONB: [String: Bool] = [:]
            for try await (id, isNull) in rows.decode((String, Bool).self) { nullJSONB[id] = isNull }
            #expect(nullJSONB == [nul.id: true, huge.id: true, plain.id: false])
        }
    }

    /// Opening a store whose schema is current reads its version and writes nothing: it
    /// opens while another transaction holds the version table against every write (an
    /// `EXCLUSIVE` lock lets only reads through), where a migration would wait.
    @Test func openingAStoreWhoseSchemaIsCurrentWritesNothing() async throws {
        let (configuration, _) = try postgresConfiguration()
        try await PostgresPaymentSessionStore.withStore(configuration, options: Self.options()) { store in
            _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "p"))
        }
        try await withConnectionOfAnotherClient(configuration) { connection in
            try await connection.query("BEGIN", logger: Self.quiet)
            try await connection.query("LOCK TABLE payment_session_schema IN EXCLUSIVE MODE", logger: Self.quiet)
            var options = Self.options()
            options.operationTimeout = .seconds(5)
            for create in [false, true] {
                options.createIfMissing = create
                let count = try await PostgresPaymentSessionStore.withStore(configuration, options: options) { try await $0.count() }
                #expect(count == 1)
            }
            try await connection.query("ROLLBACK", logger: Self.quiet)
        }
    }

    /// Deleting a cart's sessions reads them without locks and applies the deletes in one
    /// statement, which counts the cart again under its lock: a session that joined the
    /// cart in between (here written straight into the table by a transaction holding the
    /// cart's lock, as every store write takes it) makes it read and delete again, so that
    /// none is left behind and the count returned is every session deleted.
    @Test func deletingACartsSessionsCountsTheCartAgainUnderItsLock() async throws {
        let (configuration, _) = try postgresConfiguration()
        try await PostgresPaymentSessionStore.withStore(configuration, options: Self.options()) { store in
            let first = try await store.create(NewPaymentSession(cartID: "whole", providerID: "a"))
            let joiner = PaymentSessionID.generate()
            try await withConnectionOfAnotherClient(configuration) { connection in
                try await connection.query("BEGIN", logger: Self.quiet)
                try await connection.query("SELECT payment_session_lock_cart('whole')", logger: Self.quiet)
                let deleting = Task { try await store.deleteSessions(cartID: "whole", force: false) }
                // Its read done, the delete's apply waits for the cart's lock: this
                // connection blocks it.
                var blocked = false
                for _ in 0..<500 where !blocked {
                    let rows = try await connection.query(
                        "SELECT count(*) FROM pg_stat_activity WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))",
                        logger: Self.quiet)
                    for try await (count) in rows.decode(Int64.self) { blocked = count > 0 }
                    if !blocked { try await Task.sleep(for: .milliseconds(10)) }
                }
                try #require(blocked, "the delete never waited for the cart's lock")
                try await connection.query(
                    """
                    INSERT INTO payment_sessions (\(unescaped: Self.sessionColumns))
                    SELECT \(joiner), cart_id, 'b', FALSE, status, data_text, NULL, amount, currency_code, is_initiated,
                        payment_authorized_at, created_at, updated_at
                    FROM payment_sessions WHERE id = \(first.id)
                    """, logger: Self.quiet)
                try await connection.query("COMMIT", logger: Self.quiet)
                #expect(try await deleting.value == 2)
            }
            #expect(try await store.sessions(cartID: "whole").isEmpty)
            #expect(try await store.session(id: joiner) == nil)
        }
    }

    /// The columns of `payment_sessions` a store writes, in its order.
    static let sessionColumns = """
        id, cart_id, provider_id, is_selected, status, data_text, idempotency_key, amount, currency_code, is_initiated,
        payment_authorized_at, created_at, updated_at
        """

    @Test func twoStoresOpeningOneNewDatabaseAtOnceBothSucceed() async throws {
        let (configuration, _) = try postgresConfiguration()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    try await PostgresPaymentSessionStore.withStore(configuration, options: Self.options()) { store in
                        _ = try await store.count()
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    @Test func theDatabaseItselfRefusesTwoSelectionsADuplicatePairAndAnIllegalMove() async throws {
        let server = try PostgresServer.shared()
        let (configuration, schema) = try postgresConfiguration()
        try await PostgresPaymentSessionStore.withStore(configuration, options: Self.options()) { store in
            let a = try await store.create(NewPaymentSession(cartID: "c", providerID: "a", select: true))
            let b = try await store.create(NewPaymentSession(cartID: "c", providerID: "b"))
            let canceled = try await store.create(NewPaymentSession(cartID: "d", providerID: "a", status: .canceled))
            // Writers that bypass the library (a migration script, a hand fix) meet the same rules.
            #expect(throws: PostgresServer.ServerError.self) {
                try server.psql("UPDATE \(schema).payment_sessions SET is_selected = true WHERE id = '\(b.id)'")
            }
            #expect(throws: PostgresServer.ServerError.self) {
                try server.psql("UPDATE \(schema).payment_sessions SET provider_id = 'a' WHERE id = '\(b.id)'")
            }
            #expect(throws: PostgresServer.ServerError.self) {
                try server.psql("UPDATE \(schema).payment_sessions SET status = 'pending' WHERE id = '\(canceled.id)'")
            }
            #expect(throws: PostgresServer.ServerError.self) {
                try server.psql("UPDATE \(schema).payment_sessions SET is_selected = true WHERE id = '\(canceled.id)'")
            }
            try server.psql("UPDATE \(schema).payment_sessions SET status = 'requires_more' WHERE id = '\(a.id)'")
            try await expectInvariants(store)
        }
    }

    @Test func aRowEditedIntoNonsenseIsACorruptRecordNotACrash() async throws {
        let server = try PostgresServer.shared()
        let (configuration, schema) = try postgresConfiguration()
        try await PostgresPaymentSessionStore.withStore(configuration, options: Self.options()) { store in
            let session = try await store.create(NewPaymentSession(cartID: "c", providerID: "a"))
            try server.psql("UPDATE \(schema).payment_sessions SET data_text = '[1, 2' WHERE id = '\(session.id)'")
            let error = await expectStoreError { _ = try await store.session(id: session.id) }
            guard case .corruptRecord(let key, _)? = error else {
                Issue.record("expected corruptRecord, got \(String(describing: error))")
                return
            }
            #expect(key == session.id)
        }
    }

    /// What an operator should hear of: the schema's creation, and a corrupt row (in the
    /// same words and metadata as the LMDB store).
    @Test func migrationsAndCorruptRowsAreLogged() async throws {
        let server = try PostgresServer.shared()
        let handler = InMemoryLogHandler()
        let (configuration, schema) = try postgresConfiguration()
        var options = Self.options()
        options.logger = Logger(label: "test") { _ in handler }
        try await PostgresPaymentSessionStore.withStore(configuration, options: options) { store in
            let session = try await store.create(NewPaymentSession(cartID: "c", providerID: "a"))
            try server.psql("UPDATE \(schema).payment_sessions SET data_text = '[1, 2' WHERE id = '\(session.id)'")
            _ = try? await store.session(id: session.id)
        }
        let migration = handler.entries.first { $0.message.description == "migrating the payment session schema" }
        #expect(migration?.level == .notice && migration?.metadata["to"] == "1")
        let corrupt = handler.entries.filter { $0.message.description == "met a corrupt record on a read; run verify" }
        #expect(corrupt.count == 1 && corrupt.first?.level == .warning)
        #expect(corrupt.first?.metadata["payment_sessions.key"] != nil)
    }

    @Test func theRuleCheckFindsWhatTheSchemaWasMadeToAllow() async throws {
        let server = try PostgresServer.shared()
        let (configuration, schema) = try postgresConfiguration()
        try await PostgresPaymentSessionStore.withStore(configuration, options: Self.options()) { store in
            let first = try await store.create(NewPaymentSession(cartID: "c", providerID: "a", select: true))
            let second = try await store.create(NewPaymentSession(cartID: "c", providerID: "b"))
            let clean = try await store.checkRules()
            #expect(clean.sessions == 2 && clean.isClean)
            // An operator drops the index that keeps one selection per cart, and a second
            // selection slips in: the check names it.
            try server.psql("DROP INDEX \(schema).payment_sessions_one_selected_per_cart")
            try server.psql("UPDATE \(schema).payment_sessions SET is_selected = true WHERE id = '\(second.id)'")
            let report = try await store.checkRules()
            #expect(!report.isClean)
            #expect(report.problems.map(\.sessionID) == [second.id])
            #expect(report.problems.first?.message == "its cart has another selected session, \(first.id)")
        }
    }

    @Test func aConnectionKilledByTheServerIsATypedErrorAndThePoolRecovers() async throws {
        let server = try PostgresServer.shared()
        var (configuration, schema) = try postgresConfiguration()
        configuration.options.additionalStartupParameters.append(("application_name", schema))
        // A request on a connection the server terminated was seen to stay pending in
        // postgres-nio until the store's deadline ends it: a short one keeps the test short.
        // The schema first, without the short deadline: on a loaded machine preparing it may
        // take longer than the deadline this test wants for its requests.
        try await PostgresPaymentSessionStore.withStore(configuration, options: Self.options()) { _ in }
        var options = Self.options()
        options.operationTimeout = .seconds(2)
        try await PostgresPaymentSessionStore.withStore(configuration, options: options) { store in
            let session = try await store.create(NewPaymentSession(cartID: "c", providerID: "a"))
            for _ in 0..<3 {
                try server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '\(schema)'")
                var recovered = false
                for _ in 0..<10 where !recovered {
                    do {
                        recovered = try await store.session(id: session.id) == session
                    } catch PaymentSessionError.storage(let failure) {
                        #expect(failure.backend == .postgresql && [.unavailable, .timeout].contains(failure.kind), "\(failure)")
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
                #expect(recovered)
            }
        }
    }

    @Test func aStatementTimeoutIsATypedTimeoutAndWritesNothing() async throws {
        var (configuration, _) = try postgresConfiguration()
        let plain = configuration
        configuration.options.additionalStartupParameters.append(("statement_timeout", "2000"))
        // The schema and the session are made without the timeout: a loaded machine may
        // take longer than the timeout for them.
        let session = try await PostgresPaymentSessionStore.withStore(plain, options: Self.options()) { store in
            try await store.create(NewPaymentSession(cartID: "c", providerID: "a"))
        }
        try await PostgresPaymentSessionStore.withStore(configuration, options: Self.options()) { store in
            // Another client holds the session's row lock past the timeout.
            try await withLockHeldByAnotherClient(plain, "SELECT id FROM payment_sessions WHERE id = \(session.id) FOR UPDATE") {
                let error = await expectStoreError { _ = try await store.select(id: session.id) }
                guard case .storage(let failure)? = error else {
                    Issue.record("expected a storage error, got \(String(describing: error))")
                    return
                }
                #expect(failure.kind == .timeout && failure.code == "57014")
            }
            #expect(try await store.session(id: session.id) == session)
        }
    }

    @Test func aServerRestartMidLoadLosesNoAcknowledgedWrite() async throws {
        let server = try PostgresServer.startNew()
        defer { try? server.stop(mode: "immediate") }
        try server.psql(database: "payments", "SELECT 1")
        var configuration = PostgresClient.Configuration(
            host: "127.0.0.1", port: server.port, username: server.user, password: nil, database: server.database,
            tls: .disable)
        configuration.options.connectTimeout = .seconds(2)
        try await PostgresPaymentSessionStore.withStore(configuration, options: Self.options()) { _ in }  // the schema, as above
        var options = Self.options()
        options.operationTimeout = .seconds(3)
        let acknowledged = SharedList<String>()
        let failures = SharedList<String>()
        try await PostgresPaymentSessionStore.withStore(configuration, options: options) { store in
            let stop = Flag()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        var index = 0
                        while !stop.value {
                            index += 1
                            let key = "w\(writer)-\(index)"
                            do {
                                let session = try await store.create(
                                    NewPaymentSession(cartID: "cart-\(writer)-\(index % 10)", providerID: "p\(index)", idempotencyKey: key))
                                acknowledged.append(session.id)
                            } catch PaymentSessionError.storage(let failure) {
                                failures.append("\(failure.kind)")
                                // Applied or not, the same key again is safe: it returns the
                                // session if the first attempt made it.
                                if failure.kind == .outcomeUnknown { index -= 1 }
                                try await Task.sleep(for: .milliseconds(20))
                            }
                        }
                    }
                }
                // Each phase waits for writes to go through, not for a fixed time: on a
                // loaded machine (the rest of the suite running beside it) a fixed time let
                // too few through for the checks below to mean anything.
                func waitForWrites(atLeast count: Int) async throws {
                    for _ in 0..<1500 where acknowledged.values.count < count { try await Task.sleep(for: .milliseconds(20)) }
                }
                try await waitForWrites(atLeast: 10)
                try server.restart(mode: "fast")
                try await waitForWrites(atLeast: acknowledged.values.count + 5)
                try server.restart(mode: "immediate")
                try await waitForWrites(atLeast: acknowledged.values.count + 5)
                stop.set()
                try await group.waitForAll()
            }
            let ids = acknowledged.values
            // Writes went through before the restarts and after each (the pool reconnected).
            #expect(ids.count >= 20)
            for id in ids { #expect(try await store.session(id: id) != nil, "acknowledged \(id) lost") }
            #expect(
                failures.values.allSatisfy { ["unavailable", "timeout", "outcomeUnknown"].contains($0) }, "\(failures.values)")
            // Writes cut short by the restart took their changes with them: the feed is
            // gap-free and replays to exactly the sessions there.
            let changes = try await store.changes(after: 0, limit: 1_000_000)
            #expect(changes.map(\.sequence) == Array(stride(from: 1, through: Int64(changes.count), by: 1)))
            #expect(ChangeFeedConformanceTests.replay(changes) == (try await contents(of: store)))
        }
    }
}
