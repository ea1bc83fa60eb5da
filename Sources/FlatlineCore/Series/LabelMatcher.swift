import Synchronization

/// A condition on one label, as Alertmanager and Prometheus write them: `name="value"`,
/// `name!="value"`, `name=~"regex"`, `name!~"regex"`. Regular expressions match the whole
/// value. A label that is absent counts as the empty string, so `reason=""` selects series
/// without a `reason`.
public struct LabelMatcher: Sendable, CustomStringConvertible {
    public enum Operator: String, Sendable, CaseIterable {
        case equal = "="
        case notEqual = "!="
        case matches = "=~"
        case notMatches = "!~"
    }

    public let name: String
    public let op: Operator
    public let value: String
    private let pattern: MemoizedPattern?

    /// - Throws: ``PatternError`` for a bad label name or regular expression.
    public init(name: String, op: Operator, value: String) throws(PatternError) {
        guard LabelSet.isValidLabelName(name) else {
            throw PatternError(reason: "\"\(name)\" is not a label name")
        }
        self.name = name
        self.op = op
        self.value = value
        switch op {
        case .equal, .notEqual: pattern = nil
        case .matches, .notMatches: pattern = MemoizedPattern(try LinearPattern(value))
        }
    }

    /// Parses `name<op>value`, the value bare or in double quotes (with `\"` and `\\` escapes).
    /// - Throws: ``PatternError`` naming the text and what is wrong with it.
    public init(parsing text: String) throws(PatternError) {
        let trimmed = text.trimmingWhitespace()
        guard let opStart = trimmed.firstIndex(where: { $0 == "=" || $0 == "!" }) else {
            throw PatternError(reason: "matcher \"\(text)\" has no operator (=, !=, =~, !~)")
        }
        let name = String(trimmed[..<opStart]).trimmingWhitespace()
        var rest = trimmed[opStart...]
        let op: Operator
        if rest.hasPrefix("=~") {
            op = .matches
        } else if rest.hasPrefix("!~") {
            op = .notMatches
        } else if rest.hasPrefix("!=") {
            op = .notEqual
        } else if rest.hasPrefix("=") {
            op = .equal
        } else {
            throw PatternError(reason: "matcher \"\(text)\" has no operator (=, !=, =~, !~)")
        }
        rest = rest.dropFirst(op.rawValue.count)
        var value = String(rest).trimmingWhitespace()
        if value.hasPrefix("\"") {
            guard value.count >= 2, value.hasSuffix("\""), !value.hasSuffix("\\\"") || value.hasSuffix("\\\\\"") else {
                throw PatternError(reason: "matcher \"\(text)\": unterminated quoted value")
            }
            var unescaped = ""
            var escaping = false
            for c in value.dropFirst().dropLast() {
                if escaping {
                    unescaped.append(c == "n" ? "\n" : c)
                    escaping = false
                } else if c == "\\" {
                    escaping = true
                } else {
                    unescaped.append(c)
                }
            }
            value = unescaped
        }
        do {
            try self.init(name: name, op: op, value: value)
        } catch {
            throw PatternError(reason: "matcher \"\(text)\": \(error.reason)")
        }
    }

    /// The matchers of a series selector as Prometheus's `match[]` takes it: `up`,
    /// `{job="nats",instance=~"a.*"}`, `gnatsd_varz_in_msgs{server_name="n1"}` (a metric name is
    /// `__name__="name"`), or one matcher without braces (`job="nats"`). Commas inside quoted
    /// values do not split.
    /// - Throws: ``PatternError`` naming the selector and what is wrong with it.
    public static func selector(_ text: String) throws(PatternError) -> [LabelMatcher] {
        let trimmed = text.trimmingWhitespace()
        guard let open = trimmed.firstIndex(of: "{") else {
            if !trimmed.isEmpty, trimmed.allSatisfy({ $0 != "=" && $0 != "!" }) {
                return [try metricName(trimmed, in: text)]
            }
            return [try promQLMatcher(trimmed)]
        }
        guard trimmed.hasSuffix("}") else {
            throw PatternError(reason: "selector \"\(text)\": no closing }")
        }
        var matchers: [LabelMatcher] = []
        let name = String(trimmed[..<open]).trimmingWhitespace()
        if !name.isEmpty { matchers.append(try metricName(name, in: text)) }
        // The matchers between the braces, split at commas outside quotes (", ' or `).
        var part = ""
        var quote: Character?
        var escaped = false
        for c in trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)] {
            if c == "," && quote == nil {
                if !part.trimmingWhitespace().isEmpty { matchers.append(try promQLMatcher(part)) }
                part = ""
                continue
            }
            if let open = quote {
                if c == "\\" && !escaped && open != "`" {
                    escaped = true
                } else {
                    if c == open && !escaped { quote = nil }
                    escaped = false
                }
            } else if c == "\"" || c == "'" || c == "`" {
                quote = c
            }
            part.append(c)
        }
        if !part.trimmingWhitespace().isEmpty { matchers.append(try promQLMatcher(part)) }
        guard !matchers.isEmpty else { throw PatternError(reason: "selector \"\(text)\" has no matcher") }
        return matchers
    }

    /// One matcher of a selector: its value in double quotes, or as PromQL also writes strings,
    /// in single quotes (the same escapes) or backticks (raw).
    private static func promQLMatcher(_ text: String) throws(PatternError) -> LabelMatcher {
        let trimmed = text.trimmingWhitespace()
        guard let opEnd = trimmed.firstIndex(where: { $0 == "'" || $0 == "`" }),
            case let head = String(trimmed[..<opEnd]).trimmingWhitespace(),
            head.hasSuffix("=") || head.hasSuffix("~"), let last = trimmed.last,
            last == trimmed[opEnd], trimmed.index(after: opEnd) < trimmed.endIndex
        else {
            return try LabelMatcher(parsing: trimmed)
        }
        let inner = trimmed[trimmed.index(after: opEnd)..<trimmed.index(before: trimmed.endIndex)]
        let value: String
        if last == "`" {
            // Raw: as if each backslash and quote were escaped.
            value = String(inner).replacing("\\", with: "\\\\").replacing("\"", with: "\\\"")
        } else {
            // Single-quoted: a \' is a quote; a " needs escaping between double quotes.
            value = String(inner).replacing("\\'", with: "'").replacing("\"", with: "\\\"")
        }
        return try LabelMatcher(parsing: head + "\"" + value + "\"")
    }

    private static func metricName(_ name: String, in text: String) throws(PatternError) -> LabelMatcher {
        guard LabelSet.isValidMetricName(name) else {
            throw PatternError(reason: "selector \"\(text)\": \"\(name)\" is not a metric name")
        }
        return try LabelMatcher(name: LabelSet.metricNameLabel, op: .equal, value: name)
    }

    /// Whether a label's value (`nil` when absent) satisfies the matcher.
    public func matches(_ labelValue: String?) -> Bool {
        let actual = labelValue ?? ""
        switch op {
        case .equal: return actual == value
        case .notEqual: return actual != value
        case .matches: return pattern?.matches(actual) ?? false
        case .notMatches: return !(pattern?.matches(actual) ?? false)
        }
    }

    /// Whether a label set satisfies the matcher.
    public func matches(_ labels: LabelSet) -> Bool { matches(labels[name]) }

    /// Whether a label dictionary satisfies the matcher.
    public func matches(_ labels: [String: String]) -> Bool { matches(labels[name]) }

    public var description: String { name + op.rawValue + "\"" + LabelSet.escape(value) + "\"" }
}

/// A linear-time pattern with the answers for recent texts remembered: label values repeat (the
/// same teams, services, reasons), and matching costs microseconds.
final class MemoizedPattern: Sendable {
    static let limit = 4096
    let pattern: LinearPattern
    let answers = Mutex<[String: Bool]>([:])

    init(_ pattern: LinearPattern) {
        self.pattern = pattern
    }

    func matches(_ text: String) -> Bool {
        if let known = answers.withLock({ $0[text] }) { return known }
        let answer = pattern.matches(text)
        // Long texts are answered but not remembered: the memo stays small.
        if text.utf8.count <= 1024 {
            answers.withLock {
                if $0.count >= Self.limit { $0.removeAll(keepingCapacity: true) }
                $0[text] = answer
            }
        }
        return answer
    }
}

extension LabelMatcher: Hashable {
    public static func == (lhs: LabelMatcher, rhs: LabelMatcher) -> Bool {
        lhs.name == rhs.name && lhs.op == rhs.op && lhs.value == rhs.value
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(op)
        hasher.combine(value)
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let first = s.first, first.isWhitespace { s = s.dropFirst() }
        while let last = s.last, last.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
