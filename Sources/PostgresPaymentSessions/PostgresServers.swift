#if PostgreSQL
import Logging
import NIOSSL
import PaymentSessionsCore
import PostgresNIO
import Synchronization

/// The servers a store may use, one connection pool each, and which one it uses now.
///
/// A URL may name several hosts (a primary and its standbys). The store looks for the one to
/// use by connecting to each in turn, outside the pools, and asking what it is
/// (`target_session_attrs`), as libpq does; the first that fits is used until an operation
/// finds it gone (a lost connection, no answer, a read-only transaction: a demoted primary),
/// and then the next operation looks again. Looking outside the pool is also what reports a
/// server that cannot be used at all (a refused TLS handshake, a failed login, a role that
/// does not exist) within the connect timeout and with the server's own reason: a pool only
/// retries, and its caller would see nothing until its deadline.
///
/// A store made from a `PostgresClient.Configuration` alone has one server and no way to
/// connect outside its pool, so it never looks.
final class PostgresServers: Sendable {
    struct Server: Sendable {
        let name: String
        let client: PostgresClient
        /// The change feed's own pool (see ``Pool/feed``).
        let feedClient: PostgresClient
        /// How to connect outside the pool, to look; `nil` when the store cannot.
        let direct: PostgresConnection.Configuration?
    }

    /// Which of a server's pools an operation leases from.
    enum Pool: Sendable {
        /// The callers' operations.
        case operations
        /// The change feed's machinery: the sequencer's batches, the shared listener's
        /// `LISTEN` and its reads. A pool of its own, so that they never wait for a
        /// connection behind the callers: when every connection is busy with writers, a
        /// batch queued behind them held every change back by as long as the queue.
        case feed
    }

    private struct State {
        var chosen: Int?
        var looking: Task<Int, any Error>?
    }

    let servers: [Server]
    private let target: PostgresStoreURL.TargetSessionAttributes
    private let logger: Logger
    private let state: Mutex<State>

    init(url: PostgresStoreURL, pingsIdleConnections: Bool, logger: Logger) {
        let single = url.hosts.count == 1
        servers = url.hosts.map { host in
            let configuration = Self.pool(
                url.configuration(for: host), pingsIdleConnections: pingsIdleConnections, keepsConnectionsOpen: single)
            return Server(
                name: host.description,
                client: PostgresClient(configuration: configuration, backgroundLogger: logger),
                feedClient: PostgresClient(configuration: Self.feedPool(configuration), backgroundLogger: logger),
                direct: url.connectionConfiguration(for: host))
        }
        target = url.targetSessionAttributes
        self.logger = logger
        state = Mutex(State(chosen: nil))
    }

    init(configuration: PostgresClient.Configuration, pingsIdleConnections: Bool, logger: Logger) {
        let pool = Self.pool(configuration, pingsIdleConnections: pingsIdleConnections, keepsConnectionsOpen: true)
        servers = [
            Server(
                name: PostgresPaymentSessionStore.location(of: configuration),
                client: PostgresClient(configuration: pool, backgroundLogger: logger),
                feedClient: PostgresClient(configuration: Self.feedPool(pool), backgroundLogger: logger), direct: nil)
        ]
        target = .any
        self.logger = logger
        state = Mutex(State(chosen: 0))
    }

    /// The connections the store keeps open even when idle, when it uses one server.
    static let connectionsKeptOpen = 2

    /// `configuration` as the store runs its pool: no keep-alive query unless asked for,
    /// and, with `keepsConnectionsOpen`, ``connectionsKeptOpen`` connections (at most the
    /// pool's maximum) open even when idle.
    ///
    /// Why: postgres-nio schedules a timer (tasks of its own) on every return of a
    /// connection to the pool, for its keep-alive query and, beyond the connections kept
    /// open, for its idle timeout, and cancels them at the next lease: for a get by id that
    /// was more than the query itself. Without keep-alive queries a connection that the
    /// network dropped while idle is found at its next use, as with libpq, whose
    /// connections send none either. Connections are kept open only on a single server:
    /// with several, the pools of the servers not in use would keep connecting to them.
    static func pool(
        _ configuration: PostgresClient.Configuration, pingsIdleConnections: Bool, keepsConnectionsOpen: Bool
    ) -> PostgresClient.Configuration {
        var pool = configuration
        if !pingsIdleConnections { pool.options.keepAliveBehavior = nil }
        if keepsConnectionsOpen {
            pool.options.minimumConnections = max(
                pool.options.minimumConnections, min(connectionsKeptOpen, pool.options.maximumConnections))
        }
        return pool
    }

    /// The connections of the feed's pool: the listener's, and one for batches and reads.
    static let feedConnections = 2

    /// The feed's pool made from `pool`, the store's: the same server and settings,
    /// ``feedConnections`` at most, one kept open when `pool` keeps any (the sequencer runs
    /// after every commit with changes). While a listener holds that one, the batches run
    /// on the second, for which postgres-nio schedules its idle timer on every return: a
    /// cost per batch, not per operation, kept instead of a fourth connection held open by
    /// every store process.
    static func feedPool(_ pool: PostgresClient.Configuration) -> PostgresClient.Configuration {
        var feed = pool
        feed.options.maximumConnections = feedConnections
        feed.options.minimumConnections = min(pool.options.minimumConnections, 1)
        return feed
    }

    /// `pool` of the server in use, looking for one first when none is chosen.
    func client(_ pool: Pool = .operations) async throws -> PostgresClient {
        let server = servers[try await chosen()]
        return switch pool {
        case .operations: server.client
        case .feed: server.feedClient
        }
    }

    /// The first pool, for what must not wait to look (the store's `client` property).
    var firstClient: PostgresClient { servers[0].client }

    /// Runs every server's pools until cancelled.
    func run() async {
        await withDiscardingTaskGroup { group in
            for server in servers {
                group.addTask { await server.client.run() }
                group.addTask { await server.feedClient.run() }
            }
        }
    }

    /// Told that an operation failed for want of the server (`error` says how): the next
    /// operation looks for a server again. Errors the server answered with (other than the
    /// read-only refusal of a standby) change nothing.
    func operationFailed(with error: any Error) {
        guard servers[0].direct != nil, Self.meansServerGone(error) else { return }
        state.withLock { state in
            guard let chosen = state.chosen else { return }
            logger.notice("looking for a server again", metadata: ["server": "\(servers[chosen].name)", "reason": "\(error)"])
            state.chosen = nil
        }
    }

    /// Whether `error` says the server is gone or cannot take writes, rather than that it
    /// refused this operation.
    static func meansServerGone(_ error: any Error) -> Bool {
        var failure: StorageFailure?
        if case .storage(let found)? = error as? PaymentSessionError { failure = found }
        if let error = error as? PSQLError { failure = PostgresFailure.failure(error, operation: "") }
        guard let failure else { return false }
        switch failure.kind {
        case .unavailable, .timeout, .outcomeUnknown: return failure.code != "57014"  // not a statement timeout
        case .misuse: return failure.code == "25006"  // a read-only transaction: a standby now
        default: return false
        }
    }

    private func chosen() async throws -> Int {
        let task = state.withLock { state -> Task<Int, any Error>? in
            if state.chosen != nil { return nil }
            if let looking = state.looking { return looking }
            let looking = Task { try await self.look() }
            state.looking = looking
            return looking
        }
        guard let task else {
            if let chosen = state.withLock({ $0.chosen }) { return chosen }
            return try await chosen()
        }
        do {
            let index = try await task.value
            state.withLock { state in
                if state.looking == task {
                    state.looking = nil
                    state.chosen = index
                }
            }
            return index
        } catch {
            state.withLock { state in if state.looking == task { state.looking = nil } }
            throw error
        }
    }

    /// Connects to each server in turn and returns the first that fits the target.
    private func look() async throws -> Int {
        var reasons: [String] = []
        for (index, server) in servers.enumerated() {
            guard let direct = server.direct else { return index }
            do {
                if try await Self.fitsInTime(direct, target: target, logger: logger) {
                    if servers.count > 1 { logger.notice("using server", metadata: ["server": "\(server.name)"]) }
                    return index
                }
                reasons.append("\(server.name): \(target == .primary ? "in recovery (a standby)" : "read-only")")
            } catch {
                reasons.append("\(server.name): \(PostgresConnectFailure.describe(error, configuration: direct))")
            }
        }
        let wanted = target == .any ? "answers" : target == .primary ? "is a primary" : "accepts writes"
        throw PaymentSessionError.storage(
            StorageFailure(
                backend: .postgresql, kind: .unavailable, operation: "connect", code: "",
                message: "no server that \(wanted): \(reasons.joined(separator: "; "))"))
    }

    /// ``fits(_:target:logger:)``, given up after the connect timeout twice over: the
    /// socket's connect timeout does not cover a server that accepts the connection and then
    /// says nothing (stopped, or its machine gone mid-handshake).
    private static func fitsInTime(
        _ configuration: PostgresConnection.Configuration, target: PostgresStoreURL.TargetSessionAttributes, logger: Logger
    ) async throws -> Bool {
        let limit = Duration.nanoseconds(configuration.options.connectTimeout.nanoseconds) * 2
        let result = await DeadlineRace<Bool>.first(within: limit, expired: { ConnectTimedOut(limit: limit) }) {
            try await fits(configuration, target: target, logger: logger)
        }
        return try result.get()
    }

    struct ConnectTimedOut: Error, CustomStringConvertible {
        let limit: Duration
        var description: String { "no answer within \(limit)" }
    }

    /// Whether the server answers and fits `target`.
    private static func fits(
        _ configuration: PostgresConnection.Configuration, target: PostgresStoreURL.TargetSessionAttributes, logger: Logger
    ) async throws -> Bool {
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        do {
            var fits = false
            let rows = try await connection.query(
                "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'", logger: logger)
            for try await (inRecovery, readOnly) in rows.decode((Bool, Bool).self) {
                switch target {
                case .any: fits = true
                case .primary: fits = !inRecovery
                case .readWrite: fits = !inRecovery && !readOnly
                }
            }
            try? await connection.close()
            return fits
        } catch {
            try? await connection.close()
            throw error
        }
    }
}

/// Why a connection could not be made, in words an operator can act on.
enum PostgresConnectFailure {
    static func describe(_ error: any Error, configuration: PostgresConnection.Configuration) -> String {
        guard let error = error as? PSQLError else { return tlsReason(error, configuration: configuration) ?? "\(error)" }
        switch error.code {
        case .server:
            let info = error.serverInfo
            return "the server refused: \(info?[.message] ?? "an error") (\(info?[.sqlState] ?? "?"))"
        case .sslUnsupported:
            return "the server does not accept TLS, which the sslmode requires"
        default:
            if let underlying = error.underlying, let reason = tlsReason(underlying, configuration: configuration) {
                return reason
            }
            if let underlying = error.underlying, "\(underlying)".contains("Connection refused") {
                return "connection refused (no server listens there)"
            }
            return "\(error.code): \(error.underlying.map { String(describing: $0) } ?? "connection failed")"
        }
    }

    /// A failed TLS handshake, said plainly: the certificate authority or the name.
    private static func tlsReason(_ error: any Error, configuration: PostgresConnection.Configuration) -> String? {
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return "TLS: the server's certificate does not name \(configuration.host ?? "the host") (sslmode=verify-full checks the name; \(extra))"
        }
        guard let ssl = error as? NIOSSLError else { return nil }
        let text = String(describing: ssl)
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "TLS: the server's certificate is not signed by a trusted certificate authority (check sslrootcert; \(text))"
        }
        return "TLS: the handshake failed (\(text))"
    }
}
#endif
