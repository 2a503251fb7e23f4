public import Foundation
import Synchronization

/// Payment session ids: `ps_` followed by a ULID (26 Crockford base32 characters: a
/// 48-bit millisecond timestamp and 80 random bits), as in the schema's example
/// `ps_01G901XNSRM2YS3ASN9H5KG3FZ`. Ids sort in creation order.
public enum PaymentSessionID {
    /// `ps_`.
    public static let prefix = "ps_"
    /// 29: the prefix and 26 ULID characters.
    public static let length = 29

    package static let alphabet: [UInt8] = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// Whether `id` is `ps_` followed by 26 upper-case Crockford base32 characters whose
    /// first is at most `7` (a ULID is 128 bits).
    public static func isValid(_ id: String) -> Bool {
        // Native strings are contiguous UTF-8: check the bytes in place (the generic
        // `utf8` walk steps through the view's indices, many times the work).
        if let valid = id.utf8.withContiguousStorageIfAvailable(isValid) { return valid }
        return Array(id.utf8).withUnsafeBufferPointer(isValid)
    }

    package static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.count == length, bytes[0] == UInt8(ascii: "p"), bytes[1] == UInt8(ascii: "s"),
            bytes[2] == UInt8(ascii: "_"), bytes[3] <= UInt8(ascii: "7")
        else { return false }
        for index in 3..<length where !isCrockfordDigit(bytes[index]) { return false }
        return true
    }

    /// `0-9A-Z` without `I`, `L`, `O` and `U`.
    @inline(__always)
    package static func isCrockfordDigit(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "H"), UInt8(ascii: "J"),
            UInt8(ascii: "K"), UInt8(ascii: "M"), UInt8(ascii: "N"), UInt8(ascii: "P")...UInt8(ascii: "T"),
            UInt8(ascii: "V")...UInt8(ascii: "Z"):
            return true
        default:
            return false
        }
    }

    /// The millisecond timestamp a valid id encodes.
    public static func milliseconds(of id: String) -> UInt64? {
        guard isValid(id) else { return nil }
        var value: UInt64 = 0
        for byte in id.utf8.dropFirst(3).prefix(10) {
            value = value << 5 | UInt64(alphabet.firstIndex(of: byte)!)
        }
        return value
    }

    /// A new id for `date` (now by default), with 80 random bits: for a caller that names a
    /// session before creating it, e.g. to select it in the same unit of writes. Ids made
    /// within one millisecond do not sort among themselves; the store's own ids do.
    public static func generate(at date: Date = Date()) -> String {
        var random = SystemRandomNumberGenerator()
        let milliseconds = UInt64(max(0, min(Timestamp.microseconds(date) / 1000, (1 << 48) - 1)))
        return encode(milliseconds: milliseconds, random: (UInt16.random(in: 0...0x7FFF, using: &random), random.next()))
    }

    /// `count` new ids for `date` that sort in the order they are returned: for a unit of
    /// writes that creates several sessions and wants a cart to list them in that order.
    public static func generate(count: Int, at date: Date = Date()) -> [String] {
        var random = SystemRandomNumberGenerator()
        let milliseconds = UInt64(max(0, min(Timestamp.microseconds(date) / 1000, (1 << 48) - 1)))
        // Headroom in the high bits, so that counting up from the random start never wraps.
        var high = UInt16.random(in: 0...0x7FFF, using: &random)
        var low: UInt64 = random.next()
        var ids: [String] = []
        ids.reserveCapacity(max(0, count))
        for _ in 0..<max(0, count) {
            ids.append(encode(milliseconds: milliseconds, random: (high, low)))
            let (next, overflow) = low.addingReportingOverflow(1)
            low = next
            if overflow { high &+= 1 }
        }
        return ids
    }

    package static func encode(milliseconds: UInt64, random: (high: UInt16, low: UInt64)) -> String {
        // 128 bits: 48 time | 80 random, written as 26 five-bit digits (the first has 3 bits).
        let high = milliseconds << 16 | UInt64(random.high)
        let low = random.low
        var digits = [UInt8](repeating: 0, count: length)
        for (offset, byte) in prefix.utf8.enumerated() { digits[offset] = byte }
        for position in 0..<26 {
            let shift = 125 - position * 5  // bit index of this digit's lowest bit
            let value: UInt64
            if shift >= 64 {
                value = (high >> UInt64(shift - 64)) & 0x1F
            } else if shift + 5 <= 64 {
                // the digit's five bits lie wholly in `low`
                value = (low >> UInt64(shift)) & 0x1F
            } else {
                value = ((high << UInt64(64 - shift)) | (low >> UInt64(shift))) & 0x1F
            }
            digits[3 + position] = alphabet[Int(value)]
        }
        return String(decoding: digits, as: UTF8.self)
    }
}

/// Generates ids that increase strictly within this generator, even within one
/// millisecond (the ULID spec's monotonic mode: the random part is incremented).
package final class PaymentSessionIDGenerator: Sendable {
    private struct State {
        var milliseconds: UInt64 = 0
        var high: UInt16 = 0
        var low: UInt64 = 0
    }

    private let state = Mutex(State())

    package init() {}

    package func next(milliseconds now: UInt64) -> String {
        state.withLock { state in
            if now > state.milliseconds {
                var random = SystemRandomNumberGenerator()
                state.milliseconds = now
                // Leave headroom so increments within one millisecond never overflow.
                state.high = UInt16.random(in: 0...0x7FFF, using: &random)
                state.low = random.next()
            } else {
                let (low, overflow) = state.low.addingReportingOverflow(1)
                state.low = low
                if overflow { state.high &+= 1 }
            }
            return PaymentSessionID.encode(milliseconds: state.milliseconds, random: (state.high, state.low))
        }
    }
}
