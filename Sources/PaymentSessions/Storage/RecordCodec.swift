/// The stored form of a session (the value under its id in `sessions`).
///
/// Version 5, little-endian, the id being the key:
///
/// | bytes | field |
/// |---|---|
/// | 1 | record version (5) |
/// | 1 | flags: bit 0 `is_selected`, bit 1 has `idempotency_key`, bit 2 `is_initiated` |
/// | 1 | status code (0 pending, 1 requires_more, 2 authorized, 3 error, 4 canceled) |
/// | 8 | `created_at`, microseconds since 1970 UTC |
/// | 8 | `updated_at`, microseconds since 1970 UTC |
/// | 8 | `amount` in the minor unit, `-1` when absent |
/// | 8 | `payment_authorized_at`, microseconds since 1970 UTC, `Int64.min` when absent |
/// | 3 | `currency_code`, three ASCII letters, zeros when absent |
/// | varint + n | `cart_id`, UTF-8 |
/// | varint + n | `provider_id`, UTF-8 |
/// | varint + n | `idempotency_key`, UTF-8 (only when flagged) |
/// | varint + n | `data`, compact JSON text of an object |
/// | 4 | ``RecordChecksum/vectors(_:)`` of all the bytes before it |
///
/// Version 4 is the same with the four-chain ``RecordChecksum/lanes(_:)``, version 3
/// with the single-chain ``RecordChecksum/of(_:)``; version 2 is
/// version 3 without the three money fields and the `is_initiated` flag (they read as
/// absent and `false`); version 1 is version 2 without the checksum. All are still read,
/// and rewritten as version 5 when their session next changes.
///
/// The decoder checks every length against the bytes left, the version, flags and
/// status, and that no byte is left over: corrupt bytes give
/// ``PaymentSessionError/corruptRecord(key:reason:)``, never a crash. `data` was
/// validated when it was written, and so were the strings' UTF-8; a checksummed record's
/// checksum stands for checking them again on every read (accidental corruption fails
/// the checksum), and
/// ``PaymentSession/data`` parses the kept bytes on access. Version 1 records, which
/// have no checksum, have their strings and `data` validated at each decode, and `verify`
/// (`checkingData`) validates them in every record.
enum RecordCodec {
    static let version: UInt8 = 5
    private static let selectedFlag: UInt8 = 1
    private static let idempotencyFlag: UInt8 = 2
    private static let initiatedFlag: UInt8 = 4
    /// The fixed fields before the strings: version, flags, status, two dates (and, from
    /// version 3, amount, authorization date and currency).
    private static let fixedBytes = 19 + 19

    /// Calls `body` with `session`'s record, written in a temporary buffer that is valid
    /// only inside `body`: LMDB copies a value into its page.
    ///
    /// Why not an array: it would be an allocation on every create, for bytes that
    /// `mdb_put` copies at once. The buffer is on the stack for records up to
    /// 1 KiB (`data` up to about 900 bytes); the standard library puts larger ones on the heap.
    static func withRecord<R>(
        _ session: PaymentSession, dataJSON: [UInt8], _ body: (UnsafeRawBufferPointer) -> R
    ) -> R {
        // Each read once: a session read from a record decodes them on every read.
        var text = session.text.values
        var flags: UInt8 = session.isSelected ? selectedFlag : 0
        if text.idempotencyKey != nil { flags |= idempotencyFlag }
        if session.money.isInitiated { flags |= initiatedFlag }
        let size =
            fixedBytes + lengthPrefixed(text.cartID.utf8.count) + lengthPrefixed(text.providerID.utf8.count)
            + (text.idempotencyKey.map { lengthPrefixed($0.utf8.count) } ?? 0) + lengthPrefixed(dataJSON.count) + 4
        // Written in place at its exact size: appending field by field to an array costs a
        // capacity and uniqueness check per byte group.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: size) { buffer in
            var writer = RecordWriter(buffer: buffer)
            writer.byte(version)
            writer.byte(flags)
            writer.byte(session.status.storageCode)
            writer.int64(session.createdMicroseconds)
            writer.int64(session.updatedMicroseconds)
            writer.int64(session.money.amount)
            writer.int64(session.money.authorizedMicroseconds)
            writer.byte(UInt8(truncatingIfNeeded: session.money.currency))
            writer.byte(UInt8(truncatingIfNeeded: session.money.currency >> 8))
            writer.byte(UInt8(truncatingIfNeeded: session.money.currency >> 16))
            text.cartID.withUTF8 { writer.lengthPrefixed($0) }
            text.providerID.withUTF8 { writer.lengthPrefixed($0) }
            if var key = text.idempotencyKey { key.withUTF8 { writer.lengthPrefixed($0) } }
            dataJSON.withUnsafeBufferPointer { writer.lengthPrefixed($0) }
            let checksum = RecordChecksum.vectors(UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[..<writer.offset])))
            writer.int32(checksum)
            assert(writer.offset == size, "record size computed wrong")
            return body(UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[..<writer.offset])))
        }
    }

    /// Bytes taken by a field of `count` bytes with its varint length.
    private static func lengthPrefixed(_ count: Int) -> Int {
        var width = 1
        var rest = count >> 7
        while rest > 0 {
            width += 1
            rest >>= 7
        }
        return width + count
    }

    /// Fills a buffer sized by ``lengthPrefixed(_:)`` and the fixed fields.
    private struct RecordWriter {
        let buffer: UnsafeMutableBufferPointer<UInt8>
        var offset = 0

        mutating func byte(_ value: UInt8) {
            buffer[offset] = value
            offset += 1
        }

        mutating func int64(_ value: Int64) {
            UnsafeMutableRawBufferPointer(buffer).storeBytes(of: value.littleEndian, toByteOffset: offset, as: Int64.self)
            offset += 8
        }

        mutating func int32(_ value: UInt32) {
            UnsafeMutableRawBufferPointer(buffer).storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self)
            offset += 4
        }

        mutating func lengthPrefixed(_ bytes: UnsafeBufferPointer<UInt8>) {
            var rest = UInt64(bytes.count)
            while rest >= 0x80 {
                byte(UInt8(truncatingIfNeeded: rest) | 0x80)
                rest >>= 7
            }
            byte(UInt8(rest))
            guard let source = bytes.baseAddress, bytes.count > 0 else { return }
            (buffer.baseAddress! + offset).update(from: source, count: bytes.count)
            offset += bytes.count
        }
    }

    /// Decodes a record of version 1 to 5.
    ///
    /// - Parameter checkingData: Also validate a checksummed record's `data` as JSON (for
    ///   `verify`; version 1 records always are).
    @inline(__always)
    static func decode(
        id: String, _ record: UnsafeRawBufferPointer, checkingData: Bool = false
    ) throws(PaymentSessionError) -> PaymentSession {
        guard let version = record.first else { throw .corruptRecord(key: id, reason: "empty record") }
        var buffer = record
        switch version {
        case 1:
            break
        case 2, 3, 4, 5:
            guard record.count >= 5 else {
                throw .corruptRecord(key: id, reason: "truncated: \(record.count) bytes")
            }
            buffer = UnsafeRawBufferPointer(rebasing: record[..<(record.count - 4)])
            let stored = UInt32(littleEndian: record.loadUnaligned(fromByteOffset: record.count - 4, as: UInt32.self))
            let computed: UInt32
            switch version {
            case 5: computed = RecordChecksum.vectors(buffer)
            case 4: computed = RecordChecksum.lanes(buffer)
            default: computed = RecordChecksum.of(buffer)
            }
            guard stored == computed else {
                throw .corruptRecord(
                    key: id, reason: "checksum mismatch (stored \(hex(stored)), computed \(hex(computed)))")
            }
        default:
            throw .corruptRecord(key: id, reason: "unknown record version \(version)")
        }
        guard record.count < UInt32.max else {
            throw .corruptRecord(key: id, reason: "\(record.count) bytes: larger than any record")
        }
        var reader = Reader(buffer: buffer, id: id)
        reader.offset = 1
        // Strings were checked when written; behind a checksum they are not checked again
        // (decoding repairs, so even forged bytes make a valid String; `verify` checks).
        reader.checksUTF8 = version == 1 || checkingData
        let flags = try reader.byte("flags")
        let known = version >= 3 ? selectedFlag | idempotencyFlag | initiatedFlag : selectedFlag | idempotencyFlag
        guard flags & ~known == 0 else {
            throw .corruptRecord(key: id, reason: "unknown flags 0x\(String(flags, radix: 16))")
        }
        let statusCode = try reader.byte("status")
        guard let status = PaymentSessionStatus(storageCode: statusCode) else {
            throw .corruptRecord(key: id, reason: "unknown status code \(statusCode)")
        }
        let created = try reader.int64("created_at")
        let updated = try reader.int64("updated_at")
        var money = SessionMoney.none
        if version >= 3 {
            // The 19 fixed bytes with one bounds check (a get by id reads them every time).
            guard reader.remaining >= 19 else { throw reader.truncated("amount") }
            let at = reader.offset
            money.amount = Int64(littleEndian: buffer.loadUnaligned(fromByteOffset: at, as: Int64.self))
            money.authorizedMicroseconds = Int64(littleEndian: buffer.loadUnaligned(fromByteOffset: at + 8, as: Int64.self))
            money.currency = UInt32(buffer[at + 16]) | UInt32(buffer[at + 17]) << 8 | UInt32(buffer[at + 18]) << 16
            money.isInitiated = flags & initiatedFlag != 0
            reader.offset = at + 19
            guard money.amount >= -1, money.amount <= Int64(SessionValidation.maxAmount) else {
                throw .corruptRecord(key: id, reason: "amount \(money.amount) out of range")
            }
            guard money.currency == 0 || SessionMoney.isWellFormed(money.currency) else {
                throw .corruptRecord(key: id, reason: "currency_code is not three lowercase letters")
            }
        }
        let cartID = try reader.string("cart_id")
        let providerID = try reader.string("provider_id")
        let key = flags & idempotencyFlag != 0 ? try reader.string("idempotency_key") : nil
        let dataSpan = try reader.span("data")
        let dataBytes = UnsafeBufferPointer(rebasing: buffer.assumingMemoryBound(to: UInt8.self)[dataSpan.range])
        if version == 1 || checkingData {
            do {
                try JSONParser.validateObject(dataBytes, limits: .storedData)
            } catch {
                throw .corruptRecord(key: id, reason: "data: \(error)")
            }
        } else if dataBytes.first != UInt8(ascii: "{") || dataBytes.last != UInt8(ascii: "}") {
            throw .corruptRecord(key: id, reason: "data is not a JSON object")
        }
        guard reader.isAtEnd else {
            throw .corruptRecord(key: id, reason: "\(reader.remaining) unexpected bytes after the record")
        }
        // One copy of the record; the fields are decoded from it when read (`SessionText`).
        let text = PackedText(
            bytes: Array(buffer.assumingMemoryBound(to: UInt8.self)), cartID: cartID, providerID: providerID,
            idempotencyKey: key, dataSpan: dataSpan)
        return PaymentSession(
            id: id, isSelected: flags & selectedFlag != 0, status: status, text: .packed(text),
            createdMicroseconds: created, updatedMicroseconds: updated, money: money)
    }

    private static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// A bounds-checked cursor over the record's bytes.
    private struct Reader {
        let buffer: UnsafeRawBufferPointer
        let id: String
        var offset = 0
        /// Whether `string` refuses invalid UTF-8 (or decodes it, repairing).
        var checksUTF8 = true

        var isAtEnd: Bool { offset == buffer.count }
        var remaining: Int { buffer.count - offset }

        func truncated(_ field: String) -> PaymentSessionError {
            .corruptRecord(key: id, reason: "truncated at \(field) (byte \(offset) of \(buffer.count))")
        }

        @inline(__always)
        mutating func byte(_ field: String) throws(PaymentSessionError) -> UInt8 {
            guard offset < buffer.count else { throw truncated(field) }
            defer { offset += 1 }
            return buffer[offset]
        }

        @inline(__always)
        mutating func int64(_ field: String) throws(PaymentSessionError) -> Int64 {
            guard remaining >= 8 else { throw truncated(field) }
            let value = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            offset += 8
            return Int64(bitPattern: value)
        }

        @inline(__always)
        mutating func varint(_ field: String) throws(PaymentSessionError) -> Int {
            var value: UInt64 = 0
            for shift in stride(from: 0, to: 35, by: 7) {
                let next = try byte(field)
                value |= UInt64(next & 0x7F) << UInt64(shift)
                if next & 0x80 == 0 {
                    return Int(value)
                }
            }
            throw .corruptRecord(key: id, reason: "length of \(field) is not a valid varint")
        }

        /// Where the next length-prefixed field lies, checked against the bytes left.
        @inline(__always)
        mutating func span(_ field: String) throws(PaymentSessionError) -> PackedText.Span {
            let count = try varint(field)
            guard count <= remaining else { throw truncated(field) }
            defer { offset += count }
            return PackedText.Span(start: UInt32(truncatingIfNeeded: offset), end: UInt32(truncatingIfNeeded: offset + count))
        }

        /// The next string field's span, its UTF-8 checked when `checksUTF8` is set.
        @inline(__always)
        mutating func string(_ field: String) throws(PaymentSessionError) -> PackedText.Span {
            let span = try span(field)
            guard checksUTF8 else { return span }
            let bytes = UnsafeBufferPointer(rebasing: buffer.assumingMemoryBound(to: UInt8.self)[span.range])
            guard UTF8Validation.isValid(bytes) else {
                throw .corruptRecord(key: id, reason: "\(field) is not valid UTF-8")
            }
            return span
        }
    }
}
