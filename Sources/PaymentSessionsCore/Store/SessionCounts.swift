/// What a store holds, counted in one consistent read, the same way on every backend.
public struct SessionCounts: Sendable, Hashable {
    /// Number of sessions.
    public var sessions: Int
    /// Number of carts with at least one session.
    public var carts: Int
    /// Number of carts with a selected session.
    public var selected: Int
    /// Sessions per status (every status present, zero included).
    public var byStatus: [PaymentSessionStatus: Int]

    /// Counts as given; statuses missing from `byStatus` count zero.
    public init(sessions: Int, carts: Int, selected: Int, byStatus: [PaymentSessionStatus: Int]) {
        self.sessions = sessions
        self.carts = carts
        self.selected = selected
        var all = Dictionary(uniqueKeysWithValues: PaymentSessionStatus.allCases.map { ($0, 0) })
        all.merge(byStatus) { $1 }
        self.byStatus = all
    }
}
