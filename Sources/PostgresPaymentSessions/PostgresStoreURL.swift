#if PostgreSQL
public import Foundation
public import PaymentSessionsCore
public import PostgresNIO

/// A `postgres://` or `postgresql://` store address, read as libpq reads a connection URI,
/// so that a service, the command-line tool and `psql` name a PostgreSQL store the same way.
///
/// `postgres://USER:PASSWORD@HOST:PORT,HOST:PORT/DATABASE?PARAMETER=VALUE&...`
///
/// - The password may stand in the URL (percent-encoded), but never has to: without one,
///   `PGPASSWORD` is used, else the matching line of `PGPASSFILE` or `~/.pgpass`
///   (`host:port:database:user:password`, `*` matching anything).
/// - Missing parts come from `PGUSER`, `PGHOST`, `PGPORT` and `PGDATABASE`. A host starting
///   with `/` is a socket directory; `[::1]` is an IPv6 address.
/// - Several hosts, separated by commas, are tried in order; with
///   `target_session_attrs=read-write` (or `primary`) the store uses the one that accepts
///   writes, and looks again when that one stops answering or becomes a standby (failover).
/// - TLS follows libpq's `sslmode` (see `SSLMode`), with `sslrootcert`, `sslcert` and
///   `sslkey` (or `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`; the defaults
///   `~/.postgresql/root.crt`, `postgresql.crt` and `postgresql.key` when present).
/// - Also read: `connect_timeout` (seconds), `application_name` and
///   `options=-c name=value` (server settings, such as `search_path`). Any other parameter
///   is refused, as libpq refuses it.
///
/// The password is never printed: ``location`` and ``description`` leave it out, and
/// ``redacted(_:)`` masks it in text that does not even parse.
///
/// ```swift
/// let url = try PostgresStoreURL("postgres://checkout@db.internal/shop?sslmode=verify-full&sslrootcert=/etc/ssl/shop-ca.pem")
/// let store = PostgresPaymentSessionStore(url: url)  // password from ~/.pgpass
/// ```
public struct PostgresStoreURL: Sendable, CustomStringConvertible {
    /// One server the URL names.
    public struct Host: Sendable, Hashable, CustomStringConvertible {
        /// A host name, an address, or a socket directory (starting with `/`).
        public var name: String
        /// The port (for a socket, the number in the socket's file name).
        public var port: Int

        /// `name:port`, with an IPv6 address in brackets.
        public var description: String { name.contains(":") ? "[\(name)]:\(port)" : "\(name):\(port)" }
    }

    /// Which server of several a store uses, as libpq's `target_session_attrs`.
    public enum TargetSessionAttributes: String, Sendable, CaseIterable {
        /// The first server that answers.
        case any
        /// The first server that accepts writes (not a standby, not `default_transaction_read_only`).
        case readWrite = "read-write"
        /// The first server that is not in recovery.
        case primary
    }

    /// The role to connect as.
    public var user: String
    /// The password, from the URL, `PGPASSWORD` or the password file; `nil` when none applies.
    public var password: String?
    /// The servers, in the order they are tried (at least one).
    public var hosts: [Host]
    /// The database holding the store.
    public var database: String
    /// How the connection is encrypted and the server verified.
    public var tls: PostgresTLS
    /// Which of several servers to use.
    public var targetSessionAttributes: TargetSessionAttributes
    /// How long one connection attempt may take.
    public var connectTimeout: Duration
    /// Shown in `pg_stat_activity`.
    public var applicationName: String?
    /// Server settings sent at connection start (`options=-c search_path=shop`).
    public var serverSettings: [(name: String, value: String)]

    /// The first server's host name, address or socket directory.
    public var host: String { hosts[0].name }
    /// The first server's port.
    public var port: Int { hosts[0].port }
    /// `disable`, `allow`, `prefer`, `require`, `verify-ca` or `verify-full`.
    public var sslMode: String { tls.mode.rawValue }

    /// Whether `text` is a PostgreSQL URL rather than a path.
    public static func isPostgres(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// Reads `text`; throws `PaymentSessionError/invalidInput(field:value:reason:)`, which
    /// never carries the password, when it is not a PostgreSQL URL, a part of it is not
    /// valid, or a certificate it names cannot be read.
    public init(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(PaymentSessionError) {
        let parts = try PostgresURLParts(text)
        let query = parts.parameters
        let settings = try Self.serverSettings(query["options"] ?? environment["PGOPTIONS"])
        user = parts.user ?? query["user"] ?? environment["PGUSER"] ?? environment["USER"] ?? "postgres"
        let names = parts.hosts.isEmpty ? (query["host"] ?? environment["PGHOST"] ?? "localhost").split(separator: ",").map { (String($0), nil as String?) } : parts.hosts
        let defaultPorts = (query["port"] ?? environment["PGPORT"] ?? "5432").split(separator: ",").map(String.init)
        hosts = try names.enumerated().map { index, named throws(PaymentSessionError) in
            let portText = named.1 ?? (defaultPorts.count == names.count ? defaultPorts[index] : defaultPorts[0])
            guard let port = Int(portText), (1...65535).contains(port) else {
                throw .invalidInput(field: "port", value: portText, reason: "is not a port number (1-65535)")
            }
            return Host(name: named.0.isEmpty ? "localhost" : named.0, port: port)
        }
        database = parts.database ?? query["dbname"] ?? environment["PGDATABASE"] ?? user
        let isLocal = hosts.allSatisfy { ["localhost", "127.0.0.1", "::1"].contains($0.name) || $0.name.hasPrefix("/") }
        tls = try PostgresTLS(
            mode: query["sslmode"] ?? environment["PGSSLMODE"], rootCertificate: query["sslrootcert"] ?? environment["PGSSLROOTCERT"],
            certificate: query["sslcert"] ?? environment["PGSSLCERT"], key: query["sslkey"] ?? environment["PGSSLKEY"],
            isLocal: isLocal, home: environment["HOME"])
        let target = query["target_session_attrs"] ?? environment["PGTARGETSESSIONATTRS"] ?? "any"
        guard let attributes = TargetSessionAttributes(rawValue: target) else {
            throw .invalidInput(field: "target_session_attrs", value: target, reason: "use any, read-write or primary")
        }
        targetSessionAttributes = attributes
        let timeoutText = query["connect_timeout"] ?? environment["PGCONNECT_TIMEOUT"] ?? "10"
        guard let seconds = Int(timeoutText), seconds >= 0 else {
            throw .invalidInput(field: "connect_timeout", value: timeoutText, reason: "is not a number of seconds")
        }
        // libpq: 0 waits forever, and 1 is taken as 2.
        connectTimeout = .seconds(seconds == 0 ? 3600 : max(seconds, 2))
        applicationName = query["application_name"] ?? environment["PGAPPNAME"]
        serverSettings = settings
        let (hosts, database, user) = (hosts, database, user)
        password =
            parts.password ?? query["password"] ?? environment["PGPASSWORD"]
            ?? Self.passwordFile(environment: environment).flatMap { file in
                hosts.lazy.compactMap { Self.password(in: file, host: $0.name, port: $0.port, database: database, user: user) }.first
            }
    }

    /// Where the store is, for messages: every host, no password.
    public var location: String {
        "postgres://\(user)@\(hosts.map(\.description).joined(separator: ","))/\(database)"
    }

    /// ``location``.
    public var description: String { location }

    /// The pool's configuration for the first host.
    public var configuration: PostgresClient.Configuration { configuration(for: hosts[0]) }

    /// The pool's configuration for one of the URL's hosts.
    public func configuration(for host: Host) -> PostgresClient.Configuration {
        var configuration =
            host.name.hasPrefix("/")
            ? PostgresClient.Configuration(
                unixSocketPath: "\(host.name)/.s.PGSQL.\(host.port)", username: user, password: password, database: database)
            : PostgresClient.Configuration(
                host: host.name, port: host.port, username: user, password: password, database: database, tls: tls.clientTLS)
        configuration.options.connectTimeout = connectTimeout
        configuration.options.additionalStartupParameters = startupParameters
        return configuration
    }

    /// The server settings and the application name, sent when a connection starts.
    private var startupParameters: [(String, String)] {
        serverSettings.map { ($0.name, $0.value) } + (applicationName.map { [("application_name", $0)] } ?? [])
    }

    /// A single connection's configuration for one of the URL's hosts (the store connects
    /// this way, outside its pools, to find the server to use).
    public func connectionConfiguration(for host: Host) -> PostgresConnection.Configuration {
        var configuration =
            host.name.hasPrefix("/")
            ? PostgresConnection.Configuration(
                unixSocketPath: "\(host.name)/.s.PGSQL.\(host.port)", username: user, password: password, database: database)
            : PostgresConnection.Configuration(
                host: host.name, port: host.port, username: user, password: password, database: database, tls: tls.connectionTLS)
        let (seconds, attoseconds) = connectTimeout.components
        configuration.options.connectTimeout = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        configuration.options.additionalStartupParameters = startupParameters
        return configuration
    }

    /// `text` with any password in it replaced by `***`, for messages about a URL that may
    /// not parse: everything between the user name's `:` and the last `@` is masked, and so
    /// is a `password=` parameter. When in doubt it masks more, never less.
    public static func redacted(_ text: String) -> String {
        PostgresURLParts.redacted(text)
    }

    /// `-c name=value` (or `--name=value`) settings from libpq's `options`, spaces escaped with `\`.
    private static func serverSettings(_ options: String?) throws(PaymentSessionError) -> [(name: String, value: String)] {
        guard let options, !options.isEmpty else { return [] }
        var words: [String] = [""]
        var escaped = false
        for character in options {
            if escaped {
                words[words.count - 1].append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == " " {
                if !words[words.count - 1].isEmpty { words.append("") }
            } else {
                words[words.count - 1].append(character)
            }
        }
        var settings: [(name: String, value: String)] = []
        var index = 0
        let filled = words.filter { !$0.isEmpty }
        while index < filled.count {
            var setting = filled[index]
            if setting == "-c", index + 1 < filled.count {
                index += 1
                setting = filled[index]
            } else if setting.hasPrefix("--") {
                setting = String(setting.dropFirst(2))
            } else if setting.hasPrefix("-c") {
                setting = String(setting.dropFirst(2))
            } else {
                throw .invalidInput(field: "options", value: options, reason: "use -c name=value")
            }
            guard let equals = setting.firstIndex(of: "="), equals != setting.startIndex else {
                throw .invalidInput(field: "options", value: options, reason: "use -c name=value")
            }
            settings.append((String(setting[..<equals]), String(setting[setting.index(after: equals)...])))
            index += 1
        }
        return settings
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
#endif
