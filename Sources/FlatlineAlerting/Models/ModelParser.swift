import FlatlineCore
import FlatlineYAML

extension Model {
    /// Parses a model file (`models/*.yml`). Keys are strict: an unknown key (a typo) is an
    /// error, not a silently ignored setting.
    /// - Throws: ``ModelError`` naming the file, the key and what is wrong.
    public static func parse(_ text: String, file: String) throws(ModelError) -> Model {
        do {
            return try strict(text, file: file)
        } catch {
            throw ModelError(file: error.file, line: error.line, key: error.key, reason: error.reason)
        }
    }

    /// The model in `text`, read with the configuration file's strict reader.
    private static func strict(_ text: String, file: String) throws(ConfigError) -> Model {
        let top = try Section(
            try YAMLValue.parse(text, file: file),
            known: [
                "name", "description", "kind", "group_by", "carry", "match", "incident", "alert", "context",
                "stall", "growth", "surge", "threshold", "drop", "increase", "forecast", "anomaly",
            ]
        )
        let name = try top.string("name")
        let kindName = try top.string("kind")
        let groupBy = try top.names("group_by")
        guard !groupBy.isEmpty else { throw top.fail("group_by", "must list label names") }
        let kind: Kind
        switch kindName {
        case "stall":
            let s = try top.section(
                "stall",
                known: [
                    "progress", "waiting", "draining", "delivered", "idle", "untaken", "stall_after", "stall_factor",
                    "stall_scrapes",
                ]
            )
            let waiting = try s.strings("waiting")
            guard !waiting.isEmpty else { throw s.fail("waiting", "must list gauges") }
            kind = .stall(
                StallParameters(
                    progress: try s.string("progress"),
                    waiting: waiting,
                    draining: try s.strings("draining"),
                    delivered: s.optionalString("delivered"),
                    idle: s.optionalString("idle"),
                    untaken: s.optionalString("untaken"),
                    stallAfter: try s.positive("stall_after", default: 10),
                    stallFactor: try s.nonNegative("stall_factor", default: 4),
                    stallScrapes: try s.positive("stall_scrapes", default: 1)
                )
            )
        case "growth":
            let g = try top.section(
                "growth",
                known: ["metric", "min_value", "clear_value", "min_rises", "min_duration", "min_rise"]
            )
            let minValue = try g.nonNegative("min_value", default: 262_144)
            kind = .growth(
                GrowthParameters(
                    metric: try g.string("metric"),
                    minValue: minValue,
                    clearValue: try g.nonNegative("clear_value", default: minValue / 2),
                    minRises: try g.wholeNumber("min_rises", default: 2),
                    minDuration: try g.nonNegative("min_duration", default: 3),
                    minRise: try g.nonNegative("min_rise", default: 0)
                )
            )
        case "surge":
            let g = try top.section(
                "surge",
                known: [
                    "messages", "bytes", "factor", "min_rate", "min_rate_interval", "sigmas", "min_payload",
                    "min_duration", "half_life", "warmup", "level_half_life", "steady_factor", "steady_sigmas",
                    "instant",
                ]
            )
            kind = .surge(
                SurgeParameters(
                    messages: try g.string("messages"),
                    bytes: g.optionalString("bytes"),
                    factor: try g.atLeastOne("factor", default: 2.5),
                    minRate: try g.nonNegative("min_rate", default: 20),
                    minRateInterval: try g.nonNegative("min_rate_interval", default: 0),
                    sigmas: try g.nonNegative("sigmas", default: 5),
                    minPayload: try g.nonNegative("min_payload", default: 16),
                    minDuration: try g.nonNegative("min_duration", default: 2),
                    halfLife: try g.positive("half_life", default: 300),
                    warmup: try g.nonNegative("warmup", default: 120),
                    levelHalfLife: try g.nonNegative("level_half_life", default: 0),
                    steadyFactor: try g.nonNegative("steady_factor", default: 0),
                    steadySigmas: try g.nonNegative("steady_sigmas", default: 0),
                    instant: try g.nonNegative("instant", default: 0)
                )
            )
        case "threshold":
            let t = try top.section("threshold", known: ["metric", "ratio_to", "above", "below", "clear"])
            let above = t.has("above")
            guard above != t.has("below") else { throw t.fail("needs exactly one of above: or below:") }
            let value = try t.number(above ? "above" : "below", default: 0)
            kind = .threshold(
                ThresholdParameters(
                    metric: try t.string("metric"),
                    ratioTo: t.optionalString("ratio_to"),
                    direction: above ? .above : .below,
                    value: value,
                    clear: try t.number("clear", default: value)
                )
            )
            if case .threshold(let p) = kind, above ? p.clear > p.value : p.clear < p.value {
                throw t.fail("clear", "must be on the normal side of the threshold")
            }
        case "drop":
            let d = try top.section("drop", known: ["metric", "min_drop", "relearn_after"])
            kind = .drop(
                DropParameters(
                    metric: try d.string("metric"),
                    minDrop: try d.positive("min_drop", default: 1),
                    relearnAfter: try d.positive("relearn_after", default: 3600)
                )
            )
        case "increase":
            let i = try top.section("increase", known: ["metric", "min_increase", "window", "new_series_from_zero"])
            let fromZero = i.optionalString("new_series_from_zero") ?? "false"
            guard fromZero == "true" || fromZero == "false" else {
                throw i.fail("new_series_from_zero", "must be true or false")
            }
            kind = .increase(
                IncreaseParameters(
                    metric: try i.string("metric"),
                    minIncrease: try i.positive("min_increase", default: 1),
                    window: try i.positive("window", default: 300),
                    newSeriesFromZero: fromZero == "true"
                )
            )
        case "forecast":
            let f = try top.section(
                "forecast",
                known: [
                    "metric", "limit_metric", "limit_on", "limit", "window", "horizon", "min_points", "min_rise",
                    "confirmations", "beyond_peak",
                ]
            )
            let limitOn = f.has("limit_on") ? try f.names("limit_on") : nil
            if let limitOn, !Set(limitOn).isSubset(of: groupBy) || limitOn.isEmpty {
                throw f.fail("limit_on", "must list some of the group_by labels")
            }
            let limitMetric = f.optionalString("limit_metric")
            let limit = f.has("limit") ? try f.positive("limit", default: 1) : nil
            guard (limitMetric == nil) != (limit == nil) else {
                throw f.fail("needs exactly one of limit_metric: or limit:")
            }
            kind = .forecast(
                ForecastParameters(
                    metric: try f.string("metric"),
                    limitMetric: limitMetric,
                    limitOn: limitOn,
                    limit: limit,
                    window: try f.positive("window", default: 600),
                    horizon: try f.positive("horizon", default: 1800),
                    minPoints: Int(try f.positive("min_points", default: 8)),
                    minRise: try f.nonNegative("min_rise", default: 0.05),
                    confirmations: try f.wholeNumber("confirmations", default: 1),
                    beyondPeak: try f.nonNegative("beyond_peak", default: 0)
                )
            )
        case "anomaly":
            let a = try top.section(
                "anomaly",
                known: ["metrics", "direction", "min_deviation", "min_relative_deviation", "settle_after"]
            )
            let metrics = try a.strings("metrics")
            guard !metrics.isEmpty else { throw a.fail("metrics", "must list metric names") }
            let directionName = a.optionalString("direction") ?? "both"
            guard let direction = Direction(rawValue: directionName) else {
                throw a.fail("direction", "must be above, below or both, not \"\(directionName)\"")
            }
            kind = .anomaly(
                AnomalyParameters(
                    metrics: metrics,
                    direction: direction,
                    minDeviation: try a.nonNegative("min_deviation", default: 0),
                    minRelativeDeviation: try a.nonNegative("min_relative_deviation", default: 0),
                    settleAfter: try a.nonNegative("settle_after", default: 1800)
                )
            )
        default:
            throw top.fail(
                "kind",
                "\"\(kindName)\" is not a model kind (stall, growth, surge, threshold, drop, increase, forecast, anomaly)"
            )
        }
        for other in ["stall", "growth", "surge", "threshold", "drop", "increase", "forecast", "anomaly"]
        where other != kindName && top.has(other) {
            throw top.fail(other, "does not belong to a model of kind \(kindName)")
        }
        var matchers: [LabelMatcher] = []
        for text in try top.strings("match") {
            do {
                matchers.append(try LabelMatcher(parsing: text))
            } catch {
                throw top.fail("match", error.reason)
            }
        }
        let a = try top.section(
            "alert",
            known: ["name", "severity", "for", "keep_firing_for", "stale_after", "labels", "summary", "description"]
        )
        var labels: [String: String] = [:]
        for (k, v, _) in try a.mapping["labels"]?.stringMap() ?? [] {
            guard LabelSet.isValidLabelName(k) else { throw a.fail("labels", "must map label names to values") }
            labels[k] = v
        }
        let alert = AlertTemplate(
            name: try a.string("name"),
            severity: try a.string("severity"),
            timing: AlertTiming(
                forSeconds: try a.nonNegative("for", default: 0),
                keepFiringFor: try a.nonNegative("keep_firing_for", default: 0),
                staleAfter: try a.positive("stale_after", default: 300)
            ),
            labels: labels,
            summary: try a.string("summary"),
            description: try a.string("description")
        )
        var context: [String: String] = [:]
        for (k, v, _) in try top.mapping["context"]?.stringMap() ?? [] {
            guard LabelSet.isValidLabelName(k), LabelSet.isValidMetricName(v) else {
                throw top.fail("context", "must map names to metric names")
            }
            context[k] = v
        }
        return Model(
            name: name,
            description: top.optionalString("description") ?? "",
            kind: kind,
            groupBy: groupBy,
            carry: try top.names("carry"),
            match: matchers,
            incident: top.optionalString("incident"),
            alert: alert,
            context: context
        )
    }
}

/// One mapping of a model file: strict keys, and errors that name the file, the line and the key.
private struct Section {
    let mapping: YAMLMapping
    var value: YAMLValue { mapping.owner }

    init(_ value: YAMLValue, known: Set<String>) throws(ConfigError) {
        mapping = try value.mapping(known: known)
    }

    /// An error about the section as a whole.
    func fail(_ reason: String) -> ConfigError { value.error(reason) }

    /// An error about member `key`: at its line when it is there, else at the section's.
    func fail(_ key: String, _ reason: String) -> ConfigError {
        if let member = mapping.members[key] { return member.error(reason) }
        return ConfigError(
            file: value.file,
            line: value.line,
            key: value.path.isEmpty ? key : value.path + "." + key,
            reason: reason
        )
    }

    func has(_ key: String) -> Bool { mapping[key] != nil }

    func section(_ key: String, known: Set<String>) throws(ConfigError) -> Section {
        try Section(try mapping.required(key), known: known)
    }

    func string(_ key: String) throws(ConfigError) -> String {
        let text = try mapping.required(key).string()
        guard !text.isEmpty else { throw fail(key, "must not be empty") }
        return text
    }

    /// The text of `key`, `nil` when it is absent, empty or no single value.
    func optionalString(_ key: String) -> String? {
        guard let text = try? mapping[key]?.string(), !text.isEmpty else { return nil }
        return text
    }

    func strings(_ key: String) throws(ConfigError) -> [String] {
        guard let member = mapping[key] else { return [] }
        var out: [String] = []
        for element in try member.sequence() {
            let text = try element.string()
            guard !text.isEmpty else { throw element.error("must not be empty") }
            out.append(text)
        }
        return out
    }

    func names(_ key: String) throws(ConfigError) -> [String] {
        let list = try strings(key)
        guard list.allSatisfy(LabelSet.isValidLabelName) else { throw fail(key, "must list label names") }
        return list
    }

    /// A number, or a duration (`30s`, `5m`) in seconds.
    func number(_ key: String, default fallback: Double) throws(ConfigError) -> Double {
        guard let member = mapping[key] else { return fallback }
        let text = try member.string()
        if let value = Double(text), value.isFinite { return value }
        if let seconds = DurationText.parse(text) { return try member.bounded(seconds, text: text) }
        throw member.error("\"\(text)\" is not a number or a duration")
    }

    /// A whole number from 0 to a billion.
    func wholeNumber(_ key: String, default fallback: Int) throws(ConfigError) -> Int {
        let value = try number(key, default: Double(fallback))
        guard let whole = Int(exactly: value), (0...1_000_000_000).contains(whole) else {
            throw fail(key, "must be a whole number from 0 to 1000000000")
        }
        return whole
    }

    func nonNegative(_ key: String, default fallback: Double) throws(ConfigError) -> Double {
        let value = try number(key, default: fallback)
        guard value >= 0 else { throw fail(key, "must be 0 or more") }
        return value
    }

    /// A factor over a baseline: 1 or more (below it, the usual level would be a surge).
    func atLeastOne(_ key: String, default fallback: Double) throws(ConfigError) -> Double {
        let value = try number(key, default: fallback)
        guard value >= 1 else { throw fail(key, "must be 1 or more (a multiple of the baseline)") }
        return value
    }

    func positive(_ key: String, default fallback: Double) throws(ConfigError) -> Double {
        let value = try number(key, default: fallback)
        guard value > 0 else { throw fail(key, "must be above 0") }
        return value
    }
}
