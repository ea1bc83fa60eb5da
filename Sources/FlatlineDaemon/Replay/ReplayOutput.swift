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

    /// Writes `result` to `sink`, a line at a time.
    public func write(_ result: ReplayResult, to sink: (String) -> Void) {
        let multi = result.file.series.count > 1
        let seriesText = multi ? result.file.series.map(\.description) : []
        if format == .csv {
            sink((multi ? "series," : "") + "timestamp,value,expected,lower,upper,score,anomaly\n")
        }
        var line = ""
        for (index, row) in result.file.rows.enumerated() {
            let point = result.points[index]
            if anomaliesOnly && !point.anomaly { continue }
            line.removeAll(keepingCapacity: true)
            switch format {
            case .csv:
                if multi {
                    line += Self.csvField(seriesText[row.series])
                    line += ","
                }
                line += Self.csvField(row.timestampText)
                for value in [point.value, point.expected, point.lower, point.upper] {
                    line += ","
                    line += Self.number(value)
                }
                line += ","
                line += Self.number(point.score)
                line += point.anomaly ? ",1\n" : ",0\n"
            case .ndjson:
                line += "{"
                if multi { line += "\"series\":" + Self.jsonString(seriesText[row.series]) + "," }
                line += "\"timestamp\":" + Self.jsonString(row.timestampText)
                line += ",\"value\":" + Self.jsonNumber(point.value)
                line += ",\"expected\":" + Self.jsonNumber(point.expected)
                line += ",\"lower\":" + Self.jsonNumber(point.lower)
                line += ",\"upper\":" + Self.jsonNumber(point.upper)
                line += ",\"score\":" + Self.jsonNumber(point.score)
                line += point.anomaly ? ",\"anomaly\":1}\n" : ",\"anomaly\":0}\n"
            }
            sink(line)
        }
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
