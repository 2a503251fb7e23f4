import Foundation
import Logging
import PaymentSessions
import PostgresNIO
import PostgresPaymentSessions
import Synchronization
import TestScheduling
import TestSupport
import Testing

/// TLS as libpq has it, against a server of the test's own with `ssl=on` and a certificate
/// from a certificate authority the test makes: the server verified by its authority and
/// by name, client certificates, and failed handshakes reported with their cause.
@Suite(
    "PostgreSQL over TLS", .ownThreads,
    .enabled(if: PostgresServer.shouldRun, "no PostgreSQL server binaries here: install postgresql, or set PG_BIN"))
struct PostgresTLSTests {
    /// A TLS server (certificate for the name `localhost` only, from `authority`), an authority that did
    /// not sign it, and a client certificate for the role `clerk`, which may log in only
    /// with it.
    final class Fixture: Sendable {
        let server: PostgresServer
        let authority: TestCertificateAuthority
        let stranger: TestCertificateAuthority
        let clerk: TestCertificateAuthority.Issued
        let directory: TemporaryDirectory

        init() throws {
            directory = TemporaryDirectory(prefix: "pg-tls")
            authority = try TestCertificateAuthority(name: "test-ca", in: directory.path)
            stranger = try TestCertificateAuthority(name: "stranger-ca", in: directory.path)
            let certificate = try authority.serverCertificate(file: "server", dnsNames: ["localhost"])
            clerk = try authority.clientCertificate(file: "clerk", role: "clerk")
            server = try PostgresServer.startNew(
                tls: .init(certificate: certificate.certificate, key: certificate.key, clientCA: authority.certificate),
                authenticationRules: ["hostssl all clerk 127.0.0.1/32 cert", "host all clerk 127.0.0.1/32 reject"])
            try server.psql("CREATE ROLE clerk LOGIN SUPERUSER")
        }

        func url(_ parameters: String, user: String = "payments", host: String = "127.0.0.1") throws -> PostgresStoreURL {
            try PostgresStoreURL(
                "postgres://\(user)@\(host):\(server.port)/\(server.database)?connect_timeout=5&\(parameters)", environment: [:])
        }
    }

    static let fixture = Mutex<Result<Fixture, any Error>?>(nil)

    static func shared() throws -> Fixture {
        try fixture.withLock { state in
            if let state { return try state.get() }
            let result = Result { try Fixture() }
            state = result
            return try result.get()
        }
    }

    static var options: PostgresPaymentSessionStore.Options {
        var options = PostgresPaymentSessionStore.Options()
        options.logger = Logger(label: "tls-test") { _ in SwiftLogNoOpLogHandler() }
        return options
    }

    /// Whether the store's connections are encrypted, as the server sees them.
    static func encrypted(_ store: PostgresPaymentSessionStore) async throws -> Bool {
        try await store.client.withConnection { connection in
            let rows = try await connection.query(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: options.logger)
            for try await ssl in rows.decode(Bool.self) { return ssl }
            return false
        }
    }

    /// The storage error opening the store at `url` throws, and how long it took.
    static func refusal(_ url: PostgresStoreURL) async -> (message: String, seconds: Double) {
        let started = ContinuousClock.now
        do {
            try await PostgresPaymentSessionStore.withStore(url: url, options: options) { _ = try await $0.count() }
            Issue.record("the store opened at \(url)")
            return ("", 0)
        } catch {
            let elapsed = ContinuousClock.now - started
            return ("\(error)", Double(elapsed.components.seconds))
        }
    }

    @Test func verifyFullAcceptsTheServerItsAuthoritySignedForItsName() async throws {
        let fixture = try Self.shared()
        let url = try fixture.url("sslmode=verify-full&sslrootcert=\(fixture.authority.certificate)", host: "localhost")
        try await PostgresPaymentSessionStore.withStore(url: url, options: Self.options) { store in
            _ = try await store.create(NewPaymentSession(cartID: "c", providerID: "p"))
            #expect(try await store.count() >= 1)
            let encrypted = try await Self.encrypted(store)
            #expect(encrypted)
        }
        // verify-ca checks the authority, not the name: an address the certificate does not name.
        let verifyCA = try fixture.url("sslmode=verify-ca&sslrootcert=\(fixture.authority.certificate)")
        try await PostgresPaymentSessionStore.withStore(url: verifyCA, options: Self.options) { store in
            let encrypted = try await Self.encrypted(store)
            #expect(encrypted)
        }
    }

    @Test func aServerSignedByAnotherAuthorityIsRefusedNamingTheCause() async throws {
        let fixture = try Self.shared()
        for mode in ["verify-full", "verify-ca", "require"] {
            let url = try fixture.url("sslmode=\(mode)&sslrootcert=\(fixture.stranger.certificate)")
            let (message, seconds) = await Self.refusal(url)
            #expect(message.contains("not signed by a trusted certificate authority"), "\(mode): \(message)")
            #expect(seconds < 10, "the refusal took \(seconds) s, past the connect timeout")
        }
    }

    @Test func aCertificateThatDoesNotNameTheHostIsRefusedByVerifyFullOnly() async throws {
        let fixture = try Self.shared()
        // The certificate names `localhost`, not 127.0.0.1.
        let url = try fixture.url("sslmode=verify-full&sslrootcert=\(fixture.authority.certificate)")
        let (message, seconds) = await Self.refusal(url)
        #expect(message.contains("does not name 127.0.0.1"), "\(message)")
        #expect(seconds < 10)
    }

    @Test func requireWithoutARootCertificateEncryptsWithoutVerifying() async throws {
        let fixture = try Self.shared()
        for mode in ["require", "prefer", "allow"] {
            try await PostgresPaymentSessionStore.withStore(url: try fixture.url("sslmode=\(mode)"), options: Self.options) { store in
                let encrypted = try await Self.encrypted(store)
                #expect(encrypted, "\(mode)")
            }
        }
        try await PostgresPaymentSessionStore.withStore(url: try fixture.url("sslmode=disable"), options: Self.options) { store in
            let encrypted = try await Self.encrypted(store)
            #expect(!encrypted)
        }
    }

    @Test func aClientCertificateLogsInTheRoleItNamesAndNothingElseDoes() async throws {
        let fixture = try Self.shared()
        let root = "sslmode=verify-full&sslrootcert=\(fixture.authority.certificate)"
        let withCertificate = try fixture.url(
            "\(root)&sslcert=\(fixture.clerk.certificate)&sslkey=\(fixture.clerk.key)", user: "clerk", host: "localhost")
        try await PostgresPaymentSessionStore.withStore(url: withCertificate, options: Self.options) { store in
            let encrypted = try await Self.encrypted(store)
            #expect(encrypted)
            _ = try await store.count()
        }
        let (message, _) = await Self.refusal(try fixture.url(root, user: "clerk", host: "localhost"))
        #expect(message.contains("the server refused") && message.contains("28000"), "\(message)")
    }

    @Test func requireAgainstAServerWithoutTLSIsRefusedAndPreferFallsBackToPlainText() async throws {
        let plain = try PostgresServer.shared()
        let require = try PostgresStoreURL("\(plain.url())?sslmode=require&connect_timeout=5", environment: [:])
        let (message, seconds) = await Self.refusal(require)
        #expect(message.contains("does not accept TLS"), "\(message)")
        #expect(seconds < 10)
        let prefer = try PostgresStoreURL("\(plain.url())?sslmode=prefer&options=-c%20search_path%3D\(try plain.makeSchema())", environment: [:])
        try await PostgresPaymentSessionStore.withStore(url: prefer, options: Self.options) { store in
            let encrypted = try await Self.encrypted(store)
            #expect(!encrypted)
        }
    }
}
