import Foundation
import PaymentSessions
import PowerLoss
import TestSupport
import Testing
import TestScheduling
import LMDB

/// A power cut loses what was written but not flushed, in any subset, with sectors torn.
/// The suite records a workload's writes and flushes to `data.mdb` under `iorecord` (an
/// `LD_PRELOAD` shim), builds the states a cut could leave from the recording, and checks
/// each in a child process: the store opens or refuses with a typed error, `verify` is
/// clean, no transaction is half there, the change feed replays to the sessions, and (in
/// `full` durability) every acknowledged write survived.
///
/// `POWER_LOSS_STATES` sets the states checked per durability mode (400 by default; the long
/// run by hand uses 34,000, over 100,000 in all).
@Suite("Power loss (recorded writes, simulated cuts)", .serialized, .ownThreads)
struct PowerLossTests {
    static let statesPerMode = Int(ProcessInfo.processInfo.environment["POWER_LOSS_STATES"] ?? "") ?? 400
    /// States per checker process: each state is a separate store directory, opened once.
    static let statesPerChecker = 100

    /// The recorder: the `IORecord` product SwiftPM builds next to the test bundle, or, when a
    /// build made only what the tests link, the same source compiled here with the system's C
    /// compiler.
    static let recorder: String = {
        let built = ChildProcess.productsDirectory.appendingPathComponent("libIORecord.so").path
        if FileManager.default.fileExists(atPath: built) { return built }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Tools/Sources/IORecord/iorecord.c").path
        let compiled = FileManager.default.temporaryDirectory.appendingPathComponent("libIORecord-\(getpid()).so").path
        for compiler in ["/usr/bin/cc", "/usr/bin/clang", "/usr/bin/gcc"] where FileManager.default.isExecutableFile(atPath: compiler) {
            if let output = try? ChildProcess(path: compiler, ["-O2", "-shared", "-fPIC", "-o", compiled, source, "-ldl"]).finish(),
                output.status == 0
            {
                return compiled
            }
        }
        return built
    }()

    /// Runs the crash workload under the recorder; returns the recording and the final file.
    func record(
        _ durability: PaymentSessionStore.Durability, operations: Int, threads: Int, in directory: TemporaryDirectory
    ) throws -> (recording: IORecording, final: [UInt8], acks: [String]) {
        let store = directory.appending("recorded-\(durability.rawValue)")
        let log = directory.appending("recorded-\(durability.rawValue).log")
        #expect(FileManager.default.fileExists(atPath: Self.recorder), "build the recorder: swift build --product IORecord")
        let output = try ChildProcess.run(
            "StoreTorture", ["powerloss", store, durability.rawValue, "\(operations)", "\(threads)"],
            environment: ["LD_PRELOAD": Self.recorder, "IORECORD_LOG": log, "IORECORD_MATCH": "/data.mdb"])
        #expect(output.status == 0, "\(output.stderr)")
        let recording = try IORecording(contentsOf: log)
        let final = [UInt8](try Data(contentsOf: URL(fileURLWithPath: store + "/data.mdb")))
        return (recording, final, output.stdout.split(separator: "\n").map(String.init))
    }

    /// Builds the states one batch at a time (a long run's states would not fit in memory
    /// together), writes each into a directory of its own, and checks them in child
    /// processes, `statesPerChecker` at a time. Returns one result per state.
    func check(
        count: Int, durability: PaymentSessionStore.Durability, in directory: TemporaryDirectory, name: String,
        state build: (Int) -> CrashState
    ) throws -> [StateResult] {
        var results: [StateResult] = []
        for (batchNumber, batch) in stride(from: 0, to: count, by: Self.statesPerChecker).enumerated() {
            let chunk = (batch..<min(batch + Self.statesPerChecker, count)).map(build)
            var paths: [String] = []
            for (index, state) in chunk.enumerated() {
                let path = directory.appending("\(name)-\(batchNumber)-\(index)")
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                try Data(state.file).write(to: URL(fileURLWithPath: path + "/data.mdb"))
                try (state.acknowledged.joined(separator: "\n") + "\n").write(toFile: path + "/acks.txt", atomically: false, encoding: .utf8)
                paths.append(path)
            }
            // A state that kills the checker is recorded as `crashed` (with liblmdb's message,
            // when it printed one), and the checker starts again at the next state.
            var remaining = Array(zip(paths, chunk))
            while !remaining.isEmpty {
                let output = try ChildProcess.run("StoreTorture", ["check-states", durability.rawValue] + remaining.map(\.0))
                let lines = output.stdout.split(separator: "\n")
                for (line, (_, state)) in zip(lines, remaining) { results.append(try StateResult(line: line, state: state)) }
                if lines.count >= remaining.count { break }
                let (_, crashedState) = remaining[lines.count]
                let errorLines = output.stderr.split(separator: "\n")
                let message =
                    errorLines.last { $0.contains("Assertion") || $0.contains("Fatal error") } ?? errorLines.last { $0.contains("crashed") }
                    ?? "status \(output.status)"
                results.append(StateResult(crashed: String(message), state: crashedState))
                // The first few such states are kept for a look (the recording and the seed
                // rebuild any of them too).
                let kept = (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/power-loss-stopped-\(durability.rawValue)-\(crashedState.seed)"
                if results.filter({ $0.outcome == "crashed" }).count <= 40, !FileManager.default.fileExists(atPath: kept) {
                    try? FileManager.default.copyItem(atPath: remaining[lines.count].0, toPath: kept)
                    try? output.stderr.write(toFile: kept + "/checker-stderr.txt", atomically: false, encoding: .utf8)
                }
                remaining.removeFirst(lines.count + 1)
            }
            for path in paths { try? FileManager.default.removeItem(atPath: path) }
        }
        return results
    }

    struct StateResult {
        var outcome: String
        var lost: Int
        /// Commits the workload had acknowledged before the cut.
        var acknowledged: Int
        var problems: [String]
        var seed: UInt64
        var cut: Int
        var pending: Int
        var torn: Bool

        init(crashed message: String, state: CrashState) {
            outcome = "crashed"
            lost = 0
            acknowledged = 0
            problems = [message]
            seed = state.seed
            cut = state.cut
            pending = state.pending
            torn = state.torn > 0
        }

        init(line: Substring, state: CrashState) throws {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            outcome = object["outcome"] as? String ?? "unreadable"
            lost = object["lost"] as? Int ?? 0
            acknowledged = object["acknowledged"] as? Int ?? 0
            problems = object["problems"] as? [String] ?? []
            seed = state.seed
            cut = state.cut
            pending = state.pending
            torn = state.torn > 0
        }
    }

    @Test func replayingAWholeRecordingRebuildsTheFinalFileByteForByte() throws {
        let directory = TemporaryDirectory.inMemory(prefix: "power-replay")
        for durability in [PaymentSessionStore.Durability.full, .noMetaSync, .noSync] {
            let (recording, final, acks) = try record(durability, operations: 60, threads: 2, in: directory)
            let counts = recording.counts
            #expect(counts.writes > 60, "\(durability): only \(counts.writes) writes recorded")
            #expect(counts.marks == acks.count, "every ack is marked in the recording")
            if durability == .noSync { #expect(counts.flushes == 0 && counts.durableWrites == 0) } else { #expect(counts.flushes > 0) }
            if durability == .full { #expect(counts.durableWrites > 0, "meta pages go through the O_DSYNC descriptor") }
            let replayed = recording.replayed()
            #expect(replayed.count == final.count)
            #expect(replayed == final, "\(durability): the replayed recording differs from data.mdb")
        }
    }

    @Test func theGeneratorKeepsFlushedWritesAndRebuildsAStateFromItsSeed() throws {
        // A hand-made recording: two writes, a flush, two more writes, a durable one.
        let recording = IORecording(operations: [
            .write(offset: 0, bytes: Array(repeating: 1, count: 1024), durable: false),
            .write(offset: 1024, bytes: Array(repeating: 2, count: 512), durable: false),
            .flush,
            .mark("C 1 1 ps_x"),
            .write(offset: 0, bytes: Array(repeating: 3, count: 1024), durable: false),
            .write(offset: 1536, bytes: Array(repeating: 4, count: 512), durable: false),
            .write(offset: 2048, bytes: Array(repeating: 5, count: 512), durable: true),
        ])
        let generator = CrashStateGenerator(recording: recording)
        #expect(generator.pendingWrites(cut: 7) == [4, 5])
        #expect(generator.pendingWrites(cut: 2) == [0, 1])
        let states = try #require(generator.everySubset(cut: 7))
        #expect(states.count == 4)
        for state in states {
            // The flushed writes and the durable one are always there.
            #expect(state.file[1024..<1536].allSatisfy { $0 == 2 })
            #expect(state.file.count == 2560 || state.file[2048..<2560].allSatisfy { $0 == 5 })
            #expect(state.acknowledged == ["C 1 1 ps_x"])
            // The first write is there, overwritten by the third or not.
            #expect(state.file[0..<1024].allSatisfy { $0 == 1 } || state.file[0..<1024].allSatisfy { $0 == 3 })
        }
        // Torn writes keep whole sectors only, and a seed rebuilds its state exactly.
        for seed in UInt64(0)..<200 {
            let state = generator.state(seed: seed)
            #expect(generator.state(seed: seed).file == state.file)
            for sector in stride(from: 0, to: min(1024, state.file.count), by: 512) {
                let bytes = Set(state.file[sector..<min(sector + 512, state.file.count)])
                #expect(bytes.count == 1, "sector \(sector) of seed \(seed) is not whole: \(bytes)")
            }
        }
    }

    @Test(arguments: [PaymentSessionStore.Durability.full, .noMetaSync, .noSync])
    func anAcknowledgedWriteSurvivesEveryCrashState(durability: PaymentSessionStore.Durability) throws {
        let directory = TemporaryDirectory.inMemory(prefix: "power-\(durability.rawValue)")
        let (recording, final, _) = try record(durability, operations: 120, threads: 2, in: directory)
        #expect(recording.replayed() == final)
        let generator = CrashStateGenerator(recording: recording)
        // Small cases enumerated: every subset at the cuts with few pending writes, up to a
        // fifth of the budget; the rest sampled from seeds.
        enum Recipe { case subset(cut: Int, mask: UInt64), seeded(UInt64) }
        var recipes: [Recipe] = []
        var cut = recording.operations.count
        while recipes.count < Self.statesPerMode / 5 && cut > 0 {
            let pending = generator.pendingWrites(cut: cut).count
            if pending > 0 && pending <= 6 { recipes += (0..<(UInt64(1) << UInt64(pending))).map { .subset(cut: cut, mask: $0) } }
            cut -= 7
        }
        let seedBase = UInt64(durability.rawValue.utf8.reduce(0) { $0 &* 31 &+ UInt64($1) })
        recipes += (0..<UInt64(max(0, Self.statesPerMode - recipes.count))).map { .seeded(seedBase &+ $0) }
        let results = try check(count: recipes.count, durability: durability, in: directory, name: "state") { index in
            switch recipes[index] {
            case .subset(let cut, let mask): generator.subsetState(cut: cut, mask: mask)
            case .seeded(let seed): generator.state(seed: seed)
            }
        }
        var outcomes: [String: Int] = [:]
        for result in results { outcomes[result.outcome, default: 0] += 1 }
        let lostMost = results.map(\.lost).max() ?? 0
        let lostStates = results.filter { $0.lost > 0 }.count
        let pendingMost = results.map(\.pending).max() ?? 0
        let torn = results.filter(\.torn).count
        print(
            "power loss (\(durability)): \(results.count) crash states (\(torn) with torn writes, up to \(pendingMost) unflushed writes), "
                + "outcomes \(outcomes.sorted { $0.key < $1.key }), acknowledged commits lost: at most \(lostMost), in \(lostStates) states")
        // A refusal is a typed error, allowed when nothing had been acknowledged yet: a cut
        // while the store was being created (its first pages written, none flushed) leaves a
        // file liblmdb calls "not an LMDB file" (`storage`), which held nothing.
        let refused = results.filter { $0.outcome == "refused" && $0.acknowledged > 0 }
        let corrupt = results.filter { $0.outcome == "corrupt" }
        let crashed = results.filter { $0.outcome == "crashed" }
        // A failing state is rebuilt from the recording (kept here) and its seed:
        // CrashStateGenerator(recording: IORecording(contentsOf: log)).state(seed: seed).
        var kept = ""
        if !(refused + corrupt + crashed).isEmpty || lostStates > 0 {
            kept = (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/power-loss-\(durability.rawValue)-\(getpid()).log"
            try? FileManager.default.removeItem(atPath: kept)
            try FileManager.default.copyItem(atPath: directory.appending("recorded-\(durability.rawValue).log"), toPath: kept)
        }
        func describe(_ failures: [StateResult]) -> String {
            "recording \(kept): " + failures.prefix(3).map { "seed \($0.seed) cut \($0.cut): \($0.problems.prefix(3))" }.joined(separator: "; ")
        }
        if !crashed.isEmpty {
            var causes: [String: Int] = [:]
            for result in crashed { causes[result.problems.first ?? "", default: 0] += 1 }
            print("power loss (\(durability)): \(crashed.count) states stopped the checker, by cause \(causes.sorted { $0.value > $1.value }): \(describe(crashed))")
        }
        switch durability {
        case .full:
            #expect(refused.isEmpty && corrupt.isEmpty && crashed.isEmpty, "\(durability): \(describe(refused + corrupt + crashed))")
            #expect(lostStates == 0, "\(durability): acknowledged writes lost: \(describe(results.filter { $0.lost > 0 }))")
        case .noMetaSync:
            #expect(refused.isEmpty && corrupt.isEmpty && crashed.isEmpty, "\(durability): \(describe(refused + corrupt + crashed))")
        default:
            // Measured and reported, not promised: LMDB keeps a noSync store intact only where
            // the file system keeps write order, which the generator does not assume; liblmdb
            // then may refuse the file, read damage, or stop on one of its assertions.
            break
        }
        #expect(outcomes.values.reduce(0, +) == recipes.count)
    }

    @Test func aMetaPageWrittenBeforeItsDataIsFlushedIsCaught() throws {
        // A storage stack that ignores the flush before each meta page write: the commit's
        // data pages may be lost while the meta page pointing to them survives. The checker
        // must notice in some of those states, or it would notice nothing.
        let directory = TemporaryDirectory.inMemory(prefix: "power-broken")
        let (recording, _, _) = try record(.full, operations: 40, threads: 1, in: directory)
        let operations = recording.operations
        let generator = CrashStateGenerator(recording: recording)
        var states: [CrashState] = []
        for (index, operation) in operations.enumerated() {
            guard case .write(let offset, _, true) = operation, offset < 2 * 4096,
                let flush = operations[..<index].lastIndex(of: .flush)
            else { continue }
            // The worst case: every data page of this commit lost, its meta page kept.
            let broken = generator.ignoringFlushes([flush])
            let built = broken.file(cut: index + 1) { _ in .lost }
            states.append(
                CrashState(
                    cut: index + 1, file: built.file, acknowledged: recording.marks(before: index + 1),
                    pending: broken.pendingWrites(cut: index + 1).count, kept: 0, torn: 0, seed: UInt64(index + 1)))
        }
        #expect(states.count > 10, "the recording holds \(states.count) meta page writes after a flush")
        let results = try check(count: states.count, durability: .full, in: directory, name: "broken") { states[$0] }
        let caught = results.filter { $0.outcome != "intact" }.count
        print("power loss (broken write order): \(caught) of \(results.count) states caught")
        #expect(caught > 0, "a meta page written before its data was never caught")
    }
}
