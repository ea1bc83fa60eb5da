/// One label: a validated name and its value.
public struct Label: Hashable, Sendable, Codable {
    /// The label name, `[a-zA-Z_][a-zA-Z0-9_]*` (or a metric name for `__name__`).
    public var name: String
    /// The label value: any UTF-8 text. An empty value means the label is absent.
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

extension String {
    /// Whether the string's UTF-8 bytes sort before `other`'s: the order of label names in a
    /// ``LabelSet``. Label names mostly differ in their first byte, which is read first.
    @inline(__always)
    package func utf8Precedes(_ other: String) -> Bool {
        if let a = utf8.first, let b = other.utf8.first, a != b { return a < b }
        return utf8.lexicographicallyPrecedes(other.utf8)
    }
}

/// A set of labels identifying one series, sorted by name, with unique valid names.
///
/// Follows Prometheus: the metric name is the label `__name__`; a label whose value is empty is
/// the same as no label and is dropped. Build one with ``init(validating:)`` (which rejects bad
/// names) or ``LabelSetBuilder``.
public struct LabelSet: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The reserved label that carries the metric name.
    public static let metricNameLabel = "__name__"

    /// The most labels (the name included) a series may have anywhere in Flatline, whatever a
    /// job's `label_limit`: state files store the count in 16 bits.
    public static let maximumCount = 4096

    /// The labels, sorted by name; names are unique.
    public private(set) var labels: [Label]

    /// The empty label set.
    public init() {
        labels = []
    }

    /// Creates a label set from name/value pairs, checking every name.
    ///
    /// - Parameter pairs: names and values in any order. Empty values are dropped.
    /// - Throws: ``LabelError`` when a name is invalid or appears twice.
    public init(validating pairs: some Sequence<(String, String)>) throws(LabelError) {
        try self.init(validating: Array(pairs))
    }

    /// ``init(validating:)`` for an array (what parsers build): one specialized loop, no
    /// generic sequence to walk.
    public init(validating pairs: [(String, String)]) throws(LabelError) {
        var result: [Label] = []
        result.reserveCapacity(pairs.count)
        for (name, value) in pairs {
            if name == Self.metricNameLabel {
                guard Self.isValidMetricName(value) else { throw LabelError(.invalidMetricName, name: value) }
            } else {
                guard Self.isValidLabelName(name) else { throw LabelError(.invalidLabelName, name: name) }
            }
            if value.isEmpty { continue }
            result.append(Label(name: name, value: value))
        }
        result.sort { $0.name.utf8Precedes($1.name) }
        for i in result.indices.dropFirst() where result[i].name == result[i - 1].name {
            throw LabelError(.duplicateLabelName, name: result[i].name)
        }
        labels = result
    }

    /// Creates a label set from the pairs a parser read: every name already scanned as a valid
    /// name (the metric name's as a metric name, under `__name__`) and found unique, so only
    /// the empty values are dropped and the labels sorted; no name is checked again.
    package init(parsed pairs: [(String, String)]) {
        var result: [Label] = []
        result.reserveCapacity(pairs.count)
        for (name, value) in pairs where !value.isEmpty { result.append(Label(name: name, value: value)) }
        result.sort { $0.name.utf8Precedes($1.name) }
        labels = result
    }

    /// Creates a label set from a dictionary, checking every name.
    /// - Throws: ``LabelError`` when a name is invalid.
    public init(validating dictionary: [String: String]) throws(LabelError) {
        try self.init(validating: dictionary.map { ($0.key, $0.value) })
    }

    /// Creates a label set from labels that are already sorted, unique and valid.
    package init(uncheckedSorted labels: [Label]) {
        self.labels = labels
    }

    /// The metric name (`__name__`), or the empty string.
    public var metricName: String { self[Self.metricNameLabel] ?? "" }

    /// The value of label `name`, or `nil` when absent.
    public subscript(name: String) -> String? {
        var lo = 0
        var hi = labels.count
        while lo < hi {
            let mid = (lo + hi) / 2
            let candidate = labels[mid].name
            if candidate == name { return labels[mid].value }
            if candidate.utf8Precedes(name) { lo = mid + 1 } else { hi = mid }
        }
        return nil
    }

    /// The number of labels, the metric name included.
    public var count: Int { labels.count }

    /// A copy with label `name` set to `value` (or removed when `value` is empty).
    /// - Throws: ``LabelError`` when `name` is not a valid label name.
    public func setting(_ name: String, to value: String) throws(LabelError) -> LabelSet {
        var pairs = labels.filter { $0.name != name }.map { ($0.name, $0.value) }
        pairs.append((name, value))
        return try LabelSet(validating: pairs)
    }

    /// The labels as a dictionary. Names are unique by construction; should a set built
    /// unchecked repeat one, the first value wins (never a trap).
    public var dictionary: [String: String] {
        Dictionary(labels.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    /// Prometheus notation: `name{a="x",b="y"}`, with `\\`, `\"` and `\n` escaped in values.
    public var description: String {
        var out = metricName
        let rest = labels.filter { $0.name != Self.metricNameLabel }
        if rest.isEmpty && !out.isEmpty { return out }
        out += "{"
        for (i, label) in rest.enumerated() {
            if i > 0 { out += "," }
            out += label.name
            out += "=\""
            out += Self.escape(label.value)
            out += "\""
        }
        out += "}"
        return out
    }

    /// The stable 64-bit fingerprint of the label set: FNV-1a over the sorted names and values,
    /// each followed by the byte 0xFF. This is the function Prometheus and Alertmanager use for
    /// `model.LabelSet.Fingerprint`, so equal label sets give equal fingerprints everywhere.
    public var fingerprint: SeriesKey {
        var hash = FNV1a64()
        for label in labels {
            hash.add(label.name)
            hash.add(byte: 0xFF)
            hash.add(label.value)
            hash.add(byte: 0xFF)
        }
        return SeriesKey(rawValue: hash.value)
    }

    public static func < (lhs: LabelSet, rhs: LabelSet) -> Bool {
        for (a, b) in zip(lhs.labels, rhs.labels) {
            if a.name != b.name { return a.name.utf8Precedes(b.name) }
            if a.value != b.value { return a.value.utf8Precedes(b.value) }
        }
        return lhs.labels.count < rhs.labels.count
    }

    /// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
    public static func isValidLabelName(_ name: String) -> Bool {
        var first = true
        for byte in name.utf8 {
            let ok = isAlpha(byte) || byte == UInt8(ascii: "_") || (!first && isDigit(byte))
            if !ok { return false }
            first = false
        }
        return !first
    }

    /// Whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    public static func isValidMetricName(_ name: String) -> Bool {
        var first = true
        for byte in name.utf8 {
            let ok =
                isAlpha(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ":") || (!first && isDigit(byte))
            if !ok { return false }
            first = false
        }
        return !first
    }

    /// Escapes a label value for Prometheus notation.
    public static func escape(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\"") || $0 == 10 }) else {
            return value
        }
        var out = ""
        out.reserveCapacity(value.utf8.count + 4)
        for ch in value.unicodeScalars {
            switch ch {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    private static func isAlpha(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
    }

    private static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
}

extension LabelSet: Codable {
    /// Encodes as a JSON object of name to value, the shape Prometheus and Alertmanager use.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(dictionary)
    }

    public init(from decoder: any Decoder) throws {
        let dictionary = try decoder.singleValueContainer().decode([String: String].self)
        do {
            try self.init(validating: dictionary)
        } catch {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: error.description, underlyingError: error)
            )
        }
    }
}

/// Why a label set was rejected.
public struct LabelError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of problem.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: Hashable, Sendable { case invalidLabelName, invalidMetricName, duplicateLabelName }
        fileprivate var base: Base
        /// A label name outside `[a-zA-Z_][a-zA-Z0-9_]*`.
        public static let invalidLabelName = Code(base: .invalidLabelName)
        /// A metric name outside `[a-zA-Z_:][a-zA-Z0-9_:]*`.
        public static let invalidMetricName = Code(base: .invalidMetricName)
        /// The same label name twice.
        public static let duplicateLabelName = Code(base: .duplicateLabelName)
        public var description: String {
            switch base {
            case .invalidLabelName: "invalid label name"
            case .invalidMetricName: "invalid metric name"
            case .duplicateLabelName: "duplicate label name"
            }
        }
    }

    /// What went wrong.
    public var code: Code
    /// The offending name.
    public var name: String

    init(_ code: Code, name: String) {
        self.code = code
        self.name = name
    }

    public var description: String { "\(code) \"\(name)\"" }
}
