import Foundation
import HTTPTypes
import Hummingbird
import PaymentSessions

/// An error answered as JSON, `{"error":{"code":"...","message":"..."}}`, with the HTTP
/// status a client expects: 400 invalid input, 404 not found, 409 conflict or invalid
/// transition, 500 storage, and 503 with `Retry-After` when the outcome is unknown (the
/// same codes as the `payment-sessions` CLI).
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

    static func invalidBody(_ reason: String) -> APIError {
        APIError(status: .badRequest, code: "invalid_input", message: "invalid request body: \(reason)")
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body: JSONValue = ["error": ["code": .string(code), "message": .string(message)]]
        var response = Response.json(body.jsonText, status: status)
        // The store reconnects by itself: a retry a moment later usually finds it.
        if status == .serviceUnavailable { response.headers[.retryAfter] = "1" }
        return response
    }
}

extension Response {
    /// A JSON response from text that is already JSON.
    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Runs a handler, turning the store's errors into ``APIError``s (anything else stays a
/// 500 that Hummingbird logs).
func answering(_ body: () async throws -> Response) async throws -> Response {
    do {
        return try await body()
    } catch let error as PaymentSessionError {
        throw APIError(error)
    }
}
