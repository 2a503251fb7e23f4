/// The 32-bit checksums that end a record of version 2 and later.
///
/// Why a checksum: LMDB checks no page contents, so a flipped bit or a torn write on a
/// disk without sector atomicity would otherwise reach the decoder. Checking `data` as
/// JSON on every read caught that too, at many times the cost.
///
/// Both are multiply-xorshift hashes over little-endian 64-bit words (each step a
/// bijection of the state, so a change confined to one word always changes the 64-bit
/// state), finished with an avalanche step and folded to 32 bits: a random corruption
/// passes with probability about 2⁻³². They are not cryptographic: they do not stop someone
/// who writes records on purpose (`verify` checks every record's contents in full).
///
/// - ``of(_:)`` (records of version 2 and 3) runs one chain of steps over the words, so
///   each step waits for the one before: on every read of a session that chain was the
///   largest single cost.
/// - ``lanes(_:)`` (version 4) runs four chains side by side, word `i` (the last one
///   zero-padded) in chain `i % 4`,
///   and folds them into one with the same step: each chain a bijection of its words, the
///   fold a bijection of each chain, so one changed word still always changes the state,
///   and the processor overlaps the four chains' multiplies.
enum RecordChecksum {
    private static let multiplier: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// The single-chain checksum of records of version 2 and 3.
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

    /// The four-chain checksum of records of version 4.
    static func lanes(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        let count = bytes.count
        var lane0: UInt64 = 0x243F_6A88_85A3_08D3 ^ UInt64(count)
        var lane1: UInt64 = 0x1319_8A2E_0370_7344
        var lane2: UInt64 = 0xA409_3822_299F_31D0
        var lane3: UInt64 = 0x082E_FA98_EC4E_6C89
        @inline(__always) func step(_ state: inout UInt64, _ word: UInt64) {
            state = (state ^ word) &* multiplier
            state ^= state &>> 32
        }
        @inline(__always) func word(_ at: Int) -> UInt64 {
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
        }
        var offset = 0
        while offset &+ 32 <= count {
            step(&lane0, word(offset))
            step(&lane1, word(offset &+ 8))
            step(&lane2, word(offset &+ 16))
            step(&lane3, word(offset &+ 24))
            offset &+= 32
        }
        // The last 0-31 bytes, as words zero-padded at the end, go on in the same order:
        // word `i` of the record to lane `i % 4`.
        var lane = 0
        @inline(__always) func stepLane(_ value: UInt64) {
            switch lane {
            case 0: step(&lane0, value)
            case 1: step(&lane1, value)
            case 2: step(&lane2, value)
            default: step(&lane3, value)
            }
            lane &+= 1
        }
        while offset &+ 8 <= count {
            stepLane(word(offset))
            offset &+= 8
        }
        if offset < count {
            let rest = count &- offset
            var tail: UInt64
            if count >= 8 {
                // The word that ends the record, shifted down to its last `rest` bytes.
                tail = word(count &- 8) &>> UInt64(8 &* (8 &- rest))
            } else {
                tail = 0
                for index in 0..<rest { tail |= UInt64(bytes[offset &+ index]) &<< UInt64(8 &* index) }
            }
            stepLane(tail)
        }
        var state = lane0
        step(&state, lane1)
        step(&state, lane2)
        step(&state, lane3)
        state ^= state &>> 29
        state &*= 0xBF58_476D_1CE4_E5B9
        state ^= state &>> 32
        return UInt32(truncatingIfNeeded: state ^ (state &>> 32))
    }
}
