import Foundation
import PaymentSessions
import TestSupport
import Testing
import TestScheduling

@Suite("Several processes on one store", .ownThreads)
struct MultiProcessTests {
    static let operations = Int(ProcessInfo.processInfo.environment["RACE_OPERATIONS"] ?? "") ?? 150

    @Test func racingProcessesKeepEveryInvariantAndLoseNoWrite() throws {
        let directory = TemporaryDirectory(prefix: "race")
        let path = directory.appending("store")
        _ = try PaymentSessionStore(path: path)  // create it once, up front
        let children = try (0..<6).map { _ in
            try ChildProcess("StoreTorture", ["race", path, "5", String(Self.operations)])
        }
        var created: Set<String> = []
        var deleted: Set<String> = []
        for child in children {
            let output = try child.finish()
            #expect(output.status == 0, "\(output.stderr)")
            for line in output.stdout.split(separator: "\n") {
                let parts = line.split(separator: " ").map(String.init)
                guard parts.count == 2 else { continue }
                if parts[0] == "C" { created.insert(parts[1]) } else if parts[0] == "D" { deleted.insert(parts[1]) }
            }
        }
        #expect(!created.isEmpty && !deleted.isEmpty)
        let store = try PaymentSessionStore(path: path)
        let ids = Set(try store.sessions(limit: 1_000_000).map(\.id))
        #expect(ids == created.subtracting(deleted), "lost or resurrected writes")
        for cart in 0..<5 {
            #expect(try store.sessions(cartID: "race-cart-\(cart)").filter(\.isSelected).count <= 1)
        }
        let report = try store.verify()
        #expect(report.isClean, "\(report.problems)")
    }

    /// Processes race authorize retries, provider switches, amount changes and cancels on
    /// the same carts. Afterwards no cart has an authorized session that is not selected,
    /// and every authorization was recorded once (every process that saw a session
    /// authorized saw the same `payment_authorized_at`, and so does the store).
    @Test func racingAuthorizationsAndProviderSwitchesNeverOrphanAHold() throws {
        let directory = TemporaryDirectory(prefix: "money-race")
        let path = directory.appending("store")
        _ = try PaymentSessionStore(path: path)
        let children = try (0..<4).map { _ in
            try ChildProcess("StoreTorture", ["money", path, "3", String(Self.operations)])
        }
        var authorizedAt: [String: Set<String>] = [:]
        for child in children {
            let output = try child.finish()
            #expect(output.status == 0, "\(output.stderr)")
            for line in output.stdout.split(separator: "\n") {
                let parts = line.split(separator: " ").map(String.init)
                if parts.count == 3, parts[0] == "A" { authorizedAt[parts[1], default: []].insert(parts[2]) }
            }
        }
        #expect(!authorizedAt.isEmpty, "no authorization happened")
        for (id, times) in authorizedAt { #expect(times.count == 1, "\(id) was authorized \(times.count) times: \(times)") }
        let store = try PaymentSessionStore(path: path)
        let all = try store.sessions(limit: 1_000_000)
        for session in all where session.status == .authorized {
            #expect(session.isSelected, "authorized \(session.id) is not its cart's selection")
            #expect(session.paymentAuthorizedAt.map { String(Timestamp.microseconds($0)) } == authorizedAt[session.id]?.first)
        }
        for session in all where session.status == .canceled && authorizedAt[session.id] != nil {
            #expect(session.paymentAuthorizedAt != nil, "canceled \(session.id) lost its authorization record")
        }
        let report = try store.verify()
        #expect(report.isClean, "\(report.problems)")
        #expect(report.legacyAuthorized.isEmpty)
    }
}
