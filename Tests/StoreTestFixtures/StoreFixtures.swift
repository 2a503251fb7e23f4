package import Foundation
import Logging
@_spi(StorageTesting) package import PaymentSessions
import Synchronization
package import TestSupport
import LMDB

// What the store's test targets share: a store in a temporary directory on a clock moved
// by hand, and forged records.

/// A clock the test moves by hand, so that timestamps are predictable.
package final class ManualClock: Sendable {
    package init() {}
    private let micros = Mutex<Int64>(1_780_000_000_000_000)

    package var now: Date { Timestamp.date(microseconds: micros.withLock { $0 }) }
    package var microseconds: Int64 { micros.withLock { $0 } }

    package func advance(milliseconds: Int64 = 1) { micros.withLock { $0 += milliseconds * 1000 } }
}

/// A store in a fresh temporary directory.
package struct StoreFixture {
    package let directory = TemporaryDirectory(prefix: "sessions")
    package let clock = ManualClock()
    package let store: PaymentSessionStore

    /// `fast` uses `noSync`: same semantics, no fsync, for tests that make thousands of commits.
    package init(fast: Bool = true, _ configure: (inout PaymentSessionStore.Options) -> Void = { _ in }) throws {
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
package func storeError(_ body: () throws -> Void) -> PaymentSessionError? {
    do {
        try body()
        return nil
    } catch let error as PaymentSessionError {
        return error
    } catch {
        return .storage(StorageFailure(backend: .lmdb, kind: .failed, operation: "unexpected \(error)", code: "", message: "unexpected"))
    }
}

/// A record's checksum, written out here from its documented definition, to forge records
/// in tests: for versions 2 to 4 multiply-xorshift steps over little-endian 64-bit words,
/// the last zero-padded (one chain for versions 2 and 3, word `i` in chain `i % 4` for
/// version 4); for version 5 the vector form (``vectorChecksum(_:)``).
package func recordChecksum(_ bytes: [UInt8], version: UInt8 = RawStorage.recordVersion) -> UInt32 {
    if version >= 5 { return vectorChecksum(bytes) }
    var words = bytes
    let tail = bytes.count % 8
    if tail > 0 { words += [UInt8](repeating: 0, count: 8 - tail) }
    var lanes: [UInt64] =
        version >= 4
        ? [0x243F_6A88_85A3_08D3 ^ UInt64(bytes.count), 0x1319_8A2E_0370_7344, 0xA409_3822_299F_31D0, 0x082E_FA98_EC4E_6C89]
        : [0x243F_6A88_85A3_08D3 ^ UInt64(bytes.count)]
    for (index, start) in stride(from: 0, to: words.count, by: 8).enumerated() {
        checksumStep(&lanes[index % lanes.count], littleEndianWord(words, at: start))
    }
    return finishChecksum(lanes)
}

/// Record version 5's checksum, one 16-byte chunk at a time in plain integers: chunk `c` of
/// the zero-padded bytes goes to `front` (even `c`) or `back` (odd), keyed by block `c / 2`.
package func vectorChecksum(_ bytes: [UInt8]) -> UInt32 {
    let step: UInt64 = 0x9E37_79B9_7F4A_7C15
    var words = bytes
    let tail = bytes.count % 16
    if tail > 0 { words += [UInt8](repeating: 0, count: 16 - tail) }
    var front: [UInt64] = [0x243F_6A88_85A3_08D3 ^ UInt64(bytes.count), 0x1319_8A2E_0370_7344]
    var back: [UInt64] = [0xA409_3822_299F_31D0, 0x082E_FA98_EC4E_6C89]
    let frontKey: [UInt64] = [0x4528_21E6_38D0_1377, 0xBE54_66CF_34E9_0C6C]
    let backKey: [UInt64] = [0xC0AC_29B7_C97C_50DD, 0x3F84_D5B5_B547_0917]
    for chunk in 0..<words.count / 16 {
        let block = UInt64(chunk / 2)
        let w = [littleEndianWord(words, at: chunk * 16), littleEndianWord(words, at: chunk * 16 + 8)]
        let key = (chunk % 2 == 0 ? frontKey : backKey).map { $0 &+ block &* step }
        let keyed = [w[0] ^ key[0], w[1] ^ key[1]]
        let added = [
            (keyed[0] & 0xFFFF_FFFF) &* (keyed[0] >> 32) &+ w[1],
            (keyed[1] & 0xFFFF_FFFF) &* (keyed[1] >> 32) &+ w[0],
        ]
        if chunk % 2 == 0 {
            front = [front[0] &+ added[0], front[1] &+ added[1]]
        } else {
            back = [back[0] &+ added[0], back[1] &+ added[1]]
        }
    }
    return finishChecksum(front + back)
}

private func littleEndianWord(_ bytes: [UInt8], at start: Int) -> UInt64 {
    (0..<8).reduce(0) { word, offset in word | UInt64(bytes[start + offset]) << UInt64(8 * offset) }
}

private func checksumStep(_ state: inout UInt64, _ word: UInt64) {
    state = (state ^ word) &* 0x9E37_79B9_7F4A_7C15
    state ^= state >> 32
}

/// The lanes folded in order with the step, then the finish shared by every version.
private func finishChecksum(_ lanes: [UInt64]) -> UInt32 {
    var state = lanes[0]
    for lane in lanes.dropFirst() { checksumStep(&state, lane) }
    state ^= state >> 29
    state &*= 0xBF58_476D_1CE4_E5B9
    state ^= state >> 32
    return UInt32(truncatingIfNeeded: state ^ (state >> 32))
}

/// A record as an older version wrote it, for the upgrade tests: version, flags (`selected`),
/// status code, both dates 0, from version 3 the money fields (all absent), the
/// length-prefixed strings (each under 128 bytes: cart, provider, data), and from version 2
/// the checksum.
package func oldRecord(version: UInt8, selected: Bool, status: UInt8, strings: [String]) -> [UInt8] {
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

/// Seeded random mutations of valid inputs, for the suites that feed untrusted bytes to
/// the store (a failure replays from its seed).
package enum Mutation {
    /// Inputs per parser; `FUZZ_INPUTS` raises it for a long local run.
    package static let inputs = Int(ProcessInfo.processInfo.environment["FUZZ_INPUTS"] ?? "") ?? 100_000

    /// Mutations of a valid input: flipped, inserted, deleted and duplicated bytes.
    package static func mutate(_ input: [UInt8], _ rng: inout SplitMix) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            switch Int.random(in: 0..<5, using: &rng) {
            case 0 where !bytes.isEmpty: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            case 1: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...bytes.count, using: &rng))
            case 2 where !bytes.isEmpty: bytes.remove(at: Int.random(in: 0..<bytes.count, using: &rng))
            case 3 where !bytes.isEmpty:
                let cut = Int.random(in: 0..<bytes.count, using: &rng)
                bytes = Array(bytes[..<cut])
            default:
                let start = Int.random(in: 0...bytes.count, using: &rng)
                let piece = bytes[start...].prefix(Int.random(in: 0...16, using: &rng))
                bytes.insert(contentsOf: piece, at: Int.random(in: 0...bytes.count, using: &rng))
            }
        }
        return bytes
    }
}
