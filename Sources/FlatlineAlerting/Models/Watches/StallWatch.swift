import FlatlineCore

private typealias F = HumanNumber

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

    /// `idle` readings needed before they decide instead of progress between scrapes. Two: at
    /// 30 s scrapes a third took a minute and a half of the consumer's life, and a freeze in it was
    /// missed (the floor moved between the scrapes around it). Two are no riskier than three for
    /// a consumer that acknowledges in batches: the usual idle is twice their median, the larger
    /// of two, and two readings both far below the batch gap are rarer than two of three.
    static let minIdles = 2

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
            out.append(
                Found(labels: state.labels, condition: condition) {
                    [
                        "value": F.format(since), "threshold": F.format(threshold), "waiting": F.format(waitingNow),
                        "since": time.advanced(bySeconds: -since).description, "usual_gap": F.format(usual),
                        "expected": "progress at least every \(F.format(threshold)) s while work waits",
                        "score": F.format(since / threshold),
                    ]
                }
            )
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

extension StallWatch: Watch {}
