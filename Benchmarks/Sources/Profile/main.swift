// A fixed workload for `valgrind --tool=callgrind` (instruction counts are repeatable
// on a noisy machine, where wall-clock times are not):
//
//   swift build -c release --package-path Benchmarks --product Profile
//   valgrind --tool=callgrind Benchmarks/.build/release/Profile get 20000
//   valgrind --tool=callgrind Benchmarks/.build/release/Profile create 5000
import BenchmarkSupport
import Foundation
import PaymentSessions

let arguments = CommandLine.arguments
let mode = arguments.count > 1 ? arguments[1] : "get"
let count = arguments.count > 2 ? Int(arguments[2]) ?? 10_000 : 10_000
var options = PaymentSessionStore.Options()
// PROFILE_DURABLE=1 keeps fsync (for timing group commit; callgrind wants it off).
options.environment.durability = ProcessInfo.processInfo.environment["PROFILE_DURABLE"] == "1" ? .full : .noSync
let store = try PaymentSessionStore(path: Workload.directory("profile"), options: options)
let preload = 1000
try store.write { tx in for i in 0..<preload { try tx.create(Workload.newSession(i)) } }
let ids = (0..<preload).map { Workload.sessionID($0) }
let carts = (0..<preload).map { Workload.cartID($0) }
let sessions = mode.hasSuffix("create") ? (0..<count).map { Workload.newSession($0, seed: 7) } : []
var checksum = 0
switch mode {
case "get":
    for i in 0..<count { checksum &+= try store.session(id: ids[i % preload])?.cartID.utf8.count ?? 0 }
case "cart":
    for i in 0..<count { checksum &+= try store.sessions(cartID: carts[i % preload]).count }
case "create":
    try store.write { tx in for session in sessions { checksum &+= try tx.create(session).id.utf8.count } }
case "async-create":
    // 32 tasks sharing group commits, as in the "128 durable creates" benchmark.
    let shared = sessions
    let firstTransaction = store.environment.info().lastTransactionID
    let started = DispatchTime.now().uptimeNanoseconds
    defer {
        let commits = store.environment.info().lastTransactionID - firstTransaction
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
    // As the "128 durable creates, 32 tasks" benchmark: each round starts 32 tasks that
    // make 4 creates each (or the third argument), building their inputs as they go.
    // `count` is the number of rounds.
    let perTask = arguments.count > 3 ? Int(arguments[3]) ?? 4 : 4
    let tasks = arguments.count > 4 ? Int(arguments[4]) ?? 32 : 32
    let firstTransaction = store.environment.info().lastTransactionID
    var times: [Double] = []
    for round in 0..<count {
        let started = DispatchTime.now().uptimeNanoseconds
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    for i in stride(from: task, to: tasks * perTask, by: tasks) {
                        _ = try? await store.create(Workload.newSession(i, seed: 1000 + round))
                    }
                }
            }
        }
        times.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6)
    }
    let commits = store.environment.info().lastTransactionID - firstTransaction
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
    let fields = (0..<count).map {
        (Workload.sessionID($0, seed: 7), Workload.cartID($0, seed: 7), Workload.providerID($0), Workload.idempotencyKey($0, seed: 7))
    }
    raw.createMany(count) { fields[$0] }
case "raw-get":
    let raw = RawLMDB(path: Workload.directory("profile-raw"), durable: false, recordSize: Fixtures.recordSize)
    raw.createMany(preload) { (Workload.sessionID($0), Workload.cartID($0), Workload.providerID($0), Workload.idempotencyKey($0)) }
    for i in 0..<count { checksum &+= raw.get(id: ids[i % preload])?.count ?? 0 }
default:
    print("modes: get, cart, create, async-create, raw-create, raw-get")
}
print(checksum)
