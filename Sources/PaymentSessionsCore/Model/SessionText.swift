import StrictJSON
/// The variable-length fields of a session (`cart_id`, `provider_id`, `idempotency_key`,
/// `data`): either values a caller gave, or the bytes a backend read them from, packed in
/// one buffer and turned into values only when read.
///
/// Why: building the `String`s of a session read from the store (UTF-8 checks, one
/// allocation each past 15 bytes) and copying `data` apart is much of what a get by id
/// costs over liblmdb's own `mdb_get`, yet most reads touch few fields
/// (a selection check reads `isSelected`, a listing printed as JSON copies the bytes as
/// they are). A session read from storage holds one copy of the bytes instead: one
/// allocation, and no work for a field nobody reads.
@usableFromInline package enum SessionText: Sendable {
    /// Fields as values (a session a caller built, or one changed after it was read).
    ///
    /// Boxed: unboxed, these four fields made `PaymentSession` 149 bytes, copied through
    /// `memcpy` calls at every layer a read returns through; boxed, the session is small
    /// enough to be copied inline, at one allocation when a session is built or changed.
    case values(ValuesBox)
    /// Fields as bytes a backend read (see ``PackedText``).
    case packed(PackedText)

    @usableFromInline package struct Values: Sendable {
        package var cartID: String
        package var providerID: String
        package var idempotencyKey: String?
        package var data: SessionData
    }

    /// ``Values`` behind one reference (see ``values(_:)``).
    @usableFromInline package final class ValuesBox: Sendable {
        package let values: Values

        package init(_ values: Values) { self.values = values }
    }

    /// Fields given as values.
    package static func given(_ values: Values) -> SessionText { .values(ValuesBox(values)) }

    /// The fields as values (decoding them when they are still bytes).
    package var values: Values {
        switch self {
        case .values(let box): box.values
        case .packed(let packed): packed.values
        }
    }

    package var cartID: String {
        switch self {
        case .values(let box): box.values.cartID
        case .packed(let packed): packed.string(packed.cartID)
        }
    }

    package var providerID: String {
        switch self {
        case .values(let box): box.values.providerID
        case .packed(let packed): packed.string(packed.providerID)
        }
    }

    package var idempotencyKey: String? {
        switch self {
        case .values(let box): box.values.idempotencyKey
        case .packed(let packed): packed.idempotencyKey.map(packed.string)
        }
    }

    package var hasIdempotencyKey: Bool {
        switch self {
        case .values(let box): box.values.idempotencyKey != nil
        case .packed(let packed): packed.idempotencyKey != nil
        }
    }

    package enum StringField {
        case cartID, providerID, idempotencyKey
    }

    /// Writes a string field as a JSON string (nothing when absent); from packed bytes,
    /// straight from its bytes, without building a `String`.
    package func write(_ field: StringField, to writer: inout JSONWriter) {
        switch self {
        case .values(let box):
            let values = box.values
            let string: String? =
                switch field {
                case .cartID: values.cartID
                case .providerID: values.providerID
                case .idempotencyKey: values.idempotencyKey
                }
            if let string { writer.write(string: string) }
        case .packed(let packed):
            let span: PackedText.Span? =
                switch field {
                case .cartID: packed.cartID
                case .providerID: packed.providerID
                case .idempotencyKey: packed.idempotencyKey
                }
            if let span { packed.withUTF8(span) { writer.write(utf8: $0) } }
        }
    }

    package var data: SessionData {
        switch self {
        case .values(let box): box.values.data
        case .packed(let packed): .encoded(packed.data)
        }
    }
}

/// A buffer of bytes and where each variable-length field lies in it: the fields as a
/// backend read them, before anyone asks for them as values.
///
/// Engine-neutral on purpose: bytes and ranges, not a record format. The LMDB store
/// passes a copy of its record (header, checksum and all) with the ranges its codec found;
/// another backend could pack the text columns of a row. An enum case rather than a
/// protocol existential, because an existential of this size is boxed: an allocation on
/// every read, the path this form exists to make cheap.
///
/// Whoever builds one has checked every range against the bytes and that the strings are
/// UTF-8 (the LMDB codec does, or the record's checksum vouches for them) and that `data`
/// is compact JSON of one object.
@usableFromInline package struct PackedText: Sendable {
    /// A byte range of ``bytes``; 32-bit, as records are far smaller than 4 GiB (the
    /// decoder refuses larger ones), which keeps a session small to copy.
    @usableFromInline package struct Span: Sendable {
        @usableFromInline package let start: UInt32
        @usableFromInline package let end: UInt32

        package var range: Range<Int> { Int(start)..<Int(end) }

        @inlinable package init(start: UInt32, end: UInt32) {
            self.start = start
            self.end = end
        }
    }

    @inlinable package init(bytes: [UInt8], cartID: Span, providerID: Span, idempotencyKey: Span?, dataSpan: Span) {
        self.bytes = bytes
        self.cartID = cartID
        self.providerID = providerID
        self.idempotencyKey = idempotencyKey
        self.dataSpan = dataSpan
    }

    @usableFromInline package let bytes: [UInt8]
    @usableFromInline package let cartID: Span
    @usableFromInline package let providerID: Span
    @usableFromInline package let idempotencyKey: Span?
    @usableFromInline package let dataSpan: Span

    /// `data`'s compact JSON text, sharing the buffer's storage.
    package var data: ArraySlice<UInt8> { bytes[dataSpan.range] }

    package func string(_ span: Span) -> String {
        withUTF8(span) { String(decoding: $0, as: UTF8.self) }
    }

    /// Lends the UTF-8 bytes of a field.
    package func withUTF8<R>(_ span: Span, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try bytes.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[span.range])) }
    }

    package var values: SessionText.Values {
        SessionText.Values(
            cartID: string(cartID), providerID: string(providerID), idempotencyKey: idempotencyKey.map(string),
            data: .encoded(data))
    }
}
