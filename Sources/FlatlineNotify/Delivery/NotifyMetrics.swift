import Prometheus

/// Delivery's metrics in a Prometheus registry (the daemon's `/metrics`):
/// `flatline_notifications_total{receiver, integration, outcome}`,
/// `flatline_notification_latency_seconds` (commit to 2xx), `flatline_outbox_pending`,
/// `flatline_outbox_oldest_age_seconds`.
public final class NotifyMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let latency: ValueHistogram
    private let pending: Gauge
    private let oldestAge: Gauge

    /// Seconds: from a tenth of a second to a day (a receiver down overnight).
    static let latencyBuckets: [Double] = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14_400, 86_400]

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        latency = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(
                metricName: "flatline_notification_latency",
                unitName: "seconds",
                helpText: "Seconds from a notification's commit to the outbox to its delivery (a 2xx)."
            ),
            labels: [],
            buckets: Self.latencyBuckets
        )
        pending = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "flatline_outbox_pending",
                unitName: "",
                helpText: "Notifications in the outbox waiting for delivery."
            ),
            labels: []
        )
        oldestAge = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "flatline_outbox_oldest_age",
                unitName: "seconds",
                helpText: "Age of the oldest notification waiting in the outbox (0 when it is empty)."
            ),
            labels: []
        )
    }

    func outcome(receiver: String, integration: String, _ outcome: DeliveryStats.Outcome) {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "flatline_notifications",
                unitName: "total",
                helpText:
                    "Delivery attempts by outcome: delivered, retried, rejected (4xx, not retried), expired (given up)."
            ),
            labels: [("receiver", receiver), ("integration", integration), ("outcome", outcome.rawValue)]
        ).increment()
    }

    func delivered(after seconds: Double) { latency.record(seconds) }

    func outbox(pending count: Int, oldestAge age: Double) {
        pending.set(to: Double(count))
        oldestAge.set(to: age)
    }
}
