import Foundation
import OpenAPIRuntime
import PaymentSessions
import Synchronization

/// A cart's changes as server-sent events, one event per change as it commits (from any
/// instance of the service), until the client leaves, the stream has sent its `limit`, or
/// it has been idle for ``idleTimeout``.
///
/// Each event is `id: SEQUENCE`, `event: KIND` and `data: CHANGE` (the change's JSON line),
/// so a browser that reconnects sends `Last-Event-ID` and resumes where it was. Each open
/// stream is a follower of the store, so their number is capped: beyond ``maxStreams`` a
/// request is a 503 that asks the client to come back later, and an idle stream ends
/// rather than holding its place for ever.
final class CartEvents: Sendable {
    let store: any PaymentSessionStoring
    /// The most streams open at once.
    let maxStreams: Int
    /// How long a stream may go without an event before it ends.
    let idleTimeout: Duration
    private let open = Mutex(0)

    init(store: any PaymentSessionStoring, maxStreams: Int, idleTimeout: Duration) {
        self.store = store
        self.maxStreams = maxStreams
        self.idleTimeout = idleTimeout
    }

    /// How many streams are open.
    var openStreams: Int { open.withLock { $0 } }

    /// The stream of `cartID`'s changes after `after` (by default, from the next change).
    func stream(cartID: String, after: Int64?, limit: Int?) async throws -> HTTPBody {
        var start = after ?? 0
        if after == nil { start = try await store.changeFeedState().last }
        // Read once before answering, so that a position no longer kept is a 404 and not a
        // stream that ends at once.
        _ = try await store.changes(after: start, limit: 1)
        guard take() else {
            throw APIError(
                status: .serviceUnavailable, code: "too_many_streams",
                message: "\(maxStreams) event streams are open, the most this service keeps; retry later")
        }
        let (events, continuation) = AsyncThrowingStream<ArraySlice<UInt8>, any Error>.makeStream()
        let lastEvent = LastEvent()
        let (store, idleTimeout, eventLimit) = (store, idleTimeout, limit ?? .max)
        let follower = Task {
            do {
                var sent = 0
                for try await change in store.followChanges(after: start) where change.cartID == cartID {
                    lastEvent.instant.withLock { $0 = .now }
                    continuation.yield(ArraySlice("id: \(change.sequence)\nevent: \(change.kind.rawValue)\ndata: \(change.jsonText())\n\n".utf8))
                    sent += 1
                    if sent == eventLimit { break }
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        let watchdog = Task {
            while !Task.isCancelled {
                let deadline = lastEvent.instant.withLock { $0 } + idleTimeout
                if ContinuousClock.now >= deadline {
                    continuation.finish()
                    return
                }
                try? await Task.sleep(until: deadline)
            }
        }
        continuation.onTermination = { [self] _ in
            follower.cancel()
            watchdog.cancel()
            release()
        }
        return HTTPBody(events, length: .unknown, iterationBehavior: .single)
    }

    private func take() -> Bool {
        open.withLock { count in
            guard count < maxStreams else { return false }
            count += 1
            return true
        }
    }

    private func release() { open.withLock { $0 -= 1 } }
}

/// When a stream last sent an event, shared by its follower and its idle watchdog.
private final class LastEvent: Sendable {
    let instant = Mutex(ContinuousClock.now)
}
