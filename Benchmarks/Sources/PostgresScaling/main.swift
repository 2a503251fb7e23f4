// PostgreSQL beside its floor, pgbench -M prepared running on the same server, in the same
// run, alternated: a get by id and one durable create from a single caller (latency), then
// durable creates from 8, 32 and 128 concurrent callers.
//
//   swift run -c release --package-path Benchmarks PostgresScaling [rounds] [creates] [--latency-only]
//
// Latency: the store's get by id (`session(id:)`, ids spread over 1,024 sessions) beside
// pgbench's prepared select of the same columns (Benchmarks/pgbench/get.sql), and the store's
// create beside pgbench with the store's statements, one caller each, medians in µs.
//
// Each round runs, for each number of callers: the store (`creates` creates, each on a cart
// of its own, a follower timing when each change reaches the feed, pg_locks sampled for
// lock waits) with a connection for every caller, then the same with postgres-nio's
// default pool (20 connections, callers beyond it waiting in the store's process), then
// pgbench with the store's statements (Benchmarks/pgbench/create-store.sql), with the
// previous release's counter-row feed (create-counter.sql) and a plain insert
// (create-plain.sql), each in a schema of its own. It prints each run, then the medians.
// The server is a throwaway one on loopback with fsync on (PostgresServer, durable).
import Foundation
import Logging
import PaymentSessions
import PostgresNIO
import PostgresPaymentSessions
import Synchronization
import TestSupport

let latencyOnly = CommandLine.arguments.contains("--latency-only")
let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let rounds = arguments.first ?? 3
let creates = arguments.dropFirst().first ?? 1024
let callerCounts = [8, 32, 128]
let quiet = Logger(label: "scaling") { _ in SwiftLogNoOpLogHandler() }
let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../pgbench").standardized.path

let server = try PostgresServer.startNew(durable: true)
let url = server.url()

/// A store in a schema of its own (its name starting with `prefix`), its pool as large as
/// the largest number of callers unless `maximumConnections` says otherwise.
func makeStore(prefix: String, maximumConnections: Int = 140) async throws -> (PostgresPaymentSessionStore, schema: String) {
    let schema = try server.makeSchema(prefix: prefix)
    var configuration = try PostgresStoreURL(url).configuration
    configuration.options.additionalStartupParameters = [("search_path", schema)]
    configuration.options.maximumConnections = maximumConnections
    var options = PostgresPaymentSessionStore.Options()
    options.logger = quiet
    let store = PostgresPaymentSessionStore(configuration: configuration, options: options)
    Task.detached { try? await store.run() }
    try await store.prepareSchema()
    return (store, schema)
}

struct Run {
    var perSecond: Double
    var p99: Double
    var median: Double = .nan
    /// This process's CPU time and context switches per call (one-caller runs).
    var usagePerCall: ProcessUsage?
    var feedLagP99: Double?
    /// Samples with a writer waiting, by the lock it waited for (`locktype mode`).
    var lockWaits: [String: Int] = [:]
}

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
}

/// What one store run's tasks share: the next create to make, and when each session's
/// create returned and its change reached the follower.
final class Tally: Sendable {
    let next = Atomic<Int>(0)
    let committed = Mutex<[String: Duration]>([:])
    let arrived = Mutex<[String: Duration]>([:])
}

/// `creates` creates from `callers` tasks, each on a cart of its own.
func runStore(_ store: PostgresPaymentSessionStore, callers: Int, round: Int, sampler: PostgresClient) async throws -> Run {
    let clock = ContinuousClock()
    let origin = clock.now
    let before = try await store.changeFeedState().last
    let tally = Tally()
    let follower = Task {
        for try await change in store.followChanges(after: before) {
            tally.arrived.withLock { $0[change.sessionID] = clock.now - origin }
        }
    }
    let sampling = Task {
        var waits: [String: Int] = [:]
        while !Task.isCancelled {
            guard let rows = try? await sampler.query(
                // Writers waiting for a lock, by the lock: every create is on a cart of its
                // own, so any such wait is between different carts. (Readers of the feed
                // queue on the sequencer's lock by design; they are not writers.)
                """
                SELECT l.locktype || ' ' || l.mode, count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE NOT l.granted AND a.query NOT LIKE '%payment_session_sequence_changes%'
                GROUP BY 1
                """,
                logger: quiet)
            else { break }
            do {
                for try await (lock, count) in rows.decode((String, Int64).self) { waits[lock, default: 0] += Int(count) }
            } catch {
                break  // cancelled: the run is over
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return waits
    }
    let total = creates  // the tasks below are not on the main actor, which owns the globals
    let start = clock.now
    let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
        for _ in 0..<callers {
            group.addTask {
                var mine: [Double] = []
                while true {
                    let i = tally.next.add(1, ordering: .relaxed).oldValue
                    guard i < total else { return mine }
                    let began = clock.now
                    let session = try await store.create(
                        NewPaymentSession(
                            cartID: "r\(round)-c\(callers)-\(i)", providerID: "stripe",
                            data: ["client_secret": "pi_123_secret"], amount: 4200, currencyCode: "usd"))
                    let done = clock.now
                    tally.committed.withLock { $0[session.id] = done - origin }
                    mine.append(milliseconds(done - began))
                }
            }
        }
        return try await group.reduce(into: []) { $0 += $1 }
    }
    let elapsed = clock.now - start
    let deadline = clock.now + .seconds(30)
    while tally.arrived.withLock({ $0.count }) < creates && clock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
    follower.cancel()
    sampling.cancel()
    let waits = await sampling.value
    let lags = tally.committed.withLock { committed in
        tally.arrived.withLock { arrived in
            committed.compactMap { id, at in arrived[id].map { max(0, milliseconds($0 - at)) } }
        }
    }
    return Run(
        perSecond: Double(creates) / (milliseconds(elapsed) / 1000), p99: percentile(latencies, 0.99),
        feedLagP99: lags.count == creates ? percentile(lags, 0.99) : nil, lockWaits: waits)
}

/// pgbench running `script` from `callers` clients, `transactions` in all (`creates` by default).
func runPgbench(_ script: String, schema: String, callers: Int, transactions: Int = creates) throws -> Run {
    let logs = FileManager.default.temporaryDirectory.appendingPathComponent("pgbench-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: logs) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: server.binaries + "/pgbench")
    let parsed = try PostgresStoreURL(url).configuration
    process.arguments = [
        "-n", "-M", "prepared", "-c", String(callers), "-j", String(min(2, callers)), "-t", String(transactions / callers),
        "-f", "\(scripts)/\(script)", "-l", "--log-prefix", "\(logs)/log",
        "-h", parsed.host ?? "127.0.0.1", "-p", String(parsed.port ?? 5432), "-U", parsed.username, parsed.database ?? parsed.username,
    ]
    var environment = ProcessInfo.processInfo.environment
    environment["PGOPTIONS"] = "-c search_path=\(schema)"
    process.environment = environment
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0,
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
        let tps = Double(line.dropFirst(6).prefix { $0 != " " })
    else { throw ScalingError(message: "pgbench \(script) failed: \(text)") }
    // Per-transaction log lines: client, transaction, latency in µs, ...
    var latencies: [Double] = []
    for file in try FileManager.default.contentsOfDirectory(atPath: logs) {
        let log = try String(contentsOfFile: "\(logs)/\(file)", encoding: .utf8)
        for row in log.split(separator: "\n") {
            let fields = row.split(separator: " ")
            if fields.count > 2, let micros = Double(fields[2]) { latencies.append(micros / 1000) }
        }
    }
    return Run(perSecond: tps, p99: percentile(latencies, 0.99), median: percentile(latencies, 0.5))
}

struct ScalingError: Error, CustomStringConvertible { var message: String; var description: String { message } }

/// Single-caller latency, in ms per call: the store's `operation` run `count` times (the
/// `i`th call given `i`), each timed.
func timeStore(_ count: Int, _ operation: @escaping @Sendable (Int) async throws -> Void) async throws -> Run {
    // Off the main actor, where this file's top-level code runs: a caller there would pay
    // a hop back to the main thread after every call, which a server's handlers never do.
    try await Task.detached {
        let clock = ContinuousClock()
        var latencies: [Double] = []
        latencies.reserveCapacity(count)
        let usageBefore = ProcessUsage.now()
        let start = clock.now
        for i in 0..<count {
            let began = clock.now
            try await operation(i)
            latencies.append(milliseconds(clock.now - began))
        }
        let usage = ProcessUsage.now() - usageBefore
        return Run(
            perSecond: Double(count) / (milliseconds(clock.now - start) / 1000), p99: percentile(latencies, 0.99),
            median: percentile(latencies, 0.5), usagePerCall: usage / Double(count))
    }.value
}

/// What this process's threads used (`getrusage`): CPU time and context switches.
struct ProcessUsage {
    var userMicroseconds: Double
    var systemMicroseconds: Double
    var switches: Double

    static func now() -> ProcessUsage {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return ProcessUsage(
            userMicroseconds: Double(usage.ru_utime.tv_sec) * 1e6 + Double(usage.ru_utime.tv_usec),
            systemMicroseconds: Double(usage.ru_stime.tv_sec) * 1e6 + Double(usage.ru_stime.tv_usec),
            switches: Double(usage.ru_nvcsw + usage.ru_nivcsw))
    }

    static func - (a: ProcessUsage, b: ProcessUsage) -> ProcessUsage {
        ProcessUsage(
            userMicroseconds: a.userMicroseconds - b.userMicroseconds,
            systemMicroseconds: a.systemMicroseconds - b.systemMicroseconds, switches: a.switches - b.switches)
    }

    static func / (a: ProcessUsage, n: Double) -> ProcessUsage {
        ProcessUsage(userMicroseconds: a.userMicroseconds / n, systemMicroseconds: a.systemMicroseconds / n, switches: a.switches / n)
    }
}

/// The id pgbench's scripts compute from `n`: `ps_0` and `n` in 25 upper-case hex digits.
func pgbenchID(_ n: Int) -> String {
    let hex = String(n, radix: 16, uppercase: true)
    return "ps_0" + String(repeating: "0", count: 25 - hex.count) + hex
}

let gets = 5000
let latencyCreates = 500
let readSessions = 1024
let (readStore, readSchema) = try await makeStore(prefix: "latency_get")
for n in 1...readSessions {
    try await readStore.create(
        NewPaymentSession(
            cartID: "get-\(n)", providerID: "stripe", data: ["client_secret": "pi_123_secret"], id: pgbenchID(n),
            amount: 4200, currencyCode: "usd"))
}
let (createStore, _) = try await makeStore(prefix: "latency_create")
let createFloorSchema = try await makeStore(prefix: "latency_create_floor").schema
/// The same select through postgres-nio alone, a prepared statement on one held
/// connection: what the driver costs, without the store's pool lease, deadline or decoding.
struct GetByID: PostgresPreparedStatement {
    static let name = "latency_get_by_id"
    static let sql = """
        SELECT id, cart_id, provider_id, is_selected, status, data_text, idempotency_key, amount, currency_code,
            is_initiated, payment_authorized_at, created_at, updated_at FROM payment_sessions WHERE id = $1
        """
    typealias Row = String
    var id: String
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(id)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(String.self, context: .default) }
}
var driverConfiguration = try PostgresStoreURL(url).configuration
driverConfiguration.options.additionalStartupParameters = [("search_path", readSchema)]
// The pool as the store runs it (PostgresServers.pool): no keep-alive query, two connections kept open.
driverConfiguration.options.keepAliveBehavior = nil
driverConfiguration.options.minimumConnections = 2
let driver = PostgresClient(configuration: driverConfiguration, backgroundLogger: quiet)
Task.detached { await driver.run() }

var latency: [String: [Run]] = [:]
for round in 0..<rounds {
    let driverGet = try await driver.withConnection { connection in
        try await timeStore(gets) { i in
            for try await _ in try await connection.execute(GetByID(id: pgbenchID(1 + (i &* 7919) % readSessions)), logger: quiet) {}
        }
    }
    latency["get driver", default: []].append(driverGet)
    let leasedGet = try await timeStore(gets) { i in
        try await driver.withConnection { connection in
            for try await _ in try await connection.execute(GetByID(id: pgbenchID(1 + (i &* 7919) % readSessions)), logger: quiet) {}
        }
    }
    latency["get driver leased", default: []].append(leasedGet)
    let get = try await timeStore(gets) { i in
        _ = try await readStore.session(id: pgbenchID(1 + (i &* 7919) % readSessions))
    }
    let getFloor = try runPgbench("get.sql", schema: readSchema, callers: 1, transactions: gets)
    let create = try await timeStore(latencyCreates) { i in
        try await createStore.create(
            NewPaymentSession(
                cartID: "latency-\(round)-\(i)", providerID: "stripe", data: ["client_secret": "pi_123_secret"], amount: 4200,
                currencyCode: "usd"))
    }
    let createFloor = try runPgbench("create-store.sql", schema: createFloorSchema, callers: 1, transactions: latencyCreates)
    for (name, run) in [("get", get), ("get floor", getFloor), ("create", create), ("create floor", createFloor)] {
        latency[name, default: []].append(run)
    }
    print(String(format: "round %d, one caller: get %.1f µs (postgres-nio %.1f µs, pgbench %.1f µs), create %.1f µs (pgbench %.1f µs), medians",
        round, get.median * 1000, driverGet.median * 1000, getFloor.median * 1000, create.median * 1000, createFloor.median * 1000))
}
@MainActor func medianOf(_ name: String, _ value: (Run) -> Double) -> Double {
    let values = (latency[name] ?? []).map(value).sorted()
    return values.isEmpty ? .nan : values[(values.count - 1) / 2]
}
print(String(format: "\nmedians of %d rounds, one caller (µs per call, median; p99):", rounds))
print("operation | store | pgbench -M prepared | store / pgbench")
for operation in ["get", "create"] {
    let store = medianOf(operation, \.median) * 1000
    let floor = medianOf(operation + " floor", \.median) * 1000
    print(String(format: "%@ | %.1f (p99 %.1f) | %.1f (p99 %.1f) | %.2f", operation, store, medianOf(operation, \.p99) * 1000,
        floor, medianOf(operation + " floor", \.p99) * 1000, store / floor))
}
print(String(format: "get through postgres-nio alone (a prepared select on a held connection): %.1f (p99 %.1f), %.2f of pgbench",
    medianOf("get driver", \.median) * 1000, medianOf("get driver", \.p99) * 1000,
    medianOf("get driver", \.median) / medianOf("get floor", \.median)))
print(String(format: "the same, leasing the connection from postgres-nio's pool for each select: %.1f (p99 %.1f), %.2f of pgbench",
    medianOf("get driver leased", \.median) * 1000, medianOf("get driver leased", \.p99) * 1000,
    medianOf("get driver leased", \.median) / medianOf("get floor", \.median)))
print("this process's CPU time and context switches per get (median of rounds): user µs | system µs | switches")
for (label, name) in [("store", "get"), ("postgres-nio, held connection", "get driver"), ("postgres-nio, leased", "get driver leased")] {
    print(String(format: "%@ | %.1f | %.1f | %.2f", label, medianOf(name) { $0.usagePerCall?.userMicroseconds ?? .nan },
        medianOf(name) { $0.usagePerCall?.systemMicroseconds ?? .nan }, medianOf(name) { $0.usagePerCall?.switches ?? .nan }))
}
if latencyOnly {
    try server.stop()
    exit(0)
}

let (store, _) = try await makeStore(prefix: "scaling_store")
// The same store with postgres-nio's default pool (20 connections): callers beyond it wait
// for a connection in the store's process instead of running as backends on the server.
let defaultPool = PostgresClient.Configuration.Options().maximumConnections
let (pooledStore, _) = try await makeStore(prefix: "scaling_pooled", maximumConnections: defaultPool)
var floorSchemas: [String: String] = [:]
for script in ["create-store.sql", "create-counter.sql", "create-plain.sql"] {
    floorSchemas[script] = try await makeStore(prefix: "scaling_" + script.dropFirst("create-".count).dropLast(".sql".count)).schema
}
let sampler = PostgresClient(configuration: try PostgresStoreURL(url).configuration, backgroundLogger: quiet)
Task.detached { await sampler.run() }

var results: [String: [Run]] = [:]
for round in 0..<rounds {
    for callers in callerCounts {
        for (label, key, measured) in [("store", "store", store), ("store, \(defaultPool) connections", "pooled", pooledStore)] {
            let run = try await runStore(measured, callers: callers, round: round, sampler: sampler)
            results["\(key) \(callers)", default: []].append(run)
            let waits = run.lockWaits.isEmpty ? "none" : run.lockWaits.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
            print(String(format: "round %d, %3d callers, %@: %7.0f creates/s, p99 %7.1f ms, feed lag p99 %@ ms, writer lock waits sampled: %@",
                round, callers, label, run.perSecond, run.p99, run.feedLagP99.map { String(format: "%.1f", $0) } ?? "-", waits))
        }
        for (script, schema) in floorSchemas.sorted(by: { $0.key < $1.key }) {
            let floor = try runPgbench(script, schema: schema, callers: callers)
            results["\(script) \(callers)", default: []].append(floor)
            print(String(format: "round %d, %3d callers, pgbench %@: %7.0f tps, p99 %7.1f ms", round, callers, script, floor.perSecond, floor.p99))
        }
    }
}

func median(_ values: [Double]) -> Double { percentile(values, 0.5) }
print("\nmedians of \(rounds) rounds, \(creates) creates each (creates per second, p99 ms):")
print("callers | store | store, \(defaultPool) connections | pgbench: store's statements | pgbench: counter row (previous release) | pgbench: plain insert | store / store's statements | store / plain | \(defaultPool) connections / store's statements")
for callers in callerCounts {
    let store = results["store \(callers)"] ?? []
    let pooled = results["pooled \(callers)"] ?? []
    let statements = results["create-store.sql \(callers)"] ?? []
    let counter = results["create-counter.sql \(callers)"] ?? []
    let plain = results["create-plain.sql \(callers)"] ?? []
    let s = median(store.map(\.perSecond))
    let p = median(pooled.map(\.perSecond))
    print(String(format: "%d | %.0f (p99 %.1f, lag p99 %.1f) | %.0f (p99 %.1f, lag p99 %.1f) | %.0f (p99 %.1f) | %.0f (p99 %.1f) | %.0f (p99 %.1f) | %.2f | %.2f | %.2f",
        callers, s, median(store.map(\.p99)), median(store.compactMap(\.feedLagP99)),
        p, median(pooled.map(\.p99)), median(pooled.compactMap(\.feedLagP99)),
        median(statements.map(\.perSecond)), median(statements.map(\.p99)),
        median(counter.map(\.perSecond)), median(counter.map(\.p99)),
        median(plain.map(\.perSecond)), median(plain.map(\.p99)),
        s / median(statements.map(\.perSecond)), s / median(plain.map(\.perSecond)), p / median(statements.map(\.perSecond))))
}
try server.stop()
