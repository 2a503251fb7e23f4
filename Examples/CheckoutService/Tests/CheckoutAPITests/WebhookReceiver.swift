import CheckoutWebhooks
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import PaymentSessions
import Synchronization
import TestSupport

/// A webhook receiver on loopback for the tests: checks each delivery's signature (a 401
/// when it does not verify), then lets `answer` decide the status, and records the
/// sequence numbers it accepted.
final class WebhookReceiver: Sendable {
    /// What the receiver answers to a verified delivery of change `sequence`.
    typealias Answer = @Sendable (_ sequence: Int) -> HTTPResponse.Status

    let secrets: [String]
    let answer: Answer
    private let accepted = Mutex<[Int]>([])
    private let refusedSignatures = Mutex(0)
    private let redirectsFollowed = Mutex(0)
    private let server = Mutex<(task: Task<Void, any Error>, port: Int)?>(nil)

    init(secrets: [String], answer: @escaping Answer = { _ in .ok }) {
        self.secrets = secrets
        self.answer = answer
    }

    /// The sequence numbers accepted, in order of arrival (a redelivery appears again).
    var sequences: [Int] { accepted.withLock { $0 } }
    /// How many deliveries had a signature that did not verify.
    var badSignatures: Int { refusedSignatures.withLock { $0 } }

    /// How many requests arrived at a redirect's target.
    var followedRedirects: Int { redirectsFollowed.withLock { $0 } }

    /// Starts listening on `port` (by default a free one below the ephemeral range, which
    /// no other test's connection can take while the receiver is stopped: see
    /// `LoopbackPort`) and returns the port.
    func start(port: Int = LoopbackPort.free()) async throws -> Int {
        var logger = Logger(label: "webhook-receiver")
        logger.logLevel = .critical
        let router = Router()
        router.post("hook") { [self] request, _ -> Response in
            let body = Array(try await request.body.collect(upTo: 1 << 20).readableBytesView)
            do {
                try WebhookSignature.verify(
                    header: request.headers[HTTPField.Name(WebhookSignature.headerName)!] ?? "", body: body, secrets: secrets)
            } catch {
                refusedSignatures.withLock { $0 += 1 }
                return Response(status: .unauthorized)
            }
            guard case .number(let number)? = try JSONValue(parsing: String(decoding: body, as: UTF8.self)).objectValue?["sequence"],
                let sequence = Int(number.text)
            else { return Response(status: .badRequest) }
            let status = answer(sequence)
            if (200..<300).contains(status.code) { accepted.withLock { $0.append(sequence) } }
            // A 3xx points somewhere: a dispatcher that followed it would arrive at /moved.
            return Response(status: status, headers: status.kind == .redirection ? [.location: "/moved"] : [:])
        }
        for method in [HTTPRequest.Method.get, .post] {
            router.on("moved", method: method) { [self] _, _ -> HTTPResponse.Status in
                redirectsFollowed.withLock { $0 += 1 }
                return .ok
            }
        }
        let listening = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
            onServerRunning: { listening.continuation.yield($0.localAddress?.port ?? port) }, logger: logger)
        let failure = Locked<String?>(nil)
        let task = Task {
            // A server that cannot listen (its port taken) ends the wait below.
            defer { listening.continuation.finish() }
            do {
                try await app.runService(gracefulShutdownSignals: [])
            } catch {
                failure.withLock { $0 = "\(error)" }
                throw error
            }
        }
        var ports = listening.stream.makeAsyncIterator()
        guard let listeningPort = await ports.next() else {
            throw ReceiverError(description: "the receiver could not listen on port \(port): \(failure.value ?? "it stopped")")
        }
        server.withLock { $0 = (task, listeningPort) }
        return listeningPort
    }

    struct ReceiverError: Error, CustomStringConvertible {
        var description: String
    }

    /// Stops listening (deliveries fail until ``start(port:)`` again), and returns once
    /// the port is free: the server's task ends before its listening socket is closed.
    func stop() async {
        guard let (task, port) = server.withLock({ $0.take() }) else { return }
        task.cancel()
        _ = await task.result
        for _ in 0..<200 where !LoopbackPort.isFree(port) { try? await Task.sleep(for: .milliseconds(25)) }
    }

    /// Waits until `count` different changes were accepted, or about `seconds`.
    func waitForDeliveries(_ count: Int, seconds: Int = 20) async throws {
        for _ in 0..<(seconds * 50) where Set(sequences).count < count { try await Task.sleep(for: .milliseconds(20)) }
    }
}
