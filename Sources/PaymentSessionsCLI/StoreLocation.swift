import ArgumentParser
import Foundation
import Logging
import PaymentSessions
#if PostgreSQL
import PostgresPaymentSessions
#endif

/// `--store PATH|URL`, shared by every subcommand.
struct StoreLocation: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The store: an LMDB directory, or a postgres:// URL.",
            discussion: """
                Default: $PAYMENT_SESSIONS_STORE, else ./payment-sessions.lmdb. A URL's password may \
                come from PGPASSWORD or ~/.pgpass instead of the URL.
                """,
            valueName: "path-or-url"))
    var store: String?

    /// The directory or URL to use.
    var path: String {
        store ?? ProcessInfo.processInfo.environment["PAYMENT_SESSIONS_STORE"] ?? "./payment-sessions.lmdb"
    }

    /// Whether the store is on a PostgreSQL server.
    var isPostgres: Bool { Self.isPostgres(path) }

    /// Whether `path` names a PostgreSQL store (a `postgres://` or `postgresql://` URL),
    /// known even in a build without the PostgreSQL trait, which refuses it by name.
    static func isPostgres(_ path: String) -> Bool {
        path.hasPrefix("postgres://") || path.hasPrefix("postgresql://")
    }

    /// Where the store is, for output: the path, or the URL without its password.
    var displayName: String { Self.displayName(path) }

    static func displayName(_ path: String) -> String {
        #if PostgreSQL
        PostgresStoreURL.isPostgres(path) ? ((try? PostgresStoreURL(path).location) ?? PostgresStoreURL.redacted(path)) : path
        #else
        // Without the PostgreSQL module, no URL parser: its scheme alone, never a password.
        isPostgres(path) ? String(path.prefix { $0 != ":" }) + "://…" : path
        #endif
    }

    /// Opens the LMDB store; read-only commands pass `create: false` so that a missing
    /// store is `not_found` rather than silently created.
    func open(create: Bool) throws -> PaymentSessionStore {
        try Self.open(path, create: create)
    }

    static func open(_ path: String, create: Bool) throws -> PaymentSessionStore {
        if isPostgres(path) {
            throw PaymentSessionError.invalidInput(field: "store", value: displayName(path), reason: "this command works on an LMDB store")
        }
        var options = PaymentSessionStore.Options()
        options.createIfMissing = create
        return try PaymentSessionStore(path: path, options: options)
    }

    /// Runs `body` with the store, on either backend: for a PostgreSQL store the
    /// connection pool runs while `body` does, and the schema is created (with `create`)
    /// or must exist (read commands: `not_found` otherwise).
    func withStore<R: Sendable>(create: Bool, _ body: (any PaymentSessionStoring) async throws -> R) async throws -> R {
        try await Self.withStore(path, create: create, body)
    }

    /// ``withStore(create:_:)`` for the store at `path` (a directory or a URL).
    static func withStore<R: Sendable>(
        _ path: String, create: Bool, _ body: (any PaymentSessionStoring) async throws -> R
    ) async throws -> R {
        guard isPostgres(path) else { return try await body(try open(path, create: create)) }
        #if PostgreSQL
        let url = try PostgresStoreURL(path)
        var options = PostgresPaymentSessionStore.Options()
        options.createIfMissing = create
        // A tool run by hand or by a script should not sit for long on a server that is down.
        options.operationTimeout = .seconds(10)
        // The pool's own chatter (connection errors are reported as the command's error).
        options.logger = Logger(label: "payment-sessions") { _ in SwiftLogNoOpLogHandler() }
        return try await PostgresPaymentSessionStore.withStore(url: url, options: options) { store in
            try await body(store)
        }
        #else
        throw PaymentSessionError.invalidInput(
            field: "store", value: displayName(path),
            reason: "this payment-sessions was built without PostgreSQL (the package's PostgreSQL trait is off)")
        #endif
    }
}
