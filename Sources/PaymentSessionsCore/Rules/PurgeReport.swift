import Foundation

/// What a purge (`purge(notUpdatedSince:statuses:includeAuthorized:)`) did.
public struct PurgeReport: Sendable, Hashable {
    /// Sessions deleted.
    public var purged: Int
    /// Authorized sessions that matched but were kept (their holds would be orphaned).
    public var keptAuthorized: Int
    /// Idempotency reservations past their retention, dropped.
    public var reservationsDropped: Int
    /// Changes trimmed from the feed (see `trimChanges()`).
    public var changesTrimmed: Int

    /// A report of `purged` deletions, `keptAuthorized` kept, `reservationsDropped` dropped,
    /// `changesTrimmed` trimmed.
    public init(purged: Int, keptAuthorized: Int, reservationsDropped: Int, changesTrimmed: Int = 0) {
        self.purged = purged
        self.keptAuthorized = keptAuthorized
        self.reservationsDropped = reservationsDropped
        self.changesTrimmed = changesTrimmed
    }
}
