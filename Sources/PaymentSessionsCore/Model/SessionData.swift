import StrictJSON
/// The storage behind ``PaymentSession/data``: either the object a caller gave, or
/// compact JSON text (read from a record, or given by a caller as text), parsed only when
/// someone reads `data`.
///
/// Why: parsing `data` into a dictionary is most of the work and the allocations of a get
/// by id, yet many reads never look at it
/// (selection checks, listings printed as JSON, status updates). Keeping the bytes makes
/// those reads one allocation for `data`, and lets writes and `jsonText` copy them as they
/// are instead of encoding the object again.
@usableFromInline
package enum SessionData: Sendable {
    /// An object a caller built.
    case object([String: JSONValue])
    /// Compact JSON text of an object: written by ``JSONWriter`` (keys sorted) and checked
    /// by the strict parser when read back, or given by a caller as
    /// text, checked and compacted (keys in the caller's order).
    case encoded(ArraySlice<UInt8>)

    /// The object, parsing the stored bytes when needed.
    ///
    /// The bytes were validated as exactly what the strict parser accepts when they were given
    /// or when the record was decoded (or the record's checksum vouches for them), so
    /// parsing cannot fail here; the empty object is only a defensive answer.
    package var object: [String: JSONValue] {
        switch self {
        case .object(let members):
            return members
        case .encoded(let bytes):
            let parsed = bytes.withUnsafeBufferPointer { try? JSONParser.parse($0, limits: .storedData) }
            guard case .object(let members)? = parsed else { return [:] }
            return members
        }
    }

    /// The compact JSON text of the object (keys sorted unless it was given as text).
    package var compactBytes: [UInt8] {
        switch self {
        case .encoded(let bytes):
            return Array(bytes)
        case .object(let members):
            var writer = JSONWriter()
            writer.write(object: members)
            return writer.bytes
        }
    }

    /// Whether both hold the same object; equal bytes are equal objects without parsing.
    package static func sameObject(_ lhs: SessionData, _ rhs: SessionData) -> Bool {
        if case .encoded(let left) = lhs, case .encoded(let right) = rhs, left == right { return true }
        return lhs.object == rhs.object
    }
}
