/// What became of one counter observation.
public enum CounterObservation: Hashable, Sendable {
    /// The per-second rate since the previous observation.
    case rate(Double)
    /// The counter went down, so its source restarted: the new value is the increase since the
    /// restart (as Prometheus's `rate()` assumes), and this is the per-second rate. A lower bound
    /// of the interval's rate (the restart fell somewhere in it): the detection bank counts the
    /// reset and does not score it.
    case reset(rate: Double)
    /// The first observation of the counter: there is nothing to take a rate against yet.
    case first
    /// More than the maximum gap passed since the previous observation: a rate over the gap would
    /// hide what happened in it, so none is given and the counter starts again from this value.
    case gap(seconds: Double)
    /// The observation is not newer than the previous one; it is ignored.
    case notNewer

    /// The rate, when there is one.
    public var rate: Double? {
        switch self {
        case .rate(let r), .reset(let r): r
        case .first, .gap, .notNewer: nil
        }
    }
}

/// Turns cumulative counters into per-second rates, one slot per series, with reset detection.
///
/// A decrease is a reset (the source restarted and counts from zero), so the increase is the new
/// value. The first observation gives no rate. Gaps longer than ``maxGap`` give no rate either.
public struct CounterRates: Sendable, Hashable {
    /// The longest interval, in seconds, over which a rate is still taken; `nil` for no limit.
    public var maxGap: Double?

    private var lastValue: [Double] = []
    private var lastTime: [Timestamp?] = []

    /// Creates a converter.
    /// - Parameter maxGap: the longest interval in seconds over which a rate is taken, or `nil`.
    public init(maxGap: Double? = nil) {
        self.maxGap = maxGap
    }

    /// The number of slots.
    public var capacity: Int { lastValue.count }

    /// Grows (never shrinks) to `capacity` slots; new slots start with no history.
    public mutating func reserve(capacity: Int) {
        guard capacity > lastValue.count else { return }
        lastValue.append(contentsOf: repeatElement(.nan, count: capacity - lastValue.count))
        lastTime.append(contentsOf: repeatElement(nil, count: capacity - lastTime.count))
    }

    /// Forgets the history of `slot` (its series went away, the slot will be reused).
    public mutating func reset(slot: Int) {
        guard slot >= 0 && slot < lastValue.count else { return }
        lastValue[slot] = .nan
        lastTime[slot] = nil
    }

    /// Feeds one observation of the counter in `slot`.
    ///
    /// - Parameters:
    ///   - value: the cumulative count; must be finite (validate before).
    ///   - time: when it was observed.
    ///   - slot: the series' slot; grows the converter when needed.
    ///   - restarted: the source is known to have restarted since the previous observation, so
    ///     the value is the increase since then even when it is not lower than the last.
    /// - Returns: the rate, or why there is none.
    public mutating func observe(_ value: Double, at time: Timestamp, slot: Int, restarted: Bool = false)
        -> CounterObservation
    {
        if slot >= lastValue.count { reserve(capacity: slot + 1) }
        guard let previousTime = lastTime[slot] else {
            lastValue[slot] = value
            lastTime[slot] = time
            return .first
        }
        guard time > previousTime else { return .notNewer }
        let previous = lastValue[slot]
        let seconds = time.seconds(since: previousTime)
        lastValue[slot] = value
        lastTime[slot] = time
        if let maxGap, seconds > maxGap { return .gap(seconds: seconds) }
        if value < previous || restarted { return .reset(rate: value / seconds) }
        return .rate((value - previous) / seconds)
    }
}

extension CounterRates: Codable {
    private enum CodingKeys: String, CodingKey { case maxGap, lastValue, lastTime, lastTimeMilliseconds }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        maxGap = try container.decodeIfPresent(Double.self, forKey: .maxGap)
        lastValue = try container.decode(PackedDoubles.self, forKey: .lastValue).values
        if let packed = try container.decodeIfPresent(PackedDoubles.self, forKey: .lastTimeMilliseconds) {
            // Milliseconds since the epoch are exact in a double (below 2^53); NaN: never seen.
            var times: [Timestamp?] = []
            times.reserveCapacity(packed.values.count)
            for value in packed.values {
                if value.isNaN {
                    times.append(nil)
                    continue
                }
                // A hostile file's Inf or 2⁶³ is a corrupt file, never a trap.
                guard let time = Timestamp(exactMilliseconds: value) else {
                    throw DecodingError.dataCorrupted(
                        .init(codingPath: container.codingPath, debugDescription: "counter time \(value) is not a time")
                    )
                }
                times.append(time)
            }
            lastTime = times
        } else {
            // Files written before the times were packed.
            lastTime = try container.decode([Int64?].self, forKey: .lastTime).map {
                $0.map(Timestamp.init(milliseconds:))
            }
        }
        guard lastValue.count == lastTime.count else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: container.codingPath, debugDescription: "counter state arrays differ in length")
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(maxGap, forKey: .maxGap)
        try container.encode(PackedDoubles(lastValue), forKey: .lastValue)
        try container.encode(
            PackedDoubles(lastTime.map { $0.map { Double($0.milliseconds) } ?? .nan }),
            forKey: .lastTimeMilliseconds
        )
    }
}
