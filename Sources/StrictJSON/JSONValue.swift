/// A JSON value, kept exactly: numbers keep their textual form, so that a provider's
/// `data` round-trips through the store byte for byte in meaning (no `Double` rounding of
/// `12345678901234567890`, no `1.10` turning into `1.1`).
///
/// ```swift
/// let data: [String: JSONValue] = [
///     "intent": "pi_3N...",
///     "amount": 4200,
///     "capture": true,
///     "metadata": ["order": "A-17"],
/// ]
/// ```
public enum JSONValue: Sendable, Hashable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number, as its JSON text.
    case number(JSONNumber)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object. Keys are unique; their order is not kept (output sorts them).
    case object([String: JSONValue])

    /// Parses one JSON text (RFC 8259), nested at most 64 deep and at most 1 MiB long.
    ///
    /// - Throws: ``JSONParseError`` with the byte offset and reason.
    public init(parsing text: String) throws(JSONParseError) {
        self = try JSONParser.parse(Array(text.utf8))
    }

    /// The compact JSON text of this value, with object keys sorted.
    public var jsonText: String {
        var writer = JSONWriter()
        writer.write(self)
        return writer.text
    }

    /// The object's members, when this is an object.
    public var objectValue: [String: JSONValue]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// The string, when this is a string.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The name of this value's JSON type: `object`, `array`, `string`, `number`, `boolean`, `null`.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByStringLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
    public init(floatLiteral value: Double) { self = JSONNumber(value).map(JSONValue.number) ?? .null }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension JSONValue: CustomStringConvertible {
    /// The compact JSON text.
    public var description: String { jsonText }
}

/// A JSON number kept as its validated text (`-0.5e+10`, `12345678901234567890`).
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    /// The number exactly as JSON text.
    public let text: String

    /// A number from validated JSON number text; `nil` when `text` is not one.
    public init?(text: String) {
        let bytes = Array(text.utf8)
        let length = bytes.withUnsafeBufferPointer { JSONParser.numberLength($0, from: 0) }
        guard !bytes.isEmpty, length == bytes.count else { return nil }
        self.text = text
    }

    package init(validatedText: String) { text = validatedText }

    /// An integer.
    public init(_ value: some BinaryInteger) { text = String(value) }

    /// A finite double, in Swift's shortest round-tripping form; `nil` for NaN and infinities.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        if value == value.rounded(), abs(value) < 1e15 {
            text = String(Int64(value))
        } else {
            text = "\(value)"
        }
    }

    /// The value as a `Double` (rounded when it has more precision than a `Double`).
    public var doubleValue: Double { Double(text) ?? .nan }

    /// The value as an `Int64`, when it is an integer in range.
    public var int64Value: Int64? { Int64(text) }

    /// The JSON text.
    public var description: String { text }
}
