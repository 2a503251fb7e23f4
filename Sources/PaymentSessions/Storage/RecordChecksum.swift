/// The 32-bit checksum that ends a version 2 record.
///
/// Why a checksum: LMDB checks no page contents, so a flipped bit or a torn write on a
/// disk without sector atomicity would otherwise reach the decoder. Checking `data` as
/// JSON on every read caught that too, at many times the cost; this costs about one
/// multiply per eight bytes.
///
/// It is a multiply-xorshift hash over little-endian 64-bit words (each step a bijection
/// of the state, so a change confined to one word always changes the 64-bit state),
/// finished with an avalanche step and folded to 32 bits: a random corruption passes
/// with probability about 2⁻³². It is not cryptographic: it does not stop someone who
/// writes records on purpose (`verify` checks every record's contents in full).
enum RecordChecksum {
    private static let multiplier: UInt64 = 0x9E37_79B9_7F4A_7C15

    static func of(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var state: UInt64 = 0x243F_6A88_85A3_08D3 ^ UInt64(bytes.count)
        var offset = 0
        let count = bytes.count
        @inline(__always) func mix(_ at: Int) {
            let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
            state = (state ^ word) &* multiplier
            state ^= state &>> 32
        }
        // Four words per turn of the loop: the same sequence, with a quarter of the loop's
        // own instructions.
        while offset &+ 32 <= count {
            mix(offset)
            mix(offset &+ 8)
            mix(offset &+ 16)
            mix(offset &+ 24)
            offset &+= 32
        }
        while offset &+ 8 <= count {
            mix(offset)
            offset &+= 8
        }
        if offset < count {
            // The last 1-7 bytes, zero-extended: when the record is a word or longer, read
            // them as the top of the word that ends the record (one load, no byte loop).
            let rest = count &- offset
            var tail: UInt64
            if count >= 8 {
                tail = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self))
                tail &>>= UInt64(8 &* (8 &- rest))
            } else {
                tail = 0
                for index in 0..<rest { tail |= UInt64(bytes[offset &+ index]) &<< UInt64(8 &* index) }
            }
            state = (state ^ tail) &* multiplier
            state ^= state &>> 32
        }
        state ^= state &>> 29
        state &*= 0xBF58_476D_1CE4_E5B9
        state ^= state &>> 32
        return UInt32(truncatingIfNeeded: state ^ (state &>> 32))
    }
}
