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
        let header = header(multi: multi)
        if !header.isEmpty { sink(header) }
        writeRows(result, multi: multi, threads: threads, to: sink)
    }

    /// What comes before the first row: the CSV header (with the `series` column when the file
    /// holds more than one series); nothing for NDJSON.
    public func header(multi: Bool) -> [UInt8] {
        guard format == .csv else { return [] }
        return Array(((multi ? "series," : "") + "timestamp,value,expected,lower,upper,score,anomaly\n").utf8)
    }

    /// Writes the rows of `result` (no header), in pieces of whole lines.
    ///
    /// - Parameter multi: whether rows name their series (the file, of which `result` may be a
    ///   block, holds more than one).
    public func writeRows(_ result: ReplayResult, multi: Bool, threads: Int = 1, to sink: ([UInt8]) -> Void) {
        // Each series' column, escaped once rather than once per row.
        let seriesColumn: [[UInt8]] = multi ? result.file.series.map(seriesColumn) : []
        writeRows(result, seriesColumn: seriesColumn, threads: threads, to: sink)
    }

    /// The `series` column of the rows of `labels`, with what follows it (`,`).
    public func seriesColumn(_ labels: LabelSet) -> [UInt8] {
        let text = labels.description
        return Array((format == .csv ? Self.csvField(text) + "," : "\"series\":" + Self.jsonString(text) + ",").utf8)
    }

    /// Writes the rows of `result` (no header), in pieces of whole lines, each row's series
    /// column from `seriesColumn` (by the row's series; empty: rows name no series).
    public func writeRows(
        _ result: ReplayResult,
        seriesColumn: [[UInt8]],
        threads: Int = 1,
        to sink: ([UInt8]) -> Void
    ) {
        let multi = !seriesColumn.isEmpty
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
        let bound = Self.bound(result, rows: rows, multi: multi, seriesColumn: seriesColumn)
        return [UInt8](unsafeUninitializedCapacity: bound) { buffer, initialized in
            guard let base = buffer.baseAddress else { return }
            var out = ByteWriter(base)
            writeLines(result, rows: rows, multi: multi, seriesColumn: seriesColumn, to: &out)
            initialized = out.count
        }
    }

    /// The rows of `result` (no header) as pieces of whole lines, each written into a buffer
    /// taken from `spares` when one is big enough (memory the process has already touched: a
    /// fresh buffer per piece costs a page fault per page). Give the pieces back to `spares`
    /// once they are written out.
    ///
    /// - Parameter multi: whether rows name their series.
    public func renderRows(_ result: ReplayResult, multi: Bool, reusing spares: inout [OutputBuffer]) -> [OutputBuffer]
    {
        let seriesColumn: [[UInt8]] = multi ? result.file.series.map(seriesColumn) : []
        var pieces: [OutputBuffer] = []
        var lower = 0
        let rows = result.file.rows.count
        while lower < rows {
            let range = lower..<Swift.min(rows, lower + Self.chunkRows)
            let bound = Self.bound(result, rows: range, multi: multi, seriesColumn: seriesColumn)
            let buffer: OutputBuffer
            if let index = spares.lastIndex(where: { $0.capacity >= bound }) {
                buffer = spares.remove(at: index)
            } else {
                buffer = OutputBuffer(capacity: bound)
            }
            var out = ByteWriter(buffer.base)
            writeLines(result, rows: range, multi: multi, seriesColumn: seriesColumn, to: &out)
            buffer.count = out.count
            pieces.append(buffer)
            lower = range.upperBound
        }
        return pieces
    }

    /// The most bytes the lines of `rows` can take: every number at its longest (24 bytes), the
    /// longest series and timestamp (escaped, at most six bytes a byte).
    static func bound(_ result: ReplayResult, rows: Range<Int>, multi: Bool, seriesColumn: [[UInt8]]) -> Int {
        let widestSeries = multi ? rows.reduce(0) { Swift.max($0, seriesColumn[result.file.rows[$1].series].count) } : 0
        let widestText = rows.reduce(0) { Swift.max($0, result.file.rows[$1].text.count) } * 6 + 2
        return rows.count * (widestSeries + widestText + 5 * 24 + 64)
    }

    /// Writes the lines of `rows` at `out`, which has room for ``bound(_:rows:multi:seriesColumn:)``
    /// bytes.
    private func writeLines(
        _ result: ReplayResult,
        rows: Range<Int>,
        multi: Bool,
        seriesColumn: [[UInt8]],
        to out: inout ByteWriter
    ) {
        result.points.withUnsafeBufferPointer { points in
            result.file.rows.withUnsafeBufferPointer { fileRows in
                result.file.texts.withUnsafeBufferPointer { texts in
                    for index in rows {
                        let point = points[index]
                        if anomaliesOnly && !point.anomaly { continue }
                        let row = fileRows[index]
                        let text = Self.text(texts, row.text)
                        switch format {
                        case .csv:
                            if multi { seriesColumn[row.series].withUnsafeBufferPointer { out.append($0) } }
                            Self.appendText(text, json: false, to: &out)
                            out.append(UInt8(ascii: ","))
                            out.append(number: point.value, empty: "")
                            out.append(UInt8(ascii: ","))
                            out.append(number: point.expected, empty: "")
                            out.append(UInt8(ascii: ","))
                            out.append(number: point.lower, empty: "")
                            out.append(UInt8(ascii: ","))
                            out.append(number: point.upper, empty: "")
                            out.append(UInt8(ascii: ","))
                            out.append(number: point.score, empty: "")
                            out.append(point.anomaly ? ",1\n" : ",0\n")
                        case .ndjson:
                            out.append("{")
                            if multi { seriesColumn[row.series].withUnsafeBufferPointer { out.append($0) } }
                            out.append("\"timestamp\":")
                            Self.appendText(text, json: true, to: &out)
                            out.append(",\"value\":")
                            out.append(number: point.value, empty: "null")
                            out.append(",\"expected\":")
                            out.append(number: point.expected, empty: "null")
                            out.append(",\"lower\":")
                            out.append(number: point.lower, empty: "null")
                            out.append(",\"upper\":")
                            out.append(number: point.upper, empty: "null")
                            out.append(",\"score\":")
                            out.append(number: point.score, empty: "null")
                            out.append(point.anomaly ? ",\"anomaly\":1}\n" : ",\"anomaly\":0}\n")
                        }
                    }
                }
            }
        }
    }

    /// The bytes of `span` in `texts` (empty when out of range).
    @inline(__always)
    static func text(_ texts: UnsafeBufferPointer<UInt8>, _ span: SeriesFile.TextSpan) -> UnsafeBufferPointer<UInt8> {
        let end = Swift.min(texts.count, span.offset + span.count)
        return UnsafeBufferPointer(rebasing: texts[Swift.min(span.offset, end)..<end])
    }

    /// A row's timestamp text: as it is when nothing in it needs quoting (digits, dates, times:
    /// always, for what the readers accept), else escaped for CSV or JSON.
    @inline(__always)
    static func appendText(_ text: UnsafeBufferPointer<UInt8>, json: Bool, to out: inout ByteWriter) {
        let plain = text.allSatisfy {
            $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ",") && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\")
        }
        if plain {
            if json { out.append(UInt8(ascii: "\"")) }
            out.append(text)
            if json { out.append(UInt8(ascii: "\"")) }
        } else {
            let string = String(decoding: text, as: UTF8.self)
            var escaped = json ? jsonString(string) : csvField(string)
            escaped.withUTF8 { out.append($0) }
        }
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

/// Memory for one piece of output, kept and written into again
/// (``ReplayWriter/renderRows(_:multi:reusing:)``): its first `count` bytes are the piece.
/// Sendable as the steps of a streamed replay use it: one task of a parallel step writes it, and
/// it is read after that step has ended.
public final class OutputBuffer: @unchecked Sendable {
    let base: UnsafeMutablePointer<UInt8>
    let capacity: Int
    /// Bytes written.
    public internal(set) var count = 0

    init(capacity: Int) {
        self.capacity = Swift.max(1, capacity)
        base = UnsafeMutablePointer<UInt8>.allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// The bytes written.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

/// Bytes written at a pointer into memory the caller sized for them.
struct ByteWriter {
    private let base: UnsafeMutablePointer<UInt8>
    private(set) var count = 0

    init(_ base: UnsafeMutablePointer<UInt8>) {
        self.base = base
    }

    @inline(__always)
    mutating func append(_ byte: UInt8) {
        (base + count).initialize(to: byte)
        count += 1
    }

    @inline(__always)
    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress else { return }
        (base + count).initialize(from: source, count: bytes.count)
        count += bytes.count
    }

    @inline(__always)
    mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { append($0) }
    }

    /// The shortest text that reads back as `value` (`Double.description`'s), or `empty` for NaN
    /// and infinities, without building a `String`. Zero and whole numbers below 10¹⁵ (nearly
    /// every score, the values of counts) are written digit by digit (`0.0`, `-0.0`, `42.0`),
    /// the rest by `ShortestDecimal`. At most 24 bytes.
    @inline(__always)
    mutating func append(number value: Double, empty: StaticString) {
        guard value.isFinite else {
            append(empty)
            return
        }
        let magnitude = value.magnitude
        if magnitude < 1e15 && magnitude.rounded(.towardZero) == magnitude {
            if value.sign == .minus { append(UInt8(ascii: "-")) }
            append(digits: UInt64(magnitude))
            append(".0")
            return
        }
        count += ShortestDecimal.write(value, to: base + count)
    }

    /// The decimal digits of `n`.
    @inline(__always)
    private mutating func append(digits n: UInt64) {
        var width = 1
        var rest = n / 10
        while rest > 0 {
            width += 1
            rest /= 10
        }
        var n = n
        for k in stride(from: width - 1, through: 0, by: -1) {
            (base + count + k).initialize(to: UInt8(ascii: "0") + UInt8(truncatingIfNeeded: n % 10))
            n /= 10
        }
        count += width
    }
}
