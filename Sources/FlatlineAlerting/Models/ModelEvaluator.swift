import FlatlineCore

/// Turns each tick's samples into alert observations, one per watched thing of each model.
/// Pure and clocked by the samples' tick, so live and replay evaluate alike.
public struct ModelEvaluator: Sendable {
    public let models: [Model]
    private var stalls: [[String: StallState]]
    private var growths: [[String: GrowthState]]
    private var surges: [[String: SurgeState]]

    struct SurgeState: Sendable {
        var labels: [String: String]
        var last: (time: Timestamp, messages: Double?, bytes: Double?)?
        var pendingBytes: Double?
        var baselineMessages = 0.0
        var baselineBytes = 0.0
        /// Seconds of normal traffic the baseline learned from.
        var learned = 0.0
        /// Seconds the current surge has lasted.
        var streak = 0.0
    }

    struct StallState: Sendable {
        var labels: [String: String]
        var progress: Double?
        var lastAdvance: Timestamp?
        /// Recent gaps between advances while work waited, in seconds.
        var gaps: [Double] = []
        var waiting: [String: Double] = [:]
    }

    struct GrowthState: Sendable {
        var labels: [String: String]
        var values: [(time: Timestamp, value: Double)] = []
    }

    public init(models: [Model]) {
        self.models = models
        stalls = models.map { _ in [:] }
        growths = models.map { _ in [:] }
        surges = models.map { _ in [:] }
    }

    /// The observations of one tick: every model's verdict on every thing it saw in `samples`.
    public mutating func observe(time: Timestamp, samples: [Sample]) -> [AlertObservation] {
        var out: [AlertObservation] = []
        for (index, model) in models.enumerated() {
            switch model.kind {
            case .stall(let progress, let waiting, let stallAfter, let stallFactor):
                out += observeStall(
                    index,
                    model,
                    time: time,
                    samples: samples,
                    progress: progress,
                    waiting: waiting,
                    stallAfter: stallAfter,
                    stallFactor: stallFactor
                )
            case .surge(let parameters):
                out += observeSurge(index, model, time: time, samples: samples, parameters)
            case .growth(let metric, let minValue, let clearValue, let minRises, let minDuration):
                out += observeGrowth(
                    index,
                    model,
                    time: time,
                    samples: samples,
                    metric: metric,
                    minValue: minValue,
                    clearValue: clearValue,
                    minRises: minRises,
                    minDuration: minDuration
                )
            }
        }
        return out
    }

    /// The group key and labels of a sample for a model, or `nil` when it lacks one of them.
    static func group(_ sample: Sample, _ model: Model) -> (key: String, labels: [String: String])? {
        var labels: [String: String] = [:]
        var key = ""
        for name in model.groupBy {
            guard let value = sample.labels[name] else { return nil }
            labels[name] = value
            key += value + "\u{1}"
        }
        // Descriptive labels the alert carries when the series has them (a client's name).
        for name in model.carry {
            if let value = sample.labels[name] { labels[name] = value }
        }
        return (key, labels)
    }

    private mutating func observeStall(
        _ index: Int,
        _ model: Model,
        time: Timestamp,
        samples: [Sample],
        progress: String,
        waiting: [String],
        stallAfter: Double,
        stallFactor: Double
    ) -> [AlertObservation] {
        var touched: [String] = []
        for sample in samples {
            let name = sample.labels.metricName
            guard name == progress || waiting.contains(name), let (key, labels) = Self.group(sample, model) else {
                continue
            }
            var state = stalls[index][key] ?? StallState(labels: labels)
            if name == progress {
                if let previous = state.progress, sample.value != previous {
                    // Advanced (or restarted): a gap closes.
                    if let last = state.lastAdvance, sample.value > previous, (state.waiting.values.reduce(0, +)) > 0 {
                        state.gaps.append(time.seconds - last.seconds)
                        if state.gaps.count > 32 { state.gaps.removeFirst(state.gaps.count - 32) }
                    }
                    state.lastAdvance = time
                } else if state.progress == nil {
                    state.lastAdvance = time
                }
                state.progress = sample.value
                touched.append(key)
            } else {
                state.waiting[name] = sample.value
            }
            stalls[index][key] = state
        }
        var out: [AlertObservation] = []
        for key in touched {
            guard let state = stalls[index][key], let lastAdvance = state.lastAdvance else { continue }
            let waitingNow = state.waiting.values.reduce(0, +)
            let since = time.seconds - lastAdvance.seconds
            let usual = Self.median(state.gaps) ?? 0
            let threshold = max(stallAfter, stallFactor * usual)
            let condition: AlertCondition
            if waitingNow <= 0 || since == 0 {
                condition = .inactive
            } else if since >= threshold {
                condition = .active
            } else {
                // Stopped, but not yet for long enough: neither start nor clear.
                condition = .unchanged
            }
            let numbers = [
                "value": Self.format(since), "threshold": Self.format(threshold), "waiting": Self.format(waitingNow),
                "since": lastAdvance.description,
            ]
            out.append(observation(model, labels: state.labels, numbers: numbers, condition: condition))
        }
        return out
    }

    private mutating func observeGrowth(
        _ index: Int,
        _ model: Model,
        time: Timestamp,
        samples: [Sample],
        metric: String,
        minValue: Double,
        clearValue: Double,
        minRises: Int,
        minDuration: Double
    ) -> [AlertObservation] {
        var out: [AlertObservation] = []
        for sample in samples where sample.labels.metricName == metric {
            guard let (key, labels) = Self.group(sample, model) else { continue }
            var state = growths[index][key] ?? GrowthState(labels: labels)
            state.values.append((time, sample.value))
            if state.values.count > 64 { state.values.removeFirst(state.values.count - 64) }
            growths[index][key] = state
            // The run of rises ending now: how many, and over how long.
            var rises = 0
            var start = time
            var k = state.values.count - 1
            while k > 0 && state.values[k - 1].value < state.values[k].value {
                rises += 1
                start = state.values[k - 1].time
                k -= 1
            }
            let rising = rises >= minRises && time.seconds - start.seconds >= minDuration
            let condition: AlertCondition
            if sample.value >= minValue && rising {
                condition = .active
            } else if sample.value < clearValue {
                condition = .inactive
            } else {
                condition = .unchanged
            }
            let numbers = [
                "value": Self.format(sample.value), "threshold": Self.format(minValue),
                "rise": Self.format(sample.value - state.values[k].value),
                "rise_seconds": Self.format(time.seconds - start.seconds), "since": start.description,
            ]
            out.append(observation(model, labels: state.labels, numbers: numbers, condition: condition))
        }
        return out
    }

    private mutating func observeSurge(
        _ index: Int,
        _ model: Model,
        time: Timestamp,
        samples: [Sample],
        _ p: Model.SurgeParameters
    ) -> [AlertObservation] {
        // A connection's message and byte counters arrive in the same tick; pair them first.
        var current: [String: (labels: [String: String], messages: Double?, bytes: Double?)] = [:]
        for sample in samples {
            let name = sample.labels.metricName
            guard name == p.messages || name == p.bytes, let (key, labels) = Self.group(sample, model) else { continue }
            var entry = current[key] ?? (labels, nil, nil)
            if name == p.messages { entry.messages = sample.value } else { entry.bytes = sample.value }
            current[key] = entry
        }
        var out: [AlertObservation] = []
        for key in current.keys.sorted() {
            guard let entry = current[key], let messages = entry.messages, let bytes = entry.bytes else { continue }
            var state = surges[index][key] ?? SurgeState(labels: entry.labels)
            defer { surges[index][key] = state }
            guard let last = state.last, let lastMessages = last.messages, let lastBytes = last.bytes,
                time > last.time, messages >= lastMessages, bytes >= lastBytes
            else {
                // First sight, or the counters restarted: a new starting point.
                state.last = (time, messages, bytes)
                continue
            }
            let dt = time.seconds - last.time.seconds
            let rate = (messages - lastMessages) / dt
            let byteRate = (bytes - lastBytes) / dt
            state.last = (time, messages, bytes)
            let surplus = rate - state.baselineMessages
            let surplusBytes = byteRate - state.baselineBytes
            let surging =
                state.learned >= p.warmup && rate >= p.factor * state.baselineMessages && surplus >= p.minRate
                && surplusBytes >= p.minPayload * surplus
            state.streak = surging ? state.streak + dt : 0
            if !surging {
                // The baseline learns only from normal traffic, so a flood does not become normal.
                let alpha = state.learned == 0 ? 1 : 1 - _exp2(-dt / p.halfLife)
                state.baselineMessages += alpha * (rate - state.baselineMessages)
                state.baselineBytes += alpha * (byteRate - state.baselineBytes)
                state.learned += dt
            }
            let condition: AlertCondition
            if state.streak >= p.minDuration {
                condition = .active
            } else if surging {
                condition = .unchanged
            } else if rate < (1 + p.factor) / 2 * state.baselineMessages || surplus < p.minRate / 2 {
                condition = .inactive
            } else {
                condition = .unchanged
            }
            let numbers = [
                "value": Self.format(rate), "threshold": Self.format(p.factor * state.baselineMessages),
                "baseline": Self.format(state.baselineMessages), "bytes": Self.format(byteRate),
                "ratio": Self.format(state.baselineMessages > 0 ? rate / state.baselineMessages : 0),
                "since": time.description,
            ]
            out.append(observation(model, labels: state.labels, numbers: numbers, condition: condition))
        }
        return out
    }

    private func observation(
        _ model: Model,
        labels: [String: String],
        numbers: [String: String],
        condition: AlertCondition
    ) -> AlertObservation {
        var alertLabels = model.alert.labels
        alertLabels.merge(labels) { _, own in own }
        alertLabels["alertname"] = model.alert.name
        alertLabels["severity"] = model.alert.severity
        alertLabels["model"] = model.name
        let values = alertLabels.merging(numbers) { label, _ in label }
        return AlertObservation(
            labels: alertLabels,
            annotations: [
                "summary": Self.render(model.alert.summary, values),
                "description": Self.render(model.alert.description, values),
            ],
            condition: condition,
            timing: model.alert.timing
        )
    }

    /// `{{name}}` replaced by `values[name]` (unknown names by "").
    static func render(_ template: String, _ values: [String: String]) -> String {
        var out = ""
        var rest = Substring(template)
        while let open = rest.firstRange(of: "{{") {
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstRange(of: "}}") else {
                out += rest[open.lowerBound...]
                return out
            }
            let name = String(rest[open.upperBound..<close.lowerBound].filter { $0 != " " })
            out += values[name] ?? ""
            rest = rest[close.upperBound...]
        }
        return out + rest
    }

    static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }

    static func format(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
        return String(Double(Int64(value * 10)) / 10)
    }
}
