import Foundation
import PaymentSessions
import PostgresPaymentSessions
import Testing
import TestScheduling

/// How a `postgres://` address is read: libpq's defaults, environment and password file.
@Suite("PostgreSQL store URLs", .ownThreads) struct PostgresStoreURLTests {
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
        #expect(
            throws: PaymentSessionError.invalidInput(
                field: "sslmode", value: "verify-everything", reason: "use disable, allow, prefer, require, verify-ca or verify-full")
        ) {
            try PostgresStoreURL("postgres://u@h/d?sslmode=verify-everything", environment: [:])
        }
        #expect(PostgresStoreURL.isPostgres("postgresql://h/d") && !PostgresStoreURL.isPostgres("./store.lmdb"))
    }

    /// Passwords typed as they are, unencoded: a `#`, `@`, `[` or `%` in them still reads,
    /// and whatever the text, nothing printed about it shows the password.
    @Test(arguments: ["pa#ss", "p@ss@word", "pa[ss", "100%sure", "a:b", "pa ss", "sl/ash"])
    func noPasswordIsEverPrintedEvenWhenTheURLDoesNotParse(password: String) {
        let text = "postgres://alice:\(password)@127.0.0.1:1/shop"
        #expect(!PostgresStoreURL.redacted(text).contains(password))
        #expect(PostgresStoreURL.redacted(text).hasPrefix("postgres://alice:***@"))
        do {
            let url = try PostgresStoreURL(text, environment: [:])
            if !password.contains("/") {
                #expect(url.password == password && url.host == "127.0.0.1" && url.port == 1 && url.database == "shop")
            }
            #expect(!url.location.contains(password) && !"\(url)".contains(password))
        } catch {
            #expect(!"\(error)".contains(password), "the error shows the password: \(error)")
        }
        // In a query parameter, and in text that is not a URL at all.
        let query = "postgres://alice@h/shop?password=\(password)&sslmode=disable"
        #expect(!PostgresStoreURL.redacted(query).contains(password))
        #expect(!PostgresStoreURL.redacted("mysql://alice:\(password)@h/d").contains(password))
    }

    @Test func percentEncodedPartsAreDecodedAsLibpqDecodesThem() throws {
        let url = try PostgresStoreURL("postgres://al%40ice:p%23ss%2Fword@db.internal/sh%6Fp", environment: [:])
        #expect(url.user == "al@ice" && url.password == "p#ss/word" && url.database == "shop")
    }

    @Test func severalHostsAreTriedInOrderWithTheirOwnPortsOrTheSharedOne() throws {
        let url = try PostgresStoreURL(
            "postgres://checkout@10.0.0.1:5433,10.0.0.2,[::1]:6000/shop?target_session_attrs=read-write", environment: [:])
        #expect(url.hosts.map(\.description) == ["10.0.0.1:5433", "10.0.0.2:5432", "[::1]:6000"])
        #expect(url.targetSessionAttributes == .readWrite)
        #expect(url.location == "postgres://checkout@10.0.0.1:5433,10.0.0.2:5432,[::1]:6000/shop")
        let fromParameters = try PostgresStoreURL("postgres:///shop?host=a,b&port=1,2", environment: [:])
        #expect(fromParameters.hosts.map(\.description) == ["a:1", "b:2"])
        #expect(throws: PaymentSessionError.self) { try PostgresStoreURL("postgres://h:70000/d", environment: [:]) }
        #expect(throws: PaymentSessionError.self) {
            try PostgresStoreURL("postgres://h/d?target_session_attrs=whatever", environment: [:])
        }
    }

    @Test func serverSettingsConnectTimeoutAndUnknownParameters() throws {
        let url = try PostgresStoreURL(
            "postgres://h/d?options=-c%20search_path%3Dshop%20-c%20statement_timeout%3D5s&connect_timeout=3&application_name=checkout",
            environment: [:])
        #expect(url.serverSettings.map { "\($0.name)=\($0.value)" } == ["search_path=shop", "statement_timeout=5s"])
        #expect(url.connectTimeout == .seconds(3) && url.applicationName == "checkout")
        #expect(throws: PaymentSessionError.self) { try PostgresStoreURL("postgres://h/d?sslmdoe=require", environment: [:]) }
    }

    @Test func verifyingModesNeedARootCertificateAndNamedFilesMustBeReadable() {
        #expect(throws: PaymentSessionError.self) { try PostgresStoreURL("postgres://h/d?sslmode=verify-full", environment: [:]) }
        #expect(throws: PaymentSessionError.self) { try PostgresStoreURL("postgres://h/d?sslmode=verify-ca", environment: [:]) }
        let missing = #expect(throws: PaymentSessionError.self) {
            try PostgresStoreURL("postgres://h/d?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", environment: [:])
        }
        if case .invalidInput(let field, let value, _)? = missing {
            #expect(field == "sslrootcert" && value == "/nonexistent/ca.pem")
        } else {
            Issue.record("expected invalid sslrootcert, got \(String(describing: missing))")
        }
        #expect((try? PostgresStoreURL("postgres://h/d?sslmode=verify-full&sslrootcert=system", environment: [:]))?.sslMode == "verify-full")
        #expect((try? PostgresStoreURL("postgres://h/d", environment: ["PGSSLMODE": "prefer"]))?.sslMode == "prefer")
    }
}
