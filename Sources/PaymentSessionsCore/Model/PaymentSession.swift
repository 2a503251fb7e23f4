public import StrictJSON
public import Foundation

/// A payment session: one payment provider's attempt to pay for one cart, as Medusa's
/// `PaymentSession` resource describes it.
///
/// A plain value: read it from a `PaymentSessionStore`, change it only through the
/// store's operations (which enforce the rules and indexes), print it with
/// ``jsonText(expandingCart:)``.
///
/// A session read from the store holds one copy of its record and decodes `cartID`,
/// `providerID`, `idempotencyKey` and `data` when they are read, so that a field nobody
/// reads costs nothing (a get by id is one allocation). Each read of those builds the
/// value again: read a field once into a local when you use it many times.
///
/// ```swift
/// let session = try store.create(NewPaymentSession(cartID: "cart_01H...", providerID: "stripe"))
/// print(session.jsonText())
/// // {"id":"ps_01JD...","cart_id":"cart_01H...","provider_id":"stripe","is_selected":false,
/// //  "status":"pending","data":{},"created_at":"2026-11-24T23:43:53.123456Z",...}
/// ```
public struct PaymentSession: Sendable {
    /// `ps_` + ULID; the primary key.
    public var id: String
    /// The cart this session pays for.
    public var cartID: String {
        get { text.cartID }
        set { changeText { $0.cartID = newValue } }
    }
    /// The payment provider in charge (`manual`, `stripe`, ...).
    public var providerID: String {
        get { text.providerID }
        set { changeText { $0.providerID = newValue } }
    }
    /// Whether this is the cart's chosen payment method. At most one per cart.
    public var isSelected: Bool
    /// Where the session stands; see ``PaymentSessionStatus``.
    public var status: PaymentSessionStatus
    /// The provider's own state: any JSON object.
    ///
    /// A session read from the store keeps `data` as the stored JSON bytes and parses
    /// them each time this property is read: read it once into a local when you look at
    /// several members.
    public var data: [String: JSONValue] {
        get { dataStorage.object }
        set { changeText { $0.data = .object(newValue) } }
    }
    /// `data` as the caller gave it or as the record holds it.
    package var dataStorage: SessionData { text.data }
    /// A unique key that makes a retried create return the first session.
    public var idempotencyKey: String? {
        get { text.idempotencyKey }
        set { changeText { $0.idempotencyKey = newValue } }
    }
    /// The variable-length fields: values, or (read from the store) the record's bytes,
    /// decoded field by field when read.
    @usableFromInline package var text: SessionText
    /// When the session was created (microsecond precision).
    public var createdAt: Date {
        get { Timestamp.date(microseconds: createdMicroseconds) }
        set { createdMicroseconds = Timestamp.microseconds(newValue) }
    }
    /// When the session last changed (microsecond precision).
    public var updatedAt: Date {
        get { Timestamp.date(microseconds: updatedMicroseconds) }
        set { updatedMicroseconds = Timestamp.microseconds(newValue) }
    }
    /// The dates as the store keeps them. Why not `Date`: Foundation's `Date` is a
    /// resilient type, so a struct holding one is copied and destroyed through generic
    /// value witnesses on every read; `Int64` keeps the layout fixed.
    @usableFromInline package var createdMicroseconds: Int64
    @usableFromInline package var updatedMicroseconds: Int64
    /// `amount`, `currency_code`, `is_initiated`, `payment_authorized_at`; see `SessionMoney.swift`.
    @usableFromInline package var money: SessionMoney

    /// A session with every field given; dates are rounded to the microsecond.
    public init(
        id: String, cartID: String, providerID: String, isSelected: Bool = false, status: PaymentSessionStatus = .pending,
        data: [String: JSONValue] = [:], idempotencyKey: String? = nil, amount: Int? = nil, currencyCode: String? = nil,
        isInitiated: Bool = false, paymentAuthorizedAt: Date? = nil, createdAt: Date, updatedAt: Date
    ) {
        self.init(
            id: id, cartID: cartID, providerID: providerID, isSelected: isSelected, status: status,
            dataStorage: .object(data), idempotencyKey: idempotencyKey,
            createdMicroseconds: Timestamp.microseconds(createdAt), updatedMicroseconds: Timestamp.microseconds(updatedAt))
        self.amount = amount
        self.currencyCode = currencyCode
        self.isInitiated = isInitiated
        self.paymentAuthorizedAt = paymentAuthorizedAt
    }

    /// Every field as given, dates in microseconds since 1970 (as records hold them).
    package init(
        id: String, cartID: String, providerID: String, isSelected: Bool, status: PaymentSessionStatus,
        dataStorage: SessionData, idempotencyKey: String?, createdMicroseconds: Int64, updatedMicroseconds: Int64,
        money: SessionMoney = .none
    ) {
        self.init(
            id: id, isSelected: isSelected, status: status,
            text: .given(
                SessionText.Values(cartID: cartID, providerID: providerID, idempotencyKey: idempotencyKey, data: dataStorage)),
            createdMicroseconds: createdMicroseconds, updatedMicroseconds: updatedMicroseconds, money: money)
    }

    /// A session whose variable-length fields are `text` (as the record decoder builds it).
    /// Inlinable: the record decoder, in another module, builds one on every read.
    @inlinable package init(
        id: String, isSelected: Bool, status: PaymentSessionStatus, text: SessionText, createdMicroseconds: Int64,
        updatedMicroseconds: Int64, money: SessionMoney = .none
    ) {
        self.id = id
        self.isSelected = isSelected
        self.status = status
        self.text = text
        self.createdMicroseconds = createdMicroseconds
        self.updatedMicroseconds = updatedMicroseconds
        self.money = money
    }

    /// Changes the variable-length fields, decoding them first when they are still bytes.
    private mutating func changeText(_ change: (inout SessionText.Values) -> Void) {
        var values = text.values
        change(&values)
        text = .given(values)
    }
}

// MARK: - Equality

extension PaymentSession: Hashable {
    /// Field by field; `data` compares as JSON objects, however each side stores it.
    public static func == (lhs: PaymentSession, rhs: PaymentSession) -> Bool {
        lhs.id == rhs.id && lhs.cartID == rhs.cartID && lhs.providerID == rhs.providerID
            && lhs.isSelected == rhs.isSelected && lhs.status == rhs.status && lhs.idempotencyKey == rhs.idempotencyKey
            && lhs.createdMicroseconds == rhs.createdMicroseconds && lhs.updatedMicroseconds == rhs.updatedMicroseconds
            && lhs.money == rhs.money && SessionData.sameObject(lhs.dataStorage, rhs.dataStorage)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(cartID)
        hasher.combine(providerID)
        hasher.combine(isSelected)
        hasher.combine(status)
        hasher.combine(data)
        hasher.combine(idempotencyKey)
        hasher.combine(createdMicroseconds)
        hasher.combine(updatedMicroseconds)
        hasher.combine(money)
    }
}

// MARK: - JSON form

extension PaymentSession {
    /// The schema's JSON form: snake_case keys in schema order, `status` as its string,
    /// `data` as an object, RFC 3339 dates with microseconds and `Z`, `idempotency_key`
    /// omitted when absent, and `cart` only when `cart` is given (the store does not own
    /// carts: the caller supplies the expanded object).
    public func jsonText(expandingCart cart: [String: JSONValue]? = nil) -> String {
        var writer = JSONWriter()
        write(to: &writer, cart: cart)
        return writer.text
    }

    /// The JSON form as UTF-8 bytes; see ``jsonText(expandingCart:)``.
    public func jsonBytes(expandingCart cart: [String: JSONValue]? = nil) -> [UInt8] {
        var writer = JSONWriter()
        write(to: &writer, cart: cart)
        return writer.bytes
    }

    package func write(to writer: inout JSONWriter, cart: [String: JSONValue]?) {
        writer.raw("{")
        writer.key("id")
        writer.write(string: id)
        writer.raw(",")
        writer.key("cart_id")
        text.write(.cartID, to: &writer)
        if let cart {
            writer.raw(",")
            writer.key("cart")
            writer.write(object: cart)
        }
        writer.raw(",")
        writer.key("provider_id")
        text.write(.providerID, to: &writer)
        writer.raw(",")
        writer.key("is_selected")
        writer.raw(isSelected ? "true" : "false")
        writer.raw(",")
        writer.key("status")
        writer.write(string: status.rawValue)
        writer.raw(",")
        writer.key("data")
        switch dataStorage {
        case .object(let members): writer.write(object: members)
        case .encoded(let bytes): writer.append(json: bytes)
        }
        if text.hasIdempotencyKey {
            writer.raw(",")
            writer.key("idempotency_key")
            text.write(.idempotencyKey, to: &writer)
        }
        // The money fields are extensions of the seed schema, always present.
        writer.raw(",")
        writer.key("amount")
        if let amount = money.amountValue { writer.append(json: Array(String(amount).utf8)) } else { writer.raw("null") }
        writer.raw(",")
        writer.key("currency_code")
        if let code = money.currencyCode { writer.write(string: code) } else { writer.raw("null") }
        writer.raw(",")
        writer.key("is_initiated")
        writer.raw(money.isInitiated ? "true" : "false")
        writer.raw(",")
        writer.key("payment_authorized_at")
        if let at = money.authorizedAt {
            writer.write(string: Timestamp.rfc3339(microseconds: at))
        } else {
            writer.raw("null")
        }
        writer.raw(",")
        writer.key("created_at")
        writer.write(string: Timestamp.rfc3339(microseconds: createdMicroseconds))
        writer.raw(",")
        writer.key("updated_at")
        writer.write(string: Timestamp.rfc3339(microseconds: updatedMicroseconds))
        writer.raw("}")
    }

    /// Reads a session from its JSON form, as ``jsonText(expandingCart:)`` writes it and
    /// `export` prints it. Every field is checked as the store checks input; `cart` is
    /// ignored, unknown keys are refused.
    ///
    /// - Throws: ``PaymentSessionError/invalidInput(field:value:reason:)`` naming the field.
    public init(jsonText: String) throws(PaymentSessionError) {
        let value: JSONValue
        do {
            // No byte bound: the line is in memory already, and `data`'s size is the store's
            // to bound (`maxDataBytes`), which may exceed the parser's default 1 MiB.
            value = try JSONParser.parse(Array(jsonText.utf8), limits: .storedData)
        } catch {
            throw .invalidInput(field: "session", value: nil, reason: error.description)
        }
        guard case .object(let members) = value else {
            throw .invalidInput(field: "session", value: nil, reason: "expected a JSON object, got \(value.typeName)")
        }
        try self.init(jsonObject: members)
    }

    /// Reads a session from the members of its JSON object; see ``init(jsonText:)``.
    public init(jsonObject members: [String: JSONValue]) throws(PaymentSessionError) {
        let known: Set<String> = [
            "id", "cart_id", "cart", "provider_id", "is_selected", "status", "data", "idempotency_key", "amount",
            "currency_code", "is_initiated", "payment_authorized_at", "created_at", "updated_at",
        ]
        if let unknown = members.keys.sorted().first(where: { !known.contains($0) }) {
            throw .invalidInput(field: unknown, value: nil, reason: "unknown field")
        }
        func string(_ field: String) throws(PaymentSessionError) -> String {
            guard let value = members[field] else { throw .invalidInput(field: field, value: nil, reason: "required") }
            guard case .string(let text) = value else {
                throw .invalidInput(field: field, value: value.jsonText, reason: "expected a string, got \(value.typeName)")
            }
            return text
        }
        // Microseconds straight from the text: going through `Date` (a `Double` of
        // seconds) would round them for dates past about 2255.
        func microseconds(_ field: String) throws(PaymentSessionError) -> Int64 {
            let text = try string(field)
            guard let micros = Timestamp.parseRFC3339(text) else {
                throw .invalidInput(field: field, value: text, reason: "expected an RFC 3339 date-time with timezone")
            }
            return micros
        }
        let statusText = try string("status")
        guard let status = PaymentSessionStatus(rawValue: statusText) else {
            throw .invalidInput(
                field: "status", value: statusText,
                reason: "expected one of \(PaymentSessionStatus.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var isSelected = false
        switch members["is_selected"] {
        case nil: break
        case .bool(let flag)?: isSelected = flag
        case let other?:
            throw .invalidInput(field: "is_selected", value: other.jsonText, reason: "expected a boolean")
        }
        var data: [String: JSONValue] = [:]
        switch members["data"] {
        case nil: break
        case .object(let object)?: data = object
        case let other?:
            // `data` may hold provider secrets: never echo it in an error.
            throw .invalidInput(field: "data", value: nil, reason: "expected a JSON object, got \(other.typeName)")
        }
        var idempotencyKey: String?
        switch members["idempotency_key"] {
        case nil, .null?: break
        case .string(let key)?: idempotencyKey = key
        case let other?:
            throw .invalidInput(field: "idempotency_key", value: other.jsonText, reason: "expected a string")
        }
        // The money fields: absent (an export of a store before them) reads as unset.
        var money = SessionMoney.none
        switch members["amount"] {
        case nil, .null?: break
        case .number(let number)?:
            guard let value = Int(number.text) else {
                throw .invalidInput(field: "amount", value: number.text, reason: "expected a whole number")
            }
            try SessionValidation.validateAmount(value)
            money.amount = Int64(value)
        case let other?:
            throw .invalidInput(field: "amount", value: other.jsonText, reason: "expected a whole number or null")
        }
        switch members["currency_code"] {
        case nil, .null?: break
        case .string(let code)?:
            try SessionValidation.validateCurrencyCode(code)
            money.currency = SessionMoney.packed(code)
        case let other?:
            throw .invalidInput(field: "currency_code", value: other.jsonText, reason: "expected a string or null")
        }
        switch members["is_initiated"] {
        case nil: break
        case .bool(let flag)?: money.isInitiated = flag
        case let other?:
            throw .invalidInput(field: "is_initiated", value: other.jsonText, reason: "expected a boolean")
        }
        switch members["payment_authorized_at"] {
        case nil, .null?: break
        case .string?: money.authorizedMicroseconds = try microseconds("payment_authorized_at")
        case let other?:
            throw .invalidInput(field: "payment_authorized_at", value: other.jsonText, reason: "expected a date-time or null")
        }
        self.init(
            id: try string("id"), cartID: try string("cart_id"), providerID: try string("provider_id"),
            isSelected: isSelected, status: status, dataStorage: .object(data), idempotencyKey: idempotencyKey,
            createdMicroseconds: try microseconds("created_at"), updatedMicroseconds: try microseconds("updated_at"),
            money: money)
        try SessionValidation.validate(self)
    }
}

// MARK: - Codable

extension PaymentSession: Codable {
    package enum CodingKeys: String, CodingKey {
        case id, cartID = "cart_id", providerID = "provider_id", isSelected = "is_selected", status, data
        case idempotencyKey = "idempotency_key", amount, currencyCode = "currency_code", isInitiated = "is_initiated"
        case paymentAuthorizedAt = "payment_authorized_at", createdAt = "created_at", updatedAt = "updated_at"
    }

    /// Encodes the schema's JSON form (dates as RFC 3339 strings whatever the encoder's
    /// date strategy, `idempotency_key` omitted when absent).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(cartID, forKey: .cartID)
        try container.encode(providerID, forKey: .providerID)
        try container.encode(isSelected, forKey: .isSelected)
        try container.encode(status, forKey: .status)
        try container.encode(data, forKey: .data)
        try container.encodeIfPresent(idempotencyKey, forKey: .idempotencyKey)
        try container.encode(amount, forKey: .amount)
        try container.encode(currencyCode, forKey: .currencyCode)
        try container.encode(isInitiated, forKey: .isInitiated)
        try container.encode(money.authorizedAt.map { Timestamp.rfc3339(microseconds: $0) }, forKey: .paymentAuthorizedAt)
        try container.encode(Timestamp.rfc3339(microseconds: createdMicroseconds), forKey: .createdAt)
        try container.encode(Timestamp.rfc3339(microseconds: updatedMicroseconds), forKey: .updatedAt)
    }

    /// Decodes the schema's JSON form, with the same checks as ``init(jsonObject:)``.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func microseconds(_ key: CodingKeys) throws -> Int64 {
            let text = try container.decode(String.self, forKey: key)
            guard let micros = Timestamp.parseRFC3339(text) else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: container, debugDescription: "expected an RFC 3339 date-time, got \(text)")
            }
            return micros
        }
        self.init(
            id: try container.decode(String.self, forKey: .id),
            cartID: try container.decode(String.self, forKey: .cartID),
            providerID: try container.decode(String.self, forKey: .providerID),
            isSelected: try container.decodeIfPresent(Bool.self, forKey: .isSelected) ?? false,
            status: try container.decode(PaymentSessionStatus.self, forKey: .status),
            dataStorage: .object(try container.decodeIfPresent([String: JSONValue].self, forKey: .data) ?? [:]),
            idempotencyKey: try container.decodeIfPresent(String.self, forKey: .idempotencyKey),
            createdMicroseconds: try microseconds(.createdAt), updatedMicroseconds: try microseconds(.updatedAt))
        amount = try container.decodeIfPresent(Int.self, forKey: .amount)
        currencyCode = try container.decodeIfPresent(String.self, forKey: .currencyCode)
        // Absent reads as false, as in `init(jsonObject:)`; null is refused there and here.
        if container.contains(.isInitiated) { isInitiated = try container.decode(Bool.self, forKey: .isInitiated) }
        if container.contains(.paymentAuthorizedAt), try !container.decodeNil(forKey: .paymentAuthorizedAt) {
            money.authorizedMicroseconds = try microseconds(.paymentAuthorizedAt)
        }
        try SessionValidation.validate(self)
    }
}
