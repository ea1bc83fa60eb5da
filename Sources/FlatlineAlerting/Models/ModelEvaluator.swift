import FlatlineCore

/// Turns each tick's samples into alert observations, one per watched thing of each model.
/// Pure and clocked by the samples' tick, so live and replay evaluate alike; its learned state
/// (baselines, usual gaps, levels) can be saved and restored (``state`` and ``restore(_:)``).
public struct ModelEvaluator: Sendable {
    public let models: [Model]
    private var watches: [ModelWatch]
    /// Per model, the latest values of its `context` series by group key (and when seen).
    private var contexts: [[String: (time: Timestamp, values: [String: Double])]]
    /// Watched things not seen for this many seconds are forgotten (connections come and go).
    public var forgetAfter: Double
    private var lastSweep: Timestamp?
    /// Per model, its alert's texts, parsed once.
    private let texts: [AlertTexts]

    public init(models: [Model], forgetAfter: Double = 3600) {
        self.models = models
        texts = models.map(AlertTexts.init)
        self.forgetAfter = forgetAfter
        watches = models.map { ModelWatch(kind: $0.kind) }
        contexts = Array(repeating: [:], count: models.count)
    }

    /// The observations of one tick: every model's verdict on every thing it saw in `samples`.
    /// Only an active observation carries annotations (what ``AlertEngine`` reads of them): the
    /// others have none.
    ///
    /// - Parameters:
    ///   - time: the tick.
    ///   - samples: the tick's samples.
    ///   - verdicts: the detection bank's verdict on each sample (same order), for `anomaly`
    ///     models; without them those models see nothing.
    public mutating func observe(time: Timestamp, samples: [Sample], verdicts: [SampleVerdict] = [])
        -> [AlertObservation]
    {
        // No models (a replay for its rows alone): nothing to watch, nothing to index.
        guard !models.isEmpty else { return [] }
        var byMetric: [String: [Int]] = [:]
        for (index, sample) in samples.enumerated() { byMetric[sample.labels.metricName, default: []].append(index) }
        var out: [AlertObservation] = []
        for (index, model) in models.enumerated() {
            var seen: [Seen] = []
            let primary = model.kind.primaryMetrics
            for metric in model.kind.metrics.sorted() {
                for i in byMetric[metric] ?? [] {
                    let sample = samples[i]
                    if primary.contains(metric) && !model.match.allSatisfy({ $0.matches(sample.labels) }) { continue }
                    if case .forecast(let p) = model.kind, metric == p.limitMetric, let limitOn = p.limitOn {
                        // A limit of a larger thing (the stream of a consumer), keyed by its own labels.
                        guard let key = Self.key(sample.labels, limitOn) else { continue }
                        seen.append(Seen(sample: sample, key: key, labels: [:], verdict: nil))
                        continue
                    }
                    guard let group = Self.group(sample, model) else { continue }
                    seen.append(
                        Seen(
                            sample: sample,
                            key: group.key,
                            labels: group.labels,
                            verdict: i < verdicts.count ? verdicts[i] : nil
                        )
                    )
                }
            }
            for (name, metric) in model.context {
                for i in byMetric[metric] ?? [] {
                    guard let group = Self.group(samples[i], model) else { continue }
                    var entry = contexts[index][group.key] ?? (time, [:])
                    entry.time = time
                    entry.values[name] = samples[i].value
                    contexts[index][group.key] = entry
                }
            }
            for found in watches[index].observe(model.kind, time: time, seen: seen) {
                var found = found
                // Context fills annotations, which only an active condition carries.
                if found.condition == .active, !model.context.isEmpty, let key = Self.key(found.labels, model.groupBy),
                    let values = contexts[index][key]?.values
                {
                    for (name, value) in values where found.numbers[name] == nil {
                        found.numbers[name] = HumanNumber.format(value)
                    }
                }
                out.append(observation(model, texts[index], found))
            }
        }
        sweepIfDue(time)
        return out
    }

    private mutating func sweepIfDue(_ time: Timestamp) {
        if let lastSweep, time.seconds - lastSweep.seconds < forgetAfter / 8 { return }
        lastSweep = time
        let cutoff = time.advanced(bySeconds: -forgetAfter)
        for i in watches.indices { watches[i].forget(notSeenSince: cutoff) }
        for i in contexts.indices { contexts[i] = contexts[i].filter { $0.value.time >= cutoff } }
    }

    /// The values of `names` joined into a key, or `nil` when one is missing.
    static func key(_ labels: LabelSet, _ names: [String]) -> String? {
        var key = ""
        for name in names {
            guard let value = labels[name] else { return nil }
            key += value + "\u{1}"
        }
        return key
    }

    /// The same key from an alert's labels.
    static func key(_ labels: [String: String], _ names: [String]) -> String? {
        var key = ""
        for name in names {
            guard let value = labels[name] else { return nil }
            key += value + "\u{1}"
        }
        return key
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

    private func observation(
        _ model: Model,
        _ texts: AlertTexts,
        _ found: Found
    ) -> AlertObservation {
        var alertLabels = model.alert.labels
        alertLabels.merge(found.labels) { _, own in own }
        alertLabels["alertname"] = model.alert.name
        alertLabels["severity"] = model.alert.severity
        alertLabels["model"] = model.name
        if let incident = texts.incident {
            let text = incident.render(alertLabels)
            if !text.isEmpty { alertLabels["incident"] = text }
        }
        // The engine reads an observation's annotations only when its condition is active (an
        // alert starts or holds): the others, nearly all of them, are not rendered.
        guard found.condition == .active else {
            return AlertObservation(labels: alertLabels, condition: found.condition, timing: model.alert.timing)
        }
        let values = alertLabels.merging(found.numbers) { label, _ in label }
        var annotations = [
            "summary": texts.summary.render(values),
            "description": texts.description.render(values),
            "detector": "\(model.kind.name) (model \(model.name))",
        ]
        // The standard explanation: what was seen, what was expected, how far off, since when.
        for (annotation, number) in [
            ("observed", "value"), ("expected", "expected"), ("band", "band"), ("score", "score"), ("since", "since"),
        ] {
            if let text = found.numbers[number], !text.isEmpty { annotations[annotation] = text }
        }
        for name in model.context.keys where annotations[name] == nil {
            if let text = found.numbers[name], !text.isEmpty { annotations[name] = text }
        }
        return AlertObservation(
            labels: alertLabels,
            annotations: annotations,
            condition: found.condition,
            timing: model.alert.timing
        )
    }

    static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }
}

// MARK: - Saved state

/// The evaluator's learned state, by model name, to save and restore across restarts.
public struct ModelEvaluatorState: Sendable, Codable {
    var models: [String: ModelWatch]

    /// How many watched things it holds state of, over all models.
    public var things: Int { models.values.reduce(0) { $0 + $1.count } }

    /// The state split by unit: `unit` names the unit of a watched thing from its labels (its
    /// group's: `instance`, and `job` where a model groups by it); things it names none of are
    /// in no part. A replica that takes a unit over adopts its part (``ModelEvaluator/adopt(_:)``).
    public func split(by unit: ([String: String]) -> String?) -> [String: ModelEvaluatorState] {
        var parts: [String: ModelEvaluatorState] = [:]
        for (name, watch) in models {
            for (part, piece) in watch.split(by: unit) {
                parts[part, default: ModelEvaluatorState(models: [:])].models[name] = piece
            }
        }
        return parts
    }
}

extension ModelEvaluator {
    /// What the models learned so far.
    public var state: ModelEvaluatorState {
        var byName: [String: ModelWatch] = [:]
        for (model, watch) in zip(models, watches) { byName[model.name] = watch }
        return ModelEvaluatorState(models: byName)
    }

    /// Takes the watched things of `part` that this evaluator has no state of, for every model of
    /// the same name and kind: what another process learned of a unit this one takes over.
    /// - Returns: how many things it took.
    @discardableResult
    public mutating func adopt(_ part: ModelEvaluatorState) -> Int {
        var taken = 0
        for (index, model) in models.enumerated() {
            guard let watch = part.models[model.name], watch.kindName == model.kind.name else { continue }
            taken += watches[index].adopt(watch)
        }
        return taken
    }

    /// Forgets what the models learned of the watched things whose labels `belongs` accepts
    /// (a unit another process evaluates now).
    public mutating func drop(where belongs: ([String: String]) -> Bool) {
        for index in watches.indices { watches[index].drop(where: belongs) }
    }

    /// Takes over saved state for every model of the same name and kind; the others start cold.
    /// - Returns: the names of the models restored.
    @discardableResult
    public mutating func restore(_ saved: ModelEvaluatorState) -> [String] {
        var restored: [String] = []
        for (index, model) in models.enumerated() {
            guard let watch = saved.models[model.name], watch.kindName == model.kind.name else { continue }
            watches[index] = watch
            restored.append(model.name)
        }
        return restored
    }
}
