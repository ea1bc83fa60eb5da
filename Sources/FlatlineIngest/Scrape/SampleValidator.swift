import FlatlineCore

/// A sample must carry these labels when its metric name matches.
public protocol LabelRequirementRule: Sendable {
    var labels: [String] { get }
    func applies(to metricName: String) -> Bool
}

/// Checks one target's samples before they reach the detectors, dropping and counting by reason:
/// non-finite values, samples missing a label their model requires, timestamps going backwards
/// (or repeating) for a series, timestamps too far ahead of the scrape, and new series beyond
/// the target's `max_series`. Live scrapes and replayed recordings go through the same checks.
public struct SampleValidator: Sendable {
    public var maxSeries: Int?
    /// Seconds a sample may be stamped ahead of its scrape.
    public var futureTolerance: Double
    /// Series not seen for this many seconds are forgotten (they free room under `max_series`).
    public var staleAfter: Double
    public var requirements: [any LabelRequirementRule]
    /// Drops so far, by reason.
    public private(set) var drops = DropCounts()

    /// Each tracked series' slot, and by slot its labels (nil: free) and last timestamp.
    private var slots: [LabelSet: Int] = [:]
    private var series: [LabelSet?] = []
    private var last: [Timestamp] = []
    private var free: [Int] = []
    /// The slot of the sample at each position of the last call (-1: none). A target gives its
    /// series in the same order every scrape: the slot at a sample's position is tried first,
    /// and taken when it holds the same labels (the same label array, for a target's extractor
    /// hands over the one it remembers: an identity check), so most samples are not hashed.
    private var order: [Int] = []
    private var lastSweep: Timestamp?
    /// Metric names already checked against the requirements, and what they require.
    private var required: [String: [String]] = [:]

    public init(
        maxSeries: Int? = nil,
        futureTolerance: Double = 300,
        staleAfter: Double = 600,
        requirements: [any LabelRequirementRule] = []
    ) {
        self.maxSeries = maxSeries
        self.futureTolerance = futureTolerance
        self.staleAfter = staleAfter
        self.requirements = requirements
    }

    /// The series currently tracked.
    public var seriesCount: Int { slots.count }

    /// The samples that pass, in order; the others are counted in ``drops``.
    /// - Parameters:
    ///   - samples: one scrape's samples.
    ///   - scrapeTime: when the scrape was made (the reference for "in the future").
    /// - Returns: the valid samples and what was dropped now, by reason (also added to ``drops``).
    public mutating func validate(_ samples: [Sample], scrapeTime: Timestamp) -> (valid: [Sample], drops: DropCounts) {
        sweep(scrapeTime)
        var dropped = DropCounts()
        defer { drops.add(dropped) }
        let horizon = scrapeTime.advanced(bySeconds: futureTolerance)
        var valid: [Sample] = []
        valid.reserveCapacity(samples.count)
        var placed: [Int] = []
        placed.reserveCapacity(samples.count)
        defer { order = placed }
        for (position, sample) in samples.enumerated() {
            // The slot this position had, until the sample is placed (a dropped one keeps it).
            let hint = position < order.count ? order[position] : -1
            var slot = hint
            defer { placed.append(slot) }
            guard sample.value.isFinite else {
                dropped.add(.nonFinite)
                continue
            }
            guard abs(sample.value) <= DetectionBank.maxMagnitude else {
                dropped.add(.outOfRange)
                continue
            }
            guard sample.timestamp <= horizon else {
                dropped.add(.tooFarInFuture)
                continue
            }
            if !requirements.isEmpty {
                let needed = requiredLabels(sample.labels.metricName)
                guard needed.allSatisfy({ !(sample.labels[$0] ?? "").isEmpty }) else {
                    dropped.add(.missingLabel)
                    continue
                }
            }
            if hint < 0 || series[hint] != sample.labels {
                slot = slots[sample.labels] ?? -1
            }
            if slot >= 0 {
                let previous = last[slot]
                guard sample.timestamp > previous else {
                    dropped.add(sample.timestamp == previous ? .duplicate : .outOfOrder)
                    continue
                }
                last[slot] = sample.timestamp
            } else {
                if let maxSeries, slots.count >= maxSeries {
                    dropped.add(.seriesLimit)
                    continue
                }
                slot = add(sample.labels, sample.timestamp)
            }
            valid.append(sample)
        }
        return (valid, dropped)
    }

    /// Adds drops made before validation (by the extraction) to ``drops``.
    public mutating func count(_ earlier: DropCounts) {
        drops.add(earlier)
    }

    private mutating func requiredLabels(_ name: String) -> [String] {
        if let known = required[name] { return known }
        var labels: [String] = []
        for rule in requirements where rule.applies(to: name) { labels += rule.labels }
        if required.count < 100_000 { required[name] = labels }
        return labels
    }

    private mutating func add(_ labels: LabelSet, _ time: Timestamp) -> Int {
        let slot: Int
        if let reused = free.popLast() {
            slot = reused
            series[slot] = labels
            last[slot] = time
        } else {
            slot = series.count
            series.append(labels)
            last.append(time)
        }
        slots[labels] = slot
        return slot
    }

    private mutating func sweep(_ now: Timestamp) {
        if let lastSweep, now.seconds - lastSweep.seconds < staleAfter / 4 { return }
        lastSweep = now
        let cutoff = now.advanced(bySeconds: -staleAfter)
        for slot in series.indices where last[slot] < cutoff {
            guard let labels = series[slot] else { continue }
            slots[labels] = nil
            series[slot] = nil
            free.append(slot)
        }
    }
}
