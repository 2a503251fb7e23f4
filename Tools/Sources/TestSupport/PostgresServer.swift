import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL server for tests: `initdb` in a temporary directory, `pg_ctl`
/// on a free loopback port, as the unprivileged `postgres` user when the tests run as
/// root (PostgreSQL refuses root). No system service, no fixed port.
///
/// One server serves a whole test process, started at first use. A watchdog process
/// stops it and removes its directory when the test process ends, however it ends, so
/// nothing is left running. Tests isolate themselves with a schema each
/// (``makeSchema(prefix:)``).
///
/// Where the server binaries are missing, ``availability`` says so and the PostgreSQL
/// suites are skipped with that reason, unless `PAYMENT_SESSIONS_REQUIRE_POSTGRES` is set
/// (CI sets it): then they run and fail.
public final class PostgresServer: Sendable {
    /// The loopback port the server listens on.
    public let port: Int
    /// The superuser the tests connect as (trust authentication on loopback).
    public let user = "payments"
    /// The database the tests use.
    public let database = "payments"
    /// The data directory.
    public let directory: String
    /// The directory with `pg_ctl`, `initdb` and `postgres`.
    public let binaries: String
    private let runAs: String?
    /// The server's certificate and key, when it accepts TLS.
    public let tls: TLSFiles?
    /// Whether the server flushes its log to disk at commit (off for tests: faster, and a
    /// test server's data is thrown away).
    public let durable: Bool

    /// Whether a server can be started here, or why not.
    public static let availability: Result<String, ServerError> = findBinaries()

    /// Whether suites that need a server should run: a server can be started, or one is
    /// required (then a missing one fails the tests instead of skipping them).
    public static var shouldRun: Bool {
        if case .success = availability { return true }
        return ProcessInfo.processInfo.environment["PAYMENT_SESSIONS_REQUIRE_POSTGRES"] != nil
    }

    /// Why the suites are skipped, for the test report.
    public static var skipReason: String {
        if case .failure(let error) = availability { return "PostgreSQL suites skipped: \(error)" }
        return "PostgreSQL is available"
    }

    /// A failure to find, start or use the server.
    public struct ServerError: Error, CustomStringConvertible, Sendable {
        /// What went wrong.
        public var description: String
    }

    private static let started = Mutex<Result<PostgresServer, ServerError>?>(nil)

    /// The process's server, started at the first call.
    public static func shared() throws -> PostgresServer {
        try started.withLock { state in
            if let state { return try state.get() }
            let result = Result { () throws(ServerError) in try PostgresServer.start() }
            state = result
            return try result.get()
        }.self
    }

    /// The files a server needs to accept TLS connections (PEM), and the certificate
    /// authority whose client certificates it accepts, if any.
    public struct TLSFiles: Sendable {
        public var certificate: String
        public var key: String
        public var clientCA: String?

        public init(certificate: String, key: String, clientCA: String? = nil) {
            self.certificate = certificate
            self.key = key
            self.clientCA = clientCA
        }
    }

    private init(port: Int, directory: String, binaries: String, runAs: String?, durable: Bool, tls: TLSFiles? = nil) {
        self.durable = durable
        self.tls = tls
        self.port = port
        self.directory = directory
        self.binaries = binaries
        self.runAs = runAs
    }

    private static func findBinaries() -> Result<String, ServerError> {
        var candidates: [String] = []
        if let configured = ProcessInfo.processInfo.environment["PG_BIN"] { candidates.append(configured) }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        candidates += versions.sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }.map { "/usr/lib/postgresql/\($0)/bin" }
        candidates += ["/usr/local/bin", "/usr/bin", "/opt/homebrew/bin"]
        for directory in candidates
        where FileManager.default.isExecutableFile(atPath: directory + "/pg_ctl")
            && FileManager.default.isExecutableFile(atPath: directory + "/initdb")
        {
            return .success(directory)
        }
        return .failure(ServerError(description: "no initdb and pg_ctl found (install Debian's postgresql, or set PG_BIN)"))
    }

    /// Starts a server of the caller's own, for tests that restart or stop it (the shared
    /// one serves tests running in parallel). Stopped by ``stop()`` or when the process ends.
    /// `durable` keeps PostgreSQL's defaults (`fsync` on: a commit waits for the disk), for
    /// measurements that compare durable commits.
    /// `tls` makes it accept TLS (`ssl=on`) with that certificate; the files are copied
    /// into the server's directory. `authenticationRules` go first in `pg_hba.conf` (the
    /// first rule that matches a connection decides).
    public static func startNew(
        durable: Bool = false, tls: TLSFiles? = nil, authenticationRules: [String] = []
    ) throws(ServerError) -> PostgresServer {
        try start(durable: durable, tls: tls, authenticationRules: authenticationRules)
    }

    /// The server's settings: loopback only, its socket in its own directory, room for many
    /// pools, and `fsync` off unless it is ``durable``. The conformance suites keep about 300
    /// connections open at their busiest (a store keeps two for its callers and one for its
    /// feed), so twice that leaves room.
    private var settings: String {
        "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c max_connections=800" + (durable ? "" : " -c fsync=off")
            + (Self.hasStatementStatistics(binaries) ? " -c shared_preload_libraries=pg_stat_statements" : "")
            + (tls.map {
                " -c ssl=on -c ssl_cert_file=\($0.certificate) -c ssl_key_file=\($0.key)"
                    + ($0.clientCA.map { " -c ssl_ca_file=\($0)" } ?? "")
            } ?? "")
    }

    /// Whether the server can count statements (`pg_stat_statements`, in Debian's
    /// `postgresql` package): the tests that count round trips read it.
    public var countsStatements: Bool { Self.hasStatementStatistics(binaries) }

    private static func hasStatementStatistics(_ binaries: String) -> Bool {
        FileManager.default.fileExists(atPath: binaries + "/../lib/pg_stat_statements.so")
    }

    /// Stops the server (`immediate`: as a crash would).
    public func stop(mode: String = "fast") throws(ServerError) {
        try run(binaries + "/pg_ctl", ["-D", directory + "/data", "-m", mode, "-w", "-t", "60", "stop"])
    }

    /// Starts the server again after ``stop(mode:)``.
    public func startAgain() throws(ServerError) {
        try run(
            binaries + "/pg_ctl",
            [
                "-D", directory + "/data", "-l", directory + "/server.log", "-w", "-t", "60", "-o", settings, "start",
            ])
    }

    private static func start(
        durable: Bool = false, tls requested: TLSFiles? = nil, authenticationRules: [String] = []
    ) throws(ServerError) -> PostgresServer {
        let binaries = try availability.get()
        let runAs: String? = geteuid() == 0 ? "postgres" : nil
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("payment-sessions-pg-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw ServerError(description: "cannot create \(directory): \(error)")
        }
        if let runAs {
            guard let entry = getpwnam(runAs) else {
                throw ServerError(description: "running as root, and there is no \(runAs) user to run the server as")
            }
            chown(directory, entry.pointee.pw_uid, entry.pointee.pw_gid)
        }
        let data = directory + "/data"
        // The server reads its key only when it owns it and no one else can read it.
        var tls: TLSFiles?
        if let requested {
            tls = TLSFiles(
                certificate: directory + "/server.crt", key: directory + "/server.key",
                clientCA: requested.clientCA.map { _ in directory + "/client-ca.crt" })
            let copies = [(requested.certificate, directory + "/server.crt"), (requested.key, directory + "/server.key")]
                + (requested.clientCA.map { [($0, directory + "/client-ca.crt")] } ?? [])
            for (source, destination) in copies {
                do {
                    try FileManager.default.copyItem(atPath: source, toPath: destination)
                } catch {
                    throw ServerError(description: "cannot copy \(source): \(error)")
                }
                chmod(destination, 0o600)
                if let runAs, let entry = getpwnam(runAs) { chown(destination, entry.pointee.pw_uid, entry.pointee.pw_gid) }
            }
        }
        let server = PostgresServer(port: 0, directory: directory, binaries: binaries, runAs: runAs, durable: durable, tls: tls)
        try server.run(
            binaries + "/initdb",
            ["-D", data, "-U", server.user, "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"])
        if !authenticationRules.isEmpty {
            let path = data + "/pg_hba.conf"
            do {
                let existing = try String(contentsOfFile: path, encoding: .utf8)
                try (authenticationRules.joined(separator: "\n") + "\n" + existing).write(toFile: path, atomically: false, encoding: .utf8)
            } catch {
                throw ServerError(description: "cannot change \(path): \(error)")
            }
        }
        // A free port: bind one, let it go, start on it; another process may take it in
        // between, so try a few.
        var lastError = ServerError(description: "no port")
        for _ in 0..<5 {
            let port = freeLoopbackPort()
            let started = PostgresServer(
                port: port, directory: directory, binaries: binaries, runAs: runAs, durable: durable, tls: tls)
            do {
                try started.run(
                    binaries + "/pg_ctl",
                    ["-D", data, "-l", directory + "/server.log", "-w", "-t", "60", "-o", started.settings, "start"])
                started.watch()
                try started.psql(database: "postgres", "CREATE DATABASE \(started.database)")
                return started
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// Starts a watchdog that stops the server and removes its directory once this
    /// process is gone.
    private func watch() {
        let stop = command(binaries + "/pg_ctl", ["-D", directory + "/data", "-m", "immediate", "stop"])
            .map { "'\($0)'" }.joined(separator: " ")
        let script = "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; \(stop) >/dev/null 2>&1; rm -rf '\(directory)'"
        let watchdog = Process()
        watchdog.executableURL = URL(fileURLWithPath: "/bin/sh")
        watchdog.arguments = ["-c", script]
        watchdog.standardInput = FileHandle.nullDevice
        watchdog.standardOutput = FileHandle.nullDevice
        watchdog.standardError = FileHandle.nullDevice
        try? watchdog.run()
    }

    /// A `postgres://` URL for `database` (the test database by default).
    public func url(database: String? = nil) -> String {
        "postgres://\(user)@127.0.0.1:\(port)/\(database ?? self.database)"
    }

    /// Creates a fresh schema for one test and returns its name.
    public func makeSchema(prefix: String = "t") throws -> String {
        let name = "\(prefix)_\(UInt64.random(in: 0...UInt64.max))"
        try psql(database: database, "CREATE SCHEMA \(name)")
        return name
    }

    /// Creates a fresh database for one test and returns its `postgres://` URL.
    public func makeDatabase(prefix: String = "db") throws -> String {
        let name = "\(prefix)_\(UInt64.random(in: 0...UInt64.max))"
        try psql(database: "postgres", "CREATE DATABASE \(name)")
        return url(database: name)
    }

    /// Runs SQL with `psql` as the superuser.
    public func psql(database: String? = nil, _ sql: String) throws(ServerError) {
        let psql = FileManager.default.isExecutableFile(atPath: binaries + "/psql") ? binaries + "/psql" : "/usr/bin/psql"
        try run(
            psql,
            ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(port), "-U", user, "-d",
             database ?? self.database, "-c", sql],
            asServerUser: false)
    }

    /// A streaming standby of this server: `pg_basebackup` of its data into a directory of
    /// its own (with `-R`: the standby's connection to this server names itself `name`,
    /// which `synchronous_standby_names` can list), started on a port of its own.
    public func makeStandby(name: String) throws(ServerError) -> PostgresServer {
        let standbyDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("payment-sessions-pg-standby-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        do {
            try FileManager.default.createDirectory(atPath: standbyDirectory, withIntermediateDirectories: true)
        } catch {
            throw ServerError(description: "cannot create \(standbyDirectory): \(error)")
        }
        if let runAs, let entry = getpwnam(runAs) { chown(standbyDirectory, entry.pointee.pw_uid, entry.pointee.pw_gid) }
        try run(
            binaries + "/pg_basebackup",
            [
                "-D", standbyDirectory + "/data", "-R", "-X", "stream", "-c", "fast",
                "-d", "host=127.0.0.1 port=\(port) user=\(user) application_name=\(name)",
            ])
        var lastError = ServerError(description: "no port")
        for _ in 0..<5 {
            let standby = PostgresServer(
                port: Self.freeLoopbackPort(), directory: standbyDirectory, binaries: binaries, runAs: runAs, durable: durable,
                tls: tls)
            do {
                try standby.startAgain()
                standby.watch()
                return standby
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// Promotes a standby to a primary (`pg_ctl promote`, waiting until it accepts writes).
    public func promote() throws(ServerError) {
        try run(binaries + "/pg_ctl", ["-D", directory + "/data", "-w", "-t", "60", "promote"])
    }

    /// Runs SQL with `psql` and returns its output: unaligned, tuples only.
    public func psqlOutput(database: String? = nil, _ sql: String) throws(ServerError) -> String {
        let psql = FileManager.default.isExecutableFile(atPath: binaries + "/psql") ? binaries + "/psql" : "/usr/bin/psql"
        return try run(
            psql,
            ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(port), "-U", user, "-d",
             database ?? self.database, "-c", sql],
            asServerUser: false)
    }

    /// Restarts the server: `fast` shuts down cleanly, `immediate` as a crash would
    /// (the server recovers from its log at start).
    public func restart(mode: String = "fast") throws(ServerError) {
        try run(binaries + "/pg_ctl", ["-D", directory + "/data", "-m", mode, "-w", "-t", "60", "restart"])
    }

    private func command(_ executable: String, _ arguments: [String]) -> [String] {
        if let runAs { return ["/usr/sbin/runuser", "-u", runAs, "--", executable] + arguments }
        return [executable] + arguments
    }

    @discardableResult
    private func run(_ executable: String, _ arguments: [String], asServerUser: Bool = true) throws(ServerError) -> String {
        let full = asServerUser ? command(executable, arguments) : [executable] + arguments
        // Output goes to a file, not a pipe: the server that `pg_ctl start` leaves running
        // would hold a pipe open. Spawned and reaped with posix_spawn and waitpid, so that
        // no run loop is needed to see the exit.
        let logPath = directory + "/command-\(UInt32.random(in: 0...UInt32.max)).log"
        defer { unlink(logPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var argv: [UnsafeMutablePointer<CChar>?] = full.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, full[0], &actions, nil, &argv, environ)
        guard spawned == 0 else { throw ServerError(description: "\(full[0]): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw ServerError(description: "\(full.joined(separator: " ")) exited with status \(status): \(output)")
        }
        return output
    }

    /// A port the server keeps through restarts (see ``LoopbackPort``).
    private static func freeLoopbackPort() -> Int { LoopbackPort.free() }
}
