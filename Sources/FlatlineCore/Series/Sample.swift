/// Whether a series counts up (and must be turned into a rate) or is a level.
public enum MetricKind: String, Hashable, Sendable, Codable, CaseIterable {
    /// A cumulative count that only goes up, except when its source restarts. Detectors see its
    /// per-second rate.
    case counter
    /// A value that goes up and down. Detectors see it as is.
    case gauge
}

/// One observation of one series.
public struct Sample: Hashable, Sendable {
    /// The series' labels, the metric name included.
    public var labels: LabelSet
    /// The observed value.
    public var value: Double
    /// When it was observed.
    public var timestamp: Timestamp
    /// Counter or gauge.
    public var kind: MetricKind
    /// For a counter: the source is known to have restarted since the previous observation (a new
    /// server id, a new start time), so the value counts from zero even if it is not lower.
    public var counterReset: Bool

    public init(
        labels: LabelSet,
        value: Double,
        timestamp: Timestamp,
        kind: MetricKind = .gauge,
        counterReset: Bool = false
    ) {
        self.labels = labels
        self.value = value
        self.timestamp = timestamp
        self.kind = kind
        self.counterReset = counterReset
    }
}
