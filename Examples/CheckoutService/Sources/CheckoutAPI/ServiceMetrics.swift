import Prometheus

/// Where the service's metrics are kept for `GET /metrics`: the Prometheus registry that
/// the process bootstrapped swift-metrics with, so that the store's metrics (operations,
/// latencies, group commits, feed lag) and Hummingbird's (requests, durations) appear
/// together.
public struct ServiceMetrics: Sendable {
    /// The registry behind the process's metrics factory.
    public let registry: PrometheusCollectorRegistry

    /// Metrics kept in `registry`, which the caller bootstrapped swift-metrics with
    /// (`MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))`, once per
    /// process).
    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// Every metric in Prometheus' text exposition format.
    func prometheusText() -> String { registry.emitToString() }
}
