import StrictJSON
/// The input rules, the same on every backend, checked before anything is written.
///
/// The limits are the product's, not an engine's: a session moves between backends
/// (export and import, `payment-sessions copy`) unchanged only if every backend accepts
/// exactly the same sessions. They are generous for what they bound (Medusa's cart ids
/// and provider ids are a few dozen bytes; an idempotency key is a client's request id)
/// and small enough that every backend indexes them as they are: a (cart, provider) pair
/// is one index key, so neither part may contain U+0000, the separator an ordered key
/// needs. Each backend checks its own engine's limits again where it builds its keys.
public enum SessionValidation {
    /// Longest `cart_id` and `provider_id`, in UTF-8 bytes: the two together, with a
    /// separator, are one index key of at most 511 bytes.
    public static let maxIdentifierBytes = 255
    /// Longest `idempotency_key`, in UTF-8 bytes.
    public static let maxIdempotencyKeyBytes = 511
    /// Deepest nesting of arrays and objects inside `data`.
    public static let maxDataDepth = 32

    /// Checks a `cart_id` or `provider_id`.
    public static func validateIdentifier(_ value: String, field: String) throws(PaymentSessionError) {
        let count = value.utf8.count
        if count == 0 { throw .invalidInput(field: field, value: value, reason: "must not be empty") }
        if count > maxIdentifierBytes {
            throw .invalidInput(field: field, value: value, reason: "is \(count) bytes; at most \(maxIdentifierBytes)")
        }
        // Over the contiguous bytes: `utf8.contains` steps through the view's indices (ten
        // times the instructions).
        let hasZero = value.utf8.withContiguousStorageIfAvailable { $0.contains(0) } ?? value.utf8.contains(0)
        if hasZero { throw .invalidInput(field: field, value: value, reason: "must not contain U+0000") }
    }

    /// Checks a session id: `ps_` + 26 Crockford base32 characters.
    public static func validateID(_ id: String) throws(PaymentSessionError) {
        if !PaymentSessionID.isValid(id) {
            throw .invalidInput(field: "id", value: id, reason: "expected ps_ followed by a 26-character ULID")
        }
    }

    /// Runs `lookup` for the session with `id`, checking the id's form only when the
    /// lookup finds nothing (then a malformed id throws instead of answering `nil`).
    ///
    /// Why: records are stored only under well-formed ids (every write checks them), so
    /// a record found proves the id, and checking it first is work on every get by id.
    /// An id of the wrong length is refused before the lookup, so that no lookup ever
    /// sees an empty or oversized key.
    @inlinable package static func validateIDUnlessFound(
        _ id: String, _ lookup: () throws(PaymentSessionError) -> PaymentSession?
    ) throws(PaymentSessionError) -> PaymentSession? {
        if id.utf8.count != PaymentSessionID.length { try validateID(id) }
        if let session = try lookup() { return session }
        try validateID(id)
        return nil
    }

    /// Checks an idempotency key.
    public static func validateIdempotencyKey(_ key: String) throws(PaymentSessionError) {
        let count = key.utf8.count
        if count == 0 { throw .invalidInput(field: "idempotency_key", value: key, reason: "must not be empty") }
        if count > maxIdempotencyKeyBytes {
            throw .invalidInput(
                field: "idempotency_key", value: key, reason: "is \(count) bytes; at most \(maxIdempotencyKeyBytes)")
        }
    }

    /// Checks `data` and returns its compact JSON (what the record stores).
    public static func encodeData(_ data: [String: JSONValue], maxBytes: Int) throws(PaymentSessionError) -> [UInt8] {
        var writer = JSONWriter()
        writer.maxDepth = maxDataDepth
        writer.write(object: data)
        if writer.exceededMaxDepth {
            throw .invalidInput(field: "data", value: nil, reason: "nested deeper than \(maxDataDepth) levels")
        }
        try checkDataSize(writer.count, maxBytes: maxBytes)
        return writer.bytes
    }

    /// Checks `data` given as JSON text and returns it compact (what the record stores):
    /// one JSON object that the strict parser accepts, nested no deeper than a dictionary may be
    /// (``maxDataDepth``). The size bound is the store's, checked when it is written.
    package static func checkDataJSON(_ text: UnsafeBufferPointer<UInt8>) throws(PaymentSessionError) -> [UInt8] {
        let isCompact: Bool
        do {
            isCompact = try JSONParser.validateDataObject(text, maxValueDepth: maxDataDepth)
        } catch {
            throw .invalidInput(field: "data", value: nil, reason: error.description)
        }
        return isCompact ? Array(text) : JSONCompaction.compacted(text)
    }

    /// Refuses `data` longer than `maxBytes` bytes of compact JSON.
    package static func checkDataSize(_ count: Int, maxBytes: Int) throws(PaymentSessionError) {
        if count > maxBytes {
            throw .invalidInput(field: "data", value: nil, reason: "is \(count) bytes of JSON; at most \(maxBytes)")
        }
    }

    /// The largest amount: 2^53 - 1, the largest integer every JSON reader (JavaScript's
    /// numbers included) holds exactly.
    public static let maxAmount = (1 << 53) - 1

    /// Checks an amount: a whole number of the currency's minor unit, 0 to 2^53 - 1.
    public static func validateAmount(_ amount: Int) throws(PaymentSessionError) {
        guard (0...maxAmount).contains(amount) else {
            throw .invalidInput(field: "amount", value: String(amount), reason: "must be 0 to \(maxAmount)")
        }
    }

    /// Checks a currency code: three lowercase ASCII letters (ISO 4217 style, as Medusa
    /// writes them: `usd`, `eur`).
    public static func validateCurrencyCode(_ code: String) throws(PaymentSessionError) {
        let bytes = Array(code.utf8)
        guard bytes.count == 3, bytes.allSatisfy({ (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) }) else {
            throw .invalidInput(field: "currency_code", value: code, reason: "expected three lowercase letters such as usd")
        }
    }

    /// Checks an amount and its currency together: a currency is required with an amount.
    public static func validateMoney(amount: Int?, currencyCode: String?) throws(PaymentSessionError) {
        if let amount { try validateAmount(amount) }
        if let currencyCode { try validateCurrencyCode(currencyCode) }
        if amount != nil && currencyCode == nil {
            throw .invalidInput(field: "currency_code", value: nil, reason: "is required when amount is set")
        }
    }

    /// Checks every field of a whole session (import, and records read back).
    public static func validate(_ session: PaymentSession) throws(PaymentSessionError) {
        try validateID(session.id)
        try validateIdentifier(session.cartID, field: "cart_id")
        try validateIdentifier(session.providerID, field: "provider_id")
        if let key = session.idempotencyKey { try validateIdempotencyKey(key) }
        if session.isSelected && session.status == .canceled {
            throw .invalidInput(field: "is_selected", value: "true", reason: "a canceled session cannot be selected")
        }
        guard session.money.isWellFormed else {
            throw .invalidInput(
                field: "amount", value: nil, reason: "amount must be 0 to \(maxAmount) and currency_code three lowercase letters")
        }
        try validateMoney(amount: session.amount, currencyCode: session.currencyCode)
        if session.status == .authorized && session.money.authorizedAt == nil && !session.isLegacyAuthorized {
            // Authorized with an amount but no record of when: not something this store
            // writes, and not a legacy session (those have no amount either).
            throw .invalidInput(
                field: "payment_authorized_at", value: nil, reason: "an authorized session with an amount records when it was authorized")
        }
        if session.status == .authorized && !session.isSelected && !session.isLegacyAuthorized {
            // Only a session authorized before amounts and authorization records existed may
            // be unselected (it is listed apart by `verify`); any other would be an orphaned hold.
            throw .invalidInput(field: "is_selected", value: "false", reason: "an authorized session is its cart's selected one")
        }
        if let authorized = session.money.authorizedAt {
            // An authorization record: only on a session that is or was authorized
            // (authorized, or canceled after).
            guard session.status == .authorized || session.status == .canceled else {
                throw .invalidInput(
                    field: "payment_authorized_at", value: Timestamp.rfc3339(microseconds: authorized),
                    reason: "set on a \(session.status.rawValue) session")
            }
        }
        if session.updatedMicroseconds < session.createdMicroseconds {
            throw .invalidInput(
                field: "updated_at", value: Timestamp.rfc3339(microseconds: session.updatedMicroseconds), reason: "is before created_at")
        }
    }
}
