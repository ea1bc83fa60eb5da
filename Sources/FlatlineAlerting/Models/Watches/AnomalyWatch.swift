import FlatlineCore

private typealias F = HumanNumber

struct AnomalyWatch: Codable, Sendable {
    /// The band a departure left, as it was at the departure's first point.
    struct Anchor: Codable, Sendable {
        var expected: Double
        var lower: Double
        var upper: Double
        /// +1 above the band, -1 below.
        var side: Double
        var since: Timestamp
    }

    struct Thing: Codable, Sendable {
        var labels: [String: String]
        var anchor: Anchor?
        /// The value came back to the band it left: the detector's burst around that return
        /// (the old level is a jump from the new one) starts no departure.
        /// (Optional: state saved before it decodes.)
        var returning: Bool? = false
    }

    var things = Things<Thing>()

    mutating func observe(_ p: Model.AnomalyParameters, time: Timestamp, seen: [Seen]) -> [Found] {
        var out: [Found] = []
        for s in seen {
            guard let point = s.verdict?.point else { continue }
            let metric = s.sample.labels.metricName
            let key = s.key + metric
            var labels = s.labels
            labels["signal"] = metric
            var state = things[key] ?? Thing(labels: labels)
            state.labels = labels
            guard point.expected.isFinite, point.lower.isFinite, point.upper.isFinite else {
                // Still learning this series.
                things.set(key, state, at: time)
                continue
            }
            // A departure starts at a point the detector flags, beyond the band on the model's
            // side by enough, and lasts while the value stays beyond the band it left (the
            // detectors learn a new level within a few points; `for` asks how long the series
            // stays away from the old one), until `settle_after` makes the new level the usual.
            if let anchor = state.anchor {
                let beyond = anchor.side > 0 ? point.value > anchor.upper : point.value < anchor.lower
                let settled = p.settleAfter > 0 && time.seconds(since: anchor.since) >= p.settleAfter
                if !beyond || !Self.large(point.value - anchor.expected, anchor.expected, p) || settled {
                    state.anchor = nil
                    state.returning = !settled
                }
            }
            if !point.inBurst { state.returning = false }
            if state.anchor == nil, point.inBurst, state.returning != true {
                let above = point.value > point.upper
                let below = point.value < point.lower
                let side =
                    switch p.direction {
                    case .above: above
                    case .below: below
                    case .both: above || below
                    }
                if side && Self.large(point.value - point.expected, point.expected, p) {
                    state.anchor = Anchor(
                        expected: point.expected,
                        lower: point.lower,
                        upper: point.upper,
                        side: above ? 1 : -1,
                        since: time
                    )
                }
            }
            let condition: AlertCondition = state.anchor != nil ? .active : .inactive
            things.set(key, state, at: time)
            // While away, the numbers are against the band the series left.
            let expected = state.anchor?.expected ?? point.expected
            let lower = state.anchor?.lower ?? point.lower
            let upper = state.anchor?.upper ?? point.upper
            let deviation = point.value - expected
            let halfWidth = (upper - lower) / 2
            out.append(
                Found(labels: state.labels, condition: condition) {
                    [
                        "value": F.format(point.value), "expected": F.format(expected),
                        "band": "\(F.format(lower)) to \(F.format(upper))",
                        "lower": F.format(lower), "upper": F.format(upper),
                        "score": F.format(halfWidth > 0 ? abs(deviation) / halfWidth : 0),
                        "deviation": F.format(deviation), "signal": metric,
                        "direction": deviation >= 0 ? "above" : "below",
                        "since": (state.anchor?.since ?? time).description,
                    ]
                }
            )
        }
        return out
    }

    /// Whether a deviation is large enough for the model: `min_deviation` and
    /// `min_relative_deviation` of the expected value.
    static func large(_ deviation: Double, _ expected: Double, _ p: Model.AnomalyParameters) -> Bool {
        abs(deviation) >= p.minDeviation && abs(deviation) >= p.minRelativeDeviation * abs(expected)
    }
}

extension AnomalyWatch: Watch {}
