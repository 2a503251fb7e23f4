import Foundation

/// The embedded store is the default ``PaymentSessionStoring`` backend: its `async` API is
/// the protocol, writes group-commit, and reads run on the calling task.
extension PaymentSessionStore: PaymentSessionStoring {
    /// `.lmdb`.
    public var backend: StorageFailure.Backend { .lmdb }

    /// The cart's session for `providerID`, or `nil`.
    public func session(cartID: String, providerID: String) async throws -> PaymentSession? {
        try performRead { try $0.session(cartID: cartID, providerID: providerID) }
    }

    /// Counts of sessions, carts, selections and statuses; ``statistics()`` adds sizes.
    public func sessionCounts() async throws -> SessionCounts {
        try statistics().counts
    }

    /// Writes every session as a JSON line from one snapshot; see the synchronous
    /// `exportJSONLines(_:)`.
    public func exportJSONLines(_ writeLine: (String) throws -> Void) async throws -> Int {
        try exportLines(writeLine)
    }

    /// Imports JSON lines all or nothing; see the synchronous `importJSONLines(_:)`.
    public func importJSONLines(_ text: String) async throws -> Int {
        try importLines(text)
    }

    /// Returns once the feed holds a change after `sequence`, or after `timeout`.
    ///
    /// Another process's commit leaves no trace in this one but the file, so the store
    /// looks at the feed's last sequence every ``changePollInterval``: a read of one key and
    /// the feed's last entry, and a follower hears of any commit within that interval.
    public func waitForChanges(after sequence: Int64, timeout: Duration) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            // Not measured: a poll, not an operation of the caller's.
            if try storageMapped({ try unmeasuredRead { tx in try tx.lastChangeSequence() } }) > sequence { return }
            let left = deadline - clock.now
            if left <= .zero { return }
            try await Task.sleep(for: min(left, Self.changePollInterval))
        }
    }

    /// How often a follower waiting for changes looks at the feed.
    public static let changePollInterval: Duration = .milliseconds(50)

    /// Runs `writes` as one unit in the next group commit: a write that throws rolls back
    /// the unit's earlier writes, and the others in the batch commit without it.
    @discardableResult
    public func perform(_ writes: [PaymentSessionWrite]) async throws -> [PaymentSessionWriteResult] {
        try await performAsyncWrite { tx in
            var results: [PaymentSessionWriteResult] = []
            results.reserveCapacity(writes.count)
            for write in writes { results.append(try tx.apply(write)) }
            return results
        }
    }
}
