import FlatlineCore

/// Builds the samples of one body: every series shares the target's and the server's labels,
/// objects (a connection, a consumer) add theirs, and label sets are assembled already sorted, so
/// ten thousand connections cost no sorting and no name validation per sample.
struct SampleBuilder {
    let time: Timestamp
    /// Counters in this body count from zero: the server restarted since its previous body.
    let counterReset: Bool
    private(set) var samples: [Sample] = []
    /// Samples the body would have given but could not, by reason (a time field that is no
    /// representable time).
    var dropped = DropCounts()
    /// The labels every series of the body carries, sorted.
    let base: [Label]

    init(time: Timestamp, base: [Label], counterReset: Bool) {
        self.time = time
        self.base = base
        self.counterReset = counterReset
    }

    /// Labels of an object merged into `base`: sorted, empty values dropped. A name the target
    /// already sets becomes `exported_<name>` (prefixed again until it is free), as Prometheus
    /// does with conflicting scraped labels.
    func labels(_ extra: [(String, String)]) -> [Label] {
        guard !extra.isEmpty else { return base }
        var own: [Label] = []
        own.reserveCapacity(extra.count)
        for (name, value) in extra where !value.isEmpty {
            own.append(Label(name: name, value: value))
        }
        return LabelSet.mergingTargetLabels(base, into: own)
    }

    /// The age in seconds of the time in `node` at `now`, `nil` when the field is absent or Go's
    /// zero time ("never"). A field that holds no representable time gives no sample and is
    /// counted as dropped (`invalid_timestamp`).
    mutating func age(_ d: JSONDocument, _ node: Int?, since now: Timestamp) -> Double? {
        switch NATSExtractor.time(d, node) {
        case .absent: return nil
        case .invalid:
            dropped.add(.invalidTimestamp)
            return nil
        case .time(let then):
            // Go writes the zero time for "never".
            guard then.milliseconds > 0 else { return nil }
            return max(0, now.seconds(since: then))
        }
    }

    /// Makes room for `count` samples in all, so a large body's samples are not copied as
    /// they grow.
    mutating func reserve(_ count: Int) { samples.reserveCapacity(count) }

    /// Adds a sample of metric `name` with labels already merged (from ``labels(_:)``).
    /// `counterReset` overrides the body's restart flag, for totals that never restart.
    mutating func add(_ name: String, _ value: Double, _ kind: MetricKind, labels: [Label], counterReset: Bool? = nil) {
        add(value, kind, series: Self.series(name, labels: labels), counterReset: counterReset)
    }

    /// Adds a sample of a series whose label set was built before (by ``series(_:labels:)``),
    /// so a connection seen at every scrape shares one label set across them.
    mutating func add(_ value: Double, _ kind: MetricKind, series: LabelSet, counterReset: Bool? = nil) {
        samples.append(
            Sample(
                labels: series,
                value: value,
                timestamp: time,
                kind: kind,
                counterReset: (counterReset ?? self.counterReset) && kind == .counter
            )
        )
    }

    /// The label set of metric `name` with `labels` (sorted, from ``labels(_:)``).
    static func series(_ name: String, labels: [Label]) -> LabelSet {
        var all: [Label] = []
        all.reserveCapacity(labels.count + 1)
        // `__name__` sorts before lowercase names, after uppercase ones a target may carry.
        var named = false
        for label in labels {
            if !named && !label.name.utf8Precedes(LabelSet.metricNameLabel) {
                all.append(Label(name: LabelSet.metricNameLabel, value: name))
                named = true
            }
            all.append(label)
        }
        if !named { all.append(Label(name: LabelSet.metricNameLabel, value: name)) }
        return LabelSet(uncheckedSorted: all)
    }

    /// Adds a sample with the base labels only.
    mutating func add(_ name: String, _ value: Double, _ kind: MetricKind) {
        add(name, value, kind, labels: base)
    }

    /// Two sorted label lists as one (no name is in both).
    static func merge(_ a: [Label], _ b: [Label]) -> [Label] { LabelSet.merge(a, b) }
}
