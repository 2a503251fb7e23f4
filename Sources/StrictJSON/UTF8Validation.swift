/// A fast, non-generic UTF-8 check.
///
/// `String(validating:as:)` is generic and unspecialized in the standard library, and it
/// dominated the read path when profiled; this scalar check plus
/// `String(decoding:as:)` (which then takes its fast path) costs a fraction of it.
package enum UTF8Validation {
    /// Whether `bytes` is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates,
    /// nothing above U+10FFFF).
    package static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        while true {
            index = ByteScan.firstNonASCII(bytes, from: index)
            guard index < bytes.count else { return true }
            if bytes[index] < 0x80 {
                index += 1
                continue
            }
            let length = sequenceLength(bytes, at: index)
            if length == 0 { return false }
            index += length
        }
    }

    /// The length of the well-formed multi-byte sequence starting at `index` (whose lead
    /// byte is at least 0x80), or 0 when it is not one.
    @inline(__always)
    package static func sequenceLength(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> Int {
        let count = bytes.count
        let lead = bytes[index]
        @inline(__always) func continuation(_ offset: Int) -> Bool {
            index + offset < count && bytes[index + offset] & 0xC0 == 0x80
        }
        switch lead {
        case 0xC2...0xDF:
            return continuation(1) ? 2 : 0
        case 0xE0...0xEF:
            guard continuation(1), continuation(2) else { return 0 }
            let second = bytes[index + 1]
            if lead == 0xE0 && second < 0xA0 { return 0 }  // overlong
            if lead == 0xED && second > 0x9F { return 0 }  // surrogate
            return 3
        case 0xF0...0xF4:
            guard continuation(1), continuation(2), continuation(3) else { return 0 }
            let second = bytes[index + 1]
            if lead == 0xF0 && second < 0x90 { return 0 }  // overlong
            if lead == 0xF4 && second > 0x8F { return 0 }  // above U+10FFFF
            return 4
        default:
            return 0
        }
    }

    /// The string `bytes` spell, or `nil` when they are not valid UTF-8.
    package static func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        isValid(bytes) ? String(decoding: bytes, as: UTF8.self) : nil
    }

    /// The string `bytes` spell, or `nil` when they are not valid UTF-8.
    package static func string(_ bytes: UnsafeRawBufferPointer) -> String? {
        string(bytes.assumingMemoryBound(to: UInt8.self))
    }
}
