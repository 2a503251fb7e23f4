import Foundation
import HTTPTypes
import Hummingbird
import OpenAPIRuntime

/// Answers every error of the generated routes as ``APIError``'s JSON: the store's errors
/// with their status, a request that does not fit the document as a 400 naming the part,
/// anything else as a 500 that says nothing of the server (the full error goes to the log).
struct APIErrorMiddleware: ServerMiddleware {
    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        do {
            return try await next(request, body, metadata)
        } catch {
            let answer = APIError(error)
            return (HTTPResponse(status: answer.status, headerFields: answer.headerFields), HTTPBody(answer.jsonText))
        }
    }
}

/// With `--api-token`, the operations that are not the storefront's (the events, health,
/// metrics and the document) require `Authorization: Bearer TOKEN`.
struct APITokenMiddleware: ServerMiddleware {
    /// The token, or `nil` when every route is open.
    let token: String?
    /// The operations the token guards: those the document marks with `apiToken`.
    static let guardedOperations: Set<String> = [
        Operations.GetCartEvents.id, Operations.GetHealth.id, Operations.GetMetrics.id, Operations.GetOpenAPIDocument.id,
    ]

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        if let token, Self.guardedOperations.contains(operationID) {
            let presented = request.headerFields[.authorization].flatMap { value -> Substring? in
                let parts = value.split(separator: " ", maxSplits: 1)
                return parts.count == 2 && parts[0].lowercased() == "bearer" ? parts[1] : nil
            }
            guard let presented, Self.equalInConstantTime(Array(presented.utf8), Array(token.utf8)) else {
                throw APIError(status: .unauthorized, code: "unauthorized", message: "this route requires the service's API token as a bearer token")
            }
        }
        return try await next(request, body, metadata)
    }

    /// Whether `a` and `b` are equal, taking the same time wherever they differ, so that
    /// timing does not reveal how much of a guess was right.
    static func equalInConstantTime(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}

/// Refuses a request body past ``limit`` with a 400 before it is decoded: one request must
/// not make the service hold or parse an unbounded body.
struct RequestBodyLimitMiddleware: ServerMiddleware {
    /// Room for the largest `data` the store accepts by default (64 KiB of compact JSON)
    /// written with whitespace.
    var limit = 256 << 10

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        guard let body else { return try await next(request, nil, metadata) }
        let bytes: [UInt8]
        do {
            bytes = try await [UInt8](collecting: body, upTo: limit)
        } catch {
            throw APIError(status: .badRequest, code: "invalid_input", message: "request body over \(limit) bytes")
        }
        // An empty body is no body: an optional one (authorize's) is then absent, not
        // malformed JSON.
        return try await next(request, bytes.isEmpty ? nil : HTTPBody(bytes), metadata)
    }
}

/// Answers what Hummingbird refuses before any route runs (a path no route matches, a
/// method a path does not take) in the same JSON as every other error, so that a client
/// parses one shape of error whatever it sent.
struct JSONErrorsMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as any HTTPResponseError {
            let code = error.status == .notFound ? "not_found" : error.status.code < 500 ? "invalid_input" : "storage"
            throw APIError(status: error.status, code: code, message: error.status.reasonPhrase)
        }
    }
}
