import Foundation
import PaymentSessions
import PostgresNIO
import PostgresPaymentSessions

/// A `postgres://` or `postgresql://` store address, read as libpq's tools read it.
///
/// `postgres://USER@HOST:PORT/DATABASE?sslmode=MODE`; the password may stand in the URL,
/// but never has to: without one, `PGPASSWORD` is used, else the matching line of
/// `PGPASSFILE` or `~/.pgpass` (`host:port:database:user:password`, `*` matching anything).
/// `sslmode` is `disable` (the default on loopback and sockets), `prefer` or `require`
/// (the default elsewhere). A host starting with `/` is a socket directory. The password is
/// never printed: ``location`` leaves it out.
struct PostgresURL {
    var user: String
    var password: String?
    var host: String
    var port: Int
    var database: String
    var sslMode: String

    static func isPostgres(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    init(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard let components = URLComponents(string: text), let scheme = components.scheme,
            scheme == "postgres" || scheme == "postgresql"
        else {
            throw InputError(field: "store", value: Self.redacted(text), reason: "is not a postgres:// URL")
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
            throw InputError(field: "sslmode", value: sslMode, reason: "use disable, prefer or require")
        }
        password =
            components.password ?? environment["PGPASSWORD"]
            ?? Self.passwordFile(environment: environment).flatMap {
                Self.password(in: $0, host: host, port: port, database: database, user: user)
            }
    }

    /// Where the store is, for messages: no password.
    var location: String { "postgres://\(user)@\(host):\(port)/\(database)" }

    var configuration: PostgresClient.Configuration {
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

    static func redacted(_ text: String) -> String {
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
