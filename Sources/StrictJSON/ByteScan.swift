/// Word-at-a-time scans (SWAR: eight bytes per step in a `UInt64`) for the hot loops of
/// JSON validation, where most bytes are plain ASCII that needs no attention.
///
/// Why: checking `data` byte by byte dominates a get by id that validates it; eight bytes
/// per step cut it to a fraction.
package enum ByteScan {
    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highBits: UInt64 = 0x8080_8080_8080_8080

    /// The high bit of each byte of `word` that is zero (exact for the lowest one; bytes
    /// above a zero byte may be flagged falsely, which callers tolerate by looking at the
    /// lowest flag only).
    @inline(__always)
    private static func zeroBytes(_ word: UInt64) -> UInt64 {
        (word &- ones) & ~word & highBits
    }

    /// The high bit of each byte of `word` that JSON text must escape: `"`, `\` or a
    /// control character (a byte < 0x20 has its high bit clear and borrows when 0x20 is
    /// subtracted). Exact for the lowest flagged byte, as ``zeroBytes(_:)``.
    @inline(__always)
    private static func bytesToEscape(_ word: UInt64) -> UInt64 {
        let control = (word &- 0x2020_2020_2020_2020) & ~word & highBits
        return control | zeroBytes(word ^ 0x2222_2222_2222_2222) | zeroBytes(word ^ 0x5C5C_5C5C_5C5C_5C5C)
    }

    /// The index of the first byte at or after `start` that a JSON string scan must look
    /// at (`"`, `\`, a control character or a non-ASCII byte), or the index of the
    /// first of the last fewer-than-eight bytes when none is found before them: the
    /// caller goes on byte by byte from there.
    @inline(__always)
    package static func firstStringSpecial(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        firstFlagged(bytes, from: start) { bytesToEscape($0) | ($0 & highBits) }
    }

    /// The index of the first byte at or after `start` that JSON text must escape (`"`,
    /// `\` or a control character), or of the first of the last fewer-than-eight bytes
    /// when none is found before them.
    @inline(__always)
    package static func firstToEscape(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        firstFlagged(bytes, from: start, bytesToEscape)
    }

    /// The index of the first non-ASCII byte at or after `start`, or of the first of the
    /// last fewer-than-eight bytes when none is found before them.
    @inline(__always)
    package static func firstNonASCII(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        firstFlagged(bytes, from: start) { $0 & highBits }
    }

    /// The scan the three share: eight bytes per step until `flags` marks one (the high bit
    /// of each byte it picks out; the lowest mark must be exact), then that byte's index.
    @inline(__always)
    private static func firstFlagged(
        _ bytes: UnsafeBufferPointer<UInt8>, from start: Int, _ flags: (UInt64) -> UInt64
    ) -> Int {
        guard let base = bytes.baseAddress else { return start }
        var position = start
        let end = bytes.count
        while position &+ 8 <= end {
            let flagged = flags(UInt64(littleEndian: UnsafeRawPointer(base + position).loadUnaligned(as: UInt64.self)))
            if flagged != 0 {
                return position &+ flagged.trailingZeroBitCount &>> 3
            }
            position &+= 8
        }
        return position
    }
}
