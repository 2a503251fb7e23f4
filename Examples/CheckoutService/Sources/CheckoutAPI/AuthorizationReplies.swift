import Foundation
import Synchronization

/// The answers given to `authorize` requests that carried an `Idempotency-Key`, kept so
/// that a retry with the key gets the stored answer even when the cart changed since (its
/// session canceled, say), as a payment API's idempotency keys behave.
///
/// Kept in this process's memory, bounded in count and age: a retry that reaches another
/// instance of the service, or this one after a restart, is answered by the store's own
/// idempotency instead (authorizing an authorized session for its amount returns it
/// unchanged), which gives the same answer unless the cart changed in between.
final class AuthorizationReplies: Sendable {
    struct Reply: Sendable {
        var cartID: String
        var body: String
        var stored: Date
    }

    private let replies = Mutex<[String: Reply]>([:])
    let capacity: Int
    let lifetime: TimeInterval

    init(capacity: Int = 10_000, lifetime: TimeInterval = 24 * 3600) {
        self.capacity = capacity
        self.lifetime = lifetime
    }

    /// The stored reply for `key`, if it is still fresh.
    func reply(for key: String, now: Date = Date()) -> Reply? {
        replies.withLock { replies in
            guard let reply = replies[key] else { return nil }
            if now.timeIntervalSince(reply.stored) > lifetime {
                replies[key] = nil
                return nil
            }
            return reply
        }
    }

    /// Stores `body` as the reply for `key`, dropping the oldest replies past the capacity.
    func store(_ body: String, for key: String, cartID: String, now: Date = Date()) {
        replies.withLock { replies in
            replies[key] = Reply(cartID: cartID, body: body, stored: now)
            if replies.count > capacity {
                let oldest = replies.sorted { $0.value.stored < $1.value.stored }.prefix(replies.count - capacity)
                for (key, _) in oldest { replies[key] = nil }
            }
        }
    }
}
