public import Foundation
public import LMDB
public import Logging

extension PaymentSessionStore {
    /// What a commit promises about a crash that follows it (LMDB's durability modes):
    /// `.full` (the default), `.noMetaSync`, `.noSync`. See <doc:OperatingAStore>.
    public typealias Durability = Environment.Durability

    /// How to open a store.
    ///
    /// ```swift
    /// var options = PaymentSessionStore.Options()
    /// options.environment.durability = .noMetaSync   // trade the last commit on an OS crash for speed
    /// options.createIfMissing = false                // an operator tool: never create by accident
    /// let store = try PaymentSessionStore(path: path, options: options)
    /// ```
    public struct Options: Sendable {
        /// The LMDB environment's options: map size and growth, durability, readers.
        /// Defaults: full durability (`fsync` at every commit), a 256 MiB map that grows
        /// up to 1 TiB, 16 named databases (the store uses 5).
        public var environment = Environment.Options()
        /// Create the directory and an empty store when there is none. When `false`,
        /// opening a missing store throws `PaymentSessionError/storeNotFound(location:)`.
        public var createIfMissing = true
        /// The largest `data` object, in bytes of compact JSON.
        public var maxDataBytes = 64 << 10
        /// How long the idempotency key of a deleted or purged session stays reserved: a
        /// create retried with it meanwhile gets `PaymentSessionError/sessionGone(key:id:)`
        /// instead of a second session. 24 hours by default, as Stripe keeps its keys;
        /// `purge` drops reservations older than this.
        public var idempotencyRetention: TimeInterval = 24 * 3600
        /// How long the change feed keeps a change that not every named consumer has
        /// acknowledged, in seconds (see ``PaymentSessionStore/trimChanges()``).
        public var changeRetention: TimeInterval = 7 * 24 * 3600
        /// Bounds on one group commit of the `async` write API.
        public var groupCommit = GroupCommitLimits()
        /// The clock that stamps `created_at` and `updated_at` (a test can fix it).
        public var clock: @Sendable () -> Date = { Date() }
        /// Where the store reports what an operator should hear of: map growth and its
        /// refusals, reader slots of dead processes reclaimed (`notice`), a writer lock
        /// recovered from a dead process, a corrupt record met on a read (`warning`), a map
        /// lost (`critical`). By default the process's logging system (swift-log's
        /// `LoggingSystem`), label `payment-sessions`.
        public var logger = Logger(label: "payment-sessions")

        /// The defaults.
        public init() {}

        func now() -> Date { clock() }

        var nowMicroseconds: Int64 { Timestamp.microseconds(clock()) }
    }
}
