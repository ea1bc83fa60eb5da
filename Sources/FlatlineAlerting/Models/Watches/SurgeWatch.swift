import FlatlineCore

private typealias F = HumanNumber

struct SurgeWatch: Codable, Sendable {
    struct Thing: Codable, Sendable {
        var labels: [String: String]
        var lastTime: Timestamp?
        var lastMessages: Double?
        var lastBytes: Double?
        var baselineMessages = 0.0
        var baselineBytes = 0.0
        /// Exponentially weighted variance of the message rate (normal traffic only): a
        /// producer that is noisy by nature needs a larger surge.
        var varianceMessages: Double? = 0
        /// The faster mean of normal traffic (`level_half_life`), `nil` until it has learned.
        var level: Double?
        /// Seconds of normal traffic the baseline learned from.
        var learned = 0.0
        /// Seconds the current surge has lasted, and when it began.
        var streak = 0.0
        var streakStart: Timestamp?
    }

    var things = Things<Thing>()

    mutating func observe(_ p: Model.SurgeParameters, time: Timestamp, seen: [Seen]) -> [Found] {
        // A connection's message and byte counters arrive in the same tick; pair them first.
        var current: [String: (labels: [String: String], messages: Double?, bytes: Double?)] = [:]
        for s in seen {
            var entry = current[s.key] ?? (s.labels, nil, nil)
            if s.sample.labels.metricName == p.messages {
                entry.messages = s.sample.value
            } else {
                entry.bytes = s.sample.value
            }
            current[s.key] = entry
        }
        var out: [Found] = []
        for key in current.keys.sorted() {
            guard let entry = current[key], let messages = entry.messages else { continue }
            let bytes = entry.bytes ?? 0
            if p.bytes != nil && entry.bytes == nil { continue }
            var state = things[key] ?? Thing(labels: entry.labels)
            // Descriptive labels (a client's name) may arrive after the first scrape.
            state.labels = entry.labels
            defer { things.set(key, state, at: time) }
            guard let lastTime = state.lastTime, let lastMessages = state.lastMessages,
                let lastBytes = state.lastBytes, time > lastTime, messages >= lastMessages, bytes >= lastBytes
            else {
                // First sight, or the counters restarted: a new starting point.
                (state.lastTime, state.lastMessages, state.lastBytes) = (time, messages, bytes)
                continue
            }
            let dt = time.seconds - lastTime.seconds
            let rate = (messages - lastMessages) / dt
            let byteRate = (bytes - lastBytes) / dt
            (state.lastTime, state.lastMessages, state.lastBytes) = (time, messages, bytes)
            let surplus = rate - state.baselineMessages
            let surplusBytes = byteRate - state.baselineBytes
            let spread = (state.varianceMessages ?? 0).squareRoot()
            // Measured from the higher of the slow baseline and the faster level.
            let from = max(state.baselineMessages, p.levelHalfLife > 0 ? state.level ?? 0 : 0)
            let threshold = Self.threshold(p, from: from, spread: spread, over: dt)
            let surging =
                Self.reaches(state.learned, p.warmup, step: dt) && rate >= threshold
                && (p.bytes == nil || surplusBytes >= p.minPayload * surplus)
            // Between the baseline and the threshold lies a band where a surge pauses but does
            // not end: a flood whose rate hovers near the threshold (a partly flooded scrape
            // interval, a noisy second) keeps its streak, and the baseline does not learn from it.
            let midway = state.baselineMessages + (threshold - state.baselineMessages) / 2
            if surging {
                if state.streak == 0 { state.streakStart = lastTime }
                state.streak += dt
            } else if state.streak > 0 && rate >= midway && Self.reaches(state.learned, p.warmup, step: dt) {
                // Paused: neither longer nor over.
            } else {
                state.streak = 0
                state.streakStart = nil
                // The baseline learns only from normal traffic, so a flood does not become normal.
                let alpha = state.learned == 0 ? 1 : 1 - _exp2(-dt / p.halfLife)
                let deviation = rate - state.baselineMessages
                state.varianceMessages =
                    state.learned == 0
                    ? 0 : (1 - alpha) * ((state.varianceMessages ?? 0) + alpha * deviation * deviation)
                state.baselineMessages += alpha * deviation
                state.baselineBytes += alpha * (byteRate - state.baselineBytes)
                if p.levelHalfLife > 0 {
                    let level = state.level ?? rate
                    state.level = level + (1 - _exp2(-dt / p.levelHalfLife)) * (rate - level)
                }
                state.learned += dt
            }
            // Far past every bar, one scrape is enough: no busy second reaches that.
            let atOnce =
                surging && p.instant > 0 && rate >= Self.instantThreshold(p, from: from, spread: spread, over: dt)
            let condition: AlertCondition
            if Self.reaches(state.streak, p.minDuration, step: dt) || atOnce {
                condition = .active
            } else if surging {
                condition = .unchanged
            } else if rate < midway {
                condition = .inactive
            } else {
                condition = .unchanged
            }
            out.append(
                Found(labels: state.labels, condition: condition) {
                    [
                        "value": F.format(rate), "threshold": F.format(threshold),
                        "baseline": F.format(state.baselineMessages), "bytes": F.format(byteRate),
                        "ratio": F.format(state.baselineMessages > 0 ? rate / state.baselineMessages : 0),
                        "since": (state.streakStart ?? time).description,
                        "expected": "about \(F.format(state.baselineMessages))/s",
                        "band": "up to \(F.format(threshold))/s", "score": F.format(rate / max(threshold, 1e-9)),
                    ]
                }
            )
        }
        return out
    }
}

extension SurgeWatch: Watch {}

extension SurgeWatch {
    /// Whether `span` seconds, summed from scrape intervals of about `dt` seconds, reach
    /// `duration`. Scrape times jitter by milliseconds: four 30 s intervals can measure 119.99 s,
    /// and a 2 m warm-up must not wait for a fifth (nor a 2 s surge for a third 1 s scrape), so
    /// a span reaches a duration to within half an interval. Nothing reaches one before it
    /// has begun.
    static func reaches(_ span: Double, _ duration: Double, step dt: Double) -> Bool {
        span > 0 && span >= duration - dt / 2
    }

    /// The rate a surge reaches over an interval of `dt` seconds, counted from `from` for a
    /// producer whose rate has standard deviation `spread`: `factor` times it, `min_rate` and
    /// `sigmas` deviations above it; or, with `steady_factor`, the smaller multiple when it is
    /// also `steady_sigmas` deviations above (whichever rule asks less).
    static func threshold(_ p: Model.SurgeParameters, from: Double, spread: Double, over dt: Double) -> Double {
        let surplus = from + Self.minSurplus(p, over: dt)
        let usual = max(p.factor * from, surplus, from + p.sigmas * spread)
        guard p.steadyFactor > 0 else { return usual }
        return min(usual, max(p.steadyFactor * from, surplus, from + p.steadySigmas * spread))
    }

    /// The rate at which one scrape is a surge without waiting `min_duration`: `instant` times
    /// past each bar of the usual rule (`factor`, `min_rate`, `sigmas`); infinite without `instant`.
    static func instantThreshold(_ p: Model.SurgeParameters, from: Double, spread: Double, over dt: Double) -> Double {
        guard p.instant > 0 else { return .infinity }
        return max(
            p.instant * p.factor * from,
            from + p.instant * Self.minSurplus(p, over: dt),
            from + p.instant * p.sigmas * spread
        )
    }

    /// The surplus rate a surge needs over an interval of `dt` seconds: `min_rate`, or with
    /// `min_rate_interval` the same significance for a count whose noise grows as its square
    /// root (never more than `min_rate`).
    static func minSurplus(_ p: Model.SurgeParameters, over dt: Double) -> Double {
        guard p.minRateInterval > 0, dt > p.minRateInterval else { return p.minRate }
        return p.minRate * (p.minRateInterval / dt).squareRoot()
    }
}
