import TestSupport

/// One state a power cut could leave a file in.
public struct CrashState: Sendable {
    /// The cut came after this many of the recording's operations.
    public let cut: Int
    /// The file's bytes.
    public let file: [UInt8]
    /// The marks (acknowledgements) the process had made before the cut.
    public let acknowledged: [String]
    /// Writes made before the cut that no flush covered, and how many of them the state keeps
    /// (whole or torn), and how many of those are torn.
    public let pending: Int
    public let kept: Int
    public let torn: Int
    /// The seed that rebuilds this state with ``CrashStateGenerator/state(seed:)``.
    public let seed: UInt64

    public init(cut: Int, file: [UInt8], acknowledged: [String], pending: Int, kept: Int, torn: Int, seed: UInt64) {
        self.cut = cut
        self.file = file
        self.acknowledged = acknowledged
        self.pending = pending
        self.kept = kept
        self.torn = torn
        self.seed = seed
    }
}

/// Builds the states a power cut could leave a recorded file in (the model of ALICE,
/// CrashMonkey and LazyFS):
///
/// - every write that a completed flush covers is on the disk, and so is every write made
///   through an `O_DSYNC` descriptor once it returned;
/// - of the other writes before the cut, any subset may be on the disk: a later write may
///   have reached it while an earlier one did not. Where kept writes overlap, the later
///   one's bytes win, because the disk only ever receives the page cache's latest bytes;
/// - a kept write may be torn: only some of its 512-byte sectors reached the disk.
///
/// States are drawn from a seed, so any state can be rebuilt from its seed alone.
public struct CrashStateGenerator: Sendable {
    public let recording: IORecording
    public let sectorSize: Int
    /// For each operation, the index of the first flush after it (or `operations.count`).
    private var nextFlush: [Int]
    /// The flushes a broken storage stack ignores (see ``ignoringFlushes(_:)``).
    public private(set) var ignoredFlushes: Set<Int> = []

    public init(recording: IORecording, sectorSize: Int = 512) {
        self.recording = recording
        self.sectorSize = sectorSize
        nextFlush = Self.nextFlushes(recording.operations, ignoring: [])
    }

    private static func nextFlushes(_ operations: [IORecording.Operation], ignoring: Set<Int>) -> [Int] {
        var next = Array(repeating: operations.count, count: operations.count)
        var upcoming = operations.count
        for index in operations.indices.reversed() {
            next[index] = upcoming
            if case .flush = operations[index], !ignoring.contains(index) { upcoming = index }
        }
        return next
    }

    /// The same generator on a storage stack that ignores the flushes at `indices`: a
    /// deliberately broken write order, for showing that the checker notices one.
    public func ignoringFlushes(_ indices: Set<Int>) -> CrashStateGenerator {
        var broken = self
        broken.ignoredFlushes = indices
        broken.nextFlush = Self.nextFlushes(recording.operations, ignoring: indices)
        return broken
    }

    /// Whether write `index` is on the disk at a cut after `cut` operations.
    public func isDurable(_ index: Int, cut: Int) -> Bool {
        guard case .write(_, _, let durable) = recording.operations[index] else { return true }
        return durable || nextFlush[index] < cut
    }

    /// The writes before `cut` that no flush covers.
    public func pendingWrites(cut: Int) -> [Int] {
        (0..<cut).filter { index in
            if case .write = recording.operations[index] { return !isDurable(index, cut: cut) }
            return false
        }
    }

    /// What happens to one pending write.
    public enum Fate: Sendable, Equatable {
        case lost
        case kept
        /// Only the sectors whose numbers (counted from the write's first sector) are in
        /// the set reached the disk.
        case torn(Set<Int>)
    }

    /// The file at a cut after `cut` operations, with `fate` deciding each pending write.
    public func file(cut: Int, fate: (Int) -> Fate) -> (file: [UInt8], kept: Int, torn: Int) {
        var file: [UInt8] = []
        var kept = 0
        var torn = 0
        for index in 0..<cut {
            switch recording.operations[index] {
            case .write(let offset, let bytes, _):
                if isDurable(index, cut: cut) {
                    IORecording.apply(bytes, at: offset, to: &file)
                    continue
                }
                switch fate(index) {
                case .lost:
                    continue
                case .kept:
                    kept += 1
                    IORecording.apply(bytes, at: offset, to: &file)
                case .torn(let sectors):
                    kept += 1
                    torn += 1
                    for (number, range) in sectorRanges(offset: offset, count: bytes.count).enumerated() where sectors.contains(number) {
                        IORecording.apply(bytes[(range.lowerBound - offset)..<(range.upperBound - offset)], at: range.lowerBound, to: &file)
                    }
                }
            case .truncate(let size):
                IORecording.resize(&file, to: size)
            case .flush, .mark:
                continue
            }
        }
        return (file, kept, torn)
    }

    /// The byte ranges of the sectors a write at `offset` of `count` bytes covers.
    func sectorRanges(offset: Int, count: Int) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var start = offset
        let end = offset + count
        while start < end {
            let boundary = min((start / sectorSize + 1) * sectorSize, end)
            ranges.append(start..<boundary)
            start = boundary
        }
        return ranges
    }

    /// The state drawn from `seed`: a cut anywhere in the recording, each pending write lost
    /// or kept with even odds, and a kept write that spans several sectors torn one time in four.
    public func state(seed: UInt64) -> CrashState {
        var random = SplitMix(seed: seed)
        let cut = Int(random.next() % UInt64(recording.operations.count + 1))
        let pending = pendingWrites(cut: cut)
        var fates: [Int: Fate] = [:]
        for index in pending {
            guard random.next() % 2 == 0 else {
                fates[index] = .lost
                continue
            }
            guard case .write(let offset, let bytes, _) = recording.operations[index] else { continue }
            let sectors = sectorRanges(offset: offset, count: bytes.count).count
            if sectors > 1 && random.next() % 4 == 0 {
                let keep = Set((0..<sectors).filter { _ in random.next() % 2 == 0 })
                fates[index] = keep.count == sectors ? .kept : .torn(keep)
            } else {
                fates[index] = .kept
            }
        }
        let built = file(cut: cut) { fates[$0] ?? .lost }
        return CrashState(
            cut: cut, file: built.file, acknowledged: recording.marks(before: cut), pending: pending.count,
            kept: built.kept, torn: built.torn, seed: seed)
    }

    /// The state at `cut` that keeps whole the pending writes whose positions (among the
    /// pending writes, oldest first) are set in `mask`, and loses the others: with every mask
    /// below `1 << pendingWrites(cut:).count`, the small cases enumerated rather than sampled.
    public func subsetState(cut: Int, mask: UInt64) -> CrashState {
        let pending = pendingWrites(cut: cut)
        let keptSet = Set(pending.enumerated().filter { $0.offset < 64 && mask & (1 << UInt64($0.offset)) != 0 }.map(\.element))
        let built = file(cut: cut) { keptSet.contains($0) ? .kept : .lost }
        return CrashState(
            cut: cut, file: built.file, acknowledged: recording.marks(before: cut), pending: pending.count, kept: built.kept,
            torn: 0, seed: mask)
    }

    /// Every subset of the pending writes at `cut`, kept whole (none torn), when there are at
    /// most `limit` of them.
    public func everySubset(cut: Int, limit: Int = 10) -> [CrashState]? {
        let count = pendingWrites(cut: cut).count
        guard count <= min(limit, 20) else { return nil }
        return (0..<(UInt64(1) << UInt64(count))).map { subsetState(cut: cut, mask: $0) }
    }
}
