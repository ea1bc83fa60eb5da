import FlatlineCore
import FlatlineIngest

/// How replay results are written.
public enum ReplayOutputFormat: String, Hashable, Sendable, CaseIterable {
    /// Comma-separated, with a header.
    case csv
    /// One JSON object per line.
    case ndjson
}

/// Renders replay results: one line per input row, in input order.
///
/// CSV columns are `timestamp,value,expected,lower,upper,score,anomaly`, with a leading `series`
/// column (Prometheus notation) when the file holds more than one series. NDJSON objects carry
/// the same fields. `timestamp` is the input's text; unknown numbers are empty in CSV and `null`
/// in NDJSON; `anomaly` is 0 or 1.
public struct ReplayWriter: Sendable {
    public var format: ReplayOutputFormat
    /// Write only rows flagged as anomalies.
    public var anomaliesOnly: Bool

    public init(format: ReplayOutputFormat, anomaliesOnly: Bool = false) {
        self.format = format
        self.anomaliesOnly = anomaliesOnly
    }

    /// Writes `result` to `sink` as UTF-8, in chunks of about 64 KiB (whole lines).
    public func write(_ result: ReplayResult, to sink: ([UInt8]) -> Void) {
        let multi = result.file.series.count > 1
        // Each series' column, escaped once rather than once per row.
        let seriesColumn: [[UInt8]] =
            multi
            ? result.file.series.map { labels in
                let text = labels.description
                return Array(
                    (format == .csv ? Self.csvField(text) + "," : "\"series\":" + Self.jsonString(text) + ",").utf8
                )
            } : []
        var out: [UInt8] = []
        out.reserveCapacity(1 << 17)
        if format == .csv {
            out.append(
                contentsOf: ((multi ? "series," : "") + "timestamp,value,expected,lower,upper,score,anomaly\n").utf8
            )
        }
        let comma = UInt8(ascii: ",")
        for (index, row) in result.file.rows.enumerated() {
            let point = result.points[index]
            if anomaliesOnly && !point.anomaly { continue }
            switch format {
            case .csv:
                if multi { out.append(contentsOf: seriesColumn[row.series]) }
                Self.append(Self.csvField(row.timestampText), to: &out)
                out.append(comma)
                Self.append(Self.number(point.value), to: &out)
                out.append(comma)
                Self.append(Self.number(point.expected), to: &out)
                out.append(comma)
                Self.append(Self.number(point.lower), to: &out)
                out.append(comma)
                Self.append(Self.number(point.upper), to: &out)
                out.append(comma)
                Self.append(Self.number(point.score), to: &out)
                Self.append(point.anomaly ? ",1\n" : ",0\n", to: &out)
            case .ndjson:
                Self.append("{", to: &out)
                if multi { out.append(contentsOf: seriesColumn[row.series]) }
                Self.append("\"timestamp\":" + Self.jsonString(row.timestampText), to: &out)
                Self.append(",\"value\":", to: &out)
                Self.append(Self.jsonNumber(point.value), to: &out)
                Self.append(",\"expected\":", to: &out)
                Self.append(Self.jsonNumber(point.expected), to: &out)
                Self.append(",\"lower\":", to: &out)
                Self.append(Self.jsonNumber(point.lower), to: &out)
                Self.append(",\"upper\":", to: &out)
                Self.append(Self.jsonNumber(point.upper), to: &out)
                Self.append(",\"score\":", to: &out)
                Self.append(Self.jsonNumber(point.score), to: &out)
                Self.append(point.anomaly ? ",\"anomaly\":1}\n" : ",\"anomaly\":0}\n", to: &out)
            }
            if out.count >= 1 << 16 {
                sink(out)
                out.removeAll(keepingCapacity: true)
            }
        }
        if !out.isEmpty { sink(out) }
    }

    /// Appends `text`'s UTF-8 without an intermediate array.
    @inline(__always)
    static func append(_ text: String, to out: inout [UInt8]) {
        var text = text
        text.withUTF8 { out.append(contentsOf: $0) }
    }

    /// The shortest text that reads back as the same double; empty for NaN and infinities.
    static func number(_ value: Double) -> String {
        value.isFinite ? value.description : ""
    }

    static func jsonNumber(_ value: Double) -> String {
        value.isFinite ? value.description : "null"
    }

    static func csvField(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 10 || $0 == 13 })
        else { return text }
        return "\"" + text.replacingAll("\"", with: "\"\"") + "\""
    }

    static func jsonString(_ text: String) -> String {
        var out: [UInt8] = []
        JSONText.appendString(text, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        out.reserveCapacity(utf8.count)
        for ch in self {
            if ch == target { out += replacement } else { out.append(ch) }
        }
        return out
    }
}
