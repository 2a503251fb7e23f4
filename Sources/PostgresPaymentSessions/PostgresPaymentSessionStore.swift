#if PostgreSQL
public import Foundation
public import Logging
public import PaymentSessionsCore
public import PostgresNIO
public import ServiceLifecycle
import Synchronization

/// The payment session store on a PostgreSQL server, for checkouts that outgrow one
/// machine: the same `PaymentSessionStoring` API and guarantees as the embedded LMDB
/// store, shared by every process and machine that connects.
///
/// The store runs on a `PostgresClient` (postgres-nio's connection pool), which needs a
/// task of its own: run the store in a service group, as any swift-service-lifecycle
/// service, or wrap the work in ``withStore(_:options:_:)``.
///
/// ```swift
/// let store = PostgresPaymentSessionStore(
///     configuration: .init(host: "db.internal", username: "checkout", password: secret, database: "shop", tls: .disable))
/// let group = ServiceGroup(services: [store, checkoutServer], logger: logger)
/// try await group.run()  // elsewhere: try await store.select(id: id)
/// ```
///
/// ## How it keeps the rules
///
/// An operation, or a unit of them, reads without locks, lets the rules decide, and applies
/// the decision in one statement, its own transaction, that locks the carts and checks that
/// every row the decision rests on is unchanged, and that a cart read whole has as many
/// sessions (else it runs again): a select switch is three round trips, a create one or two,
/// deleting a cart's sessions two. A unit's later writes read what its earlier ones decided.
/// When that cannot decide (a unique constraint refused a row or key, or it kept meeting
/// concurrent writes), and for imports and purges, the operation is one transaction at READ
/// COMMITTED, as follows. It locks the carts it writes
/// (transaction-level advisory locks, before its first write, which keeps the change feed
/// in commit order within a cart), then the rows it decides on (`SELECT ... FOR UPDATE`:
/// the session, and the cart's selected session when the selection moves), lets the
/// backend-neutral rules decide on those values, and writes rows that the schema's
/// constraints check again (see the schema's table in the DocC article "Choosing a
/// backend"). Writers of one cart take turns; writers on different carts lock different
/// carts and rows and never wait for each other, and no table lock is held by a write.
///
/// The change feed is numbered apart from the writes: a write leaves its changes pending
/// under its transaction id, and a sequencer that this store runs beside its pool (and
/// every reader of the feed) numbers them; see ``changes(after:limit:)``.
///
/// Two races are settled by running the transaction again from the start: two
/// transactions selecting different sessions of one cart that had none selected (the
/// partial unique index refuses the second, whose retry releases the first's selection
/// as any later select would), and two `createOrUpdate`s creating one (cart, provider)
/// pair (the retry updates the session the first created). Deadlocks (`40P01`) and
/// serialization failures (`40001`, as CockroachDB reports contention) are retried the
/// same way, up to ``Options/maxAttempts``.
///
/// A lost connection, a server restart or a statement timeout is a
/// `PaymentSessionError/storage(_:)` whose `StorageFailure/kind` says so; the pool
/// opens new connections by itself. When the connection drops during `COMMIT`, the
/// outcome is unknown to the caller: an idempotency key makes the retry of a create safe.
public final class PostgresPaymentSessionStore: PaymentSessionStoring, Service {
    /// What the store needs besides the server's address.
    public struct Options: Sendable {
        /// Create the tables when the database has none (the default). `false` makes a
        /// database without them throw `PaymentSessionError/storeNotFound(location:)`.
        public var createIfMissing = true
        /// Largest `data`, in bytes of compact JSON.
        public var maxDataBytes = 64 << 10
        /// How long a deleted session's idempotency key stays reserved, in seconds.
        public var idempotencyRetention: TimeInterval = 24 * 3600
        /// How long the change feed keeps a change that not every named consumer has
        /// acknowledged, in seconds (see ``PostgresPaymentSessionStore/trimChanges()``).
        public var changeRetention: TimeInterval = 7 * 24 * 3600
        /// How long a read of the change feed waits for transactions still open elsewhere
        /// (in any database of the server) that hold back changes committed before the read:
        /// past it the read returns the feed as numbered so far, a prefix without gaps, and
        /// the held-back changes follow once those transactions end.
        public var feedCatchUp: Duration = .seconds(1)
        /// How many times a transaction runs before a conflict is reported; see the type's
        /// documentation.
        public var maxAttempts = 16
        /// How long one attempt of an operation may wait for the server once it holds a
        /// connection. Past it the connection is closed and the operation throws a
        /// `StorageFailure/Kind/timeout` storage error (code `operation_timeout`); past
        /// twice it, the wait for a connection included, it throws one whatever it waits
        /// for (code `deadline`). The
        /// store's watch looks a tenth of it apart (at most every quarter second), so either
        /// may come that much late. For a limit enforced by the server, set
        /// `statement_timeout` in the connection's startup parameters.
        public var operationTimeout: Duration = .seconds(10)
        /// Whether the pool sends postgres-nio's keep-alive query (`SELECT 1`, every 30
        /// seconds by default) on idle connections. Off by default, as with libpq: a
        /// connection the network dropped while idle is then found at its next use, whose
        /// operation fails (within ``operationTimeout``). On, every return of a connection
        /// to the pool schedules the query's timer, which costs a read by id more than its
        /// query. The configuration's `keepAliveBehavior` says how often when on.
        public var pingsIdleConnections = false
        /// The clock for `created_at`, `updated_at` and reservations (tests set it).
        public var clock: @Sendable () -> Date = { Date() }
        /// Where the store logs schema migrations, retries and corrupt rows, and where
        /// postgres-nio logs connections. By default the process's logging system, label
        /// `payment-sessions.postgres`.
        public var logger = Logger(label: "payment-sessions.postgres")

        /// The defaults.
        public init() {}

        var nowMicroseconds: Int64 { Timestamp.microseconds(clock()) }
    }

    /// The pool the store runs on: the first server's, when its URL names several.
    public var client: PostgresClient { servers.firstClient }
    /// Every server the store may use, and the one it uses now.
    let servers: PostgresServers
    /// The one connection listening for the feed's notifications, shared by every follower.
    let listener: PostgresChangeListener
    /// The options the store was made with.
    public let options: Options
    /// Metrics and spans, when the process bootstrapped them before making the store.
    let instruments = StoreInstruments.make(backend: "postgresql")
    /// Where the store is, for messages: `postgres://user@host:port/database`, never a password.
    public let location: String
    let generator = PaymentSessionIDGenerator()
    let sequencer = PostgresFeedSequencer()
    /// The deadlines of every operation, kept by one task in ``run()``.
    let watch: OperationWatch
    private let schemaReady = SchemaGate()

    /// A store on the server `configuration` names. Nothing connects until the store runs
    /// (``run()``); the first operation creates or migrates the schema.
    ///
    /// The store runs its pool with two changes to `configuration`: at least two
    /// connections (at most `maximumConnections`) stay open when idle, and no keep-alive
    /// query is sent unless ``Options/pingsIdleConnections`` asks for it. Both spare a
    /// timer on every return of a connection to postgres-nio's pool. Beside it the store
    /// runs a pool of up to two more connections (one kept open) for the change feed's
    /// sequencer and its shared listener, so that they never queue behind the callers.
    public init(configuration: PostgresClient.Configuration, options: Options = Options()) {
        self.servers = PostgresServers(
            configuration: configuration, pingsIdleConnections: options.pingsIdleConnections, logger: options.logger)
        self.listener = PostgresChangeListener(logger: options.logger)
        self.options = options
        self.watch = OperationWatch(statementTimeout: options.operationTimeout)
        self.location = Self.location(of: configuration)
    }

    /// A store at `url`: its hosts tried in order as ``PostgresStoreURL`` describes (the
    /// one that fits `target_session_attrs`, again after a failover), with its TLS settings.
    ///
    /// The first operation connects to each host in turn, outside the pool, to choose one;
    /// a server that cannot be used (a refused TLS handshake, a failed login) is reported
    /// then, with its reason, within the URL's `connect_timeout`.
    public init(url: PostgresStoreURL, options: Options = Options()) {
        self.servers = PostgresServers(url: url, pingsIdleConnections: options.pingsIdleConnections, logger: options.logger)
        self.listener = PostgresChangeListener(logger: options.logger)
        self.options = options
        self.watch = OperationWatch(statementTimeout: options.operationTimeout)
        self.location = url.location
    }

    /// A store at `url`, a `postgres://` URL read by ``PostgresStoreURL`` (the password
    /// from the URL, `PGPASSWORD` or `~/.pgpass`).
    public convenience init(url: String, options: Options = Options()) throws(PaymentSessionError) {
        self.init(url: try PostgresStoreURL(url), options: options)
    }

    /// `.postgresql`.
    public var backend: StorageFailure.Backend { .postgresql }

    /// Runs the connection pool, the loop that numbers this process's changes into the
    /// feed, and the watch that keeps every operation's deadline, until the task is
    /// cancelled or the service group shuts down; every operation needs it running.
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await self.sequencer.run({ try await self.sequenceChanges() }, logger: self.options.logger)
            }
            group.addTask { await self.watch.run(logger: self.options.logger) }
            await servers.run()
            listener.stop()
            group.cancelAll()
        }
    }

    /// Runs `body` with a store on `configuration` whose pool runs meanwhile, and stops the
    /// pool afterwards: for tools and tests that do not run a service group.
    public static func withStore<R: Sendable>(
        _ configuration: PostgresClient.Configuration, options: Options = Options(),
        _ body: (PostgresPaymentSessionStore) async throws -> R
    ) async throws -> R {
        try await PostgresPaymentSessionStore(configuration: configuration, options: options).running(body)
    }

    /// ``withStore(_:options:_:)`` for the store at `url` (see `init(url:options:)`).
    public static func withStore<R: Sendable>(
        url: PostgresStoreURL, options: Options = Options(),
        _ body: (PostgresPaymentSessionStore) async throws -> R
    ) async throws -> R {
        try await PostgresPaymentSessionStore(url: url, options: options).running(body)
    }

    private func running<R: Sendable>(_ body: (PostgresPaymentSessionStore) async throws -> R) async throws -> R {
        let store = self
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            defer { group.cancelAll() }
            try await store.prepareSchema()
            return try await body(store)
        }
    }

    /// Creates or migrates the schema now, instead of at the first operation; throws
    /// `PaymentSessionError/storeNotFound(location:)` when the database has no store and
    /// ``Options/createIfMissing`` is off, and
    /// `PaymentSessionError/unsupportedFormat(found:supported:)` for a newer schema.
    public func prepareSchema() async throws {
        try await schemaReady.once {
            do {
                let client = try await self.servers.client()
                _ = try await self.withDeadline("prepare schema") {
                    try await client.withConnection { connection in
                        try await PostgresSchema.prepare(
                            on: connection, create: self.options.createIfMissing, location: self.location,
                            logger: self.options.logger)
                    }
                }
            } catch {
                throw PostgresFailure.storeError(error, operation: "prepare schema")
            }
        }
    }

    static func location(of configuration: PostgresClient.Configuration) -> String {
        let user = configuration.username
        let database = configuration.database ?? user
        if let host = configuration.host {
            return "postgres://\(user)@\(host):\(configuration.port ?? 5432)/\(database)"
        }
        return "postgres://\(user)@\(configuration.unixSocketPath ?? "socket")/\(database)"
    }
}

/// Runs the schema's preparation once per store, letting concurrent first callers wait
/// for it, and again after a failure.
final class SchemaGate: Sendable {
    private let state = Mutex<Task<Void, any Error>?>(nil)

    func once(_ work: @escaping @Sendable () async throws -> Void) async throws {
        let task = state.withLock { current in
            if let current { return current }
            let task = Task { try await work() }
            current = task
            return task
        }
        do {
            try await task.value
        } catch {
            state.withLock { current in if current == task { current = nil } }
            throw error
        }
    }
}
#endif
