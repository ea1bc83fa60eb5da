import FlatlineCore

/// One relabeling step, as in Prometheus: `replace`, `keep`, `drop`, `labelmap`, `labeldrop`,
/// `labelkeep`. Regular expressions are anchored at both ends, as Prometheus anchors them.
public struct RelabelRule: Sendable {
    public enum Action: String, Sendable, Hashable, CaseIterable, Codable {
        case replace, keep, drop, labelmap, labeldrop, labelkeep
    }

    public var action: Action
    public var sourceLabels: [String]
    public var separator: String
    public var pattern: String
    public var targetLabel: String?
    public var replacement: String
    private let regex: CompiledPattern

    /// - Throws: ``RelabelError`` when the pattern is not a regular expression, or the rule
    ///   lacks what its action needs.
    public init(
        action: Action = .replace,
        sourceLabels: [String] = [],
        separator: String = ";",
        regex pattern: String = "(.*)",
        targetLabel: String? = nil,
        replacement: String = "$1"
    ) throws(RelabelError) {
        self.action = action
        self.sourceLabels = sourceLabels
        self.separator = separator
        self.pattern = pattern
        self.targetLabel = targetLabel
        self.replacement = replacement
        do {
            regex = try CompiledPattern(pattern)
        } catch {
            throw RelabelError(reason: error.reason)
        }
        switch action {
        case .replace:
            guard let targetLabel, !targetLabel.isEmpty else {
                throw RelabelError(reason: "action replace needs target_label")
            }
        case .keep, .drop:
            guard !sourceLabels.isEmpty else {
                throw RelabelError(reason: "action \(action.rawValue) needs source_labels")
            }
        case .labelmap, .labeldrop, .labelkeep:
            break
        }
    }

    /// Applies the rule: the new labels, or `nil` when the sample is dropped.
    func apply(_ labels: [String: String]) -> [String: String]? {
        var labels = labels
        switch action {
        case .replace:
            let value = sourceLabels.map { labels[$0] ?? "" }.joined(separator: separator)
            guard let match = regex.match(value), let targetLabel else { return labels }
            let name = match.expand(targetLabel)
            let result = match.expand(replacement)
            guard LabelSet.isValidLabelName(name) else { return labels }
            labels[name] = result.isEmpty ? nil : result
        case .keep:
            let value = sourceLabels.map { labels[$0] ?? "" }.joined(separator: separator)
            return regex.match(value) == nil ? nil : labels
        case .drop:
            let value = sourceLabels.map { labels[$0] ?? "" }.joined(separator: separator)
            return regex.match(value) == nil ? labels : nil
        case .labelmap:
            for (name, value) in labels {
                guard let match = regex.match(name) else { continue }
                let newName = match.expand(replacement)
                if LabelSet.isValidLabelName(newName) { labels[newName] = value }
            }
        case .labeldrop:
            for name in labels.keys where name != LabelSet.metricNameLabel && regex.match(name) != nil {
                labels[name] = nil
            }
        case .labelkeep:
            for name in labels.keys where name != LabelSet.metricNameLabel && regex.match(name) == nil {
                labels[name] = nil
            }
        }
        return labels
    }
}

/// A list of relabeling rules applied in order, with the result of each label set remembered:
/// scrapes repeat the same series, so each is relabeled once, not once per scrape.
public struct Relabeler: Sendable {
    public let rules: [RelabelRule]
    private var cache: [LabelSet: LabelSet?] = [:]
    /// Label sets remembered at most; past it the cache starts over.
    static let cacheLimit = 200_000

    public init(rules: [RelabelRule]) {
        self.rules = rules
    }

    /// The relabeled set, or `nil` when a rule drops the sample (or removes its name).
    public mutating func relabel(_ labels: LabelSet) -> LabelSet? {
        guard !rules.isEmpty else { return labels }
        if let known = cache[labels] { return known }
        var current: [String: String]? = labels.dictionary
        for rule in rules {
            guard let now = current else { break }
            current = rule.apply(now)
        }
        var result: LabelSet?
        if let current, !(current[LabelSet.metricNameLabel] ?? "").isEmpty {
            result = try? LabelSet(validating: current)
        }
        if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[labels] = result
        return result
    }
}

/// A relabeling rule that cannot work.
public struct RelabelError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String

    public init(reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}
