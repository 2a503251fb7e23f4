import Foundation
import Logging
@_spi(StorageTesting) import PaymentSessions
import Synchronization
import TestSupport
import LMDB

/// A clock the test moves by hand, so that timestamps are predictable.
final class ManualClock: Sendable {
    private let micros = Mutex<Int64>(1_780_000_000_000_000)

    var now: Date { Timestamp.date(microseconds: micros.withLock { $0 }) }
    var microseconds: Int64 { micros.withLock { $0 } }

    func advance(milliseconds: Int64 = 1) { micros.withLock { $0 += milliseconds * 1000 } }
}

/// A store in a fresh temporary directory.
struct StoreFixture {
    let directory = TemporaryDirectory(prefix: "sessions")
    let clock = ManualClock()
    let store: PaymentSessionStore

    /// `fast` uses `noSync`: same semantics, no fsync, for tests that make thousands of commits.
    init(fast: Bool = true, _ configure: (inout PaymentSessionStore.Options) -> Void = { _ in }) throws {
        var options = PaymentSessionStore.Options()
        let clock = self.clock
        options.clock = { clock.now }
        options.environment.mapSize = 16 << 20
        // Quiet: the corruption suites read thousands of corrupt records on purpose
        // (`LoggingTests` checks what is logged).
        options.logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        if fast { options.environment.durability = .noSync }
        configure(&options)
        store = try PaymentSessionStore(path: directory.appending("store"), options: options)
    }
}

/// The error `body` throws, if it is a `PaymentSessionError`.
func storeError(_ body: () throws -> Void) -> PaymentSessionError? {
    do {
        try body()
        return nil
    } catch let error as PaymentSessionError {
        return error
    } catch {
        return .storage(StorageFailure(backend: .lmdb, kind: .failed, operation: "unexpected \(error)", code: "", message: "unexpected"))
    }
}

/// A record's checksum, written out here from its documented definition (multiply-xorshift
/// steps over little-endian 64-bit words, the last zero-padded: one chain for versions 2
/// and 3, word `i` in chain `i % 4` for version 4), to forge records in tests.
func recordChecksum(_ bytes: [UInt8], version: UInt8 = RawStorage.recordVersion) -> UInt32 {
    func step(_ state: inout UInt64, _ word: UInt64) {
        state = (state ^ word) &* 0x9E37_79B9_7F4A_7C15
        state ^= state >> 32
    }
    var words = bytes
    let tail = bytes.count % 8
    if tail > 0 { words += [UInt8](repeating: 0, count: 8 - tail) }
    var lanes: [UInt64] =
        version >= 4
        ? [0x243F_6A88_85A3_08D3 ^ UInt64(bytes.count), 0x1319_8A2E_0370_7344, 0xA409_3822_299F_31D0, 0x082E_FA98_EC4E_6C89]
        : [0x243F_6A88_85A3_08D3 ^ UInt64(bytes.count)]
    for (index, start) in stride(from: 0, to: words.count, by: 8).enumerated() {
        var word: UInt64 = 0
        for offset in 0..<8 { word |= UInt64(words[start + offset]) << UInt64(8 * offset) }
        step(&lanes[index % lanes.count], word)
    }
    var state = lanes[0]
    for lane in lanes.dropFirst() { step(&state, lane) }
    state ^= state >> 29
    state &*= 0xBF58_476D_1CE4_E5B9
    state ^= state >> 32
    return UInt32(truncatingIfNeeded: state ^ (state >> 32))
}

/// A record as an older version wrote it, for the upgrade tests: version, flags (`selected`),
/// status code, both dates 0, from version 3 the money fields (all absent), the
/// length-prefixed strings (each under 128 bytes: cart, provider, data), and from version 2
/// the checksum.
func oldRecord(version: UInt8, selected: Bool, status: UInt8, strings: [String]) -> [UInt8] {
    var record: [UInt8] = [version, selected ? 1 : 0, status] + [UInt8](repeating: 0, count: 16)
    if version >= 3 {
        withUnsafeBytes(of: Int64(-1).littleEndian) { record += $0 }
        withUnsafeBytes(of: Int64.min.littleEndian) { record += $0 }
        record += [0, 0, 0]
    }
    for text in strings { record += [UInt8(text.utf8.count)] + Array(text.utf8) }
    if version >= 2 { withUnsafeBytes(of: recordChecksum(record, version: version).littleEndian) { record += $0 } }
    return record
}
