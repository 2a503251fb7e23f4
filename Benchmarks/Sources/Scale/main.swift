// The scale run of issue 6: load the same sessions into the store, raw liblmdb (the
// floor) and SQLite through GRDB, side by side, and report the load time, the file size
// per session, get-by-id latency as the data grows, and a cold open.
//
//   swift run -c release --package-path Benchmarks Scale            # 1,000,000 sessions
//   SCALE_SESSIONS=100000 swift run -c release --package-path Benchmarks Scale
//
// It is a plain executable rather than an ordo-one benchmark because one load of a
// million sessions is the measurement (ordo-one repeats a closure); latencies are medians
// of batches of timed gets.
import BenchmarkSupport
import GRDB
import Foundation
import PaymentSessions

let total = Int(ProcessInfo.processInfo.environment["SCALE_SESSIONS"] ?? "") ?? 1_000_000
let checkpoints = [10_000, 100_000, 1_000_000].filter { $0 <= total } + (total > 1_000_000 || ![10_000, 100_000, 1_000_000].contains(total) ? [total] : [])
let batch = 10_000
let probes = 20_000

/// One implementation under test.
protocol Subject {
    var name: String { get }
    /// Loads `range` in one transaction; returns the seconds the write took (inputs are
    /// built before the clock starts, except in GRDB's, which binds them as it inserts).
    mutating func load(_ range: Range<Int>) throws -> Double
    func get(_ id: String) throws -> Int
    func fileBytes() -> Int
    mutating func reopen() throws
}

func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
}

struct StoreSubject: Subject {
    let name = "store"
    let path = Workload.directory("scale-store")
    var store: PaymentSessionStore
    init() throws {
        var options = PaymentSessionStore.Options()
        options.environment.mapSize = 8 << 30
        store = try PaymentSessionStore(path: path, options: options)
    }
    mutating func load(_ range: Range<Int>) throws -> Double {
        let inputs = range.map { Workload.newSession($0) }
        let began = DispatchTime.now().uptimeNanoseconds
        try store.write { tx in for input in inputs { try tx.create(input) } }
        return Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
    }
    func get(_ id: String) throws -> Int { try store.session(id: id)?.cartID.utf8.count ?? 0 }
    func fileBytes() -> Int { fileSize(path + "/data.mdb") }
    mutating func reopen() throws {
        store = try PaymentSessionStore(path: Workload.directory("scale-placeholder"))
        var options = PaymentSessionStore.Options()
        options.environment.mapSize = 8 << 30
        store = try PaymentSessionStore(path: path, options: options)
    }
}

struct RawSubject: Subject {
    let name = "raw"
    let path = Workload.directory("scale-raw")
    var raw: RawLMDB
    init() { raw = RawLMDB(path: path, durable: true, recordSize: Fixtures.recordSize) }
    mutating func load(_ range: Range<Int>) throws -> Double {
        let inputs = range.map { Workload.floorFields($0) }
        let began = DispatchTime.now().uptimeNanoseconds
        raw.createMany(inputs.count) { inputs[$0] }
        return Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
    }
    func get(_ id: String) throws -> Int { raw.get(id: id)?.count ?? 0 }
    func fileBytes() -> Int { fileSize(path + "/data.mdb") }
    mutating func reopen() throws {
        raw = RawLMDB(path: Workload.directory("scale-placeholder"), durable: true, recordSize: 1)
        raw = RawLMDB(path: path, durable: true, recordSize: Fixtures.recordSize)
    }
}

struct SQLiteSubject: Subject {
    let name = "grdb"
    let path = Workload.directory("scale-grdb")
    var sqlite: SQLiteSessions
    init() throws { sqlite = try SQLiteSessions(path: path, durable: true) }
    mutating func load(_ range: Range<Int>) throws -> Double {
        let began = DispatchTime.now().uptimeNanoseconds
        try sqlite.createMany(range, seed: 0)
        return Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
    }
    func get(_ id: String) throws -> Int { try sqlite.get(id: id)?.cartID.utf8.count ?? 0 }
    func fileBytes() -> Int {
        _ = try? sqlite.pool.writeWithoutTransaction { try $0.checkpoint(.truncate) }
        return fileSize(path + "/sessions.sqlite") + fileSize(path + "/sessions.sqlite-wal")
    }
    mutating func reopen() throws {
        sqlite = try SQLiteSessions(path: Workload.directory("scale-placeholder"), durable: true)
        sqlite = try SQLiteSessions(path: path, durable: true)
    }
}

/// Median nanoseconds per get over `probes` random existing ids, timed in batches of 100.
func medianGet(_ subject: some Subject, loaded: Int, seed: UInt64) throws -> Double {
    var rng = SystemRandomNumberGenerator()
    _ = seed
    let ids = (0..<probes).map { _ in Workload.sessionID(Int.random(in: 0..<loaded, using: &rng)) }
    var perBatch: [Double] = []
    var checksum = 0
    for start in stride(from: 0, to: probes, by: 100) {
        let began = DispatchTime.now().uptimeNanoseconds
        for id in ids[start..<start + 100] { checksum &+= try subject.get(id) }
        perBatch.append(Double(DispatchTime.now().uptimeNanoseconds - began) / 100)
    }
    precondition(checksum > 0, "gets found nothing")
    return perBatch.sorted()[perBatch.count / 2]
}

func dropPageCache() -> Bool {
    sync()
    return (try? "3\n".write(toFile: "/proc/sys/vm/drop_caches", atomically: false, encoding: .utf8)) != nil
}

func format(_ nanoseconds: Double) -> String { String(format: "%.2f µs", nanoseconds / 1000) }

var subjects: [any Subject] = [try StoreSubject(), RawSubject(), try SQLiteSubject()]
var loadSeconds = [Double](repeating: 0, count: subjects.count)
var latency: [[Double]] = Array(repeating: [], count: subjects.count)
var loaded = 0
for checkpoint in checkpoints {
    while loaded < checkpoint {
        let range = loaded..<min(loaded + batch, checkpoint)
        for index in subjects.indices {
            loadSeconds[index] += try subjects[index].load(range)
        }
        loaded = range.upperBound
    }
    for index in subjects.indices {
        latency[index].append(try medianGet(subjects[index], loaded: loaded, seed: UInt64(checkpoint)))
    }
    FileHandle.standardError.write(Data("loaded \(loaded)\n".utf8))
}

var coldFirst: [Double] = []
var coldMedian: [Double] = []
let dropped = dropPageCache()
for index in subjects.indices {
    _ = dropPageCache()
    let began = DispatchTime.now().uptimeNanoseconds
    try subjects[index].reopen()
    _ = try subjects[index].get(Workload.sessionID(total / 2))
    coldFirst.append(Double(DispatchTime.now().uptimeNanoseconds - began))
    coldMedian.append(try medianGet(subjects[index], loaded: loaded, seed: 99))
}

print("Sessions: \(loaded); page cache dropped before each cold open: \(dropped ? "yes" : "no (not permitted here)")\n")
print("| | " + subjects.map(\.name).joined(separator: " | ") + " |")
print("|---|" + String(repeating: "---:|", count: subjects.count))
print("| load (\(batch) per transaction) | " + loadSeconds.map { String(format: "%.1f s", $0) }.joined(separator: " | ") + " |")
print("| file bytes per session | " + subjects.map { String($0.fileBytes() / loaded) }.joined(separator: " | ") + " |")
for (position, checkpoint) in checkpoints.enumerated() {
    print("| get by id at \(checkpoint) (median) | " + latency.map { format($0[position]) }.joined(separator: " | ") + " |")
}
print("| cold open + first get | " + coldFirst.map(format).joined(separator: " | ") + " |")
print("| get by id after cold open (median) | " + coldMedian.map(format).joined(separator: " | ") + " |")
