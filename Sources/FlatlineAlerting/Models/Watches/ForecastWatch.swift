import FlatlineCore

private typealias F = HumanNumber

struct ForecastWatch: Codable, Sendable {
    struct Thing: Codable, Sendable {
        var labels: [String: String]
        var points: [Point] = []
        var limit: Double?
        var activeSince: Timestamp?
        /// Consecutive observations whose trend reached the limit within the horizon.
        var confirmed: Int? = 0
        /// The highest value of each minute that left the window (for `beyond_peak`).
        var peaks: [Point]? = []
        /// When the thing was first seen: `beyond_peak` needs a window's worth of history before
        /// the window to know the value's usual peaks.
        var firstSeen: Timestamp?
    }

    var things = Things<Thing>()
    /// Limits of larger things (`limit_on`), by their key.
    var limits: [String: Double] = [:]

    /// At most this many points per window (older ones thinned), so a 1 s scrape interval does
    /// not make fits slow.
    static let maxPoints = 120

    mutating func observe(_ p: Model.ForecastParameters, time: Timestamp, seen: [Seen]) -> [Found] {
        var touched: [String] = []
        for s in seen where s.sample.labels.metricName != p.metric && p.limitOn != nil {
            limits[s.key] = s.sample.value
        }
        for s in seen where s.sample.labels.metricName == p.metric || p.limitOn == nil {
            var state = things[s.key] ?? Thing(labels: s.labels)
            state.labels = s.labels  // a client's name may come after its first scrape
            if s.sample.labels.metricName == p.metric {
                if state.firstSeen == nil { state.firstSeen = time }
                if let limitOn = p.limitOn, let key = ModelEvaluator.key(s.sample.labels, limitOn) {
                    state.limit = limits[key]
                }
                let spacing = p.window / Double(Self.maxPoints)
                if let last = state.points.last, time.seconds - last.time.seconds < spacing {
                    state.points[state.points.count - 1] = Point(time: time, value: s.sample.value)
                } else {
                    state.points.append(Point(time: time, value: s.sample.value))
                }
                if p.beyondPeak > 0 {
                    // Points leaving the window keep their minute's highest value for a while.
                    var peaks = state.peaks ?? []
                    for old in state.points where time.seconds - old.time.seconds > p.window {
                        let minute = (old.time.milliseconds / 60_000) * 60_000
                        if let last = peaks.last, last.time.milliseconds == minute {
                            peaks[peaks.count - 1].value = max(last.value, old.value)
                        } else {
                            peaks.append(Point(time: Timestamp(milliseconds: minute), value: old.value))
                        }
                    }
                    peaks.removeAll { time.seconds - $0.time.seconds > p.window + p.beyondPeak }
                    state.peaks = peaks
                }
                state.points.removeAll { time.seconds - $0.time.seconds > p.window }
                state.labels = s.labels
                touched.append(s.key)
            } else {
                state.limit = s.sample.value
            }
            things.set(s.key, state, at: time)
        }
        var out: [Found] = []
        for key in touched {
            guard var state = things[key], let current = state.points.last?.value else { continue }
            guard let limit = p.limit ?? state.limit, limit > 0 else { continue }
            var numbers = [
                "value": F.format(current), "limit": F.format(limit),
                "percent": F.format(current / limit * 100), "horizon": DurationText.human(seconds: p.horizon),
                "expected": "not reaching \(F.format(limit)) within \(DurationText.human(seconds: p.horizon))",
            ]
            let condition: AlertCondition
            if current >= limit {
                // At the limit: what the forecast warned of has happened.
                condition = .active
                numbers["rate"] = F.format(Self.slope(state.points).map { $0 * 60 } ?? 0)
                numbers["eta"] = "now"
                numbers["eta_seconds"] = "0"
                numbers["at"] = time.description
                numbers["score"] = "1"
            } else if let trend = Self.trend(state.points, p, limit: limit),
                Self.beyondPeak(
                    current,
                    state.peaks ?? [],
                    p,
                    history: state.firstSeen.map { time.seconds - $0.seconds }
                )
            {
                let eta = trend.eta
                numbers["eta"] = "in " + DurationText.human(seconds: eta)
                numbers["eta_seconds"] = F.format(eta)
                numbers["at"] = time.advanced(bySeconds: eta).description
                numbers["rate"] = F.format(trend.slope * 60)
                numbers["score"] = F.format(p.horizon / max(eta, 1))
                if eta <= p.horizon {
                    let confirmed = (state.confirmed ?? 0) + 1
                    state.confirmed = confirmed
                    condition = confirmed >= p.confirmations ? .active : .unchanged
                } else {
                    state.confirmed = 0
                    condition = eta > 2 * p.horizon ? .inactive : .unchanged
                }
            } else {
                state.confirmed = 0
                condition = current < limit * (1 - p.minRise) ? .inactive : .unchanged
            }
            if condition == .active && state.activeSince == nil { state.activeSince = time }
            if condition == .inactive { state.activeSince = nil }
            numbers["since"] = (state.activeSince ?? time).description
            things.set(key, state, at: time)
            out.append(Found(labels: state.labels, numbers: numbers, condition: condition))
        }
        return out
    }

    /// The robust line's slope per second, whatever it is (nil with too few points).
    static func slope(_ points: [Point]) -> Double? {
        guard points.count >= 2, let last = points.last else { return nil }
        return try? RobustLine.fit(x: points.map { $0.time.seconds - last.time.seconds }, y: points.map(\.value)).slope
    }

    /// Whether the value now passed the highest value of the history before the window (always
    /// without `beyond_peak`): a trend's extrapolation at the top of a swing is not enough. A
    /// thing seen for less than two windows has no history to judge by (a swing and a trend look
    /// alike over one window): no forecast yet; the limit itself still fires.
    static func beyondPeak(_ now: Double, _ peaks: [Point], _ p: Model.ForecastParameters, history: Double?) -> Bool {
        guard p.beyondPeak > 0 else { return true }
        guard let history, history >= 2 * p.window else { return false }
        guard let peak = peaks.map(\.value).max() else { return true }
        return now > peak
    }

    /// The robust trend when it rises clearly: seconds until it meets `limit` from now, and
    /// its slope per second. `nil` when there are too few points, the window is
    /// not half covered, or the rise is within the noise (also as a t ≥ 4 slope) or below
    /// `min_rise` of the limit.

    static func trend(_ points: [Point], _ p: Model.ForecastParameters, limit: Double)
        -> (eta: Double, slope: Double)?
    {
        guard points.count >= p.minPoints, let first = points.first, let last = points.last else { return nil }
        let span = last.time.seconds - first.time.seconds
        guard span >= p.window / 2 else { return nil }
        let x = points.map { $0.time.seconds - last.time.seconds }
        let y = points.map(\.value)
        guard let line = try? RobustLine.fit(x: x, y: y), line.slope > 0 else { return nil }
        let rise = line.slope * span
        guard rise >= p.minRise * limit, rise >= 3 * line.scale else { return nil }
        // And the slope stands out of its own uncertainty (t ≥ 4): with the few points of a
        // window at 30 s scrapes, a noisy gauge's passing rise is no trend.
        let mean = x.reduce(0, +) / Double(x.count)
        let spread = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }.squareRoot()
        guard line.scale == 0 || line.slope * spread >= 4 * line.scale else { return nil }
        guard let crossing = line.crossing(limit) else { return nil }
        return (max(0, crossing), line.slope)
    }
}

extension ForecastWatch: Watch {}
