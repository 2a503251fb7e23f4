import Foundation

/// What a process did to one file, in the order the calls completed, as `iorecord` (the
/// `LD_PRELOAD` shim in `Tools/Sources/IORecord`) logged it: writes, flushes, truncations, and the
/// points where the process saw a write acknowledged.
public struct IORecording: Sendable {
    /// One recorded call.
    public enum Operation: Sendable, Equatable {
        /// Bytes written at an offset. `durable`: through a descriptor opened with `O_DSYNC`
        /// or `O_SYNC`, so on the disk when the call returned.
        case write(offset: Int, bytes: [UInt8], durable: Bool)
        /// `fsync` or `fdatasync` of the file returned: every earlier write is on the disk.
        case flush
        /// The file was truncated (or extended) to `size` bytes.
        case truncate(size: Int)
        /// The process acknowledged something (a line of the workload's own protocol).
        case mark(String)
    }

    /// The calls, in order.
    public let operations: [Operation]

    /// Why a log could not be read.
    public struct FormatError: Error, CustomStringConvertible {
        public let offset: Int
        public let reason: String
        public var description: String { "iorecord log, byte \(offset): \(reason)" }
    }

    public init(operations: [Operation]) {
        self.operations = operations
    }

    /// Reads a log written by `iorecord`.
    public init(contentsOf path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try self.init(log: [UInt8](data))
    }

    /// Reads the bytes of a log written by `iorecord`.
    public init(log: [UInt8]) throws {
        var operations: [Operation] = []
        var position = 0
        func integer(at offset: Int) -> Int {
            var value: UInt64 = 0
            for index in (0..<8).reversed() { value = value << 8 | UInt64(log[offset + index]) }
            return Int(value)
        }
        while position < log.count {
            guard position + 18 <= log.count else { throw FormatError(offset: position, reason: "truncated header") }
            let kind = log[position]
            let durable = log[position + 1] != 0
            let offset = integer(at: position + 2)
            let length = integer(at: position + 10)
            let body = position + 18
            guard length >= 0, body + length <= log.count else { throw FormatError(offset: position, reason: "truncated record") }
            switch kind {
            case UInt8(ascii: "W"): operations.append(.write(offset: offset, bytes: Array(log[body..<body + length]), durable: durable))
            case UInt8(ascii: "S"): operations.append(.flush)
            case UInt8(ascii: "T"): operations.append(.truncate(size: offset))
            case UInt8(ascii: "A"): operations.append(.mark(String(decoding: log[body..<body + length], as: UTF8.self)))
            default: throw FormatError(offset: position, reason: "unknown record kind \(kind)")
            }
            position = body + length
        }
        self.operations = operations
    }

    /// The file as every recorded call left it: what the file held at the end of the run,
    /// if the recording missed nothing.
    public func replayed() -> [UInt8] {
        var file: [UInt8] = []
        for operation in operations {
            switch operation {
            case .write(let offset, let bytes, _): Self.apply(bytes, at: offset, to: &file)
            case .truncate(let size): Self.resize(&file, to: size)
            case .flush, .mark: break
            }
        }
        return file
    }

    /// The marks made before operation `index`.
    public func marks(before index: Int) -> [String] {
        operations[..<index].compactMap { if case .mark(let text) = $0 { text } else { nil } }
    }

    /// How many writes and flushes the recording holds.
    public var counts: (writes: Int, flushes: Int, durableWrites: Int, marks: Int) {
        var counts = (writes: 0, flushes: 0, durableWrites: 0, marks: 0)
        for operation in operations {
            switch operation {
            case .write(_, _, let durable):
                counts.writes += 1
                if durable { counts.durableWrites += 1 }
            case .flush: counts.flushes += 1
            case .mark: counts.marks += 1
            case .truncate: break
            }
        }
        return counts
    }

    /// Writes `bytes` at `offset`, growing `file` with zeros as a write past the end does.
    /// A memory copy: a state is built from thousands of writes, and the tests run unoptimised.
    static func apply(_ bytes: ArraySlice<UInt8>, at offset: Int, to file: inout [UInt8]) {
        let end = offset + bytes.count
        if file.count < end { resize(&file, to: end) }
        file.withUnsafeMutableBytes { target in
            bytes.withUnsafeBytes { source in
                guard let base = source.baseAddress else { return }
                (target.baseAddress! + offset).copyMemory(from: base, byteCount: source.count)
            }
        }
    }

    static func apply(_ bytes: [UInt8], at offset: Int, to file: inout [UInt8]) {
        apply(bytes[...], at: offset, to: &file)
    }

    static func resize(_ file: inout [UInt8], to size: Int) {
        if file.count > size {
            file.removeLast(file.count - size)
        } else if file.count < size {
            file.append(contentsOf: [UInt8](repeating: 0, count: size - file.count))
        }
    }
}
