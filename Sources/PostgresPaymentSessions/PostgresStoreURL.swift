import Foundation
import PaymentSessionsCore
import PostgresNIO

/// A `postgres://` or `postgresql://` store address, read as libpq's tools read it, so
/// that a service and the command-line tool name a PostgreSQL store the same way.
///
/// `postgres://USER@HOST:PORT/DATABASE?sslmode=MODE`; the password may stand in the URL,
/// but never has to: without one, `PGPASSWORD` is used, else the matching line of
/// `PGPASSFILE` or `~/.pgpass` (`host:port:database:user:password`, `*` matching anything).
/// Missing parts come from `PGUSER`, `PGHOST`, `PGPORT` and `PGDATABASE`. `sslmode` is
/// `disable` (the default on loopback and sockets), `prefer` or `require` (the default
/// elsewhere). A host starting with `/` is a socket directory. The password is never
/// printed: ``location`` and ``description`` leave it out.
///
/// ```swift
/// let url = try PostgresStoreURL("postgres://checkout@db.internal/shop")  // password from ~/.pgpass
/// let store = PostgresPaymentSessionStore(configuration: url.configuration)
/// ```
public struct PostgresStoreURL: Sendable, CustomStringConvertible {
    /// The role to connect as.
    public var user: String
    /// The password, from the URL, `PGPASSWORD` or the password file; `nil` when none applies.
    public var password: String?
    /// The server's host name or address, or a socket directory (starting with `/`).
    public var host: String
    /// The server's port (for a socket, the number in the socket's file name).
    public var port: Int
    /// The database holding the store.
    public var database: String
    /// `disable`, `prefer` or `require`.
    public var sslMode: String

    /// Whether `text` is a PostgreSQL URL rather than a path.
    public static func isPostgres(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// Reads `text`; throws ``PaymentSessionError/invalidInput(field:value:reason:)``
    /// (with the password masked) when it is not a PostgreSQL URL or its `sslmode` is not
    /// one of the three.
    public init(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(PaymentSessionError) {
        guard let components = URLComponents(string: text), let scheme = components.scheme,
            scheme == "postgres" || scheme == "postgresql"
        else {
            throw .invalidInput(field: "store", value: Self.redacted(text), reason: "is not a postgres:// URL")
        }
        let query = Dictionary(
            (components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        user = components.user ?? query["user"] ?? environment["PGUSER"] ?? environment["USER"] ?? "postgres"
        host = query["host"] ?? (components.host.flatMap { $0.isEmpty ? nil : $0 }) ?? environment["PGHOST"] ?? "localhost"
        port = components.port ?? Int(query["port"] ?? environment["PGPORT"] ?? "") ?? 5432
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.isEmpty ? (environment["PGDATABASE"] ?? user) : path
        let isLocal = host == "localhost" || host == "127.0.0.1" || host == "::1" || host.hasPrefix("/")
        sslMode = query["sslmode"] ?? environment["PGSSLMODE"] ?? (isLocal ? "disable" : "require")
        guard ["disable", "prefer", "require"].contains(sslMode) else {
            throw .invalidInput(field: "sslmode", value: sslMode, reason: "use disable, prefer or require")
        }
        password =
            components.password ?? environment["PGPASSWORD"]
            ?? Self.passwordFile(environment: environment).flatMap {
                Self.password(in: $0, host: host, port: port, database: database, user: user)
            }
    }

    /// Where the store is, for messages: no password.
    public var location: String { "postgres://\(user)@\(host):\(port)/\(database)" }

    /// ``location``.
    public var description: String { location }

    /// The pool's configuration for this address.
    public var configuration: PostgresClient.Configuration {
        if host.hasPrefix("/") {
            return PostgresClient.Configuration(
                unixSocketPath: "\(host)/.s.PGSQL.\(port)", username: user, password: password, database: database)
        }
        let tls: PostgresClient.Configuration.TLS =
            switch sslMode {
            case "disable": .disable
            case "prefer": .prefer(.makeClientConfiguration())
            default: .require(.makeClientConfiguration())
            }
        return PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: tls)
    }

    /// `text` with any password in it replaced by `***`, for messages about a URL that may
    /// not parse.
    public static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "***"
        return components.string ?? "postgres://..."
    }

    private static func passwordFile(environment: [String: String]) -> String? {
        let path = environment["PGPASSFILE"] ?? environment["HOME"].map { $0 + "/.pgpass" }
        return path.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }
    }

    /// The password of the first `.pgpass` line that matches (libpq's format: `\:` and
    /// `\\` escape, `*` matches any value, `#` starts a comment).
    static func password(in file: String, host: String, port: Int, database: String, user: String) -> String? {
        for line in file.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            var fields: [String] = [""]
            var escaped = false
            for character in line {
                if escaped {
                    fields[fields.count - 1].append(character)
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == ":" && fields.count < 5 {
                    fields.append("")
                } else {
                    fields[fields.count - 1].append(character)
                }
            }
            guard fields.count == 5 else { continue }
            let wanted = [host, String(port), database, user]
            if zip(fields.prefix(4), wanted).allSatisfy({ $0 == "*" || $0 == $1 }) { return fields[4] }
        }
        return nil
    }
}
