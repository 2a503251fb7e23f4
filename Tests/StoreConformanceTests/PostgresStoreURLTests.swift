import Foundation
import PaymentSessions
import PostgresPaymentSessions
import Testing

/// How a `postgres://` address is read: libpq's defaults, environment and password file.
@Suite("PostgreSQL store URLs") struct PostgresStoreURLTests {
    @Test func aFullURLGivesEveryPartAndNeverPrintsItsPassword() throws {
        let url = try PostgresStoreURL("postgresql://checkout:s3cret@db.internal:6432/shop?sslmode=prefer", environment: [:])
        #expect(url.user == "checkout" && url.password == "s3cret")
        #expect(url.host == "db.internal" && url.port == 6432 && url.database == "shop" && url.sslMode == "prefer")
        #expect(url.location == "postgres://checkout@db.internal:6432/shop")
        #expect(!"\(url)".contains("s3cret"))
        #expect(PostgresStoreURL.redacted("postgres://checkout:s3cret@db/shop") == "postgres://checkout:***@db/shop")
    }

    @Test func missingPartsComeFromTheEnvironmentAsLibpqTakesThem() throws {
        let environment = ["PGUSER": "worker", "PGHOST": "10.0.0.7", "PGPORT": "5433", "PGDATABASE": "payments"]
        let url = try PostgresStoreURL("postgres://", environment: environment)
        #expect(url.user == "worker" && url.host == "10.0.0.7" && url.port == 5433 && url.database == "payments")
        // Off loopback, TLS is required unless the URL says otherwise.
        #expect(url.sslMode == "require")
        #expect(try PostgresStoreURL("postgres://me@localhost/db", environment: [:]).sslMode == "disable")
    }

    @Test func thePasswordComesFromPGPASSWORDThenTheFirstMatchingPasswordFileLine() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgpass-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("pgpass").path
        try """
            # host:port:database:user:password
            other:5432:shop:checkout:wrong
            db.internal:5432:*:checkout:pa\\:ss\\\\word
            *:*:*:*:fallback
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let fromFile = try PostgresStoreURL("postgres://checkout@db.internal/shop", environment: ["PGPASSFILE": file])
        #expect(fromFile.password == "pa:ss\\word")
        let anyUser = try PostgresStoreURL("postgres://someone@elsewhere/x", environment: ["PGPASSFILE": file])
        #expect(anyUser.password == "fallback")
        let fromEnvironment = try PostgresStoreURL(
            "postgres://checkout@db.internal/shop", environment: ["PGPASSFILE": file, "PGPASSWORD": "env"])
        #expect(fromEnvironment.password == "env")
    }

    @Test func somethingElseIsInvalidInputWithThePasswordMasked() {
        #expect(throws: PaymentSessionError.invalidInput(field: "store", value: "mysql://u:***@h/d", reason: "is not a postgres:// URL")) {
            try PostgresStoreURL("mysql://u:pw@h/d", environment: [:])
        }
        #expect(throws: PaymentSessionError.invalidInput(field: "sslmode", value: "verify-full", reason: "use disable, prefer or require")) {
            try PostgresStoreURL("postgres://u@h/d?sslmode=verify-full", environment: [:])
        }
        #expect(PostgresStoreURL.isPostgres("postgresql://h/d") && !PostgresStoreURL.isPostgres("./store.lmdb"))
    }
}
