import FlatlineCore

/// A sample a model watches, with its group key and the labels its alert will carry.
struct Seen {
    var sample: Sample
    var key: String
    var labels: [String: String]
    /// The detection bank's verdict, when the caller gave verdicts.
    var verdict: SampleVerdict?
}

/// A model's verdict on one watched thing, before it becomes an ``AlertObservation``.
///
/// `numbers` fill the templates; the standard ones become annotations: `value` (observed),
/// `expected`, `band`, `score` (1 at the edge of normal), `since`.
struct Found {
    var labels: [String: String]
    var numbers: [String: String]
    var condition: AlertCondition
}

/// A value at a time.
struct Point: Codable, Sendable {
    var time: Timestamp
    var value: Double
}

/// Per-thing state, with when each thing was last seen so the gone ones can be forgotten.
struct Things<State: Codable & Sendable>: Codable, Sendable {
    struct Entry: Codable, Sendable {
        var state: State
        var seen: Timestamp
    }

    var entries: [String: Entry] = [:]

    subscript(key: String) -> State? { entries[key]?.state }

    mutating func set(_ key: String, _ state: State, at time: Timestamp) {
        entries[key] = Entry(state: state, seen: time)
    }

    mutating func forget(notSeenSince cutoff: Timestamp) {
        entries = entries.filter { $0.value.seen >= cutoff }
    }
}

private typealias F = HumanNumber

/// The learned state of one model, by kind.
enum ModelWatch: Codable, Sendable {
    case stall(StallWatch)
    case growth(GrowthWatch)
    case surge(SurgeWatch)
    case threshold(ThresholdWatch)
    case drop(DropWatch)
    case increase(IncreaseWatch)
    case forecast(ForecastWatch)
    case anomaly(AnomalyWatch)

    init(kind: Model.Kind) {
        switch kind {
        case .stall: self = .stall(StallWatch())
        case .growth: self = .growth(GrowthWatch())
        case .surge: self = .surge(SurgeWatch())
        case .threshold: self = .threshold(ThresholdWatch())
        case .drop: self = .drop(DropWatch())
        case .increase: self = .increase(IncreaseWatch())
        case .forecast: self = .forecast(ForecastWatch())
        case .anomaly: self = .anomaly(AnomalyWatch())
        }
    }

    var kindName: String {
        switch self {
        case .stall: "stall"
        case .growth: "growth"
        case .surge: "surge"
        case .threshold: "threshold"
        case .drop: "drop"
        case .increase: "increase"
        case .forecast: "forecast"
        case .anomaly: "anomaly"
        }
    }

    mutating func observe(_ kind: Model.Kind, time: Timestamp, seen: [Seen]) -> [Found] {
        /// Runs a watch and stores it back in its case.
        func run<W: Watch>(_ watch: W, _ p: W.Parameters, _ wrap: (W) -> ModelWatch) -> (ModelWatch, [Found]) {
            var watch = watch
            let found = watch.observe(p, time: time, seen: seen)
            return (wrap(watch), found)
        }
        let result: (ModelWatch, [Found])
        switch (self, kind) {
        case (.stall(let w), .stall(let p)): result = run(w, p, ModelWatch.stall)
        case (.growth(let w), .growth(let p)): result = run(w, p, ModelWatch.growth)
        case (.surge(let w), .surge(let p)): result = run(w, p, ModelWatch.surge)
        case (.threshold(let w), .threshold(let p)): result = run(w, p, ModelWatch.threshold)
        case (.drop(let w), .drop(let p)): result = run(w, p, ModelWatch.drop)
        case (.increase(let w), .increase(let p)): result = run(w, p, ModelWatch.increase)
        case (.forecast(let w), .forecast(let p)): result = run(w, p, ModelWatch.forecast)
        case (.anomaly(let w), .anomaly(let p)): result = run(w, p, ModelWatch.anomaly)
        default:
            // State of another kind (a model changed kind): start over.
            self = ModelWatch(kind: kind)
            return observe(kind, time: time, seen: seen)
        }
        self = result.0
        return result.1
    }

    mutating func forget(notSeenSince cutoff: Timestamp) {
        func forgetting<W: Watch>(_ watch: W, _ wrap: (W) -> ModelWatch) -> ModelWatch {
            var watch = watch
            watch.things.forget(notSeenSince: cutoff)
            return wrap(watch)
        }
        switch self {
        case .stall(let w): self = forgetting(w, ModelWatch.stall)
        case .growth(let w): self = forgetting(w, ModelWatch.growth)
        case .surge(let w): self = forgetting(w, ModelWatch.surge)
        case .threshold(let w): self = forgetting(w, ModelWatch.threshold)
        case .drop(let w): self = forgetting(w, ModelWatch.drop)
        case .increase(let w): self = forgetting(w, ModelWatch.increase)
        case .forecast(let w): self = forgetting(w, ModelWatch.forecast)
        case .anomaly(let w): self = forgetting(w, ModelWatch.anomaly)
        }
    }
}

/// One kind's learned state: per-thing states, and how it observes a tick.
protocol Watch: Codable, Sendable {
    associatedtype Parameters
    associatedtype Thing: Codable & Sendable
    var things: Things<Thing> { get set }
    mutating func observe(_ p: Parameters, time: Timestamp, seen: [Seen]) -> [Found]
}

extension StallWatch: Watch {}
extension GrowthWatch: Watch {}
extension SurgeWatch: Watch {}
extension ThresholdWatch: Watch {}
extension DropWatch: Watch {}
extension IncreaseWatch: Watch {}
extension ForecastWatch: Watch {}
extension AnomalyWatch: Watch {}

// MARK: - stall

struct StallWatch: Codable, Sendable {
    struct Thing: Codable, Sendable {
        var labels: [String: String]
        var progress: Double?
        var lastAdvance: Timestamp?
        /// Recent gaps between advances while work waited, in seconds.
        var gaps: [Double] = []
        var waiting: [String: Double] = [:]
        /// The last value of each `draining` gauge.
        var draining: [String: Double]? = [:]
        /// When progress was last observed, and the usual interval between observations (the
        /// scrape interval), exponentially weighted.
        var observed: Timestamp?
        var interval: Double?
        /// The `idle` gauge as last read, and when (the server's seconds since the last progress).
        var idle: Double?
        var idleAt: Timestamp?
        /// Recent `idle` readings while work waited and the thing was not stalled.
        var idles: [Double]?
        /// The first tick of the current spell with work waiting, and the last tick without:
        /// a stall is never older than the work it stalls (work that arrives after a quiet hour
        /// is not an hour late).
        var waitingSince: Timestamp?
        var lastEmpty: Timestamp?
        /// The `untaken` gauge as last read, and when.
        var untaken: Double?
        var untakenAt: Timestamp?
    }

    var things = Things<Thing>()

    /// `idle` readings needed before they decide instead of progress between scrapes.
    static let minIdles = 3

    mutating func observe(_ p: Model.StallParameters, time: Timestamp, seen: [Seen]) -> [Found] {
        var touched: [String] = []
        // This tick's `draining` and `delivered` values per thing, compared with the last tick's
        // once all of them are in.
        var work: [String: [String: Double]] = [:]
        for s in seen {
            let name = s.sample.labels.metricName
            var state = things[s.key] ?? Thing(labels: s.labels)
            state.labels = s.labels  // a client's name may come after its first scrape
            if name == p.idle || name == p.untaken {
                if name == p.idle {
                    state.idle = s.sample.value
                    state.idleAt = time
                } else {
                    state.untaken = s.sample.value
                    state.untakenAt = time
                }
                things.set(s.key, state, at: time)
                continue
            }
            if p.draining.contains(name) || name == p.delivered {
                work[s.key, default: [:]][name] = s.sample.value
                if !p.waiting.contains(name) && name != p.progress {
                    things.set(s.key, state, at: time)
                    continue
                }
            }
            if name == p.progress {
                if let observed = state.observed, time > observed {
                    let dt = time.seconds(since: observed)
                    state.interval = state.interval.map { $0 + 0.2 * (dt - $0) } ?? dt
                }
                state.observed = time
                let value = s.sample.value
                if let previous = state.progress, value != previous {
                    // Advanced (or restarted): a gap closes.
                    if let last = state.lastAdvance, value > previous, state.waiting.values.reduce(0, +) > 0 {
                        state.gaps.append(time.seconds - last.seconds)
                        if state.gaps.count > 32 { state.gaps.removeFirst(state.gaps.count - 32) }
                    }
                    state.lastAdvance = time
                } else if state.progress == nil {
                    state.lastAdvance = time
                }
                state.progress = value
                touched.append(s.key)
            } else {
                state.waiting[name] = s.sample.value
            }
            things.set(s.key, state, at: time)
        }
        for (key, values) in work {
            guard var state = things[key] else { continue }
            if Self.finishedWork(p, before: state.draining ?? [:], now: values), state.lastAdvance != nil {
                // Work was finished, whatever the floor does (one message held past its ack_wait
                // holds the floor while the rest are acknowledged).
                state.lastAdvance = time
            }
            state.draining = (state.draining ?? [:]).merging(values) { _, new in new }
            things.set(key, state, at: time)
        }
        var out: [Found] = []
        for key in touched {
            guard var state = things[key], let lastAdvance = state.lastAdvance else { continue }
            let waitingNow = state.waiting.values.reduce(0, +)
            let waited = Self.waited(&state, waitingNow: waitingNow, time: time)
            var since = min(time.seconds - lastAdvance.seconds, waited)
            var usual = ModelEvaluator.median(state.gaps) ?? 0
            var threshold = Self.threshold(p, usualGap: usual, interval: state.interval)
            let condition: AlertCondition
            let idle = state.idleAt == time ? state.idle.flatMap { $0.isFinite && $0 >= 0 ? $0 : nil } : nil
            if let idle, let idles = state.idles, idles.count >= Self.minIdles {
                // The server says how long the thing has been idle: that decides, at any scrape
                // interval. Its usual idle at a random moment is about half its usual gap.
                usual = 2 * (ModelEvaluator.median(idles) ?? 0)
                threshold = max(p.stallAfter, p.stallFactor * usual)
                since = min(idle, waited)
                if waitingNow <= 0 || idle < threshold / 2 {
                    condition = .inactive
                } else if since + min(0.25 * (state.interval ?? 0), 0.1 * threshold) >= threshold {
                    // Scrapes are not exactly evenly spaced: a little early rather than a whole
                    // scrape late.
                    condition = .active
                } else {
                    condition = .unchanged
                }
            } else if waitingNow <= 0 || since == 0 {
                condition = .inactive
            } else if since + 0.25 * (state.interval ?? 0) >= threshold {
                // A quarter of a scrape early: scrapes are not exactly evenly spaced, and a
                // threshold of one interval must not wait for a second one by a millisecond.
                condition = .active
            } else {
                // Stopped, but not yet for long enough: neither start nor clear.
                condition = .unchanged
            }
            if let idle, waitingNow > 0 || idle < p.stallAfter, condition != .active, idle < threshold {
                var idles = state.idles ?? []
                idles.append(idle)
                if idles.count > 32 { idles.removeFirst(idles.count - 32) }
                state.idles = idles
            }
            things.set(key, state, at: time)
            let numbers = [
                "value": F.format(since), "threshold": F.format(threshold), "waiting": F.format(waitingNow),
                "since": time.advanced(bySeconds: -since).description, "usual_gap": F.format(usual),
                "expected": "progress at least every \(F.format(threshold)) s while work waits",
                "score": F.format(since / threshold),
            ]
            out.append(Found(labels: state.labels, numbers: numbers, condition: condition))
        }
        return out
    }
}

extension StallWatch {
    /// How long work has waited, at most: from the first tick of a spell with work waiting. For
    /// a spell that starts at this tick the work came after the last tick without, perhaps just
    /// before this one: it counts from that last tick only when nothing was handed out meanwhile
    /// (the `untaken` gauge, when the model has one), else not at all.
    static func waited(_ state: inout Thing, waitingNow: Double, time: Timestamp) -> Double {
        guard waitingNow > 0 else {
            state.waitingSince = nil
            state.lastEmpty = time
            return 0
        }
        if let since = state.waitingSince { return time.seconds - since.seconds }
        var estimate = 0.0
        if let lastEmpty = state.lastEmpty, state.untakenAt == time, let untaken = state.untaken, untaken.isFinite,
            untaken >= 0
        {
            estimate = min(time.seconds - lastEmpty.seconds, untaken)
        }
        state.waitingSince = time.advanced(bySeconds: -estimate)
        return estimate
    }

    /// Whether work was finished between two ticks, besides the progress counter: a `draining`
    /// gauge fell, or the `delivered` counter advanced by more than the `draining` gauges rose
    /// (messages handed out and not left outstanding were acknowledged). A worker that fetches
    /// but never acks raises both by the same amount; one nobody pulls from moves neither.
    static func finishedWork(_ p: Model.StallParameters, before: [String: Double], now: [String: Double]) -> Bool {
        var outstandingBefore = 0.0
        var outstandingNow = 0.0
        for name in p.draining {
            guard let old = before[name], let new = now[name] else { return false }
            if new < old { return true }
            outstandingBefore += old
            outstandingNow += new
        }
        guard let delivered = p.delivered, let old = before[delivered], let new = now[delivered], new >= old else {
            return false
        }
        return (new - old) - (outstandingNow - outstandingBefore) > 0
    }

    /// Seconds without progress after which a thing is stalled: never under `stallAfter`; for a
    /// thing that advanced at (nearly) every scrape, `stallScrapes` scrape intervals (a freeze is
    /// a consumer that did not advance across the scrapes in which it always did); otherwise
    /// `stallFactor` times its usual gap. At 1 s scrapes both give `stallAfter` for a busy
    /// consumer; at 15 s the first says one silent scrape, where three usual gaps said three.
    static func threshold(_ p: Model.StallParameters, usualGap usual: Double, interval: Double?) -> Double {
        if let interval, usual <= 1.5 * interval {
            return max(p.stallAfter, p.stallScrapes * interval)
        }
        return max(p.stallAfter, p.stallFactor * usual)
    }
}

// MARK: - growth

struct GrowthWatch: Codable, Sendable {
    struct Thing: Codable, Sendable {
        var labels: [String: String]
        var values: [Point] = []
    }

    var things = Things<Thing>()

    mutating func observe(_ p: Model.GrowthParameters, time: Timestamp, seen: [Seen]) -> [Found] {
        var out: [Found] = []
        for s in seen {
            var state = things[s.key] ?? Thing(labels: s.labels)
            state.labels = s.labels  // a client's name may come after its first scrape
            let value = s.sample.value
            state.values.append(Point(time: time, value: value))
            if state.values.count > 64 { state.values.removeFirst(state.values.count - 64) }
            things.set(s.key, state, at: time)
            // The run of rises ending now: how many, and over how long.
            var rises = 0
            var start = time
            var k = state.values.count - 1
            while k > 0 && state.values[k - 1].value < state.values[k].value {
                rises += 1
                start = state.values[k - 1].time
                k -= 1
            }
            let rising =
                rises >= p.minRises && time.seconds - start.seconds >= p.minDuration
                && value - state.values[k].value >= p.minRise
            let condition: AlertCondition
            if value >= p.minValue && rising {
                condition = .active
            } else if value < p.clearValue {
                condition = .inactive
            } else {
                condition = .unchanged
            }
            let numbers = [
                "value": F.format(value), "threshold": F.format(p.minValue),
                "rise": F.format(value - state.values[k].value),
                "rise_seconds": F.format(time.seconds - start.seconds), "since": start.description,
                "expected": "below \(F.format(p.minValue)) or not rising", "score": F.format(value / p.minValue),
            ]
            out.append(Found(labels: state.labels, numbers: numbers, condition: condition))
        }
        return out
    }
}

// MARK: - surge

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
            let threshold = max(
                p.factor * state.baselineMessages,
                state.baselineMessages + p.minRate,
                state.baselineMessages + p.sigmas * spread
            )
            let surging =
                state.learned >= p.warmup && rate >= threshold
                && (p.bytes == nil || surplusBytes >= p.minPayload * surplus)
            // Between the baseline and the threshold lies a band where a surge pauses but does
            // not end: a flood whose rate hovers near the threshold (a partly flooded scrape
            // interval, a noisy second) keeps its streak, and the baseline does not learn from it.
            let midway = state.baselineMessages + (threshold - state.baselineMessages) / 2
            if surging {
                if state.streak == 0 { state.streakStart = lastTime }
                state.streak += dt
            } else if state.streak > 0 && rate >= midway && state.learned >= p.warmup {
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
                state.learned += dt
            }
            let condition: AlertCondition
            if state.streak >= p.minDuration {
                condition = .active
            } else if surging {
                condition = .unchanged
            } else if rate < midway {
                condition = .inactive
            } else {
                condition = .unchanged
            }
            let numbers = [
                "value": F.format(rate), "threshold": F.format(threshold),
                "baseline": F.format(state.baselineMessages), "bytes": F.format(byteRate),
                "ratio": F.format(state.baselineMessages > 0 ? rate / state.baselineMessages : 0),
                "since": (state.streakStart ?? time).description,
                "expected": "about \(F.format(state.baselineMessages))/s",
                "band": "up to \(F.format(threshold))/s", "score": F.format(rate / max(threshold, 1e-9)),
            ]
            out.append(Found(labels: state.labels, numbers: numbers, condition: condition))
        }
        return out
    }
}

// MARK: - threshold

struct ThresholdWatch: Codable, Sendable {
    struct Thing: Codable, Sendable {
        var labels: [String: String]
        var value: Double?
        /// The latest denominator (limits change rarely; they may come less often).
        var limit: Double?
        var activeSince: Timestamp?
    }

    var things = Things<Thing>()

    mutating func observe(_ p: Model.ThresholdParameters, time: Timestamp, seen: [Seen]) -> [Found] {
        var touched: [String] = []
        for s in seen {
            var state = things[s.key] ?? Thing(labels: s.labels)
            state.labels = s.labels  // a client's name may come after its first scrape
            if s.sample.labels.metricName == p.metric {
                state.value = s.sample.value
                state.labels = s.labels
                touched.append(s.key)
            } else {
                state.limit = s.sample.value
            }
            things.set(s.key, state, at: time)
        }
        var out: [Found] = []
        for key in touched {
            guard var state = things[key], let raw = state.value else { continue }
            var value = raw
            if p.ratioTo != nil {
                // No limit (0 or -1, "unlimited"), or none known yet: nothing to compare with.
                guard let limit = state.limit, limit > 0 else { continue }
                value = raw / limit
            }
            let beyond = p.direction == .below ? value < p.value : value > p.value
            let back = p.direction == .below ? value >= p.clear : value <= p.clear
            let condition: AlertCondition = beyond ? .active : back ? .inactive : .unchanged
            if condition == .active && state.activeSince == nil { state.activeSince = time }
            if condition == .inactive { state.activeSince = nil }
            things.set(key, state, at: time)
            var numbers = [
                "value": F.format(value), "threshold": F.format(p.value), "raw": F.format(raw),
                "expected": (p.direction == .below ? "at least " : "at most ") + F.format(p.value),
                "since": (state.activeSince ?? time).description,
            ]
            if p.ratioTo != nil, let limit = state.limit {
                numbers["limit"] = F.format(limit)
                numbers["percent"] = F.format(value * 100)
                numbers["threshold_percent"] = F.format(p.value * 100)
            }
            out.append(Found(labels: state.labels, numbers: numbers, condition: condition))
        }
        return out
    }
}

// MARK: - drop

struct DropWatch: Codable, Sendable {
    struct Thing: Codable, Sendable {
        var labels: [String: String]
        /// The highest level held (or the lower one accepted after `relearn_after`).
        var level: Double
        var lowSince: Timestamp?
    }

    var things = Things<Thing>()

    mutating func observe(_ p: Model.DropParameters, time: Timestamp, seen: [Seen]) -> [Found] {
        var out: [Found] = []
        for s in seen {
            let value = s.sample.value
            var state = things[s.key] ?? Thing(labels: s.labels, level: value)
            state.labels = s.labels
            if value >= state.level {
                state.level = value
                state.lowSince = nil
            } else if let lowSince = state.lowSince {
                if time.seconds - lowSince.seconds >= p.relearnAfter {
                    // Held long enough to be the new normal (a route removed on purpose).
                    state.level = value
                    state.lowSince = nil
                }
            } else {
                state.lowSince = time
            }
            things.set(s.key, state, at: time)
            let drop = state.level - value
            let condition: AlertCondition = drop >= p.minDrop ? .active : drop <= 0 ? .inactive : .unchanged
            let numbers = [
                "value": F.format(value), "level": F.format(state.level), "drop": F.format(drop),
                "expected": F.format(state.level), "since": (state.lowSince ?? time).description,
                "relearn_after": DurationText.human(seconds: p.relearnAfter),
            ]
            out.append(Found(labels: state.labels, numbers: numbers, condition: condition))
        }
        return out
    }
}

// MARK: - increase

struct IncreaseWatch: Codable, Sendable {
    struct Thing: Codable, Sendable {
        var labels: [String: String]
        var last: Double?
        /// Increases within the window, when they were seen.
        var increases: [Point] = []
    }

    var things = Things<Thing>()
    /// The first tick the model watched: series first seen later are new.
    var started: Timestamp?

    mutating func observe(_ p: Model.IncreaseParameters, time: Timestamp, seen: [Seen]) -> [Found] {
        let started = self.started ?? time
        self.started = started
        var out: [Found] = []
        for s in seen {
            let value = s.sample.value
            var state = things[s.key] ?? Thing(labels: s.labels)
            state.labels = s.labels  // a client's name may come after its first scrape
            if let last = state.last {
                // A counter that went down restarted: all of its value is new.
                let increase = s.sample.counterReset || value < last ? value : value - last
                if increase > 0 { state.increases.append(Point(time: time, value: increase)) }
            } else if p.newSeriesFromZero && (time > started || s.sample.counterReset) && value > 0 {
                // New since the model started, or a counter that says it counts from zero (one
                // an event created): all of its value is new.
                state.increases.append(Point(time: time, value: value))
            }
            state.last = value
            state.increases.removeAll { time.seconds - $0.time.seconds > p.window }
            things.set(s.key, state, at: time)
            let total = state.increases.reduce(0) { $0 + $1.value }
            let condition: AlertCondition = total >= p.minIncrease ? .active : total == 0 ? .inactive : .unchanged
            let numbers = [
                "value": F.format(total), "threshold": F.format(p.minIncrease),
                "window": DurationText.human(seconds: p.window), "total": F.format(value), "expected": "0",
                "since": (state.increases.first?.time ?? time).description,
            ]
            out.append(Found(labels: state.labels, numbers: numbers, condition: condition))
        }
        return out
    }
}

// MARK: - forecast

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
                Self.beyondPeak(current, state.peaks ?? [], p)
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

    /// Whether the value now passed the highest value of the history before the window (always,
    /// without `beyond_peak` or without history): a trend's extrapolation at the top of a
    /// swing is not enough.
    static func beyondPeak(_ now: Double, _ peaks: [Point], _ p: Model.ForecastParameters) -> Bool {
        guard p.beyondPeak > 0, let peak = peaks.map(\.value).max() else { return true }
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

// MARK: - anomaly

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
            let numbers = [
                "value": F.format(point.value), "expected": F.format(expected),
                "band": "\(F.format(lower)) to \(F.format(upper))",
                "lower": F.format(lower), "upper": F.format(upper),
                "score": F.format(halfWidth > 0 ? abs(deviation) / halfWidth : 0),
                "deviation": F.format(deviation), "signal": metric,
                "direction": deviation >= 0 ? "above" : "below",
                "since": (state.anchor?.since ?? time).description,
            ]
            out.append(Found(labels: state.labels, numbers: numbers, condition: condition))
        }
        return out
    }

    /// Whether a deviation is large enough for the model: `min_deviation` and
    /// `min_relative_deviation` of the expected value.
    static func large(_ deviation: Double, _ expected: Double, _ p: Model.AnomalyParameters) -> Bool {
        abs(deviation) >= p.minDeviation && abs(deviation) >= p.minRelativeDeviation * abs(expected)
    }
}
