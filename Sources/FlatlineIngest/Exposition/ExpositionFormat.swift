import FlatlineCore

/// The two Prometheus exposition formats.
public enum ExpositionFormat: String, Hashable, Sendable, CaseIterable {
    /// The text format 0.0.4 (`text/plain; version=0.0.4`): timestamps in milliseconds.
    case text = "prometheus"
    /// OpenMetrics 1.0 (`application/openmetrics-text; version=1.0.0`): timestamps in seconds,
    /// `# EOF` required.
    case openMetrics = "openmetrics"

    /// The `Accept` header Prometheus sends, preferring OpenMetrics and falling back to text.
    public static let acceptHeader =
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
        + "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

    /// The format a `Content-Type` names; text for anything else, as Prometheus 2 did.
    public init(contentType: String?) {
        let lowered = contentType?.lowercased() ?? ""
        self = lowered.hasPrefix("application/openmetrics-text") ? .openMetrics : .text
    }
}

/// The type a metric family declares with `# TYPE`.
public enum MetricType: String, Hashable, Sendable, CaseIterable {
    case counter, gauge, histogram, summary, untyped
    case gaugeHistogram = "gaugehistogram"
    case stateSet = "stateset"
    case info
    case unknown
}

/// One sample of an exposition.
public struct ExposedSample: Hashable, Sendable {
    /// The series: metric name (as `__name__`) and labels.
    public var labels: LabelSet
    /// The value; may be NaN or infinite (validation drops those later, counted).
    public var value: Double
    /// The sample's own timestamp, when the exposition gives one.
    public var timestamp: Timestamp?
    /// The raw timestamp text as written (milliseconds in text, seconds in OpenMetrics).
    public var timestampText: Substring?
    /// The declared type of its family (`untyped`/`unknown` when undeclared).
    public var type: MetricType
    /// Counter or gauge, for rate conversion: counters, and the `_count`, `_sum` and `_bucket`
    /// series of histograms and summaries, are cumulative. An undeclared series whose name ends
    /// in `_total` is taken for a counter.
    public var kind: MetricKind
    /// The 1-based line in the exposition.
    public var line: Int
}

/// A malformed exposition. Like Prometheus, one bad line fails the whole body.
public struct ExpositionError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The 1-based line, or 0 for the body as a whole.
    public var line: Int
    /// Why the line was rejected.
    public var reason: String

    public init(line: Int, reason: String) {
        self.line = line
        self.reason = reason.truncated()
    }

    public var description: String { line > 0 ? "line \(line): \(reason)" : reason }
}
