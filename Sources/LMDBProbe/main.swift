// A second process for the LMDB layer's cross-process tests.
//
//   lmdb-probe get DIR DB KEY          prints the value (UTF-8) or exits 1 when absent
//   lmdb-probe put DIR DB KEY VALUE    writes and commits, exits 0
//   lmdb-probe hold-write DIR DB KEY   begins a write, puts KEY, prints "holding", then
//                                      sleeps until killed (never commits)
//   lmdb-probe hold-read DIR           begins a read, prints "reading", sleeps until killed
//   lmdb-probe fill DIR DB COUNT SIZE  writes COUNT values of SIZE bytes, one commit each
//   lmdb-probe grow-limited DIR MIB    under an address-space limit MIB above what the
//                                      process uses, writes until the map cannot grow;
//                                      prints the refusal, then reads and writes again
//   lmdb-probe adopt-limited DIR MIB   under the same kind of limit, prints "ready", waits
//                                      for DIR/go, then reads (another process has grown
//                                      the map past the limit meanwhile), twice
//   lmdb-probe stress-gate DIR ROUNDS  readers loop over count, cursor walks, statistics and leaf reads
//                                      while a writer grows a 1 MiB map to 64 MiB, ROUNDS
//                                      times on fresh environments under DIR
import Foundation
import LMDB
import TestSupport

func fail(_ message: String, status: Int32 = 2) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(status)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else { fail("usage: lmdb-probe get|put|hold-write|hold-read|fill DIR ...") }
var options = Environment.Options()
options.mapSize = 1 << 20

/// Caps this process's address space at what it uses now plus `headroom` bytes.
func limitAddressSpace(headroom: Int) {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmSize:") }),
        let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    else { fail("cannot read VmSize") }
    var limit = rlimit(rlim_cur: rlim_t(kib * 1024 + headroom), rlim_max: rlim_t(kib * 1024 + headroom))
    guard setrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0 else { fail("setrlimit failed") }
}

/// "ok" or the failure's code, for one line of output.
func outcome(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "ok"
    } catch let error as LMDBError {
        return "\(error.code)"
    } catch {
        return "\(error)"
    }
}

do {
    let env = try Environment.open(path: arguments[2], options: options)
    switch arguments[1] {
    case "get" where arguments.count == 5:
        let db = try env.database(named: arguments[3], create: false)
        guard let value = try env.read({ try $0.get(arguments[4], in: db) }) else { exit(1) }
        print(String(decoding: value, as: UTF8.self))
    case "put" where arguments.count == 6:
        let db = try env.database(named: arguments[3])
        try env.write { try $0.put(arguments[5], forKey: arguments[4], in: db) }
    case "hold-write" where arguments.count == 5:
        let db = try env.database(named: arguments[3])
        try env.write { txn in
            try txn.put("uncommitted", forKey: arguments[4], in: db)
            print("holding")
            fflush(nil)
            while true { sleep(60) }
        }
    case "hold-read":
        try env.read { _ in
            print("reading")
            fflush(nil)
            while true { sleep(60) }
        }
    case "fill" where arguments.count == 6:
        let db = try env.database(named: arguments[3])
        guard let count = Int(arguments[4]), let size = Int(arguments[5]) else { fail("fill needs numbers") }
        let value = [UInt8](repeating: 0xAB, count: size)
        for i in 0..<count {
            try env.write { try $0.put(value, forKey: "probe-\(i)", in: db) }
        }
        print((try env.info()).mapSize)
    case "grow-limited" where arguments.count == 4:
        guard let mib = Int(arguments[3]) else { fail("grow-limited needs a number") }
        let db = try env.database(named: "probe")
        try env.write { try $0.put("kept", forKey: "first", in: db) }
        limitAddressSpace(headroom: mib << 20)
        let value = [UInt8](repeating: 0x5A, count: 64 << 10)
        var written = 0
        while true {
            let result = outcome { try env.write { try $0.put(value, forKey: "v\(written)", in: db) } }
            if result != "ok" {
                print("refused \(result) after \(written) writes")
                break
            }
            written += 1
            if written > 100_000 { fail("the map never stopped growing") }
        }
        // The store must still work at its old size (or refuse with a typed error).
        print("read \(outcome { _ = try env.read { try $0.get("first", in: db) } })")
        print("write \(outcome { try env.write { try $0.put("small", forKey: "after", in: db) } })")
        print("read \(outcome { _ = try env.read { try $0.count(in: db) } })")
    case "adopt-limited" where arguments.count == 4:
        guard let mib = Int(arguments[3]) else { fail("adopt-limited needs a number") }
        let db = try env.database(named: "probe", create: false)
        _ = try env.read { try $0.get("first", in: db) }
        limitAddressSpace(headroom: mib << 20)
        print("ready")
        fflush(nil)
        while !FileManager.default.fileExists(atPath: arguments[2] + "/go") { usleep(10_000) }
        print("read \(outcome { _ = try env.read { try $0.count(in: db) } })")
        print("read \(outcome { _ = try env.read { try $0.get("first", in: db) } })")
        print("info \(outcome { _ = try env.info() })")
    case "stress-gate" where arguments.count == 4:
        // Many fresh environments, each grown from 1 MiB to 64 MiB (six remaps), so that
        // a read outside the gate has many chances to meet an unmapped map.
        guard let rounds = Int(arguments[3]) else { fail("stress-gate needs a number of rounds") }
        let reads = Counter()
        let failures = Counter()
        for round in 0..<rounds {
            let roundEnv = try Environment.open(path: arguments[2] + "/round\(round)", options: options)
            let db = try roundEnv.database(named: "probe")
            // A small index for the walks: entries whose values are keys the writer puts.
            try roundEnv.write { txn in for n in 0..<4 { try txn.put("k\(n)", forKey: "idx\(n)", in: db) } }
            let done = Flag()
            let finished = DispatchGroup()
            for _ in 0..<3 {
                finished.enter()
                Thread {
                    while !done.value {
                        do {
                            try roundEnv.read { txn in
                                _ = try txn.count(in: db)
                                _ = try txn.statistics(of: db)
                                try txn.withCursor(on: db) { cursor in _ = try cursor.last() }
                                try txn.forEach(in: db) { _, _ in true }
                            }
                            _ = try roundEnv.statistics()
                            _ = try roundEnv.info()
                            // The store's leaf reads, which skip the gate's per-thread depth.
                            // Each reads the bytes, so that a map replaced under it would fault.
                            _ = try roundEnv.decodeValue(forKey: "k\(reads.value % 512)", in: db) { $0.last ?? 0 }
                            var touched = 0
                            try roundEnv.decodeIndexedValues(prefix: "idx", in: db, values: db) { key, value in
                                touched &+= Int(key.last ?? 0) &+ Int(value?.last ?? 0)
                            }
                            _ = touched
                            reads.add()
                        } catch {
                            failures.add()
                        }
                    }
                    finished.leave()
                }.start()
            }
            let value = [UInt8](repeating: 0x33, count: 4 << 10)
            var index = 0
            while (try roundEnv.info()).mapSize < 64 << 20 {
                try roundEnv.write { txn in
                    for _ in 0..<64 {
                        try txn.put(value, forKey: "k\(index)", in: db)
                        index += 1
                    }
                }
            }
            done.set()
            finished.wait()
        }
        print("ok \(reads.value) reads, \(failures.value) failures, \(rounds) rounds")
    default:
        fail("unknown command or wrong arguments: \(arguments.dropFirst().joined(separator: " "))")
    }
} catch {
    fail("\(error)", status: 3)
}
