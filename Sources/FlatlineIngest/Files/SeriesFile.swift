import FlatlineCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Recorded series to replay: every sample of a file with its series, time and original text.
public struct SeriesFile: Sendable {
    /// The formats `flatline replay` reads.
    public enum Format: String, Hashable, Sendable, CaseIterable {
        /// `timestamp,value` with a header: one series.
        case csv
        /// Prometheus text format 0.0.4 with millisecond timestamps.
        case prometheus
        /// OpenMetrics 1.0 with second timestamps (what `promtool tsdb create-blocks-from
        /// openmetrics` takes).
        case openmetrics
        /// Raw scrapes as `flatline record` writes them (NDJSON, gzip when named `.gz`), run
        /// through the same extraction as live scrapes.
        case recording

        /// The names accepted on the command line, for error messages.
        public static var accepted: String { allCases.map(\.rawValue).joined(separator: ", ") }
    }

    /// One sample of the file.
    public struct Row: Hashable, Sendable {
        /// Index into ``SeriesFile/series``.
        public var series: Int
        /// When it was observed.
        public var timestamp: Timestamp
        /// The timestamp exactly as written in the file.
        public var timestampText: String
        /// The value; `nil` for a CSV row whose value is empty (a missing sample).
        public var value: Double?
        /// Counter or gauge.
        public var kind: MetricKind
        /// The 1-based line in the file.
        public var line: Int
        /// A counter whose source is known to have restarted before this sample.
        public var counterReset = false

        public init(
            series: Int,
            timestamp: Timestamp,
            timestampText: String,
            value: Double?,
            kind: MetricKind,
            line: Int,
            counterReset: Bool = false
        ) {
            self.series = series
            self.timestamp = timestamp
            self.timestampText = timestampText
            self.value = value
            self.kind = kind
            self.line = line
            self.counterReset = counterReset
        }
    }

    /// The file's name, for messages.
    public var name: String
    /// Its format.
    public var format: Format
    /// The distinct series, in order of first appearance.
    public var series: [LabelSet]
    /// Every sample, in file order.
    public var rows: [Row]
    /// What the reader skipped or could not read (a recording's failed scrapes), for the summary.
    public var warnings: [String] = []

    public init(name: String, format: Format, series: [LabelSet], rows: [Row], warnings: [String] = []) {
        self.name = name
        self.format = format
        self.series = series
        self.rows = rows
        self.warnings = warnings
    }

    /// Reads and parses a file.
    ///
    /// - Parameters:
    ///   - path: the file.
    ///   - format: the format, or `nil` to tell it from the name and the content.
    ///   - kind: force every series to be a counter or a gauge; `nil` takes the file's `TYPE`
    ///     metadata (CSV series are gauges).
    /// - Throws: ``SeriesFileError`` naming the file, the line and the reason.
    public static func load(path: String, format: Format? = nil, kind: MetricKind? = nil) throws(SeriesFileError)
        -> SeriesFile
    {
        if format == .recording || (format == nil && isRecordingName(path)) {
            return try loadRecording(path: path, kind: kind)
        }
        let bytes = try FileBytes.read(path)
        if format == nil, bytes.starts(with: [0x1F, 0x8B]) || (try? detectFormat(bytes, name: path)) == .recording {
            return try load(path: path, format: .recording, kind: kind)
        }
        return try parse(bytes, name: path, format: format, kind: kind)
    }

    /// Parses file contents (see ``load(path:format:kind:)``).
    public static func parse(
        _ bytes: [UInt8],
        name: String,
        format: Format? = nil,
        kind: MetricKind? = nil
    ) throws(SeriesFileError) -> SeriesFile {
        let resolved: Format
        if let format { resolved = format } else { resolved = try detectFormat(bytes, name: name) }
        var file: SeriesFile
        switch resolved {
        case .csv:
            file = try CSVSeries.parse(bytes, name: name)
        case .prometheus, .openmetrics:
            file = try parseExposition(bytes, name: name, format: resolved == .openmetrics ? .openMetrics : .text)
            file.format = resolved
        case .recording:
            throw SeriesFileError(file: name, line: 0, reason: "a recording is read from its file (load(path:))")
        }
        if let kind {
            for i in file.rows.indices { file.rows[i].kind = kind }
        }
        guard file.rows.contains(where: { $0.value?.isFinite ?? false }) else {
            throw SeriesFileError(file: name, line: 0, reason: "no usable data: the file has no samples with values")
        }
        return file
    }

    /// Tells the format from the file name, then from the content.
    static func detectFormat(_ bytes: [UInt8], name: String) throws(SeriesFileError) -> Format {
        let lower = name.lowercased()
        if lower.hasSuffix(".csv") { return .csv }
        if lower.hasSuffix(".om") || lower.hasSuffix(".openmetrics") { return .openmetrics }
        if lower.hasSuffix(".prom") { return .prometheus }
        if bytes.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) == UInt8(ascii: "{") {
            return .recording
        }
        let text = String(decoding: bytes.prefix(4096), as: UTF8.self)
        let lines = text.split(whereSeparator: \.isNewline).filter { !$0.allSatisfy(\.isWhitespace) }
        guard let first = lines.first else {
            throw SeriesFileError(file: name, line: 0, reason: "no usable data: the file is empty")
        }
        let tail = String(decoding: bytes.suffix(16), as: UTF8.self)
        if tail.hasSuffix("# EOF") || tail.hasSuffix("# EOF\n") { return .openmetrics }
        if first.hasPrefix("#") { return .prometheus }
        if first.contains(",") && !first.contains("{") { return .csv }
        if let name = first.split(separator: " ").first,
            LabelSet.isValidMetricName(String(name.prefix { $0 != "{" }))
        {
            return .prometheus
        }
        throw SeriesFileError(
            file: name,
            line: 1,
            reason:
                "cannot tell the format; accepted formats: \(Format.accepted) (name the file .csv, .prom or .om, or pass --input-format)"
        )
    }

    static func parseExposition(_ bytes: [UInt8], name: String, format: ExpositionFormat) throws(SeriesFileError)
        -> SeriesFile
    {
        var index: [LabelSet: Int] = [:]
        var series: [LabelSet] = []
        var rows: [Row] = []
        var missingTimestamp: Int?
        // The parser numbers series by their bytes; two spellings of one label set are one series.
        var idOfNumber: [Int] = []
        // One row a line at most: counted first, so the rows never move while they grow.
        rows.reserveCapacity(Self.lineCount(bytes))
        do throws(ExpositionError) {
            try ExpositionParser(format: format, internSeries: true).parseRaw(bytes) { sample, new in
                if let new {
                    if let known = index[new.labels] {
                        idOfNumber.append(known)
                    } else {
                        index[new.labels] = series.count
                        idOfNumber.append(series.count)
                        series.append(new.labels)
                    }
                }
                guard let timestamp = sample.timestamp, let text = sample.timestampBytes else {
                    if missingTimestamp == nil { missingTimestamp = sample.line }
                    return
                }
                rows.append(
                    Row(
                        series: idOfNumber[sample.series],
                        timestamp: timestamp,
                        timestampText: String(decoding: bytes[text], as: UTF8.self),
                        value: sample.value,
                        kind: sample.kind,
                        line: sample.line
                    )
                )
            }
        } catch {
            throw SeriesFileError(file: name, line: error.line, reason: error.reason)
        }
        if let line = missingTimestamp {
            throw SeriesFileError(
                file: name,
                line: line,
                reason: "sample has no timestamp; replay needs every sample timestamped"
            )
        }
        return SeriesFile(name: name, format: .prometheus, series: series, rows: rows)
    }
}

extension SeriesFile {
    /// How many lines `bytes` holds (a last line without a newline counts).
    static func lineCount(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress else { return 0 }
            var count = 0
            var at = 0
            while at < b.count, let found = memchr(base + at, 0x0A, b.count - at) {
                count += 1
                at = base.distance(to: found.assumingMemoryBound(to: UInt8.self)) + 1
            }
            return count + (b.last == 0x0A || b.isEmpty ? 0 : 1)
        }
    }
}

/// A file that cannot be replayed, with where and why.
public struct SeriesFileError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file.
    public var file: String
    /// The 1-based line, or 0 for the file as a whole.
    public var line: Int
    /// Why.
    public var reason: String

    public init(file: String, line: Int, reason: String) {
        self.file = file
        self.line = line
        self.reason = reason
    }

    public var description: String { line > 0 ? "\(file):\(line): \(reason)" : "\(file): \(reason)" }
}

/// Reads whole files with the C library (no Foundation below the CLI).
package enum FileBytes {
    package static func read(_ path: String) throws(SeriesFileError) -> [UInt8] {
        guard let handle = fopen(path, "rb") else {
            throw SeriesFileError(file: path, line: 0, reason: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { fclose(handle) }
        // A regular file is read in one go into an array of its size; a pipe grows as it comes.
        var status = stat()
        let size = fstat(fileno(handle), &status) == 0 && (status.st_mode & S_IFMT) == S_IFREG ? Int(status.st_size) : 0
        var bytes = [UInt8](repeating: 0, count: Swift.max(size, 1 << 16))
        var filled = 0
        while true {
            if filled == bytes.count { bytes.append(contentsOf: repeatElement(0, count: bytes.count)) }
            let n = bytes.withUnsafeMutableBytes { buffer in
                buffer.baseAddress.map { fread($0 + filled, 1, buffer.count - filled, handle) } ?? 0
            }
            filled += n
            if filled < bytes.count {
                if ferror(handle) != 0 {
                    throw SeriesFileError(
                        file: path,
                        line: 0,
                        reason: "read error: \(String(cString: strerror(errno)))"
                    )
                }
                break
            }
        }
        bytes.removeSubrange(filled...)
        return bytes
    }
}
