import FlatlineCore
import Foundation
import Yams

/// What an alert raised by a model looks like.
public struct AlertTemplate: Sendable, Hashable {
    /// `alertname`.
    public var name: String
    public var severity: String
    public var timing: AlertTiming
    /// Extra labels on every alert of the model.
    public var labels: [String: String]
    /// One line; `{{label}}` takes a label of the alert, `{{value}}`, `{{threshold}}`, `{{since}}` the
    /// model's numbers.
    public var summary: String
    /// What a person on call needs to act, in the same template language.
    public var description: String
}

/// A model: which series it watches, the signal it derives, when it alerts, and how the alert
/// reads. Kinds:
/// - `stall`: a counter (`progress`) stops advancing while work waits (`waiting` gauges sum above
///   zero) for longer than `stall_after` and than `stall_factor` times its usual gap between
///   advances. JetStream consumer freezes.
/// - `growth`: a gauge at or above `min_value` that has risen at least `min_rises` observations in
///   a row, over at least `min_duration` (a queue building up); clears below `clear_value`. Slow
///   consumers.
/// - `surge`: a counter's rate far above its own baseline, carrying payload. Producer floods.
public struct Model: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case stall(progress: String, waiting: [String], stallAfter: Double, stallFactor: Double)
        case growth(metric: String, minValue: Double, clearValue: Double, minRises: Int, minDuration: Double)
        case surge(SurgeParameters)
    }

    /// A message rate far above its own baseline, carrying payload (so acknowledgements and pull
    /// requests, which are messages without payload, do not count as a flood).
    public struct SurgeParameters: Sendable, Hashable {
        /// The message counter and the byte counter of one thing (a connection).
        public var messages: String
        public var bytes: String
        /// The rate must be at least this many times the baseline...
        public var factor: Double
        /// ...and this many messages per second above it.
        public var minRate: Double
        /// The surplus must carry this many payload bytes per message on average.
        public var minPayload: Double
        /// Seconds the surge must have lasted, over consecutive observations (two 1 s scrapes, or
        /// one 15 s scrape).
        public var minDuration: Double
        /// Half-life of the baseline (an exponentially weighted mean of the rate, not updated
        /// while surging), in seconds.
        public var halfLife: Double
        /// Seconds of normal traffic before the baseline is trusted (cold start).
        public var warmup: Double
    }

    public var name: String
    public var description: String
    public var kind: Kind
    /// The labels that tell one watched thing from another; they go on the alert.
    public var groupBy: [String]
    /// Labels copied onto the alert when the series has them (`client_name`, `account`...).
    public var carry: [String]
    public var alert: AlertTemplate
}

/// Reads every `*.yml` model of a directory, in name order.
public enum ModelDirectory {
    /// - Throws: ``ModelError`` for a directory that cannot be read or a model that cannot be used.
    public static func load(_ path: String) throws(ModelError) -> [Model] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".yml") }.sorted()
        } catch {
            throw ModelError(file: path, reason: "cannot read the models directory: \(error.localizedDescription)")
        }
        guard !names.isEmpty else { throw ModelError(file: path, reason: "no *.yml models in it") }
        var models: [Model] = []
        for name in names {
            let file = path + "/" + name
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ModelError(file: file, reason: "cannot read")
            }
            models.append(try Model.parse(String(decoding: data, as: UTF8.self), file: file))
        }
        return models
    }
}

/// A model file that cannot be used.
public struct ModelError: Error, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var reason: String

    public var description: String { "\(file): \(reason)" }
}

extension Model {
    /// Parses a model file (`models/*.yml`).
    /// - Throws: ``ModelError`` naming the file and what is wrong.
    public static func parse(_ text: String, file: String) throws(ModelError) -> Model {
        let node: Node
        do {
            guard let parsed = try Yams.compose(yaml: text) else { throw ModelError(file: file, reason: "empty") }
            node = parsed
        } catch let error as ModelError {
            throw error
        } catch {
            throw ModelError(file: file, reason: "not valid YAML: \(error)")
        }
        func fail(_ reason: String) -> ModelError { ModelError(file: file, reason: reason) }
        guard let top = node.mapping else { throw fail("expected a mapping") }
        let known: Set<String> = [
            "name", "description", "kind", "group_by", "carry", "alert", "stall", "growth", "surge",
        ]
        for key in top.keys {
            guard let name = key.string, known.contains(name) else {
                throw fail("unknown key \"\(key.string ?? "?")\" (known: \(known.sorted().joined(separator: ", ")))")
            }
        }
        func string(_ map: Node.Mapping, _ key: String, _ path: String) throws(ModelError) -> String {
            guard let value = map[key]?.string, !value.isEmpty else { throw fail("\(path)\(key) is required") }
            return value
        }
        func number(_ map: Node.Mapping, _ key: String, _ path: String, default fallback: Double) throws(ModelError)
            -> Double
        {
            guard let node = map[key] else { return fallback }
            guard let text = node.string else { throw fail("\(path)\(key) must be a number") }
            if let value = Double(text), value.isFinite { return value }
            if let seconds = DurationText.parse(text) { return seconds }
            throw fail("\(path)\(key): \"\(text)\" is not a number or a duration")
        }
        let name = try string(top, "name", "")
        let kindName = try string(top, "kind", "")
        let groupBy = (top["group_by"]?.sequence ?? []).compactMap(\.string)
        guard !groupBy.isEmpty, groupBy.allSatisfy(LabelSet.isValidLabelName) else {
            throw fail("group_by must list label names")
        }
        let kind: Kind
        switch kindName {
        case "stall":
            guard let s = top["stall"]?.mapping else { throw fail("kind stall needs a stall: section") }
            let waiting = (s["waiting"]?.sequence ?? []).compactMap(\.string)
            guard !waiting.isEmpty else { throw fail("stall.waiting must list gauges") }
            kind = .stall(
                progress: try string(s, "progress", "stall."),
                waiting: waiting,
                stallAfter: try number(s, "stall_after", "stall.", default: 10),
                stallFactor: try number(s, "stall_factor", "stall.", default: 4)
            )
        case "growth":
            guard let g = top["growth"]?.mapping else { throw fail("kind growth needs a growth: section") }
            let minValue = try number(g, "min_value", "growth.", default: 262_144)
            kind = .growth(
                metric: try string(g, "metric", "growth."),
                minValue: minValue,
                clearValue: try number(g, "clear_value", "growth.", default: minValue / 2),
                minRises: Int(try number(g, "min_rises", "growth.", default: 2)),
                minDuration: try number(g, "min_duration", "growth.", default: 3)
            )
        case "surge":
            guard let g = top["surge"]?.mapping else { throw fail("kind surge needs a surge: section") }
            kind = .surge(
                SurgeParameters(
                    messages: try string(g, "messages", "surge."),
                    bytes: try string(g, "bytes", "surge."),
                    factor: try number(g, "factor", "surge.", default: 2.5),
                    minRate: try number(g, "min_rate", "surge.", default: 20),
                    minPayload: try number(g, "min_payload", "surge.", default: 16),
                    minDuration: try number(g, "min_duration", "surge.", default: 2),
                    halfLife: try number(g, "half_life", "surge.", default: 300),
                    warmup: try number(g, "warmup", "surge.", default: 120)
                )
            )
        default:
            throw fail("kind \"\(kindName)\" is not a model kind (stall, growth, surge)")
        }
        guard let a = top["alert"]?.mapping else { throw fail("alert: is required") }
        var labels: [String: String] = [:]
        for (key, value) in a["labels"]?.mapping ?? [:] {
            guard let k = key.string, let v = value.string, LabelSet.isValidLabelName(k) else {
                throw fail("alert.labels must map label names to values")
            }
            labels[k] = v
        }
        let alert = AlertTemplate(
            name: try string(a, "name", "alert."),
            severity: try string(a, "severity", "alert."),
            timing: AlertTiming(
                forSeconds: try number(a, "for", "alert.", default: 0),
                keepFiringFor: try number(a, "keep_firing_for", "alert.", default: 0),
                staleAfter: try number(a, "stale_after", "alert.", default: 300)
            ),
            labels: labels,
            summary: try string(a, "summary", "alert."),
            description: try string(a, "description", "alert.")
        )
        return Model(
            name: name,
            description: top["description"]?.string ?? "",
            kind: kind,
            groupBy: groupBy,
            carry: (top["carry"]?.sequence ?? []).compactMap(\.string),
            alert: alert
        )
    }
}
