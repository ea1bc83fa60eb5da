import FlatlineCore

/// One series as CSV: a timestamp column and a value column, with a header.
///
/// The timestamp column is the one named `timestamp`, `timestamps`, `time`, `ts`, `date` or
/// `datetime` (else the first); the value column is the one named `value` or `values` (else the
/// first other column). Other columns are ignored, so labelled benchmark files replay as they
/// are. Timestamps are `YYYY-MM-DD HH:MM:SS` (UTC), RFC 3339, or Unix seconds. An empty value
/// is a missing sample. CRLF line endings and double-quoted fields are accepted.
enum CSVSeries {
    static let timestampNames: Set<String> = ["timestamp", "timestamps", "time", "ts", "date", "datetime"]
    static let valueNames: Set<String> = ["value", "values"]

    static func parse(_ bytes: [UInt8], name: String) throws(SeriesFileError) -> SeriesFile {
        var rows: [SeriesFile.Row] = []
        var texts = TextArena()
        var reader = CSVReader(name: name)
        try reader.parse(bytes, 0..<bytes.count, texts: &texts) { rows.append($0) }
        guard !rows.isEmpty else { throw noRows(name) }
        var file = SeriesFile(name: name, format: .csv, series: [series], rows: rows, texts: texts.bytes)
        if let warning = reader.warning { file.warnings.append(warning) }
        return file
    }

    /// The error of a file without data rows.
    static func noRows(_ name: String) -> SeriesFileError {
        SeriesFileError(file: name, line: 0, reason: "no usable data: no data rows after the header")
    }

    /// The series a CSV file holds.
    static let series: LabelSet = (try? LabelSet(validating: [(LabelSet.metricNameLabel, "value")])) ?? LabelSet()

    /// One data row from its timestamp and value fields (trimmed); an empty value is a missing sample.
    static func row(
        time: UnsafeBufferPointer<UInt8>,
        value valueText: UnsafeBufferPointer<UInt8>,
        name: String,
        line: Int,
        valueHint: String = "",
        texts: inout TextArena
    ) throws(SeriesFileError) -> SeriesFile.Row {
        guard let timestamp = NumberText.parseTimestamp(time) else {
            throw SeriesFileError(
                file: name,
                line: line,
                reason:
                    "timestamp \"\(String(decoding: time, as: UTF8.self))\" is not YYYY-MM-DD HH:MM:SS, RFC 3339 or Unix seconds"
            )
        }
        var value: Double?
        if !valueText.isEmpty {
            guard let parsed = NumberText.parseDouble(valueText) else {
                throw SeriesFileError(
                    file: name,
                    line: line,
                    reason: "value \"\(String(decoding: valueText, as: UTF8.self))\" is not a number\(valueHint)"
                )
            }
            value = parsed
        }
        return SeriesFile.Row(
            series: 0,
            timestamp: timestamp,
            text: texts.add(time, time: timestamp),
            value: value,
            kind: .gauge,
            line: line
        )
    }

    /// Where the fields of a line without quotes are, each without the spaces and tabs around it.
    static func fieldRanges(_ line: ArraySlice<UInt8>, into ranges: inout [Range<Int>]) {
        ranges.removeAll(keepingCapacity: true)
        var fieldStart = line.startIndex
        var i = line.startIndex
        while true {
            if i == line.endIndex || line[i] == UInt8(ascii: ",") {
                var a = fieldStart
                var b = i
                while a < b, line[a] == UInt8(ascii: " ") || line[a] == UInt8(ascii: "\t") { a += 1 }
                while b > a, line[b - 1] == UInt8(ascii: " ") || line[b - 1] == UInt8(ascii: "\t") { b -= 1 }
                ranges.append(a..<b)
                if i == line.endIndex { return }
                fieldStart = i + 1
            }
            i += 1
        }
    }

    /// Splits one line at commas, honouring double quotes (`""` inside quotes is a quote).
    static func split(_ line: ArraySlice<UInt8>, name: String, line number: Int) throws(SeriesFileError) -> [String] {
        var fields: [String] = []
        var current: [UInt8] = []
        var quoted = false
        var i = line.startIndex
        while i < line.endIndex {
            let b = line[i]
            if quoted {
                if b == UInt8(ascii: "\"") {
                    if i + 1 < line.endIndex && line[i + 1] == UInt8(ascii: "\"") {
                        current.append(b)
                        i += 1
                    } else {
                        quoted = false
                    }
                } else {
                    current.append(b)
                }
            } else if b == UInt8(ascii: "\"") {
                quoted = true
            } else if b == UInt8(ascii: ",") {
                fields.append(String(decoding: current, as: UTF8.self))
                current.removeAll(keepingCapacity: true)
            } else {
                current.append(b)
            }
            i += 1
        }
        guard !quoted else { throw SeriesFileError(file: name, line: number, reason: "unterminated quoted field") }
        fields.append(String(decoding: current, as: UTF8.self))
        return fields
    }
}

/// CSV lines read one after another, the header first: the whole file at once, or chunk after
/// chunk with the same reader.
struct CSVReader {
    let name: String
    private var timeColumn = 0
    private var valueColumn = 1
    private var columns = 0
    private var headerSeen = false
    private var lineNumber = 0
    private var ranges: [Range<Int>] = []
    /// Said with a value that is not a number when the header named no value column, so the
    /// column after the timestamp was taken: which one, and how to choose another.
    private var valueHint = ""
    /// When the header named no value column and has columns besides the two read: which
    /// column is scored and which are not (a file of several series, side by side).
    private(set) var warning: String?

    init(name: String) {
        self.name = name
    }

    /// Reads the whole lines of `bytes` in `range`, handing each data row to `body` (its
    /// timestamp text kept in `texts`).
    /// - Throws: ``SeriesFileError`` naming the line and the reason.
    mutating func parse(
        _ bytes: [UInt8],
        _ range: Range<Int>,
        texts: inout TextArena,
        _ body: (SeriesFile.Row) -> Void
    ) throws(SeriesFileError) {
        let timestampNames = CSVSeries.timestampNames
        let valueNames = CSVSeries.valueNames
        var start = range.lowerBound
        while start < range.upperBound {
            lineNumber += 1
            let end = bytes.withUnsafeBufferPointer {
                Swift.min(ExpositionParser.lineEnd($0, from: start), range.upperBound)
            }
            var lineEnd = end
            if lineEnd > start && bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            let line = bytes[start..<lineEnd]
            start = end + 1
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
            // A data line without quotes (nearly all): its fields as byte ranges, no Strings.
            if headerSeen, !line.contains(UInt8(ascii: "\"")) {
                CSVSeries.fieldRanges(line, into: &ranges)
                guard ranges.count == columns else {
                    throw SeriesFileError(
                        file: name,
                        line: lineNumber,
                        reason: "expected \(columns) fields like the header, found \(ranges.count)"
                    )
                }
                let row = try bytes.withUnsafeBufferPointer { b throws(SeriesFileError) in
                    try CSVSeries.row(
                        time: UnsafeBufferPointer(rebasing: b[ranges[timeColumn]]),
                        value: UnsafeBufferPointer(rebasing: b[ranges[valueColumn]]),
                        name: name,
                        line: lineNumber,
                        valueHint: valueHint,
                        texts: &texts
                    )
                }
                body(row)
                continue
            }
            let fields = try CSVSeries.split(line, name: name, line: lineNumber)
            if !headerSeen {
                headerSeen = true
                columns = fields.count
                let lowered = fields.map { $0.trimmed.lowercased() }
                if let t = lowered.firstIndex(where: timestampNames.contains) { timeColumn = t }
                if let v = lowered.firstIndex(where: valueNames.contains) {
                    valueColumn = v
                } else {
                    valueColumn = timeColumn == 0 ? 1 : 0
                }
                guard columns >= 2 else {
                    throw SeriesFileError(
                        file: name,
                        line: lineNumber,
                        reason: "expected at least two columns, timestamp and value, separated by commas"
                    )
                }
                // A first line that is data, not a header, is read as data.
                if NumberText.parseTimestamp(fields[timeColumn].trimmed) == nil {
                    if columns > 2 && !valueNames.contains(lowered[valueColumn]) {
                        valueHint =
                            " (no column is named \"value\", so column \"\(fields[valueColumn].trimmed)\" is read as the value: name the one to score \"value\")"
                        let unread = fields.indices.filter { $0 != timeColumn && $0 != valueColumn }
                            .map { "\"\(fields[$0].trimmed)\"" }
                        warning =
                            "no column is named \"value\": column \"\(fields[valueColumn].trimmed)\" is scored, "
                            + "\(unread.joined(separator: ", ")) \(unread.count == 1 ? "is" : "are") not (a CSV file is one "
                            + "series: name the column to score \"value\", or give several series as Prometheus or "
                            + "OpenMetrics text)"
                    }
                    continue
                }
            }
            guard fields.count == columns else {
                throw SeriesFileError(
                    file: name,
                    line: lineNumber,
                    reason: "expected \(columns) fields like the header, found \(fields.count)"
                )
            }
            // A quoted line (rare): its fields' bytes.
            let timeText = Array(fields[timeColumn].trimmed.utf8)
            let valueText = Array(fields[valueColumn].trimmed.utf8)
            let row = try timeText.withUnsafeBufferPointer { time throws(SeriesFileError) in
                try valueText.withUnsafeBufferPointer { value throws(SeriesFileError) in
                    try CSVSeries.row(
                        time: time,
                        value: value,
                        name: name,
                        line: lineNumber,
                        valueHint: valueHint,
                        texts: &texts
                    )
                }
            }
            body(row)
        }
    }
}

extension String {
    var trimmed: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return String(s)
    }
}
