import Foundation
import HTTPTypes
import Hummingbird
import PaymentSessions

/// `GET /store/carts/{cart_id}/events`: the cart's changes as server-sent events, one event
/// per change as it commits (from any instance of the service), until the client leaves.
///
/// Each event is `id: SEQUENCE`, `event: KIND` and `data: CHANGE` (the change's JSON line).
/// A client that reconnects with `Last-Event-ID` resumes after it, as browsers do; without
/// one, `?after=N` starts after change N, and by default the stream starts with the next
/// change to commit. `?limit=N` ends the stream after N events (a long poll).
struct CartEvents: Sendable {
    let store: any PaymentSessionStoring

    static let lastEventID = HTTPField.Name("Last-Event-ID")!

    func response(cartID: String, request: Request) async throws -> Response {
        try CheckoutRoutes.checkIdentifier(cartID, field: "cart_id")
        let start: Int64
        if let text = request.headers[Self.lastEventID] ?? request.uri.queryParameters.get("after") {
            guard let after = Int64(text), after >= 0 else {
                throw APIError.invalidBody("Last-Event-ID or after must be a change's sequence number, got \(text)")
            }
            start = after
        } else {
            start = try await store.changeFeedState().last
        }
        // Read once before answering, so that a position no longer kept is a 404 and not a
        // stream that ends at once.
        _ = try await store.changes(after: start, limit: 1)
        var limit = Int.max
        if let text = request.uri.queryParameters.get("limit") {
            guard let value = Int(text), value > 0 else { throw APIError.invalidBody("limit must be a positive whole number, got \(text)") }
            limit = value
        }
        let (store, eventLimit) = (store, limit)
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                var sent = 0
                for try await change in store.followChanges(after: start) where change.cartID == cartID {
                    try await writer.write(ByteBuffer(string: "id: \(change.sequence)\nevent: \(change.kind.rawValue)\ndata: \(change.jsonText())\n\n"))
                    sent += 1
                    if sent == eventLimit { break }
                }
                try await writer.finish(nil)
            })
    }
}
