import Prometheus

/// `flatline_cluster_*`: how this replica stands in its cluster.
public final class ClusterMetrics: Sendable {
    let members: Gauge
    let ownedTargets: Gauge
    let alone: Gauge
    let renewFailures: Counter
    let takeovers: Counter
    private let notifications: [String: Counter]

    init(registry: PrometheusCollectorRegistry) {
        func gauge(_ name: String, _ help: String) -> Gauge {
            registry.makeGauge(
                descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help),
                labels: []
            )
        }
        func counter(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(
                descriptor: MetricNameDescriptor(metricName: name, unitName: "total", helpText: help),
                labels: []
            )
        }
        members = gauge("flatline_cluster_members", "Live replicas this one sees, itself included.")
        ownedTargets = gauge(
            "flatline_cluster_owned_targets",
            "Targets (and nats_system or nats_events jobs) this replica evaluates."
        )
        alone = gauge(
            "flatline_cluster_alone",
            "1 while this replica is out of touch with the coordinating NATS and evaluates every target."
        )
        renewFailures = counter(
            "flatline_cluster_lease_renew_failures",
            "Renewals of this replica's membership that failed (NATS unreachable, a timeout)."
        )
        takeovers = counter(
            "flatline_cluster_takeovers",
            "Targets this replica took over from replicas that left."
        )
        var byOutcome: [String: Counter] = [:]
        for outcome in ["delivered", "retried", "rejected", "expired", "waited"] {
            byOutcome[outcome] = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    metricName: "flatline_cluster_notifications",
                    unitName: "total",
                    helpText: "Attempts of this replica at notifications pulled from the cluster's stream, by outcome."
                ),
                labels: [("outcome", outcome)]
            )
        }
        notifications = byOutcome
    }

    func notification(_ outcome: String) {
        notifications[outcome]?.increment()
    }
}
