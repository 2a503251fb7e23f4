// The scale run: load the same sessions into the store, raw liblmdb (the floor) and SQLite
// at its best, side by side in one process, and report at each size (10k, 100k, 1M, 10M by
// default) the load time, file bytes per session, the process's resident memory, and the
// median latency of a get by id and of a cart's sessions, with a warm and with a dropped
// page cache.
//
//   swift run -c release --package-path Benchmarks Scale > scale.json        # 10,000,000
//   SCALE_SESSIONS=1000000 swift run -c release --package-path Benchmarks Scale
//   SCALE_READAHEAD=0 ...        both LMDB environments with MDB_NORDAHEAD
//
// It prints one JSON object per measurement on stdout (Benchmarks/plot.py draws them) and a
// Markdown table on stderr. It is a plain executable rather than an ordo-one benchmark
// because one load of ten million sessions is the measurement (ordo-one repeats a closure).
// Dropping the page cache needs root (`/proc/sys/vm/drop_caches`); without it the cold
// figures are reported as warm ones and say so.
import BenchmarkSupport
import Foundation
import PaymentSessions

let total = Int(ProcessInfo.processInfo.environment["SCALE_SESSIONS"] ?? "") ?? 10_000_000
let checkpoints = [10_000, 100_000, 1_000_000, 10_000_000].filter { $0 < total } + [total]
let batch = 10_000
let warmProbes = 20_000
let coldProbes = 2_000
/// SCALE_READAHEAD=0 opens both LMDB environments with `MDB_NORDAHEAD`.
let readAhead = ProcessInfo.processInfo.environment["SCALE_READAHEAD"] != "0"

/// One implementation under test.
protocol Subject {
    var name: String { get }
    /// Loads `range` in one transaction; returns the seconds the write took (inputs are
    /// built before the clock starts).
    mutating func load(_ range: Range<Int>) throws -> Double
    func get(_ id: String) throws -> Int
    func cart(_ id: String) throws -> Int
    func fileBytes() -> Int
    /// Closes the files (unmapping them: a mapped page survives a dropped cache), runs
    /// `between`, and opens them again.
    mutating func reopen(between: () -> Void) throws
}

func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
}

struct StoreSubject: Subject {
    let name = "store"
    let path = Workload.directory("scale-store")
    var store: PaymentSessionStore
    init() throws { store = try Self.open(path) }
    static func open(_ path: String) throws -> PaymentSessionStore {
        var options = PaymentSessionStore.Options()
        options.environment.mapSize = 1 << 30
        options.environment.readAhead = readAhead
        return try PaymentSessionStore(path: path, options: options)
    }
    mutating func load(_ range: Range<Int>) throws -> Double {
        let inputs = range.map { Workload.newSession($0) }
        let began = DispatchTime.now().uptimeNanoseconds
        try store.write { tx in for input in inputs { try tx.create(input) } }
        return Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
    }
    func get(_ id: String) throws -> Int { try store.session(id: id)?.cartID.utf8.count ?? 0 }
    func cart(_ id: String) throws -> Int { try store.sessions(cartID: id).count }
    func fileBytes() -> Int { fileSize(path + "/data.mdb") }
    mutating func reopen(between: () -> Void) throws {
        store = try PaymentSessionStore(path: Workload.directory("scale-placeholder"))
        between()
        store = try Self.open(path)
    }
}

struct FloorSubject: Subject {
    let name = "floor"
    let path = Workload.directory("scale-raw")
    var raw: RawLMDB
    init() { raw = RawLMDB(path: path, durable: true, recordSize: Fixtures.recordSize, mapSize: 64 << 30, readAhead: readAhead) }
    mutating func load(_ range: Range<Int>) throws -> Double {
        let inputs = range.map { Workload.floorFields($0) }
        let began = DispatchTime.now().uptimeNanoseconds
        raw.createMany(inputs.count) { inputs[$0] }
        return Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
    }
    func get(_ id: String) throws -> Int { raw.get(id: id)?.count ?? 0 }
    func cart(_ id: String) throws -> Int { raw.cartSessions(cart: id).count }
    func fileBytes() -> Int { fileSize(path + "/data.mdb") }
    mutating func reopen(between: () -> Void) throws {
        raw = RawLMDB(path: Workload.directory("scale-placeholder"), durable: true, recordSize: 1, mapSize: 1 << 20)
        between()
        raw = RawLMDB(path: path, durable: true, recordSize: Fixtures.recordSize, mapSize: 64 << 30, readAhead: readAhead)
    }
}

struct SQLiteSubject: Subject {
    let name = "sqlite"
    let path = Workload.directory("scale-sqlite")
    var sqlite: BestSQLite
    init() throws { sqlite = try BestSQLite(directory: path, durable: true) }
    mutating func load(_ range: Range<Int>) throws -> Double {
        let began = DispatchTime.now().uptimeNanoseconds
        try sqlite.createMany(range, seed: 0)
        return Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
    }
    func get(_ id: String) throws -> Int { try sqlite.get(id: id)?.cartID.utf8.count ?? 0 }
    func cart(_ id: String) throws -> Int { try sqlite.cartSessions(cart: id).count }
    func fileBytes() -> Int { sqlite.fileBytes() }
    mutating func reopen(between: () -> Void) throws {
        sqlite = try BestSQLite(directory: Workload.directory("scale-placeholder"), durable: true)
        between()
        sqlite = try BestSQLite(directory: path, durable: true)
    }
}

/// Median nanoseconds per call of `call` over `ids`, timed in batches of 100.
func median(_ ids: [String], _ call: (String) throws -> Int) rethrows -> Double {
    var perBatch: [Double] = []
    var checksum = 0
    for start in stride(from: 0, to: ids.count, by: 100) {
        let began = DispatchTime.now().uptimeNanoseconds
        for id in ids[start..<min(start + 100, ids.count)] { checksum &+= try call(id) }
        perBatch.append(Double(DispatchTime.now().uptimeNanoseconds - began) / Double(min(100, ids.count - start)))
    }
    precondition(checksum > 0, "the calls found nothing")
    return perBatch.sorted()[perBatch.count / 2]
}

func randomSessions(_ count: Int, below loaded: Int) -> [String] {
    (0..<count).map { _ in Workload.sessionID(Int.random(in: 0..<loaded)) }
}

func randomCarts(_ count: Int, below loaded: Int) -> [String] {
    (0..<count).map { _ in Workload.cartID(Int.random(in: 0..<loaded)) }
}

func dropPageCache() -> Bool {
    sync()
    return (try? "3\n".write(toFile: "/proc/sys/vm/drop_caches", atomically: false, encoding: .utf8)) != nil
}

/// The process's resident memory in bytes: all of it, and the part that is anonymous
/// (heap) rather than mapped files (LMDB's map is file pages, counted while touched).
func residentMemory() -> (total: Int, anonymous: Int) {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
    func kilobytes(_ field: String) -> Int {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return 0 }
        return (Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0) * 1024
    }
    return (kilobytes("VmRSS"), kilobytes("RssAnon"))
}

func emit(_ fields: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
    FileHandle.standardOutput.write(data + Data("\n".utf8))
}

func log(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }

var subjects: [any Subject] = [try StoreSubject(), FloorSubject(), try SQLiteSubject()]
var loadSeconds = [Double](repeating: 0, count: subjects.count)
var loaded = 0
var table: [String] = []
let canDrop = dropPageCache()
emit(["kind": "run", "sessions": total, "batch": batch, "page_cache_dropped": canDrop, "read_ahead": readAhead])
for checkpoint in checkpoints {
    while loaded < checkpoint {
        let range = loaded..<min(loaded + batch, checkpoint)
        for index in subjects.indices { loadSeconds[index] += try subjects[index].load(range) }
        loaded = range.upperBound
        if loaded % 1_000_000 == 0 { log("loaded \(loaded)") }
    }
    let memory = residentMemory()
    var warm: [(get: Double, cart: Double)] = []
    for index in subjects.indices {
        let subject = subjects[index]
        let get = try median(randomSessions(warmProbes, below: loaded)) { try subject.get($0) }
        let cart = try median(randomCarts(warmProbes / 4, below: loaded)) { try subject.cart($0) }
        warm.append((get, cart))
    }
    var cold: [(get: Double, cart: Double)] = []
    for index in subjects.indices {
        // Each subject starts from a dropped cache, so that none warms the disk for another.
        try subjects[index].reopen { _ = dropPageCache() }
        var subject = subjects[index]
        let get = try median(randomSessions(coldProbes, below: loaded)) { try subject.get($0) }
        try subjects[index].reopen { _ = dropPageCache() }
        subject = subjects[index]
        let cart = try median(randomCarts(coldProbes, below: loaded)) { try subject.cart($0) }
        cold.append((get, cart))
    }
    for index in subjects.indices {
        let bytes = subjects[index].fileBytes()
        emit([
            "kind": "size", "subject": subjects[index].name, "sessions": loaded,
            "load_seconds": loadSeconds[index], "file_bytes": bytes, "bytes_per_session": bytes / loaded,
            "get_warm_ns": warm[index].get, "cart_warm_ns": warm[index].cart,
            "get_cold_ns": cold[index].get, "cart_cold_ns": cold[index].cart,
            "process_resident_bytes": memory.total, "process_anonymous_bytes": memory.anonymous,
        ])
        table.append(
            "| \(loaded) | \(subjects[index].name) | \(String(format: "%.1f", loadSeconds[index])) s | \(bytes / loaded) | "
                + [warm[index].get, cold[index].get, warm[index].cart, cold[index].cart].map { String(format: "%.2f µs", $0 / 1000) }
                .joined(separator: " | ") + " |")
    }
    log("measured at \(loaded)")
}
log("| sessions | subject | load | bytes/session | get warm | get cold | cart warm | cart cold |")
log("|---:|---|---:|---:|---:|---:|---:|---:|")
for line in table { log(line) }
