import Foundation
import PaymentSessions
import TestSupport
import Testing
import TestScheduling

/// The command-line tool on a PostgreSQL store, named by a `postgres://` URL.
@Suite("payment-sessions on PostgreSQL", .enabled(if: PostgresServer.shouldRun, "no PostgreSQL server binaries here: install postgresql, or set PG_BIN"), .ownThreads)
struct CLIPostgresTests {
    @Test func everySessionCommandWorksOnAPostgresURL() throws {
        let cli = try CLI(postgres: true)
        let a = try cli.session(["create", "--cart", "cart_1", "--provider", "stripe", "--data", #"{"intent":"pi_1"}"#,
            "--idempotency-key", "idem-1", "--amount", "4200", "--currency", "eur"])
        let b = try cli.session(["create", "--cart", "cart_1", "--provider", "manual", "--select"])
        #expect(try cli.session(["get", a.id]) == a)
        #expect(try cli.session(["get", "--idempotency-key", "idem-1"]) == a)
        #expect(try cli.session(["selected", "--cart", "cart_1"]) == b)
        #expect(try cli.session(["select", a.id]).isSelected)
        #expect(try cli.session(["get", b.id]).isSelected == false)
        guard case .array(let items) = try cli.json(["list", "--cart", "cart_1"]) else { Issue.record("not an array"); return }
        #expect(items.count == 2)
        let authorized = try cli.session(["authorize", a.id, "--amount", "4200"])
        #expect(authorized.status == .authorized && authorized.paymentAuthorizedAt != nil)
        #expect(try cli.session(["authorize", a.id, "--amount", "4200"]) == authorized)
        let refused = try cli.run(["deselect", "--cart", "cart_1"])
        #expect(refused.status == 3 && errorCode(refused) == "conflict")
        try cli.session(["update", a.id, "--status", "canceled"])
        #expect(try cli.json(["delete", b.id]) == ["deleted": .string(b.id)])
        let stats = try #require(try cli.json(["stats"]).objectValue)
        #expect(stats["backend"] == "postgresql" && stats["sessions"] == 1 && stats["carts"] == 1 && stats["selected"] == 0)
        #expect(stats["by_status"]?.objectValue?["canceled"] == 1)
        #expect(stats["table_bytes"] != nil)
        #expect(try cli.json(["purge", "--older-than", "1d"]) == ["purged": 0, "kept_authorized": 0, "reservations_dropped": 0, "changes_trimmed": 0])
        #expect(try cli.json(["verify"]) == ["sessions": 1, "problems": []])
        // A file copy of the store is LMDB's; PostgreSQL has pg_dump, or export.
        let backup = try cli.run(["backup", cli.directory.appending("copy")])
        #expect(backup.status == 2 && errorCode(backup) == "invalid_input", "\(backup.stderr)")
    }

    /// A create whose connection is terminated while its commit runs exits 6 with
    /// `outcome_unknown`: unlike every other failure, it may have written.
    @Test func aCreateWhoseConnectionIsLostDuringTheCommitExitsSixOutcomeUnknown() throws {
        let cli = try CLI(postgres: true)
        try cli.session(["create", "--cart", "seed", "--provider", "p"])
        let server = try PostgresServer.shared()
        let database = String(cli.store.split(separator: "/").last ?? "")
        // The commit of each new session waits five seconds (a deferred trigger), time to
        // terminate the connection under it.
        try server.psql(
            database: database,
            """
            CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(5); RETURN NULL; END $$;
            CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON payment_sessions
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();
            """)
        let create = try ChildProcess("payment-sessions", ["create", "--cart", "c", "--provider", "p", "--idempotency-key", "k", "--store", cli.store])
        let sleeping = "FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'"
        let deadline = Date().addingTimeInterval(30)
        while try server.psqlOutput(database: database, "SELECT count(*) \(sleeping)").trimmingCharacters(in: .whitespacesAndNewlines)
            == "0", Date() < deadline
        {
            Thread.sleep(forTimeInterval: 0.1)
        }
        _ = try server.psqlOutput(database: database, "SELECT pg_terminate_backend(pid) \(sleeping)")
        let output = try create.finish()
        #expect(output.status == 6 && errorCode(output) == "outcome_unknown", "\(output.status): \(output.stderr)")
        #expect(output.stdout.isEmpty)
    }

    @Test func simulateRunsTheSameWorkloadAndChecksTheRulesAfterwards() throws {
        let cli = try CLI(postgres: true)
        let output = try cli.run(["simulate", "--duration", "1", "--workers", "4", "--carts", "10", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let summary = try #require(try JSONValue(parsing: output.stdout).objectValue)
        #expect(summary["failures"] == 0)
        #expect(summary["verify"]?.objectValue?["clean"] == true)
        guard case .number(let sessions)? = summary["verify"]?.objectValue?["sessions"] else { Issue.record("no count"); return }
        #expect(Int(sessions.text) ?? 0 > 0)
        #expect(try cli.json(["verify"]).objectValue?["problems"] == [])
    }

    @Test func aDatabaseWithoutTheStoreIsNotFoundForReadsAndStaysEmpty() throws {
        let cli = try CLI(postgres: true)
        for read in [["get", PaymentSessionID.generate()], ["stats"], ["export"], ["list"], ["selected", "--cart", "c"], ["verify"]] {
            let output = try cli.run(read)
            #expect(output.status == 1 && errorCode(output) == "not_found", "\(read): \(output.stderr)")
            #expect(output.stdout.isEmpty)
        }
        #expect(try cli.run(["stats"]).status == 1)
    }

    @Test func exportAndImportMoveAStoreBetweenBackendsBothWays() throws {
        let lmdb = CLI()
        let a = try lmdb.session(["create", "--cart", "c1", "--provider", "stripe", "--idempotency-key", "k1", "--select",
            "--amount", "990", "--currency", "jpy"])
        try lmdb.session(["authorize", a.id, "--amount", "990"])
        try lmdb.session(["create", "--cart", "c1", "--provider", "manual", "--data", #"{"n":1.50}"#])
        let c = try lmdb.session(["create", "--cart", "c2", "--provider", "stripe", "--select"])
        try lmdb.session(["update", c.id, "--status", "canceled"])
        let exported = try lmdb.snapshot()
        #expect(exported.split(separator: "\n").count == 3)

        let postgres = try CLI(postgres: true)
        #expect(try postgres.json(["import"], stdin: exported) == ["imported": 3])
        #expect(try postgres.snapshot() == exported)
        #expect(try postgres.session(["get", "--idempotency-key", "k1"]).id == a.id)

        let back = CLI()
        #expect(try back.json(["import"], stdin: try postgres.snapshot()) == ["imported": 3])
        #expect(try back.snapshot() == exported)
        #expect(try back.json(["verify"]).objectValue?["problems"] == [])
    }

    @Test func copyStreamsAStoreBetweenBackendsPageByPage() throws {
        let lmdb = CLI()
        for cart in 0..<7 {
            let a = try lmdb.session(["create", "--cart", "c\(cart)", "--provider", "stripe", "--idempotency-key", "k\(cart)",
                "--select", "--amount", "100", "--currency", "usd"])
            if cart % 2 == 0 { try lmdb.session(["authorize", a.id, "--amount", "100"]) }
            try lmdb.session(["create", "--cart", "c\(cart)", "--provider", "manual"])
        }
        let exported = try lmdb.snapshot()
        func copy(_ arguments: [String]) throws -> ChildProcess.Output { try ChildProcess.run("payment-sessions", ["copy"] + arguments) }
        let postgres = try CLI(postgres: true)
        // Pages of 3 sessions: five pages, the last one short.
        let there = try copy(["--from", lmdb.store, "--to", postgres.store, "--page", "3"])
        #expect(there.status == 0 && there.stdout == #"{"copied":14}"# + "\n", "\(there.stderr)")
        #expect(try postgres.snapshot() == exported)
        let back = CLI()
        let home = try copy(["--from", postgres.store, "--to", back.store])
        #expect(home.status == 0, "\(home.stderr)")
        #expect(try back.snapshot() == exported)
        #expect(try back.json(["verify"]).objectValue?["problems"] == [])

        // A target that holds sessions is refused before anything is written.
        let again = try copy(["--from", lmdb.store, "--to", postgres.store])
        #expect(again.status == 2 && errorCode(again) == "invalid_input" && again.stderr.contains("holds 14 sessions"))
        #expect(try postgres.snapshot() == exported)
        let itself = try copy(["--from", lmdb.store, "--to", lmdb.store])
        #expect(itself.status == 2 && errorCode(itself) == "invalid_input")
        let missing = try copy(["--from", lmdb.directory.appending("nothing"), "--to", CLI().store])
        #expect(missing.status == 1 && errorCode(missing) == "not_found")
    }

    @Test func aPasswordInTheURLIsNeverPrinted() throws {
        let cli = CLI()
        // Nothing listens on port 1: the connection fails, and the error names the store.
        let output = try cli.run(["get", PaymentSessionID.generate()], store: "postgres://payments:s3cret-pw@127.0.0.1:1/payments")
        #expect(output.status == 4 && errorCode(output) == "storage", "\(output.stderr)")
        #expect(!output.stderr.contains("s3cret-pw") && !output.stdout.contains("s3cret-pw"))
    }
}
