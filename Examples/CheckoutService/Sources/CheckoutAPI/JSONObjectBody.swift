import Foundation
import PaymentSessions

/// A JSON object in the generated API, in place of the types the generator would make for
/// two of the document's schemas (`openapi-generator-config.yaml`):
///
/// - `ProviderData`, a session's `data`, which the store takes as a `JSONValue` object (the
///   generator's `OpenAPIObjectContainer` holds untyped values instead);
/// - `CartPaymentState`, every cart route's answer: it is the library's own JSON form of the
///   sessions, and its `payment_session` is `null` when none is selected, which the
///   generator cannot express (it drops a `oneOf` with `null`).
///
/// Through a `Decoder` numbers are integers where they fit 64 bits and `Double`s otherwise
/// (`JSONValue`'s `Codable` conformance): values are kept to 17 significant digits, though
/// not always their spelling (`1.10` is written `1.1`).
struct JSONObjectBody: Codable, Hashable, Sendable {
    var members: [String: JSONValue]

    init(_ members: [String: JSONValue]) { self.members = members }

    /// The object in `text`, which is JSON this service wrote.
    init(parsing text: String) throws {
        guard case .object(let members) = try JSONValue(parsing: text) else {
            throw APIError(status: .internalServerError, code: "storage", message: "an answer was not a JSON object")
        }
        self.members = members
    }

    init(from decoder: any Decoder) throws {
        guard case .object(let members) = try JSONValue(from: decoder) else {
            throw DecodingError.typeMismatch(
                [String: JSONValue].self, .init(codingPath: decoder.codingPath, debugDescription: "expected a JSON object"))
        }
        self.members = members
    }

    func encode(to encoder: any Encoder) throws {
        try JSONValue.object(members).encode(to: encoder)
    }
}
