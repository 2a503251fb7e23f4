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
/// - ``vectors(_:)`` (version 5) takes the words two at a time in 128-bit vector lanes,
///   as XXH3 does, in the SSE2 and NEON instructions every x86-64 and arm64 processor has:
///   a lane's running sum waits only for an addition, where each step of a chain of
///   ``lanes(_:)`` waits for a multiply and a shift, and the multiplies leave the one
///   scalar multiplier.
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

    /// The vector checksum of records of version 5.
    ///
    /// The bytes, zero-padded to a multiple of 16, are taken as 16-byte chunks of two
    /// little-endian words `(w0, w1)`. Chunk `c` is added into one of two accumulators of
    /// two 64-bit lanes, `front` when `c` is even and `back` when it is odd, with the keys
    /// of its 32-byte block `c / 2`; a block's keys are the initial keys plus `c / 2` times
    /// a step, so that the same chunk at another place adds something else. Adding chunk
    /// `(w0, w1)` with keys `(k0, k1)`, where `x = w ^ k`:
    ///
    ///     sum.0 += low32(x0) * high32(x0) + w1
    ///     sum.1 += low32(x1) * high32(x1) + w0
    ///
    /// Each word is added whole to one lane (so a change to one word alone always changes
    /// the accumulators), and its keyed product, which depends on its place, to the other.
    /// The four lanes are then folded in the order `front.0, front.1, back.0, back.1` with
    /// the multiply-xorshift step of the other versions and the same finish. The length is
    /// in `front`'s first initial lane, so zero padding never makes two lengths alike.
    static func vectors(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        let count = bytes.count
        let low32 = SIMD2<UInt64>(repeating: 0xFFFF_FFFF)
        var front = SIMD2<UInt64>(0x243F_6A88_85A3_08D3 ^ UInt64(count), 0x1319_8A2E_0370_7344)
        var back = SIMD2<UInt64>(0xA409_3822_299F_31D0, 0x082E_FA98_EC4E_6C89)
        var frontKey = SIMD2<UInt64>(0x4528_21E6_38D0_1377, 0xBE54_66CF_34E9_0C6C)
        var backKey = SIMD2<UInt64>(0xC0AC_29B7_C97C_50DD, 0x3F84_D5B5_B547_0917)
        let keyStep = SIMD2<UInt64>(repeating: multiplier)
        @inline(__always) func add(_ sum: inout SIMD2<UInt64>, _ words: SIMD2<UInt64>, _ key: SIMD2<UInt64>) {
            let keyed = words ^ key
            sum = sum &+ (keyed & low32) &* (keyed &>> 32) &+ SIMD2(words[1], words[0])
        }
        @inline(__always) func word(_ at: Int) -> UInt64 {
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
        }
        @inline(__always) func chunk(_ at: Int) -> SIMD2<UInt64> {
            // One 16-byte load; the conversions are no-ops on little-endian processors.
            let raw = bytes.loadUnaligned(fromByteOffset: at, as: SIMD2<UInt64>.self)
            return SIMD2(UInt64(littleEndian: raw[0]), UInt64(littleEndian: raw[1]))
        }
        var offset = 0
        while offset &+ 32 <= count {
            add(&front, chunk(offset), frontKey)
            add(&back, chunk(offset &+ 16), backKey)
            frontKey &+= keyStep
            backKey &+= keyStep
            offset &+= 32
        }
        var tailIsOdd = false
        if offset &+ 16 <= count {
            add(&front, chunk(offset), frontKey)
            offset &+= 16
            tailIsOdd = true
        }
        if offset < count {
            // The last 1-15 bytes, zero-padded; when the record is a word or longer, read
            // as the top of the word that ends it (no byte loop).
            let rest = count &- offset
            var tail = SIMD2<UInt64>(0, 0)
            if count >= 8 {
                let last = word(count &- 8)
                if rest > 8 {
                    tail = SIMD2(word(offset), last &>> UInt64(8 &* (16 &- rest)))
                } else {
                    tail[0] = last &>> UInt64(8 &* (8 &- rest))
                }
            } else {
                for index in 0..<rest { tail[0] |= UInt64(bytes[offset &+ index]) &<< UInt64(8 &* index) }
            }
            if tailIsOdd { add(&back, tail, backKey) } else { add(&front, tail, frontKey) }
        }
        @inline(__always) func step(_ state: inout UInt64, _ word: UInt64) {
            state = (state ^ word) &* multiplier
            state ^= state &>> 32
        }
        var state = front[0]
        step(&state, front[1])
        step(&state, back[0])
        step(&state, back[1])
        state ^= state &>> 29
        state &*= 0xBF58_476D_1CE4_E5B9
        state ^= state &>> 32
        return UInt32(truncatingIfNeeded: state ^ (state &>> 32))
    }
}
