// A second process for the LMDB layer's cross-process tests.
//
//   lmdb-probe get DIR DB KEY          prints the value (UTF-8) or exits 1 when absent
//   lmdb-probe put DIR DB KEY VALUE    writes and commits, exits 0
//   lmdb-probe hold-write DIR DB KEY   begins a write, puts KEY, prints "holding", then
//                                      sleeps until killed (never commits)
//   lmdb-probe hold-read DIR           begins a read, prints "reading", sleeps until killed
//   lmdb-probe fill DIR DB COUNT SIZE  writes COUNT values of SIZE bytes, one commit each
import Foundation
import LMDB

func fail(_ message: String, status: Int32 = 2) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(status)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else { fail("usage: lmdb-probe get|put|hold-write|hold-read|fill DIR ...") }
var options = Environment.Options()
options.mapSize = 1 << 20

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
    default:
        fail("unknown command or wrong arguments: \(arguments.dropFirst().joined(separator: " "))")
    }
} catch {
    fail("\(error)", status: 3)
}
