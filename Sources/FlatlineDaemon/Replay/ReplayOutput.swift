import Dispatch
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

    /// Rows formatted as one piece of output.
    static let chunkRows = 16_384

    /// Writes `result` to `sink` as UTF-8, in pieces of whole lines (about 1 MiB each).
    ///
    /// - Parameter threads: how many pieces are formatted at once; the output is the same bytes
    ///   whatever the count.
    public func write(_ result: ReplayResult, threads: Int = 1, to sink: ([UInt8]) -> Void) {
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
        if format == .csv {
            sink(Array(((multi ? "series," : "") + "timestamp,value,expected,lower,upper,score,anomaly\n").utf8))
        }
        let rows = result.file.rows.count
        let chunks = (rows + Self.chunkRows - 1) / Self.chunkRows
        let batch = Swift.max(1, threads) * 2
        var pieces = [[UInt8]](repeating: [], count: batch)
        var first = 0
        while first < chunks {
            let count = Swift.min(batch, chunks - first)
            pieces.withUnsafeMutableBufferPointer { pieces in
                let out = UnsafeSendable(pieces)
                let start = first
                let render: @Sendable (Int) -> Void = { k in
                    let lower = (start + k) * Self.chunkRows
                    out.value[k] = self.render(
                        result,
                        rows: lower..<Swift.min(rows, lower + Self.chunkRows),
                        multi: multi,
                        seriesColumn: seriesColumn
                    )
                }
                if threads > 1 && count > 1 {
                    DispatchQueue.concurrentPerform(iterations: count, execute: render)
                } else {
                    for k in 0..<count { render(k) }
                }
            }
            for k in 0..<count where !pieces[k].isEmpty { sink(pieces[k]) }
            first += count
        }
    }

    /// The lines of `rows`.
    func render(_ result: ReplayResult, rows: Range<Int>, multi: Bool, seriesColumn: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(rows.count * (format == .csv ? 64 : 160))
        let comma = UInt8(ascii: ",")
        for index in rows {
            let point = result.points[index]
            if anomaliesOnly && !point.anomaly { continue }
            let row = result.file.rows[index]
            switch format {
            case .csv:
                if multi { out.append(contentsOf: seriesColumn[row.series]) }
                Self.appendText(result.file, row, json: false, to: &out)
                out.append(comma)
                Self.appendNumber(point.value, empty: "", to: &out)
                out.append(comma)
                Self.appendNumber(point.expected, empty: "", to: &out)
                out.append(comma)
                Self.appendNumber(point.lower, empty: "", to: &out)
                out.append(comma)
                Self.appendNumber(point.upper, empty: "", to: &out)
                out.append(comma)
                Self.appendNumber(point.score, empty: "", to: &out)
                Self.append(point.anomaly ? ",1\n" : ",0\n", to: &out)
            case .ndjson:
                Self.append("{", to: &out)
                if multi { out.append(contentsOf: seriesColumn[row.series]) }
                Self.append("\"timestamp\":", to: &out)
                Self.appendText(result.file, row, json: true, to: &out)
                Self.append(",\"value\":", to: &out)
                Self.appendNumber(point.value, empty: "null", to: &out)
                Self.append(",\"expected\":", to: &out)
                Self.appendNumber(point.expected, empty: "null", to: &out)
                Self.append(",\"lower\":", to: &out)
                Self.appendNumber(point.lower, empty: "null", to: &out)
                Self.append(",\"upper\":", to: &out)
                Self.appendNumber(point.upper, empty: "null", to: &out)
                Self.append(",\"score\":", to: &out)
                Self.appendNumber(point.score, empty: "null", to: &out)
                Self.append(point.anomaly ? ",\"anomaly\":1}\n" : ",\"anomaly\":0}\n", to: &out)
            }
        }
        return out
    }

    /// A row's timestamp text: as it is when nothing in it needs quoting (digits, dates, times:
    /// always, for what the readers accept), else escaped for CSV or JSON.
    @inline(__always)
    static func appendText(_ file: SeriesFile, _ row: SeriesFile.Row, json: Bool, to out: inout [UInt8]) {
        let end = Swift.min(file.texts.count, row.text.offset + row.text.count)
        let text = file.texts[Swift.min(row.text.offset, end)..<end]
        let plain = text.allSatisfy {
            $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ",") && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\")
        }
        if plain {
            if json { out.append(UInt8(ascii: "\"")) }
            out.append(contentsOf: text)
            if json { out.append(UInt8(ascii: "\"")) }
        } else {
            let string = String(decoding: text, as: UTF8.self)
            append(json ? jsonString(string) : csvField(string), to: &out)
        }
    }

    /// The shortest text that reads back as `value`, or `empty` for NaN and infinities.
    @inline(__always)
    static func appendNumber(_ value: Double, empty: StaticString, to out: inout [UInt8]) {
        if value.isFinite {
            append(value.description, to: &out)
        } else {
            empty.withUTF8Buffer { out.append(contentsOf: $0) }
        }
    }

    /// Appends `text`'s UTF-8 without an intermediate array.
    @inline(__always)
    static func append(_ text: String, to out: inout [UInt8]) {
        var text = text
        text.withUTF8 { out.append(contentsOf: $0) }
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

/// A pointer handed to the threads of one parallel step, each of which writes only its own
/// elements.
struct UnsafeSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
