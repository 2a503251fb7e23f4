import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import PaymentSessions
import PostgresPaymentSessions
import Testing
import TestSupport

/// Two `checkout-service` processes on loopback, both on one PostgreSQL store: what one
/// writes the other reads, and selects racing through both keep one selection per cart.
@Suite(
    "Two instances on one PostgreSQL",
    .enabled(if: PostgresServer.shouldRun, Comment(rawValue: PostgresServer.skipReason)), .timeLimit(.minutes(2)))
struct TwoInstancesTests {
    /// One running `checkout-service` process.
    final class Instance: Sendable {
        let child: ChildProcess
        let port: Int

        init(store: String) async throws {
            child = try ChildProcess("checkout-service", ["--port", "0", "--store", store, "--log-level", "error"])
            // The service prints `listening on HOST:PORT` once it accepts requests; read it
            // on a thread of its own rather than block a task's thread.
            let child = child
            let line = await withCheckedContinuation { continuation in
                Thread { continuation.resume(returning: child.readLine()) }.start()
            }
            guard let line, line.hasPrefix("listening on "), let port = line.split(separator: ":").last.flatMap({ Int($0) }) else {
                child.kill()
                throw InstanceError(description: "checkout-service did not start: \(line ?? "no output")")
            }
            self.port = port
        }

        func stop() { child.kill() }
    }

    struct InstanceError: Error, CustomStringConvertible {
        var description: String
    }

    static func post(_ client: TestClient, _ uri: String, _ body: String) async throws -> HTTPResponse.Status {
        try await client.post(uri, body: ByteBuffer(string: body)).status
    }

    static func cartState(_ port: Int, _ cart: String) async throws -> [String: JSONValue] {
        try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
            let response = try await client.get("/store/carts/\(cart)/payment-sessions")
            guard response.status == .ok, case .object(let members) = try JSONValue(parsing: String(buffer: response.body ?? ByteBuffer()))
            else { throw InstanceError(description: "GET \(cart): \(response.status)") }
            return members
        }
    }

    static func selectedCount(_ state: [String: JSONValue]) -> Int {
        guard case .array(let sessions)? = state["payment_sessions"] else { return -1 }
        return sessions.filter { if case .object(let session) = $0 { session["is_selected"] == true } else { false } }.count
    }

    @Test func concurrentSelectsThroughTwoInstancesLeaveOneSelectedSessionPerCart() async throws {
        let server = try PostgresServer.shared()
        let store = try server.makeDatabase(prefix: "checkout")
        let first = try await Instance(store: store)
        defer { first.stop() }
        let second = try await Instance(store: store)
        defer { second.stop() }

        let carts = (0..<6).map { "cart_\($0)" }
        let providers = ["manual", "stripe", "paypal"]
        let providerList = providers.map { "\"\($0)\"" }.joined(separator: ",")
        // Half the carts start on each instance: each reads the other's sessions.
        for (index, cart) in carts.enumerated() {
            let port = index % 2 == 0 ? first.port : second.port
            let status = try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
                try await Self.post(client, "/store/carts/\(cart)/payment-sessions", "{\"provider_ids\":[\(providerList)]}")
            }
            #expect(status == .ok)
        }
        for (index, cart) in carts.enumerated() {
            let state = try await Self.cartState(index % 2 == 0 ? second.port : first.port, cart)
            guard case .array(let sessions)? = state["payment_sessions"] else { Issue.record("no sessions: \(state)"); continue }
            #expect(sessions.count == providers.count)
        }

        // Six connections to each instance, each selecting providers on every cart.
        let statuses = try await withThrowingTaskGroup(of: [HTTPResponse.Status].self) { group in
            for worker in 0..<12 {
                let port = worker % 2 == 0 ? first.port : second.port
                group.addTask {
                    try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
                        var statuses: [HTTPResponse.Status] = []
                        for round in 0..<24 {
                            let cart = carts[(worker + round) % carts.count]
                            let provider = providers[(worker * 7 + round) % providers.count]
                            statuses.append(
                                try await Self.post(client, "/store/carts/\(cart)/payment-session", "{\"provider_id\":\"\(provider)\"}"))
                        }
                        return statuses
                    }
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(statuses.count == 12 * 24)
        #expect(statuses.allSatisfy { $0 == .ok })

        // Both instances give the same answer: exactly one selected session per cart.
        for cart in carts {
            let seenByFirst = try await Self.cartState(first.port, cart)
            let seenBySecond = try await Self.cartState(second.port, cart)
            #expect(Self.selectedCount(seenByFirst) == 1, "\(cart): \(seenByFirst)")
            #expect(seenByFirst == seenBySecond)
        }
        // And the store itself, read directly.
        let configuration = try PostgresStoreURL(store).configuration
        let selectedPerCart = try await PostgresPaymentSessionStore.withStore(configuration) { sessions in
            var counts: [Int] = []
            for cart in carts { counts.append(try await sessions.sessions(cartID: cart).filter(\.isSelected).count) }
            return counts
        }
        #expect(selectedPerCart == Array(repeating: 1, count: carts.count))
    }
}
