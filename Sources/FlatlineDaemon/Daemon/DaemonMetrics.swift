import FlatlineCore
import FlatlineNotify
import Prometheus

/// The daemon's own metrics and the per-series verdicts, in Prometheus' text format.
public final class DaemonMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let notify: NotifyMetrics
    /// `flatline_cluster_*`, for a daemon with `cluster:`.
    public let cluster: ClusterMetrics?
    private let series: Gauge
    private let alertsByState: [String: Gauge]

    public init(version: String, clustered: Bool = false) {
        registry = PrometheusCollectorRegistry()
        notify = NotifyMetrics(registry: registry)
        cluster = clustered ? ClusterMetrics(registry: registry) : nil
        registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "flatline_build",
                unitName: "info",
                helpText: "Flatline's version; always 1."
            ),
            labels: [("version", version)]
        ).set(to: 1)
        series = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "flatline_series",
                unitName: "",
                helpText: "Series the detectors hold."
            ),
            labels: []
        )
        var byState: [String: Gauge] = [:]
        for state in ["pending", "firing", "resolved"] {
            byState[state] = registry.makeGauge(
                descriptor: MetricNameDescriptor(
                    metricName: "flatline_alerts",
                    unitName: "",
                    helpText: "Alerts by state (resolved ones are kept 15 minutes for re-sending)."
                ),
                labels: [("state", state)]
            )
        }
        alertsByState = byState
        // Counters are there from the start, at 0 (rate() and absent() need the series before
        // the first event).
        for reason in DropReason.allCases { dropped(reason).increment(by: Int64(0)) }
        walRecovered(batches: 0, cutSegments: 0)
    }

    private func dropped(_ reason: DropReason) -> Counter {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "flatline_samples_dropped",
                unitName: "total",
                helpText: "Samples that never reached a detector, by reason."
            ),
            labels: [("reason", reason.rawValue)]
        )
    }

    func scraped(job: String, target: String, seconds: Double, drops: DropCounts) {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "flatline_scrapes",
                unitName: "total",
                helpText: "Scrape rounds by job."
            ),
            labels: [("job", job)]
        ).increment()
        registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "flatline_scrape_duration",
                unitName: "seconds",
                helpText: "How long the last scrape round of each target took."
            ),
            labels: [("job", job), ("target", target)]
        ).set(to: seconds)
        for reason in DropReason.allCases where drops[reason] > 0 {
            dropped(reason).increment(by: Int64(drops[reason]))
        }
    }

    /// A recovery from the write-ahead log at start: batches fed again, segments cut at a bad record.
    func walRecovered(batches: Int, cutSegments: Int) {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "flatline_wal_replayed_batches",
                unitName: "total",
                helpText: "Batches fed again from the write-ahead log at start (learning a crash would have lost)."
            ),
            labels: []
        ).increment(by: Int64(batches))
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "flatline_wal_cut_segments",
                unitName: "total",
                helpText: "Write-ahead log segments cut at a record cut short or failing its checksum."
            ),
            labels: []
        ).increment(by: Int64(cutSegments))
    }

    func state(series count: Int, alerts: [String: Int]) {
        series.set(to: Double(count))
        for (state, gauge) in alertsByState { gauge.set(to: Double(alerts[state] ?? 0)) }
    }

    /// The whole exposition: the registry, then the verdict of every exported series.
    func exposition(_ verdicts: [Pipeline.SeriesStatus]) -> String {
        var out = registry.emitToString()
        let families: [(String, String, KeyPath<Pipeline.SeriesStatus, Double>)] = [
            ("flatline_anomaly_score", "Calibrated anomaly score of the series' latest point, 0 to 1.", \.score),
            ("flatline_expected", "The value the detectors expected for the series' latest point.", \.expected),
            ("flatline_band_lower", "Lower edge of the series' normal band.", \.lower),
            ("flatline_band_upper", "Upper edge of the series' normal band.", \.upper),
        ]
        for (name, help, field) in families {
            out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
            for verdict in verdicts {
                let value = verdict[keyPath: field]
                guard value.isFinite else { continue }
                out += name + Self.labels(verdict.labels) + " " + Self.number(value) + "\n"
            }
        }
        return out
    }

    /// A series' labels as the exported ones: its metric name as `metric`, `instance` as
    /// `target` and `job` as `source_job` (Prometheus sets its own `instance` and `job` when
    /// it scrapes Flatline).
    /// A series' own label named `metric`, `target` or `source_job` becomes `exported_<name>`
    /// (prefixed until free), so no name appears twice and Prometheus never rejects the page.
    static func labels(_ labels: LabelSet) -> String {
        var renamed: [Label] = []
        var own: [Label] = []
        for label in labels.labels {
            switch label.name {
            case LabelSet.metricNameLabel: renamed.append(Label(name: "metric", value: label.value))
            case "instance": renamed.append(Label(name: "target", value: label.value))
            case "job": renamed.append(Label(name: "source_job", value: label.value))
            default: own.append(label)
            }
        }
        renamed.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        let all = LabelSet.mergingTargetLabels(renamed, into: own)
        return "{" + all.map { "\($0.name)=\"\(LabelSet.escape($0.value))\"" }.joined(separator: ",") + "}"
    }

    static func number(_ value: Double) -> String {
        if let whole = Int64(exactly: value), abs(value) < 1e15 { return String(whole) }
        return String(value)
    }
}
