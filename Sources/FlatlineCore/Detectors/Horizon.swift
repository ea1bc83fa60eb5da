/// A length of history: in seconds, or in samples at the series' nominal sampling interval.
///
/// Defaults are in samples so that one model works on 15 s scrapes and on 5-minute data alike;
/// an operator who thinks in wall time writes seconds.
public enum Horizon: Hashable, Sendable {
    /// A span of wall time.
    case seconds(Double)
    /// A number of samples at the nominal step.
    case samples(Double)

    /// The horizon in seconds, given the nominal step in seconds.
    public func seconds(step: Double) -> Double {
        switch self {
        case .seconds(let s): s
        case .samples(let n): n * step
        }
    }

    /// The horizon in samples, given the nominal step in seconds.
    public func samples(step: Double) -> Double {
        switch self {
        case .seconds(let s): s / step
        case .samples(let n): n
        }
    }

    var isPositiveFinite: Bool {
        switch self {
        case .seconds(let v), .samples(let v): v.isFinite && v > 0
        }
    }
}

extension Horizon: Codable, CustomStringConvertible {
    /// `"900s"`, `"15m"`, `"2h"`, `"7d"`, `"1w"` for wall time; `"64"` or `"64 samples"` for samples.
    public var description: String {
        switch self {
        case .seconds(let s): DurationText.format(seconds: s)
        case .samples(let n): Int64(exactly: n).map { "\($0) samples" } ?? "\(n) samples"
        }
    }

    /// Parses ``description``'s forms.
    public init?(parsing text: String) {
        let t = text.trimmingCharacters(in: " ")
        for suffix in [" samples", "samples", " sample"] where t.hasSuffix(suffix) {
            guard let n = Double(t.dropLast(suffix.count)), n.isFinite, n > 0 else { return nil }
            self = .samples(n)
            return
        }
        if let n = Double(t), n.isFinite, n > 0 {
            self = .samples(n)
            return
        }
        guard let s = DurationText.parse(t), s > 0 else { return nil }
        self = .seconds(s)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let n = try? container.decode(Double.self), n.isFinite, n > 0 {
            self = .samples(n)
            return
        }
        let text = try container.decode(String.self)
        guard let value = Horizon(parsing: text) else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "\"\(text)\" is not a duration (e.g. 15m, 2h, 7d) or a number of samples"
                )
            )
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Prometheus-style durations: `1w2d3h4m5s6ms`, units `ms`, `s`, `m`, `h`, `d`, `w`, `y` (365 d).
public enum DurationText {
    /// Seconds in `text`, or `nil` when it is not a duration.
    /// - Parameter strict: Prometheus' own rules, as its configuration files follow them: whole
    ///   numbers only, units from the largest to the smallest, each once, and a bare `0`.
    public static func parse(_ text: String, strict: Bool = false) -> Double? {
        // By size: strict text must use them in this order.
        let units: [(String, Double)] = [
            ("y", 31_536_000), ("w", 604_800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1), ("ms", 0.001),
        ]
        if strict && text == "0" { return 0 }
        var rest = Substring(text)
        var total = 0.0
        var any = false
        var lastUnit = -1
        while !rest.isEmpty {
            let digits = rest.prefix { strict ? ($0.isASCII && $0.isNumber) : ($0.isNumber || $0 == ".") }
            guard !digits.isEmpty, let value = Double(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let unitText = rest.prefix { $0.isLetter }
            guard let unit = units.firstIndex(where: { $0.0 == String(unitText) }) else { return nil }
            if strict {
                guard unit > lastUnit else { return nil }
                lastUnit = unit
            }
            rest = rest.dropFirst(unitText.count)
            total += value * units[unit].1
            any = true
        }
        return any && total.isFinite ? total : nil
    }

    /// The shortest exact rendering in one unit, e.g. `15s`, `10m`, `7d`.
    public static func format(seconds: Double) -> String {
        let units: [(String, Double)] = [("w", 604_800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)]
        for (name, size) in units where seconds >= size {
            if let n = Int64(exactly: seconds / size) { return "\(n)\(name)" }
        }
        if let whole = Int64(exactly: seconds) { return "\(whole)s" }
        if let ms = Int64(exactly: seconds * 1000) { return "\(ms)ms" }
        return "\(seconds)s"
    }

    /// A duration for people, to the second, largest units first: `45s`, `7m30s`, `2h5m`,
    /// `3d4h` (at most two units).
    public static func human(seconds: Double) -> String {
        guard seconds.isFinite else { return "forever" }
        var rest = Int64(exactly: min(max(0, seconds.rounded()), 9e18)) ?? 0
        if rest == 0 { return "0s" }
        var parts: [String] = []
        for (name, size) in [("d", Int64(86400)), ("h", 3600), ("m", 60), ("s", 1)] where rest >= size {
            parts.append("\(rest / size)\(name)")
            rest %= size
            if parts.count == 2 { break }
        }
        return parts.joined()
    }
}

extension String {
    fileprivate func trimmingCharacters(in character: Character) -> String {
        var s = Substring(self)
        while s.first == character { s = s.dropFirst() }
        while s.last == character { s = s.dropLast() }
        return String(s)
    }
}
