import Foundation
import PaymentSessions
import Synchronization
import TestSupport

/// A clock the test moves by hand, so that timestamps are predictable.
final class ManualClock: Sendable {
    private let micros = Mutex<Int64>(1_780_000_000_000_000)

    var now: Date { Timestamp.date(microseconds: micros.withLock { $0 }) }
    var microseconds: Int64 { micros.withLock { $0 } }

    func advance(milliseconds: Int64 = 1) { micros.withLock { $0 += milliseconds * 1000 } }
}

/// A store in a fresh temporary directory.
struct StoreFixture {
    let directory = TemporaryDirectory(prefix: "sessions")
    let clock = ManualClock()
    let store: PaymentSessionStore

    /// `fast` uses `noSync`: same semantics, no fsync, for tests that make thousands of commits.
    init(fast: Bool = true, _ configure: (inout PaymentSessionStore.Options) -> Void = { _ in }) throws {
        var options = PaymentSessionStore.Options()
        let clock = self.clock
        options.clock = { clock.now }
        options.environment.mapSize = 16 << 20
        if fast { options.environment.durability = .noSync }
        configure(&options)
        store = try PaymentSessionStore(path: directory.appending("store"), options: options)
    }
}

/// The error `body` throws, if it is a `PaymentSessionError`.
func storeError(_ body: () throws -> Void) -> PaymentSessionError? {
    do {
        try body()
        return nil
    } catch let error as PaymentSessionError {
        return error
    } catch {
        return .storage(.init(.unknown(-1), operation: "unexpected \(error)"))
    }
}
