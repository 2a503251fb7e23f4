public import Foundation

/// One committed change to one session, as the store's change feed records it: written in
/// the same transaction as the change itself, so that a committed change always has its
/// record and a rolled-back one never does.
///
/// Sequence numbers are per store, start at 1, and grow by one per change in commit order,
/// with no gaps: a consumer that has seen sequence `n` has seen every change before it. (On
/// PostgreSQL, whose writers on different carts commit in parallel, the order is commit order
/// within a cart and transaction order across carts: a session's changes always come in the
/// order they committed.)
///
/// ```swift
/// for try await change in store.followChanges(after: try await store.position(consumer: "webhooks") ?? 0) {
///     try await deliver(change.jsonText())
///     try await store.acknowledge(consumer: "webhooks", upTo: change.sequence)
/// }
/// ```
public struct PaymentSessionChange: Sendable, Hashable {
    /// What happened to the session.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// Created (`create`, or `createOrUpdate` making a new session).
        case created
        /// Stored whole by an import or a unit's `insert`.
        case imported
        /// Made its cart's selected session.
        case selected
        /// No longer its cart's selected session (another was selected, or `deselect`).
        case deselected
        /// Authorized (for its amount).
        case authorized
        /// Canceled (a selected one is deselected with it).
        case canceled
        /// Any other change: data, status, amount, `is_initiated`.
        case updated
        /// Deleted by `delete` or `deleteSessions`, or replaced by `createOrUpdate` (a
        /// canceled session).
        case deleted
        /// Deleted by `purge`.
        case purged
    }

    /// The change's position in the store's feed.
    public var sequence: Int64
    /// The session changed.
    public var sessionID: String
    /// Its cart.
    public var cartID: String
    /// What happened.
    public var kind: Kind
    /// The status before the change; `nil` for a session that did not exist.
    public var statusBefore: PaymentSessionStatus?
    /// The status after it; `nil` for a deleted session.
    public var statusAfter: PaymentSessionStatus?
    /// When the change's transaction wrote it (the store's clock).
    public var committedAt: Date
    /// The session as the change left it; `nil` for a deleted session.
    public var session: PaymentSession?

    public init(
        sequence: Int64, sessionID: String, cartID: String, kind: Kind, statusBefore: PaymentSessionStatus?,
        statusAfter: PaymentSessionStatus?, committedAt: Date, session: PaymentSession?
    ) {
        self.sequence = sequence
        self.sessionID = sessionID
        self.cartID = cartID
        self.kind = kind
        self.statusBefore = statusBefore
        self.statusAfter = statusAfter
        self.committedAt = committedAt
        self.session = session
    }

    /// What kind of change turns `before` into `after` (`nil`: no session). Deletes and
    /// creates are told apart by the caller where it knows more (`purged`, `imported`).
    ///
    /// An authorization or a cancel is named as such even when it also moves the selection;
    /// a selection change otherwise wins over the data changes that come with it.
    public static func kind(from before: PaymentSession?, to after: PaymentSession?) -> Kind {
        guard let after else { return .deleted }
        guard let before else { return .created }
        if after.status == .authorized && before.status != .authorized { return .authorized }
        if after.status == .canceled && before.status != .canceled { return .canceled }
        if after.isSelected && !before.isSelected { return .selected }
        if !after.isSelected && before.isSelected { return .deselected }
        return .updated
    }

    /// One line of JSON: `{"sequence":N,"session_id":...,"cart_id":...,"kind":...,
    /// "status_before":...,"status_after":...,"committed_at":...,"session":{...} or null}`,
    /// the session in the schema's JSON form.
    public func jsonText() -> String {
        var writer = JSONWriter()
        writer.raw("{")
        writer.key("sequence")
        writer.append(json: Array(String(sequence).utf8))
        writer.raw(",")
        writer.key("session_id")
        writer.write(string: sessionID)
        writer.raw(",")
        writer.key("cart_id")
        writer.write(string: cartID)
        writer.raw(",")
        writer.key("kind")
        writer.write(string: kind.rawValue)
        writer.raw(",")
        writer.key("status_before")
        if let statusBefore { writer.write(string: statusBefore.rawValue) } else { writer.raw("null") }
        writer.raw(",")
        writer.key("status_after")
        if let statusAfter { writer.write(string: statusAfter.rawValue) } else { writer.raw("null") }
        writer.raw(",")
        writer.key("committed_at")
        writer.write(string: Timestamp.rfc3339(microseconds: Timestamp.microseconds(committedAt)))
        writer.raw(",")
        writer.key("session")
        if let session { session.write(to: &writer, cart: nil) } else { writer.raw("null") }
        writer.raw("}")
        return writer.text
    }
}

/// Where a store's change feed stands: what is still kept, and the named consumers'
/// positions.
public struct ChangeFeedState: Sendable, Hashable {
    /// The oldest change still kept, or `nil` when none is.
    public var first: Int64?
    /// The newest change ever written (kept or trimmed), 0 before the first.
    public var last: Int64
    /// Each named consumer's acknowledged position.
    public var consumers: [String: Int64]

    public init(first: Int64?, last: Int64, consumers: [String: Int64]) {
        self.first = first
        self.last = last
        self.consumers = consumers
    }
}
