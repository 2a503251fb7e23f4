// A fixed workload for `valgrind --tool=callgrind` (instruction counts are repeatable
// on a noisy machine, where wall-clock times are not):
//
//   swift build -c release --package-path Benchmarks --product Profile
//   valgrind --tool=callgrind Benchmarks/.build/release/Profile get 20000
//   valgrind --tool=callgrind Benchmarks/.build/release/Profile create 5000
import BenchmarkSupport
import Foundation
import Metrics
@_spi(StorageTesting) import PaymentSessions
import Prometheus

let arguments = CommandLine.arguments
let mode = arguments.count > 1 ? arguments[1] : "get"
let count = arguments.count > 2 ? Int(arguments[2]) ?? 10_000 : 10_000
var options = PaymentSessionStore.Options()
// PROFILE_DURABLE=1 keeps fsync (for timing group commit; callgrind wants it off).
options.environment.durability = ProcessInfo.processInfo.environment["PROFILE_DURABLE"] == "1" ? .full : .noSync
let preload = 1000

/// A store at a fresh path holding sessions `0..<preload`.
func preloadedStore(_ name: String, options: PaymentSessionStore.Options) throws -> PaymentSessionStore {
    let store = try PaymentSessionStore(path: Workload.directory(name), options: options)
    try store.write { tx in for i in 0..<preload { try tx.create(Workload.newSession(i)) } }
    return store
}
let store = try preloadedStore("profile", options: options)
let ids = (0..<preload).map { Workload.sessionID($0) }
let carts = (0..<preload).map { Workload.cartID($0) }
let sessions = mode.hasSuffix("create") ? (0..<count).map { Workload.newSession($0, seed: 7) } : []
var checksum = 0

/// Prints the medians of two series measured alternately, and their ratio.
func printRatio(_ name: String, _ first: [Double], _ second: [Double], unit: String) {
    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    let (a, b) = (median(first), median(second))
    print("\(name): medians \(String(format: "%.2f", a)) and \(String(format: "%.2f", b)) \(unit), ratio \(String(format: "%.3f", a / b))")
}

/// Times `first` and `second` in turns, `rounds` times each (which goes first alternates
/// too), so that the machine's swings hit both alike; prints the medians of their times in
/// nanoseconds divided by `per`, and the ratio.
func alternate(
    _ name: String, rounds: Int, per: Double, unit: String, _ first: (Int) throws -> Void, _ second: (Int) throws -> Void
) rethrows {
    func nanoseconds(_ body: () throws -> Void) rethrows -> Double {
        let started = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - started) / per
    }
    var firstTimes: [Double] = [], secondTimes: [Double] = []
    for round in 0..<rounds {
        if round % 2 == 0 {
            firstTimes.append(try nanoseconds { try first(round) })
            secondTimes.append(try nanoseconds { try second(round) })
        } else {
            secondTimes.append(try nanoseconds { try second(round) })
            firstTimes.append(try nanoseconds { try first(round) })
        }
    }
    printRatio(name, firstTimes, secondTimes, unit: unit)
}

/// The `create` loop, a function of its own for callgrind's `--toggle-collect`.
@inline(never)
func createAll(_ tx: PaymentSessionStore.WriteTransaction) throws -> Int {
    var total = 0
    for session in sessions { total &+= try tx.create(session).id.utf8.count }
    return total
}

/// The `create-text` loop: each `NewPaymentSession` is built (its text checked) and created.
@inline(never)
func createAllFromText(
    _ tx: PaymentSessionStore.WriteTransaction, _ fields: [(id: String, cart: String, provider: String, key: String)],
    _ texts: [[UInt8]]
) throws -> Int {
    var total = 0
    for index in fields.indices { total &+= try tx.create(Workload.newSession(fields[index], dataText: texts[index])).id.utf8.count }
    return total
}

/// A floor holding the same `preload` sessions as `store`.
func preloadedFloor(_ name: String = "profile-raw", durable: Bool) -> RawLMDB {
    let raw = RawLMDB(path: Workload.directory(name), durable: durable, recordSize: Fixtures.recordSize)
    raw.createMany(preload) { Workload.floorFields($0) }
    return raw
}
switch mode {
case "get":
    for i in 0..<count { checksum &+= try store.session(id: ids[i % preload])?.cartID.utf8.count ?? 0 }
case "cart":
    for i in 0..<count { checksum &+= try store.sessions(cartID: carts[i % preload]).count }
case "create":
    try store.write { tx in checksum &+= try createAll(tx) }
case "encode-data":
    // Encoding `data` from a dictionary alone, as a create does it, per session.
    let inputs = (0..<preload).map { Workload.data($0) }
    let started = DispatchTime.now().uptimeNanoseconds
    for i in 0..<count { checksum &+= try SessionValidation.encodeData(inputs[i % preload], maxBytes: 1 << 20).count }
    print("encode data: \(Double(DispatchTime.now().uptimeNanoseconds - started) / Double(count)) ns each")
case "create-text":
    // As `create`, with `data` given as JSON text, checked inside the loop.
    let texts = (0..<count).map { Workload.dataText($0) }
    let fields = (0..<count).map { Workload.floorFields($0, seed: 7) }
    try store.write { tx in checksum &+= try createAllFromText(tx, fields, texts) }
case "async-create":
    // 32 tasks sharing group commits, as in the "128 durable creates" benchmark.
    let shared = sessions
    let firstTransaction = (try store.rawStorage.lastTransactionID())
    let started = DispatchTime.now().uptimeNanoseconds
    defer {
        let commits = ((try? store.rawStorage.lastTransactionID()) ?? firstTransaction) - firstTransaction
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
        print("\(shared.count) creates, \(commits) commits, \(String(format: "%.1f", elapsed)) ms")
    }
    checksum = try await withThrowingTaskGroup(of: Int.self) { group in
        for task in 0..<32 {
            group.addTask {
                var sum = 0
                for index in stride(from: task, to: shared.count, by: 32) { sum &+= try await store.create(shared[index]).id.utf8.count }
                return sum
            }
        }
        var total = 0
        for try await sum in group { total &+= sum }
        return total
    }
case "async-rounds":
    // Each round starts 32 tasks (or the fourth argument) that make 4 creates each (or the
    // third argument), building their inputs as they go, as the "1024 durable creates"
    // benchmark does with 1024 / tasks each. `count` is the number of rounds.
    let perTask = arguments.count > 3 ? Int(arguments[3]) ?? 4 : 4
    let tasks = arguments.count > 4 ? Int(arguments[4]) ?? 32 : 32
    let firstTransaction = (try store.rawStorage.lastTransactionID())
    var times: [Double] = []
    for round in 0..<count {
        let started = DispatchTime.now().uptimeNanoseconds
        await Workload.spread(tasks * perTask, overTasks: tasks) { _ = try? await store.create(Workload.newSession($0, seed: 1000 + round)) }
        times.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6)
    }
    let commits = (try store.rawStorage.lastTransactionID()) - firstTransaction
    times.sort()
    print("\(count) rounds of \(tasks * perTask) creates by \(tasks) tasks, \(commits) commits, median \(String(format: "%.2f", times[times.count / 2])) ms")
case "durable-create":
    // One create per transaction, timed one by one (run with PROFILE_DURABLE=1).
    let inputs = (0..<count).map { Workload.newSession($0, seed: 11) }
    var times: [Double] = []
    for input in inputs {
        let started = DispatchTime.now().uptimeNanoseconds
        checksum &+= try store.create(input).id.utf8.count
        times.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e3)
    }
    times.sort()
    print("\(count) durable creates: median \(String(format: "%.1f", times[count / 2])) µs, p90 \(String(format: "%.1f", times[count * 9 / 10])) µs")
case "raw-create":
    let raw = RawLMDB(path: Workload.directory("profile-raw"), durable: false, recordSize: Fixtures.recordSize)
    let fields = (0..<count).map { Workload.floorFields($0, seed: 7) }
    raw.createMany(count) { fields[$0] }
case "raw-get":
    let raw = preloadedFloor(durable: false)
    for i in 0..<count { checksum &+= raw.get(id: ids[i % preload])?.count ?? 0 }
case "get-ab":
    // The store's get by id and the floor's, in batches of 1,000; medians per get.
    let raw = preloadedFloor(durable: false)
    try alternate("get by id, store / floor", rounds: count, per: 1000, unit: "ns per get") { batch in
        for i in 0..<1000 { checksum &+= try store.session(id: ids[(batch &* 1000 &+ i &* 7919) % preload]) == nil ? 0 : 1 }
    } _: { batch in
        for i in 0..<1000 { checksum &+= raw.get(id: ids[(batch &* 1000 &+ i &* 7919) % preload]) == nil ? 0 : 1 }
    }
case "cart-ab":
    // A cart's sessions, the store's and the floor's, in batches of 1,000.
    let raw = preloadedFloor(durable: false)
    try alternate("a cart's sessions, store / floor", rounds: count, per: 1000, unit: "ns per call") { batch in
        for i in 0..<1000 { checksum &+= try store.sessions(cartID: carts[(batch &* 1000 &+ i &* 7919) % preload]).count }
    } _: { batch in
        for i in 0..<1000 { checksum &+= raw.cartSessions(cart: carts[(batch &* 1000 &+ i &* 7919) % preload]).count }
    }
case "bulk-ab":
    // 1,000 creates in one transaction (durable commits with PROFILE_DURABLE=1, as in the
    // benchmark); `count` rounds each, inputs built beforehand.
    let raw = preloadedFloor(durable: options.environment.durability == .full)
    let inputs = (0..<count).map { round in (0..<1000).map { Workload.newSession($0, seed: 5000 + round) } }
    let fields = (0..<count).map { round in (0..<1000).map { Workload.floorFields($0, seed: 5000 + round) } }
    try alternate("bulk create, store / floor", rounds: count, per: 1000, unit: "ns per create") { round in
        try store.write { tx in for input in inputs[round] { checksum &+= try tx.create(input).id.utf8.count } }
    } _: { round in
        raw.createMany(1000) { fields[round][$0] }
    }
case "bulk-text-ab":
    // As `bulk-ab`, with `data` given as JSON text (checked inside the measurement).
    let raw = preloadedFloor(durable: options.environment.durability == .full)
    let texts = (0..<1000).map { Workload.dataText($0) }
    let fields = (0..<count).map { round in (0..<1000).map { Workload.floorFields($0, seed: 5000 + round) } }
    try alternate("bulk create from text, store / floor", rounds: count, per: 1000, unit: "ns per create") { round in
        try store.write { tx in checksum &+= try createAllFromText(tx, fields[round], texts) }
    } _: { round in
        raw.createMany(1000) { fields[round][$0] }
    }
case "durable-ab":
    // One durable create per transaction (PROFILE_DURABLE=1), create by create: the
    // disk's swings hit both alike. PROFILE_CONTROL=1 puts a second floor in the store's
    // place, to show that the alternation favours neither.
    let raw = preloadedFloor(durable: options.environment.durability == .full)
    let control = ProcessInfo.processInfo.environment["PROFILE_CONTROL"] == "1" ? preloadedFloor("profile-control", durable: raw.durable) : nil
    let inputs = (0..<count).map { Workload.newSession($0, seed: 11) }
    let fields = (0..<count).map { Workload.floorFields($0, seed: 11) }
    try alternate("durable create, \(control == nil ? "store" : "control") / floor", rounds: count, per: 1000, unit: "µs") { index in
        if let control {
            let (id, cart, provider, key) = fields[index]
            control.create(id: id, cart: cart, provider: provider, key: key)
        } else {
            checksum &+= try store.create(inputs[index]).id.utf8.count
        }
    } _: { index in
        let (id, cart, provider, key) = fields[index]
        raw.create(id: id, cart: cart, provider: provider, key: key)
    }
case "mix-ab":
    // The checkout mix, durable (PROFILE_DURABLE=1): per round 5 cart reads, 2 gets and 3
    // selects, on the store and on the floor in turns, as the library benchmark runs it.
    let raw = preloadedFloor(durable: options.environment.durability == .full)
    try alternate("checkout mix x10, store / floor", rounds: count, per: 1, unit: "ns per mix") { round in
        for op in 0..<10 {
            let i = (round &* 31 &+ op &* 7919) % preload
            switch op {
            case 0..<5: checksum &+= try store.sessions(cartID: carts[i]).count
            case 5..<7: checksum &+= try store.session(id: ids[i]) == nil ? 0 : 1
            default: checksum &+= try store.select(id: ids[i]).id.utf8.count
            }
        }
    } _: { round in
        for op in 0..<10 {
            let i = (round &* 31 &+ op &* 7919) % preload
            switch op {
            case 0..<5: checksum &+= raw.cartSessions(cart: carts[i]).count
            case 5..<7: checksum &+= raw.get(id: ids[i]) == nil ? 0 : 1
            default: raw.select(id: ids[i], cart: carts[i])
            }
        }
    }
case "async-ab":
    // 1,024 durable creates by 32 tasks through group commit, alternated with the same
    // 1,024 made one commit per call from two threads (PROFILE_DURABLE=1); `count` rounds each.
    var asyncTimes: [Double] = [], syncTimes: [Double] = []
    for round in 0..<count {
        var started = DispatchTime.now().uptimeNanoseconds
        await Workload.spread(1024, overTasks: 32) { _ = try? await store.create(Workload.newSession($0, seed: 2000 + 2 * round)) }
        asyncTimes.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6)
        started = DispatchTime.now().uptimeNanoseconds
        Workload.spread(1024, overThreads: 32) { _ = try? store.create(Workload.newSession($0, seed: 2001 + 2 * round)) }
        syncTimes.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6)
    }
    printRatio("1,024 durable creates, 32 tasks: sync / async", syncTimes, asyncTimes, unit: "ms")
case "late-ab":
    // Group commit with and without late arrivals joining the batch being applied: two
    // stores, 1,024 durable creates by `tasks` tasks (third argument, default 32) on each
    // in turn (PROFILE_DURABLE=1); `count` rounds each.
    let tasks = arguments.count > 3 ? Int(arguments[3]) ?? 32 : 32
    var strictOptions = options
    strictOptions.groupCommit.joinsLateArrivals = false
    let strict = try preloadedStore("profile-strict", options: strictOptions)
    var joining: [Double] = [], exact: [Double] = []
    for round in 0..<count {
        for (target, joins) in round % 2 == 0 ? [(store, true), (strict, false)] : [(strict, false), (store, true)] {
            let started = DispatchTime.now().uptimeNanoseconds
            await Workload.spread(1024, overTasks: tasks) { _ = try? await target.create(Workload.newSession($0, seed: 3000 + round)) }
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
            if joins { joining.append(elapsed) } else { exact.append(elapsed) }
        }
    }
    printRatio("1,024 durable creates, \(tasks) tasks: late arrivals kept out / joining", exact, joining, unit: "ms")
case "sync-threads":
    // The fixed library benchmark of shared sync commits: `count` threads (second argument),
    // each creating a session in a cart of its own and selecting it, with full durability,
    // for SYNC_SECONDS (3); prints one JSON line. It calls only the public synchronous API,
    // so that older versions of the library run it unchanged.
    let seconds = Double(ProcessInfo.processInfo.environment["SYNC_SECONDS"] ?? "") ?? 3
    var durableOptions = PaymentSessionStore.Options()
    durableOptions.environment.durability = .full
    durableOptions.environment.mapSize = 1 << 30
    let target = try PaymentSessionStore(path: Workload.directory("sync-threads"), options: durableOptions)
    let operations = Counter()
    let deadline = Date().addingTimeInterval(seconds)
    let started = DispatchTime.now().uptimeNanoseconds
    Workload.onThreads(count) { thread in
        var index = 0
        while Date() < deadline {
            let new = Workload.newSession(index, seed: 100_000 + thread)
            guard let session = try? target.create(new), (try? target.select(id: session.id)) != nil else { continue }
            operations.add(2)
            index += 1
        }
    }
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    print("{\"threads\":\(count),\"operations\":\(operations.value),\"seconds\":\(String(format: "%.3f", elapsed)),\"operations_per_second\":\(Int(Double(operations.value) / elapsed))}")
case "solo-ab":
    // One thread writing alone: durable creates (PROFILE_DURABLE=1) or fast ones, on a store
    // whose synchronous writes share commits and on one whose writes commit on their own
    // (`sharesSynchronousCommits` off: a plain write transaction), alternated create by create.
    var plainOptions = options
    plainOptions.groupCommit.sharesSynchronousCommits = false
    // PROFILE_CONTROL=1 makes both plain, to show that the alternation favours neither.
    let control = ProcessInfo.processInfo.environment["PROFILE_CONTROL"] == "1"
    let shared = try preloadedStore("profile-shared", options: control ? plainOptions : options)
    let plain = try preloadedStore("profile-plain", options: plainOptions)
    let inputs = (0..<count).map { Workload.newSession($0, seed: 21) }
    let plainInputs = (0..<count).map { Workload.newSession($0, seed: 22) }
    try alternate("one writer alone, \(control ? "control" : "shared") / plain", rounds: count, per: 1000, unit: "µs per create") { index in
        checksum &+= try shared.create(inputs[index]).id.utf8.count
    } _: { index in
        checksum &+= try plain.create(plainInputs[index]).id.utf8.count
    }
case "metrics-ab":
    // What the store's instruments cost once a metrics backend is bootstrapped: `store`
    // was opened before (no instruments), the second store after, with Prometheus; get by
    // id and a cart's sessions on each, in batches of 1,000.
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()))
    let measured = try preloadedStore("profile-metrics", options: options)
    try alternate("get by id, with metrics / without", rounds: count, per: 1000, unit: "ns per get") { batch in
        for i in 0..<1000 { checksum &+= try measured.session(id: ids[(batch &* 1000 &+ i &* 7919) % preload]) == nil ? 0 : 1 }
    } _: { batch in
        for i in 0..<1000 { checksum &+= try store.session(id: ids[(batch &* 1000 &+ i &* 7919) % preload]) == nil ? 0 : 1 }
    }
    try alternate("a cart's sessions, with metrics / without", rounds: count, per: 1000, unit: "ns per call") { batch in
        for i in 0..<1000 { checksum &+= try measured.sessions(cartID: carts[(batch &* 1000 &+ i &* 7919) % preload]).count }
    } _: { batch in
        for i in 0..<1000 { checksum &+= try store.sessions(cartID: carts[(batch &* 1000 &+ i &* 7919) % preload]).count }
    }
case "sqlite-get-ab":
    // The store's get by id against SQLite at its best (prepared statement, decoded the
    // same way), batches of 1,000 alternated; medians per get.
    let sqlite = try BestSQLite(directory: Workload.directory("profile-sqlite"), durable: false)
    try sqlite.createMany(0..<preload, seed: 0)
    try alternate("get by id, store / sqlite", rounds: count, per: 1000, unit: "ns per get") { batch in
        for i in 0..<1000 { checksum &+= try store.session(id: ids[(batch &* 1000 &+ i &* 7919) % preload]) == nil ? 0 : 1 }
    } _: { batch in
        for i in 0..<1000 { checksum &+= try sqlite.get(id: ids[(batch &* 1000 &+ i &* 7919) % preload]) == nil ? 0 : 1 }
    }
case "sqlite-bulk-ab":
    // 1,000 creates in one durable transaction (PROFILE_DURABLE=1), the store's and SQLite's
    // at its best, alternated; `count` rounds each.
    let durable = options.environment.durability == .full
    let sqlite = try BestSQLite(directory: Workload.directory("profile-sqlite"), durable: durable)
    try sqlite.createMany(0..<preload, seed: 0)
    let inputs = (0..<count).map { round in (0..<1000).map { Workload.newSession($0, seed: 5000 + round) } }
    try alternate("bulk create, store / sqlite", rounds: count, per: 1000, unit: "ns per create") { round in
        try store.write { tx in for input in inputs[round] { checksum &+= try tx.create(input).id.utf8.count } }
    } _: { round in
        try sqlite.createMany(0..<1000, seed: 5000 + round)
    }
default:
    print("modes: get, cart, create, encode-data, create-text, async-create, async-rounds, durable-create, raw-create, raw-get, get-ab, cart-ab, bulk-ab, bulk-text-ab, durable-ab, mix-ab, async-ab, late-ab, sync-threads THREADS, solo-ab, sqlite-get-ab, sqlite-bulk-ab")
}
print(checksum)

/// Operations counted by several threads.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add(_ n: Int) { lock.withLock { count += n } }
    var value: Int { lock.withLock { count } }
}
