import Foundation

/// The bytes of one `changes` entry, keyed by its sequence number (8 bytes, big-endian,
/// so that key order is sequence order).
///
/// | bytes | field |
/// |---|---|
/// | 1 | version (1) |
/// | 1 | kind (``code(of:)``) |
/// | 1 | status before (its storage code, 0xFF: none) |
/// | 1 | status after (0xFF: none) |
/// | 8 | committed at, microseconds since 1970, little-endian |
/// | 2 + n | session id, length little-endian |
/// | 2 + n | cart id, length little-endian |
/// | rest | the session's record (``RecordCodec``) after the change; empty for a delete |
///
/// The session is the record the change wrote, copied as it is: appending a change costs a
/// copy of bytes already encoded, never a second encoding.
enum ChangeRecord {
    static let version: UInt8 = 1
    static let none: UInt8 = 0xFF

    /// Each kind's stored code: fixed, so that a new kind never changes what old bytes mean.
    static func code(of kind: PaymentSessionChange.Kind) -> UInt8 {
        switch kind {
        case .created: 0
        case .imported: 1
        case .selected: 2
        case .deselected: 3
        case .authorized: 4
        case .canceled: 5
        case .updated: 6
        case .deleted: 7
        case .purged: 8
        }
    }

    static func kind(code: UInt8) -> PaymentSessionChange.Kind? {
        PaymentSessionChange.Kind.allCases.first { Self.code(of: $0) == code }
    }

    /// The `changes` key of `sequence`.
    static func key(_ sequence: Int64) -> [UInt8] {
        withUnsafeBytes(of: UInt64(sequence).bigEndian) { Array($0) }
    }

    static func sequence(ofKey key: UnsafeRawBufferPointer) -> Int64? {
        guard key.count == 8 else { return nil }
        return Int64(UInt64(bigEndian: key.loadUnaligned(as: UInt64.self)))
    }

    /// The size of a change whose strings and record are these.
    static func size(sessionID: String, cartID: String, record: UnsafeRawBufferPointer?) -> Int {
        16 + sessionID.utf8.count + cartID.utf8.count + (record?.count ?? 0)
    }

    /// Writes a change into `buffer`, exactly ``size(sessionID:cartID:record:)`` bytes (the
    /// space liblmdb reserved for it, so that the record is copied once, into the map).
    static func write(
        kind: PaymentSessionChange.Kind, before: PaymentSessionStatus?, after: PaymentSessionStatus?, committedAt: Int64,
        sessionID: String, cartID: String, record: UnsafeRawBufferPointer?, into buffer: UnsafeMutableRawBufferPointer
    ) {
        buffer[0] = version
        buffer[1] = code(of: kind)
        buffer[2] = before?.storageCode ?? none
        buffer[3] = after?.storageCode ?? none
        buffer.storeBytes(of: committedAt.littleEndian, toByteOffset: 4, as: Int64.self)
        var offset = 12
        for var text in [sessionID, cartID] {
            text.withUTF8 { utf8 in
                buffer.storeBytes(of: UInt16(utf8.count).littleEndian, toByteOffset: offset, as: UInt16.self)
                offset += 2
                UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<(offset + utf8.count)]).copyMemory(from: UnsafeRawBufferPointer(utf8))
                offset += utf8.count
            }
        }
        if let record, !record.isEmpty {
            UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<(offset + record.count)]).copyMemory(from: record)
        }
    }

    static func decode(sequence: Int64, _ bytes: UnsafeRawBufferPointer) throws(PaymentSessionError) -> PaymentSessionChange {
        let key = "changes/\(sequence)"
        func corrupt(_ reason: String) -> PaymentSessionError { .corruptRecord(key: key, reason: reason) }
        guard bytes.count >= 16, bytes[0] == version else { throw corrupt("unknown change record") }
        guard let kind = kind(code: bytes[1]) else { throw corrupt("unknown kind \(bytes[1])") }
        func status(_ code: UInt8) throws(PaymentSessionError) -> PaymentSessionStatus? {
            if code == none { return nil }
            guard let status = PaymentSessionStatus(storageCode: code) else { throw corrupt("unknown status code \(code)") }
            return status
        }
        let before = try status(bytes[2])
        let after = try status(bytes[3])
        let committedAt = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: Int64.self))
        var offset = 12
        func text() throws(PaymentSessionError) -> String {
            guard offset + 2 <= bytes.count else { throw corrupt("truncated") }
            let count = Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
            offset += 2
            guard offset + count <= bytes.count else { throw corrupt("truncated") }
            defer { offset += count }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)]), as: UTF8.self)
        }
        let sessionID = try text()
        let cartID = try text()
        let record = UnsafeRawBufferPointer(rebasing: bytes[offset...])
        let session = record.isEmpty ? nil : try RecordCodec.decode(id: sessionID, record)
        return PaymentSessionChange(
            sequence: sequence, sessionID: sessionID, cartID: cartID, kind: kind, statusBefore: before,
            statusAfter: after, committedAt: Timestamp.date(microseconds: committedAt), session: session)
    }
}
