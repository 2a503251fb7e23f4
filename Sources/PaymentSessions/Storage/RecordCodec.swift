/// The stored form of a session (the value under its id in `sessions`).
///
/// Version 1, little-endian, the id being the key:
///
/// | bytes | field |
/// |---|---|
/// | 1 | format version (1) |
/// | 1 | flags: bit 0 `is_selected`, bit 1 has `idempotency_key` |
/// | 1 | status code (0 pending, 1 requires_more, 2 authorized, 3 error, 4 canceled) |
/// | 8 | `created_at`, microseconds since 1970 UTC |
/// | 8 | `updated_at`, microseconds since 1970 UTC |
/// | varint + n | `cart_id`, UTF-8 |
/// | varint + n | `provider_id`, UTF-8 |
/// | varint + n | `idempotency_key`, UTF-8 (only when flagged) |
/// | varint + n | `data`, compact JSON text of an object |
///
/// The decoder checks every length against the bytes left, every string's UTF-8, the
/// version, flags and status, that `data` is a well-formed JSON object (without building
/// it: ``PaymentSession/data`` parses the kept bytes on access) and that no byte is left
/// over: corrupt bytes give ``PaymentSessionError/corruptRecord(key:reason:)``, never a crash.
enum RecordCodec {
    static let version: UInt8 = 1
    private static let selectedFlag: UInt8 = 1
    private static let idempotencyFlag: UInt8 = 2

    static func encode(_ session: PaymentSession, dataJSON: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(
            19 + session.cartID.utf8.count + session.providerID.utf8.count + (session.idempotencyKey?.utf8.count ?? 0)
                + dataJSON.count + 8)
        bytes.append(version)
        var flags: UInt8 = session.isSelected ? selectedFlag : 0
        if session.idempotencyKey != nil { flags |= idempotencyFlag }
        bytes.append(flags)
        bytes.append(session.status.storageCode)
        appendInt64(Timestamp.microseconds(session.createdAt), to: &bytes)
        appendInt64(Timestamp.microseconds(session.updatedAt), to: &bytes)
        appendString(session.cartID, to: &bytes)
        appendString(session.providerID, to: &bytes)
        if let key = session.idempotencyKey { appendString(key, to: &bytes) }
        appendVarint(UInt64(dataJSON.count), to: &bytes)
        bytes.append(contentsOf: dataJSON)
        return bytes
    }

    static func decode(id: String, _ buffer: UnsafeRawBufferPointer) throws(PaymentSessionError) -> PaymentSession {
        var reader = Reader(buffer: buffer, id: id)
        let version = try reader.byte("version")
        guard version == Self.version else {
            throw .corruptRecord(key: id, reason: "unknown record version \(version)")
        }
        let flags = try reader.byte("flags")
        guard flags & ~(selectedFlag | idempotencyFlag) == 0 else {
            throw .corruptRecord(key: id, reason: "unknown flags 0x\(String(flags, radix: 16))")
        }
        let statusCode = try reader.byte("status")
        guard let status = PaymentSessionStatus(storageCode: statusCode) else {
            throw .corruptRecord(key: id, reason: "unknown status code \(statusCode)")
        }
        let created = try reader.int64("created_at")
        let updated = try reader.int64("updated_at")
        let cartID = try reader.string("cart_id")
        let providerID = try reader.string("provider_id")
        let key = flags & idempotencyFlag != 0 ? try reader.string("idempotency_key") : nil
        let dataBytes = try reader.bytes("data").assumingMemoryBound(to: UInt8.self)
        do {
            try JSONParser.validateObject(dataBytes)
        } catch {
            throw .corruptRecord(key: id, reason: "data: \(error)")
        }
        guard reader.isAtEnd else {
            throw .corruptRecord(key: id, reason: "\(reader.remaining) unexpected bytes after the record")
        }
        return PaymentSession(
            id: id, cartID: cartID, providerID: providerID, isSelected: flags & selectedFlag != 0, status: status,
            dataStorage: .encoded(Array(dataBytes)), idempotencyKey: key,
            createdAt: Timestamp.date(microseconds: created), updatedAt: Timestamp.date(microseconds: updated))
    }

    private static func appendInt64(_ value: Int64, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    private static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    private static func appendString(_ string: String, to bytes: inout [UInt8]) {
        appendVarint(UInt64(string.utf8.count), to: &bytes)
        bytes.append(contentsOf: string.utf8)
    }

    /// A bounds-checked cursor over the record's bytes.
    private struct Reader {
        let buffer: UnsafeRawBufferPointer
        let id: String
        var offset = 0

        var isAtEnd: Bool { offset == buffer.count }
        var remaining: Int { buffer.count - offset }

        func truncated(_ field: String) -> PaymentSessionError {
            .corruptRecord(key: id, reason: "truncated at \(field) (byte \(offset) of \(buffer.count))")
        }

        mutating func byte(_ field: String) throws(PaymentSessionError) -> UInt8 {
            guard offset < buffer.count else { throw truncated(field) }
            defer { offset += 1 }
            return buffer[offset]
        }

        mutating func int64(_ field: String) throws(PaymentSessionError) -> Int64 {
            guard remaining >= 8 else { throw truncated(field) }
            var value: UInt64 = 0
            for shift in 0..<8 { value |= UInt64(buffer[offset + shift]) << UInt64(shift * 8) }
            offset += 8
            return Int64(bitPattern: value)
        }

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

        mutating func bytes(_ field: String) throws(PaymentSessionError) -> UnsafeRawBufferPointer {
            let count = try varint(field)
            guard count <= remaining else { throw truncated(field) }
            defer { offset += count }
            return UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + count])
        }

        mutating func string(_ field: String) throws(PaymentSessionError) -> String {
            let raw = try bytes(field)
            guard let text = UTF8Validation.string(raw) else {
                throw .corruptRecord(key: id, reason: "\(field) is not valid UTF-8")
            }
            return text
        }
    }
}
