import Foundation
import LMDB
import TestSupport
import Testing
import TestScheduling

/// A remap that cannot happen must leave a typed error, never a signal.
///
/// liblmdb's `mdb_env_set_mapsize` unmaps the old map before mapping the new one; when
/// the new `mmap` fails, the process used to die with `SIGSEGV` at its next transaction.
/// These run the failing process as a child under an address-space limit (`RLIMIT_AS`),
/// so that a signal fails the test instead of killing the test runner.
@Suite("Map growth that cannot happen", .ownThreads)
struct MapFailureTests {
    /// Fresh environments the gate stress grows (six remaps each); `STRESS_ROUNDS` raises it.
    static let stressRounds = Int(ProcessInfo.processInfo.environment["STRESS_ROUNDS"] ?? "") ?? 40

    @Test func growthPastTheAddressSpaceLimitIsRefusedAndTheStoreKeepsWorking() throws {
        let directory = TemporaryDirectory(prefix: "grow-limited")
        let output = try ChildProcess.run("LMDBProbe", ["grow-limited", directory.path, "64"])
        #expect(!output.killedBySignal, "the child died with signal \(output.status): \(output.stdout) \(output.stderr)")
        #expect(output.status == 0, "\(output.stderr)")
        let lines = output.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("refused mapFull") == true, "\(lines)")
        #expect(lines.dropFirst().first == "read ok", "\(lines)")
        #expect(lines.dropFirst(3).first == "read ok", "\(lines)")
        // Writing more may or may not fit at the old size, but it is typed either way.
        #expect(lines.dropFirst(2).first.map { $0 == "write ok" || $0 == "write mapFull" } == true, "\(lines)")
    }

    @Test func adoptingAMapAnotherProcessGrewPastTheLimitIsATypedError() throws {
        let directory = TemporaryDirectory(prefix: "adopt-limited")
        do {
            var small = Environment.Options()
            small.mapSize = 1 << 20
            let env = try Environment.open(path: directory.path, options: small)
            let db = try env.database(named: "probe")
            try env.write { try $0.put("kept", forKey: "first", in: db) }
        }
        let child = try ChildProcess("LMDBProbe", ["adopt-limited", directory.path, "256"])
        #expect(child.readLine() == "ready")
        // This process grows the map to 2 GiB and fills past the child's 1 MiB view.
        var large = Environment.Options()
        large.mapSize = 2 << 30
        let env = try Environment.open(path: directory.path, options: large)
        let db = try env.database(named: "probe")
        let value = [UInt8](repeating: 7, count: 64 << 10)
        try env.write { txn in
            for i in 0..<64 { try txn.put(value, forKey: "big\(i)", in: db) }
        }
        _ = FileManager.default.createFile(atPath: directory.appending("go"), contents: nil)
        let output = try child.finish()
        #expect(!output.killedBySignal, "the child died with signal \(output.status): \(output.stdout) \(output.stderr)")
        #expect(output.status == 0, "\(output.stderr)")
        let lines = output.stdout.split(separator: "\n").map(String.init)
        // The adoption is refused (no address space for 2 GiB); the child stays usable or
        // refuses again, typed, however often it asks.
        #expect(lines.count == 3, "\(lines)")
        for line in lines {
            #expect(line.hasSuffix(" ok") || line.contains("system(errno: 12)"), "\(line)")
        }
        #expect(lines.first?.contains("system(errno: 12)") == true, "\(lines)")
    }

    /// Readers loop over `count`, `statistics(of:)`, cursors and walks, and the
    /// environment's own statistics, while a writer grows a 1 MiB map to 64 MiB: every map
    /// read holds the gate, so no reader touches a map being replaced.
    @Test func readersRacingMapGrowthNeverTouchAReplacedMap() throws {
        let directory = TemporaryDirectory(prefix: "stress-gate")
        let output = try ChildProcess.run("LMDBProbe", ["stress-gate", directory.path, String(Self.stressRounds)])
        #expect(!output.killedBySignal, "the child died with signal \(output.status): \(output.stderr)")
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.hasPrefix("ok "), "\(output.stdout)")
        #expect(output.stdout.contains(" 0 failures"), "\(output.stdout)")
    }
}
