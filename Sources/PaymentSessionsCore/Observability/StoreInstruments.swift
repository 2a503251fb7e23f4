import Metrics
import Synchronization
import Tracing

/// What a store reports about its operations through swift-metrics and
/// swift-distributed-tracing: a count of operations by name and outcome, their latencies,
/// and a span around each.
///
/// Made when the store opens, and only if the process bootstrapped a metrics factory or a
/// tracer by then (as swift-metrics' own metric objects, which keep the factory they were
/// made with): a store opened with nothing bootstrapped has no instruments and pays one
/// `nil` check per operation.
///
/// The metrics, labelled `backend` (`lmdb`, `postgresql`) and `operation` (the store
/// method's name, such as `create(_:)` or `sessions(cartID:)`, the same on every backend):
/// - `payment_sessions_operations_total` (counter), also labelled `outcome`: `ok`, or the
///   error's ``PaymentSessionError/Code`` (`conflict`, `outcome_unknown`, ...), or
///   `cancelled`;
/// - `payment_sessions_operation_duration_seconds` (timer), each operation's time as its
///   caller saw it (for an `async` write, its wait for the group commit included).
package final class StoreInstruments: Sendable {
    /// The backend's name in the metrics' labels and the spans' `db.system`.
    package let backend: String
    private let tracer: (any Tracer)?
    private let recordsMetrics: Bool
    private let counters = Mutex<[String: Counter]>([:])
    private let timers = Mutex<[String: Metrics.Timer]>([:])

    private init(backend: String, tracer: (any Tracer)?, recordsMetrics: Bool) {
        self.backend = backend
        self.tracer = tracer
        self.recordsMetrics = recordsMetrics
    }

    /// The instruments for a store of `backend`, or `nil` when neither metrics nor tracing
    /// is bootstrapped.
    package static func make(backend: String) -> StoreInstruments? {
        let recordsMetrics = isMetricsBootstrapped
        let tracer = InstrumentationSystem.tracer
        let tracing = !(tracer is NoOpTracer)
        guard recordsMetrics || tracing else { return nil }
        return StoreInstruments(backend: backend, tracer: tracing ? tracer : nil, recordsMetrics: recordsMetrics)
    }

    /// Whether the process bootstrapped a metrics factory.
    package static var isMetricsBootstrapped: Bool { !(MetricsSystem.factory is NOOPMetricsHandler) }

    /// Runs `body` as `operation`, counting it by outcome, timing it and tracing it.
    package func measure<R, E: Error>(_ operation: String, _ body: () throws(E) -> R) throws(E) -> R {
        let span = tracer.map { startSpan($0, operation) }
        let start = ContinuousClock.now
        do {
            let result = try body()
            finish(operation, start: start, span: span, error: nil)
            return result
        } catch {
            finish(operation, start: start, span: span, error: error)
            throw error
        }
    }

    /// Whether the current task is inside a measured `async` operation, whose steps are
    /// not measured again (a write that falls back to a transaction is one operation).
    @TaskLocal package static var isMeasuring = false

    /// Runs `body` as `operation`, counting it by outcome, timing it and tracing it; within
    /// it, ``isMeasuring`` is set.
    package func measure<R>(
        _ operation: String, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> R
    ) async throws -> R {
        let span = tracer.map { startSpan($0, operation) }
        let start = ContinuousClock.now
        do {
            let result = try await Self.$isMeasuring.withValue(true) { try await body() }
            finish(operation, start: start, span: span, error: nil)
            return result
        } catch {
            finish(operation, start: start, span: span, error: error)
            throw error
        }
    }

    private func startSpan(_ tracer: any Tracer, _ operation: String) -> any Span {
        let span = tracer.startAnySpan("payment_sessions.\(operation)", context: .current ?? .topLevel, ofKind: .client)
        span.attributes["db.system"] = backend
        span.attributes["db.operation"] = operation
        return span
    }

    private func finish(_ operation: String, start: ContinuousClock.Instant, span: (any Span)?, error: (any Error)?) {
        if let span {
            if let error { span.recordError(error) }
            span.end()
        }
        guard recordsMetrics else { return }
        let elapsed = (ContinuousClock.now - start).components
        timer(operation).recordNanoseconds(elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
        counter(operation, outcome: Self.outcome(of: error)).increment()
    }

    /// `ok`, the error's code, or `cancelled`.
    static func outcome(of error: (any Error)?) -> String {
        switch error {
        case nil: "ok"
        case let error as PaymentSessionError: error.code.rawValue
        case is CancellationError: "cancelled"
        default: "error"
        }
    }

    private func counter(_ operation: String, outcome: String) -> Counter {
        counters.withLock { counters in
            let key = operation + "\u{0}" + outcome
            if let counter = counters[key] { return counter }
            let counter = Counter(
                label: "payment_sessions_operations_total",
                dimensions: [("backend", backend), ("operation", operation), ("outcome", outcome)])
            counters[key] = counter
            return counter
        }
    }

    private func timer(_ operation: String) -> Metrics.Timer {
        timers.withLock { timers in
            if let timer = timers[operation] { return timer }
            let timer = Metrics.Timer(
                label: "payment_sessions_operation_duration_seconds", dimensions: [("backend", backend), ("operation", operation)],
                preferredDisplayUnit: .seconds)
            timers[operation] = timer
            return timer
        }
    }
}
