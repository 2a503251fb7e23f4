import Foundation
import Metrics

/// The store's changes after a position, as they commit: every change exactly once and in
/// order, waiting for new ones (also those other processes commit) until the consuming task
/// is cancelled, which ends the sequence cleanly.
///
/// ```swift
/// let start = try await store.position(consumer: "analytics") ?? 0
/// for try await change in store.followChanges(after: start) {
///     try await analytics.record(change.jsonText())
///     try await store.acknowledge(consumer: "analytics", upTo: change.sequence)
/// }
/// ```
///
/// A follower reads pages of ``PaymentSessionStoring/changesForFollower(after:limit:)`` and, between
/// them, waits in ``PaymentSessionStoring/waitForChanges(after:timeout:)``.
///
/// With a metrics backend bootstrapped, each follower sets the gauge
/// `payment_sessions_feed_lag_seconds` to the age of the change it just returned.
///
/// It outlives its server: when a read fails because the store cannot be reached (a
/// ``StorageFailure/Kind/unavailable`` or ``StorageFailure/Kind/timeout`` storage error: a
/// restart, a failover, a dropped connection), it waits (0.1 s, doubling up to 5 s) and
/// reads again from the last change it returned, so that no change is missed or repeated.
/// It throws anything else: ``PaymentSessionError/changesTrimmed(after:oldestAvailable:)``
/// when it fell behind the feed's retention, a corrupt record, a misused store.
public struct ChangeFollower: AsyncSequence, Sendable {
    public typealias Element = PaymentSessionChange

    let store: any PaymentSessionStoring
    let start: Int64
    let pageSize: Int

    public func makeAsyncIterator() -> Iterator {
        Iterator(
            store: store, position: start, pageSize: pageSize,
            lag: StoreInstruments.isMetricsBootstrapped ? Gauge(label: "payment_sessions_feed_lag_seconds") : nil)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let store: any PaymentSessionStoring
        /// The last change returned.
        var position: Int64
        let pageSize: Int
        /// How long ago the change just returned committed, when the process records metrics.
        let lag: Gauge?
        var buffer: [PaymentSessionChange] = []
        var index = 0
        /// The pause before the next read after the store could not be reached.
        var pause: Duration?

        /// Whether `error` says the store could not be reached for now, rather than that it
        /// refused the read.
        static func isTransient(_ error: any Error) -> Bool {
            guard case .storage(let failure)? = error as? PaymentSessionError else { return false }
            return failure.kind == .unavailable || failure.kind == .timeout
        }

        public mutating func next() async throws -> PaymentSessionChange? {
            while true {
                if index < buffer.count {
                    let change = buffer[index]
                    index += 1
                    position = change.sequence
                    lag?.record(Date().timeIntervalSince(change.committedAt))
                    return change
                }
                if Task.isCancelled { return nil }
                do {
                    buffer = try await store.changesForFollower(after: position, limit: pageSize)
                    index = 0
                    pause = nil
                    if buffer.isEmpty { try await store.waitForChanges(after: position, timeout: .seconds(1)) }
                } catch {
                    // Cancelled while waiting or reading: the end, not a failure.
                    if error is CancellationError || Task.isCancelled { return nil }
                    guard Self.isTransient(error) else { throw error }
                    let wait = pause ?? .milliseconds(100)
                    pause = Swift.min(wait * 2, .seconds(5))
                    do {
                        try await Task.sleep(for: wait)
                    } catch {
                        return nil
                    }
                }
            }
        }
    }
}

extension PaymentSessionStoring {
    /// The changes after `sequence`, then every change as it commits; see ``ChangeFollower``.
    public func followChanges(after sequence: Int64, pageSize: Int = 256) -> ChangeFollower {
        ChangeFollower(store: self, start: sequence, pageSize: max(1, pageSize))
    }
}
