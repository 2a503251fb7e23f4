import Foundation
import HTTPTypes
import Hummingbird
import OpenAPIRuntime
import PaymentSessions

/// An error answered as JSON, `{"error":{"code":"...","message":"..."}}`, with the HTTP
/// status a client expects: 400 invalid input, 401 without the API token, 404 not found,
/// 409 conflict or invalid transition, 500 storage, and 503 with `Retry-After` when the
/// outcome is unknown or the service is at its limit (the same codes as the
/// `payment-sessions` CLI).
public struct APIError: HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    /// The machine-readable code: `invalid_input`, `not_found`, `conflict`, ...
    public var code: String
    /// A readable explanation naming the input.
    public var message: String

    public init(status: HTTPResponse.Status, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    /// The store's error, with the status its code maps to, and a message safe to show
    /// any client.
    ///
    /// The library's errors carry everything an operator needs, including facts about
    /// other carts (``PaymentSessionError/idempotencyConflict(key:existingID:existingCartID:existingProviderID:)``
    /// names the cart and session that hold the key) and the server's paths and storage
    /// details. An HTTP client gets only what concerns its own request; the full error
    /// stays in the library error, for the service's logs.
    public init(_ error: PaymentSessionError) {
        let status: HTTPResponse.Status =
            switch error.code {
            case .invalidInput: .badRequest
            case .notFound: .notFound
            case .invalidTransition, .conflict: .conflict
            case .storage: .internalServerError
            case .outcomeUnknown: .serviceUnavailable
            }
        self.init(status: status, code: error.code.rawValue, message: Self.clientMessage(for: error))
    }

    /// What a client may read of `error`.
    static func clientMessage(for error: PaymentSessionError) -> String {
        switch error {
        case .idempotencyConflict(let key, _, _, _):
            "idempotency key \(JSONValue.string(key).jsonText) was already used for another cart or provider"
        case .storage(let failure) where failure.kind == .outcomeUnknown:
            "the connection to the payment session store was lost while the request was being applied: it may or may not have been applied; retry it with the same Idempotency-Key"
        case .corruptRecord, .unsupportedFormat, .storage, .storeNotFound:
            "the payment session store failed; the request was not applied"
        case .importFailed(_, let inner):
            clientMessage(for: inner)
        case .authorizedSessionSelected(let cart, _):
            "cart \(cart)'s payment is authorized with its selected provider: cancel that authorization before switching provider"
        default:
            error.description
        }
    }

    /// An error from the generated layer or a middleware: the store's, ours, or the
    /// runtime's refusal of a request that does not fit the document (a 400, or a 415 for
    /// another content type), which names the part that does not fit.
    init(_ error: any Error) {
        switch error {
        case let error as APIError:
            self = error
        case let error as PaymentSessionError:
            self.init(error)
        case let error as ServerError:
            if error.underlyingError is APIError || error.underlyingError is PaymentSessionError {
                self.init(error.underlyingError)
            } else if error.httpStatus.kind == .clientError {
                self.init(
                    status: error.httpStatus, code: "invalid_input",
                    message: "invalid request: \(error.causeDescription) \(Self.describe(error.underlyingError))")
            } else {
                self.init(status: .internalServerError, code: "storage", message: "the request failed; it was not applied")
            }
        default:
            self.init(status: .internalServerError, code: "storage", message: "the request failed; it was not applied")
        }
    }

    /// A decoding error's path and reason, without the runtime's dump of the request.
    static func describe(_ error: any Error) -> String {
        guard let decoding = error as? DecodingError else { return "" }
        switch decoding {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context),
            .dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return (path.isEmpty ? "" : "at \(path): ") + context.debugDescription
        @unknown default:
            return "\(decoding)"
        }
    }

    static func invalidBody(_ reason: String) -> APIError {
        APIError(status: .badRequest, code: "invalid_input", message: "invalid request body: \(reason)")
    }

    /// The JSON body, `{"error":{"code":"...","message":"..."}}`.
    var jsonText: String {
        let body: JSONValue = ["error": ["code": .string(code), "message": .string(message)]]
        return body.jsonText
    }

    /// The headers sent with the error: a 503's `Retry-After`, since the store reconnects by
    /// itself and a retry a moment later usually finds it.
    var headerFields: HTTPFields {
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if status == .serviceUnavailable { headers[.retryAfter] = "1" }
        return headers
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(
            status: status, headers: headerFields, body: ResponseBody(byteBuffer: ByteBuffer(string: jsonText)))
    }
}
