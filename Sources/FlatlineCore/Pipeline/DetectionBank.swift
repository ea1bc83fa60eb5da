/// Why a sample never reached a detector. The raw values are the `reason` label of
/// `flatline_samples_dropped_total`.
public enum DropReason: String, Hashable, Sendable, Codable, CaseIterable {
    /// NaN or an infinity.
    case nonFinite = "non_finite"
    /// Older than the last tick of its source, or a counter observation not newer than the last.
    case outOfOrder = "out_of_order"
    /// The same series twice in one tick; the first value is kept, as Prometheus does.
    case duplicate
    /// A new series beyond the source's `max_series`.
    case seriesLimit = "series_limit"
    /// Without a label its model requires (`required_labels`).
    case missingLabel = "missing_label"
    /// Stamped further ahead of the scrape than the configured tolerance.
    case tooFarInFuture = "too_far_in_future"
    /// Its time in the body is not a time Flatline can represent (`"now": "1e19"`).
    case invalidTimestamp = "invalid_timestamp"
    /// More labels than ``LabelSet/maximumCount``, which no configuration can raise.
    case labelLimit = "label_limit"
    /// A value (or a counter's rate) beyond ±10¹⁵⁰ (``DetectionBank/maxMagnitude``): finite, but
    /// no detector's statistics can hold its square, and none of a real metric is that large.
    case outOfRange = "out_of_range"
}

/// What happened to one sample of a tick.
public enum SampleVerdict: Hashable, Sendable {
    /// The sample was scored.
    case scored(PointVerdict)
    /// The sample was accepted but gives no signal yet: the first observation of a counter, the
    /// first after a gap longer than the maximum (a rate needs two observations), or the first
    /// after the counter restarted (its interval's increase is unknown).
    case pending(slot: Int)
    /// The sample was dropped and counted.
    case dropped(DropReason)

    /// The verdict when scored.
    public var point: PointVerdict? {
        if case .scored(let p) = self { return p }
        return nil
    }
}

/// The detector's view of one scored point.
public struct PointVerdict: Hashable, Sendable {
    /// The series' slot.
    public var slot: Int
    /// The signal the detector saw: the value for a gauge, the per-second rate for a counter.
    public var value: Double
    /// The expected value (NaN while the series warms up).
    public var expected: Double
    /// The band's lower edge (NaN while warming up).
    public var lower: Double
    /// The band's upper edge (NaN while warming up).
    public var upper: Double
    /// The raw signed score (NaN while warming up).
    public var z: Double
    /// The calibrated score in [0, 1].
    public var score: Double
    /// Whether this point starts an anomalous burst.
    public var anomaly: Bool
    /// Whether the series is inside an anomalous burst.
    public var inBurst: Bool
}

/// Counts of dropped samples by reason.
public struct DropCounts: Hashable, Sendable, Codable {
    public private(set) var counts: [DropReason: Int] = [:]

    public init() {}

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode([String: Int].self)
        for (key, value) in raw {
            guard let reason = DropReason(rawValue: key) else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: decoder.codingPath, debugDescription: "unknown drop reason \"\(key)\"")
                )
            }
            counts[reason] = value
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) }))
    }

    /// The count for `reason`.
    public subscript(reason: DropReason) -> Int { counts[reason] ?? 0 }

    /// All drops.
    public var total: Int { counts.values.reduce(0, +) }

    /// Counts `count` more drops for `reason`.
    public mutating func add(_ reason: DropReason, count: Int = 1) {
        if count != 0 { counts[reason, default: 0] += count }
    }

    /// Counts every drop of `other` too.
    public mutating func add(_ other: DropCounts) {
        for (reason, count) in other.counts { add(reason, count: count) }
    }
}

/// Everything from validated samples to verdicts for one source (one scrape target, one file):
/// the series store, counter rates, and one detector over all its series.
///
/// Live and replay use the same bank; only where the samples come from and whose clock stamps
/// them differ. A tick is all samples of the source at one timestamp.
public struct DetectionBank: Sendable {
    /// The series and their slots.
    public private(set) var store: SeriesStore
    /// The detector over all slots.
    public private(set) var detector: Detector
    /// Samples dropped so far, by reason.
    public private(set) var drops = DropCounts()
    /// Counter resets seen so far.
    public private(set) var counterResets = 0
    /// Series not seen for this many seconds leave the store and free their slot; `nil` keeps
    /// every series.
    public var staleAfter: Double?

    private var rates: CounterRates
    private var lastTick: Timestamp?
    private var lastSweep: Timestamp?
    private var values: [Double] = []
    private var output = DetectorOutput()
    // The tick number in which each slot last got a sample, to spot duplicates in O(1).
    private var marks: [Int] = []
    private var tickNumber = 0
    /// The slot of each sample of the last tick given as samples, by position: a source lists
    /// its series in the same order tick after tick, so a sample's series is most often found
    /// where the sample at its place was last time (not saved: only a hint).
    private var lastOrder: [Int] = []
    /// The placed samples of a tick, kept from tick to tick (taken out for the tick and put back):
    /// a block of a replay's series is scored a handful of samples a tick, where an array
    /// allocated per tick cost more than the samples.
    private var placedScratch: [(index: Int, slot: Int)] = []
    /// Whether ``lastOrder`` is used (tests turn it off to compare with plain lookups).
    var placeHints = true

    /// Creates an empty bank.
    ///
    /// - Parameters:
    ///   - configuration: the detector and its parameters.
    ///   - step: the nominal sampling interval in seconds.
    ///   - maxSeries: the cardinality limit, or `nil`.
    ///   - maxGap: the longest gap in seconds a counter rate is taken over, or `nil` for none.
    ///   - staleAfter: seconds after which an unseen series is forgotten, or `nil`.
    /// - Throws: ``ParameterError`` for a bad parameter.
    public init(
        configuration: DetectorConfiguration,
        step: Double,
        maxSeries: Int? = nil,
        maxGap: Double? = nil,
        staleAfter: Double? = nil
    ) throws(ParameterError) {
        detector = try Detector(configuration, step: step)
        store = SeriesStore(maxSeries: maxSeries)
        rates = CounterRates(maxGap: maxGap)
        self.staleAfter = staleAfter
    }

    /// The time of the last tick processed.
    public var lastTickTime: Timestamp? { lastTick }

    /// This bank, its series and what they learned, judged from now on with `configuration`'s
    /// judging parameters; `nil` when `configuration` learns otherwise than the bank's detector
    /// (see ``Detector/continuing(as:)``).
    public func continuing(as configuration: DetectorConfiguration) -> DetectionBank? {
        guard let detector = detector.continuing(as: configuration) else { return nil }
        var next = self
        next.detector = detector
        return next
    }

    /// Scores one tick: every sample of the source at `time`.
    ///
    /// Samples are validated first; what fails is dropped and counted. Counters become rates.
    /// The detector then scores every series of the tick at once.
    ///
    /// - Parameters:
    ///   - time: the tick's timestamp; ticks must come in increasing time order.
    ///   - samples: the samples; their own timestamps are ignored in favour of `time`.
    /// - Returns: one verdict per sample, in order.
    public mutating func process(time: Timestamp, samples: [Sample]) -> [SampleVerdict] {
        var verdicts = [SampleVerdict](repeating: .dropped(.nonFinite), count: samples.count)
        guard begin(time, verdicts: &verdicts) else { return verdicts }
        var placed: [(index: Int, slot: Int)] = []
        placed.reserveCapacity(samples.count)
        for (index, sample) in samples.enumerated() {
            guard sample.value.isFinite else {
                drops.add(.nonFinite)
                verdicts[index] = .dropped(.nonFinite)
                continue
            }
            let slot: Int
            do {
                slot = try self.slot(
                    for: sample.labels,
                    kind: sample.kind,
                    at: time,
                    hint: placeHints && index < lastOrder.count ? lastOrder[index] : -1
                )
                if index < lastOrder.count {
                    lastOrder[index] = slot
                } else if index == lastOrder.count {
                    lastOrder.append(slot)
                }
            } catch {
                let reason: DropReason = error.kind == .tooManyLabels ? .labelLimit : .seriesLimit
                drops.add(reason)
                verdicts[index] = .dropped(reason)
                continue
            }
            place(
                index,
                slot: slot,
                value: sample.value,
                kind: sample.kind,
                time: time,
                reset: sample.counterReset,
                verdicts: &verdicts,
                placed: &placed
            )
        }
        finish(time, placed: placed, verdicts: &verdicts)
        return verdicts
    }

    /// A sample whose series already has its slot (from ``slot(for:kind:at:)``), for a caller
    /// that resolves each series once rather than hashing its labels every tick.
    public struct SlottedSample: Hashable, Sendable {
        /// The series' slot; ignored when the value is not finite (the sample is dropped).
        public var slot: Int
        public var value: Double
        public var counterReset: Bool

        public init(slot: Int, value: Double, counterReset: Bool = false) {
            self.slot = slot
            self.value = value
            self.counterReset = counterReset
        }
    }

    /// ``process(time:samples:)`` for samples whose slots are known: the same validation,
    /// rates and scores. `verdicts` is overwritten with one verdict per sample.
    public mutating func process(
        time: Timestamp,
        slotted samples: [SlottedSample],
        into verdicts: inout [SampleVerdict]
    ) {
        samples.withUnsafeBufferPointer { process(time: time, slotted: $0, into: &verdicts) }
    }

    /// ``process(time:slotted:into:)`` from a buffer (a replay's tick, filled in place).
    public mutating func process(
        time: Timestamp,
        slotted samples: UnsafeBufferPointer<SlottedSample>,
        into verdicts: inout [SampleVerdict]
    ) {
        // Overwritten in place when the count is the same (a replay's ticks mostly are): no
        // range replaced per tick.
        if verdicts.count == samples.count {
            for k in verdicts.indices { verdicts[k] = .dropped(.nonFinite) }
        } else {
            verdicts.removeAll(keepingCapacity: true)
            verdicts.append(contentsOf: repeatElement(.dropped(.nonFinite), count: samples.count))
        }
        guard begin(time, verdicts: &verdicts) else { return }
        var placed: [(index: Int, slot: Int)] = []
        swap(&placed, &placedScratch)
        defer { swap(&placed, &placedScratch) }
        if !placed.isEmpty { placed.removeAll(keepingCapacity: true) }
        for (index, sample) in samples.enumerated() {
            guard sample.value.isFinite else {
                drops.add(.nonFinite)
                continue
            }
            store.touch(slot: sample.slot, at: time)
            let kind = store.kind(at: sample.slot) ?? .gauge
            place(
                index,
                slot: sample.slot,
                value: sample.value,
                kind: kind,
                time: time,
                reset: sample.counterReset,
                verdicts: &verdicts,
                placed: &placed
            )
        }
        finish(time, placed: placed, verdicts: &verdicts)
    }

    /// The slot of a series, taken when it is new (its detector and rate state start cold).
    /// - Throws: ``SeriesStoreError`` past ``SeriesStore/maxSeries`` or the label limit.
    public mutating func slot(
        for labels: LabelSet,
        kind: MetricKind,
        at time: Timestamp,
        hint: Int = -1
    ) throws(SeriesStoreError) -> Int {
        let (slot, isNew) = try store.slot(for: labels, kind: kind, at: time, hint: hint)
        if slot >= values.count {
            values.append(contentsOf: repeatElement(.nan, count: store.capacity - values.count))
            marks.append(contentsOf: repeatElement(0, count: store.capacity - marks.count))
        }
        if isNew {
            detector.reset(slot: slot)
            rates.reset(slot: slot)
        }
        return slot
    }

    /// Counts a sample the caller dropped before it reached the bank.
    public mutating func countDrop(_ reason: DropReason) {
        drops.add(reason)
    }

    /// Starts a tick: false (every sample dropped as out of order) when it is not newer than the last.
    private mutating func begin(_ time: Timestamp, verdicts: inout [SampleVerdict]) -> Bool {
        if let lastTick, time <= lastTick {
            drops.add(.outOfOrder, count: verdicts.count)
            for k in verdicts.indices { verdicts[k] = .dropped(.outOfOrder) }
            return false
        }
        sweepIfDue(time)
        tickNumber += 1
        return true
    }

    /// One finite sample of a series with a slot: duplicates dropped, counters made rates.
    @inline(__always)
    private mutating func place(
        _ index: Int,
        slot: Int,
        value: Double,
        kind sampleKind: MetricKind,
        time: Timestamp,
        reset: Bool,
        verdicts: inout [SampleVerdict],
        placed: inout [(index: Int, slot: Int)]
    ) {
        guard marks[slot] != tickNumber else {
            drops.add(.duplicate)
            verdicts[index] = .dropped(.duplicate)
            return
        }
        marks[slot] = tickNumber
        let kind = store.kind(at: slot) ?? sampleKind
        switch kind {
        case .gauge:
            guard abs(value) <= Self.maxMagnitude else { return outOfRange(index, &verdicts) }
            values[slot] = value
            placed.append((index, slot))
        case .counter:
            let observation = rates.observe(value, at: time, slot: slot, restarted: reset)
            switch observation {
            case .rate(let r):
                guard abs(r) <= Self.maxMagnitude else { return outOfRange(index, &verdicts) }
                values[slot] = r
                placed.append((index, slot))
            case .reset:
                // Counted, not scored: the source restarted somewhere in the interval, so the new
                // value is only part of its increase (Prometheus's `rate()` takes it as the whole),
                // and the rate it gives is as low as the restart was late; scored, every detector
                // flagged it. The counter's rates go on from this value.
                counterResets += 1
                verdicts[index] = .pending(slot: slot)
            case .first, .gap:
                verdicts[index] = .pending(slot: slot)
            case .notNewer:
                drops.add(.outOfOrder)
                verdicts[index] = .dropped(.outOfOrder)
            }
        }
    }

    /// The largest magnitude a detector is given: squares and weighted sums of values up to it
    /// stay finite (10³⁰⁰ < 1.8 × 10³⁰⁸), so a hostile `1e300` cannot leave a series' mean or
    /// variance infinite for good. A value beyond it is dropped (``DropReason/outOfRange``).
    public static let maxMagnitude = 1e150

    private mutating func outOfRange(_ index: Int, _ verdicts: inout [SampleVerdict]) {
        drops.add(.outOfRange)
        verdicts[index] = .dropped(.outOfRange)
    }

    /// Scores the tick's placed samples.
    private mutating func finish(_ time: Timestamp, placed: [(index: Int, slot: Int)], verdicts: inout [SampleVerdict])
    {
        lastTick = time
        detector.update(time: time.seconds, values: values, into: &output)
        for (index, slot) in placed {
            verdicts[index] = .scored(
                PointVerdict(
                    slot: slot,
                    value: values[slot],
                    expected: output.expected[slot],
                    lower: output.lower[slot],
                    upper: output.upper[slot],
                    z: output.z[slot],
                    score: output.score[slot],
                    anomaly: output.anomaly[slot],
                    inBurst: output.inBurst[slot]
                )
            )
            values[slot] = .nan
        }
    }

    private mutating func sweepIfDue(_ time: Timestamp) {
        guard let staleAfter else { return }
        if let lastSweep, time.seconds - lastSweep.seconds < staleAfter / 4 { return }
        lastSweep = time
        let freed = store.sweep(notSeenSince: time.advanced(bySeconds: -staleAfter))
        for slot in freed {
            detector.reset(slot: slot)
            rates.reset(slot: slot)
        }
    }
}

extension DetectionBank: Codable {
    private enum CodingKeys: String, CodingKey {
        case store, detector, drops, counterResets = "counter_resets", staleAfter = "stale_after", rates
        case lastTick = "last_tick", lastSweep = "last_sweep"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        store = try c.decode(SeriesStore.self, forKey: .store)
        detector = try c.decode(Detector.self, forKey: .detector)
        drops = try c.decode(DropCounts.self, forKey: .drops)
        counterResets = try c.decode(Int.self, forKey: .counterResets)
        staleAfter = try c.decodeIfPresent(Double.self, forKey: .staleAfter)
        rates = try c.decode(CounterRates.self, forKey: .rates)
        lastTick = try c.decodeIfPresent(Timestamp.self, forKey: .lastTick)
        lastSweep = try c.decodeIfPresent(Timestamp.self, forKey: .lastSweep)
        try StateCheck.require(
            detector.capacity >= store.capacity || store.capacity == 0 || detector.capacity == 0,
            "detector state is smaller than the series store",
            c.codingPath
        )
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(store, forKey: .store)
        try c.encode(detector, forKey: .detector)
        try c.encode(drops, forKey: .drops)
        try c.encode(counterResets, forKey: .counterResets)
        try c.encodeIfPresent(staleAfter, forKey: .staleAfter)
        try c.encode(rates, forKey: .rates)
        try c.encodeIfPresent(lastTick, forKey: .lastTick)
        try c.encodeIfPresent(lastSweep, forKey: .lastSweep)
    }
}
