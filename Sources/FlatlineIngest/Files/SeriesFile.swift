import Dispatch
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

    /// One sample of the file. Every field is a plain value, so millions of rows are one block
    /// of memory, freed at once.
    public struct Row: Hashable, Sendable {
        /// Index into ``SeriesFile/series``.
        public var series: Int
        /// When it was observed.
        public var timestamp: Timestamp
        /// Where the timestamp, exactly as written in the file, is in ``SeriesFile/texts``.
        public var text: TextSpan
        private var rawValue: Double
        private var hasValue: Bool
        /// Counter or gauge.
        public var kind: MetricKind
        /// A counter whose source is known to have restarted before this sample.
        public var counterReset = false
        /// The 1-based line in the file.
        public var line: Int

        /// The value; `nil` for a CSV row whose value is empty (a missing sample).
        public var value: Double? {
            get { hasValue ? rawValue : nil }
            set {
                hasValue = newValue != nil
                rawValue = newValue ?? .nan
            }
        }

        public init(
            series: Int,
            timestamp: Timestamp,
            text: TextSpan,
            value: Double?,
            kind: MetricKind,
            line: Int,
            counterReset: Bool = false
        ) {
            self.series = series
            self.timestamp = timestamp
            self.text = text
            self.rawValue = value ?? .nan
            self.hasValue = value != nil
            self.kind = kind
            self.line = line
            self.counterReset = counterReset
        }
    }

    /// A piece of ``SeriesFile/texts``.
    public struct TextSpan: Hashable, Sendable {
        public var offset: Int
        public var count: Int

        public init(offset: Int, count: Int) {
            self.offset = offset
            self.count = count
        }
    }

    /// The timestamps' texts as written, each distinct text stored about once (rows point into it).
    public var texts: [UInt8] = []

    /// A row's timestamp exactly as written in the file.
    public func timestampText(_ row: Row) -> String {
        let end = Swift.min(texts.count, row.text.offset + row.text.count)
        return String(decoding: texts[Swift.min(row.text.offset, end)..<end], as: UTF8.self)
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

    public init(
        name: String,
        format: Format,
        series: [LabelSet],
        rows: [Row],
        texts: [UInt8] = [],
        warnings: [String] = []
    ) {
        self.texts = texts
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
    ///   - threads: how many cores may parse pieces of a large text file side by side (the
    ///     result is the same).
    /// - Throws: ``SeriesFileError`` naming the file, the line and the reason.
    public static func load(
        path: String,
        format: Format? = nil,
        kind: MetricKind? = nil,
        threads: Int = 1
    ) throws(SeriesFileError) -> SeriesFile {
        if format == .recording || (format == nil && isRecordingName(path)) {
            return try loadRecording(path: path, kind: kind)
        }
        let bytes = try FileBytes.read(path)
        if format == nil, bytes.starts(with: [0x1F, 0x8B]) || (try? detectFormat(bytes, name: path)) == .recording {
            return try load(path: path, format: .recording, kind: kind)
        }
        return try parse(bytes, name: path, format: format, kind: kind, threads: threads)
    }

    /// Parses file contents (see ``load(path:format:kind:threads:)``).
    public static func parse(
        _ bytes: [UInt8],
        name: String,
        format: Format? = nil,
        kind: MetricKind? = nil,
        threads: Int = 1
    ) throws(SeriesFileError) -> SeriesFile {
        let resolved: Format
        if let format { resolved = format } else { resolved = try detectFormat(bytes, name: name) }
        var file: SeriesFile
        switch resolved {
        case .csv:
            file = try CSVSeries.parse(bytes, name: name)
        case .prometheus, .openmetrics:
            let exposition: ExpositionFormat = resolved == .openmetrics ? .openMetrics : .text
            if threads > 1, bytes.count >= 1 << 22,
                let pieces = parseExposition(bytes, name: name, format: exposition, pieces: threads * 2)
            {
                file = pieces
            } else {
                file = try parseExposition(bytes, name: name, format: exposition)
            }
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
        var texts = TextArena()
        // One row a line at most: counted first, so the rows never move while they grow.
        rows.reserveCapacity(Self.lineCount(bytes, 0..<bytes.count))
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
                        text: texts.add(bytes, text, time: timestamp),
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
        return SeriesFile(name: name, format: .prometheus, series: series, rows: rows, texts: texts.bytes)
    }
}

extension SeriesFile {
    /// What one piece of a text file parsed to: its rows with the piece's own series numbers
    /// and line numbers, the series in the order the piece first saw them.
    private struct Piece: Sendable {
        var rows: [Row] = []
        var series: [LabelSet] = []
        var texts = TextArena()
        var lines = 0
        var missingTimestamp: Int?
        var failed = false
    }

    /// ``parseExposition(_:name:format:)`` in `count` pieces of whole lines on as many threads,
    /// joined in order: the same file. Nil when any piece fails: the whole body is then parsed
    /// in one go, which names the first bad line.
    static func parseExposition(_ bytes: [UInt8], name: String, format: ExpositionFormat, pieces count: Int)
        -> SeriesFile?
    {
        let parser = ExpositionParser(format: format, internSeries: true)
        var bounds = [0]
        bytes.withUnsafeBufferPointer { b in
            for k in 1..<count {
                let guess = Swift.max(bounds[bounds.count - 1], b.count / count * k)
                let end = ExpositionParser.lineEnd(b, from: guess)
                if end + 1 < b.count { bounds.append(end + 1) }
            }
        }
        bounds.append(bytes.count)
        let ranges = (0..<(bounds.count - 1)).map { bounds[$0]..<bounds[$0 + 1] }.filter { !$0.isEmpty }
        var pieces = [Piece](repeating: Piece(), count: ranges.count)
        pieces.withUnsafeMutableBufferPointer { pieces in
            let out = UnsafeSendablePointer(pieces)
            DispatchQueue.concurrentPerform(iterations: ranges.count) { k in
                var piece = Piece()
                do throws(ExpositionError) {
                    var state = try parser.declarations(bytes, before: ranges[k].lowerBound)
                    piece.rows.reserveCapacity(SeriesFile.lineCount(bytes, ranges[k]))
                    piece.lines = try parser.parseLines(bytes, ranges[k], state: &state, firstLine: 1) { sample, new in
                        if let new { piece.series.append(new.labels) }
                        guard let timestamp = sample.timestamp, let text = sample.timestampBytes else {
                            if piece.missingTimestamp == nil { piece.missingTimestamp = sample.line }
                            return
                        }
                        piece.rows.append(
                            Row(
                                series: sample.series,
                                timestamp: timestamp,
                                text: piece.texts.add(bytes, text, time: timestamp),
                                value: sample.value,
                                kind: sample.kind,
                                line: sample.line
                            )
                        )
                    }
                    if k == ranges.count - 1 {
                        try parser.finish(state)
                    }
                } catch {
                    piece.failed = true
                }
                out.value[k] = piece
            }
        }
        guard !pieces.contains(where: \.failed), !pieces.contains(where: { $0.missingTimestamp != nil }) else {
            return nil
        }
        var index: [LabelSet: Int] = [:]
        var series: [LabelSet] = []
        var rows: [Row] = []
        rows.reserveCapacity(pieces.reduce(0) { $0 + $1.rows.count })
        var texts: [UInt8] = []
        texts.reserveCapacity(pieces.reduce(0) { $0 + $1.texts.bytes.count })
        var lineOffset = 0
        for k in pieces.indices {
            let textOffset = texts.count
            texts.append(contentsOf: pieces[k].texts.bytes)
            let ids = pieces[k].series.map { labels in
                if let known = index[labels] { return known }
                index[labels] = series.count
                series.append(labels)
                return series.count - 1
            }
            for var row in pieces[k].rows {
                row.series = ids[row.series]
                row.line += lineOffset
                row.text.offset += textOffset
                rows.append(row)
            }
            lineOffset += pieces[k].lines
            pieces[k].rows = []
        }
        return SeriesFile(name: name, format: .prometheus, series: series, rows: rows, texts: texts)
    }

    /// How many lines `range` of `bytes` holds (a last line without a newline counts).
    static func lineCount(_ bytes: [UInt8], _ range: Range<Int>) -> Int {
        bytes.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress else { return 0 }
            var count = 0
            var at = range.lowerBound
            while at < range.upperBound, let found = memchr(base + at, 0x0A, range.upperBound - at) {
                count += 1
                at = base.distance(to: found.assumingMemoryBound(to: UInt8.self)) + 1
            }
            return count + (at < range.upperBound ? 1 : 0)
        }
    }
}

/// Where a file's timestamp texts are kept while it is read: each text is added once per
/// recent time (a small table by time remembers where the last text of a time went), so a file
/// of many series on one schedule stores each tick's text about once.
package struct TextArena: Sendable {
    package private(set) var bytes: [UInt8] = []
    private var recent = [(time: Int64, span: SeriesFile.TextSpan)](
        repeating: (Int64.min, SeriesFile.TextSpan(offset: 0, count: 0)),
        count: recentSlots
    )

    package init() {}

    /// Where the text `range` of `source` (the text of `time`) is kept.
    package mutating func add(_ source: [UInt8], _ range: Range<Int>, time: Timestamp) -> SeriesFile.TextSpan {
        source.withUnsafeBufferPointer { add(UnsafeBufferPointer(rebasing: $0[range]), time: time) }
    }

    /// Where `text` (the text of `time`) is kept.
    package mutating func add(_ text: String, time: Timestamp) -> SeriesFile.TextSpan {
        var text = text
        return text.withUTF8 { add($0, time: time) }
    }

    /// Where the text of `time` as ``Timestamp/description`` writes it is kept, formatted only
    /// when the recent table does not have it: for an arena whose every text is written so.
    package mutating func addDescription(of time: Timestamp) -> SeriesFile.TextSpan {
        let known = recent[Self.slot(time)]
        if known.time == time.milliseconds { return known.span }
        return add(time.description, time: time)
    }

    /// Whether `count` bytes at `a` and `b` are the same: a timestamp's text (up to 16 bytes)
    /// compared in place, not through a call.
    @inline(__always)
    private static func same(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        guard count <= 16 else { return memcmp(a, b, count) == 0 }
        var k = 0
        while k + 8 <= count {
            guard
                UnsafeRawPointer(a + k).loadUnaligned(as: UInt64.self)
                    == UnsafeRawPointer(b + k).loadUnaligned(as: UInt64.self)
            else { return false }
            k += 8
        }
        while k < count {
            guard a[k] == b[k] else { return false }
            k += 1
        }
        return true
    }

    /// A time's place in the recent table: its second, plus its milliseconds. Times on a grid of
    /// whole seconds come in order to places in order (one series' samples, series after series
    /// through the same ticks), which the processor fetches ahead: a hash scattered them, and
    /// finding a text cost a miss of the cache per sample.
    @inline(__always)
    private static func slot(_ time: Timestamp) -> Int {
        let ms = time.milliseconds
        return Int(truncatingIfNeeded: (ms / 1000) &+ (ms % 1000)) & (recentSlots - 1)
    }

    private static let recentSlots = 1 << 13

    package mutating func add(_ text: UnsafeBufferPointer<UInt8>, time: Timestamp) -> SeriesFile.TextSpan {
        let ms = time.milliseconds
        let slot = Self.slot(time)
        let known = recent[slot]
        if known.time == ms, known.span.count == text.count,
            bytes.withUnsafeBufferPointer({ b in
                guard let base = b.baseAddress, let other = text.baseAddress else { return text.isEmpty }
                return Self.same(base + known.span.offset, other, text.count)
            })
        {
            return known.span
        }
        let span = SeriesFile.TextSpan(offset: bytes.count, count: text.count)
        bytes.append(contentsOf: text)
        recent[slot] = (ms, span)
        return span
    }
}

/// A buffer handed to the threads of one parallel step, each of which writes only its own
/// elements.
struct UnsafeSendablePointer<Element>: @unchecked Sendable {
    let value: UnsafeMutableBufferPointer<Element>
    init(_ value: UnsafeMutableBufferPointer<Element>) { self.value = value }
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
        let size =
            fstat(fileno(handle), &status) == 0 && (status.st_mode & S_IFMT) == S_IFREG
            ? Swift.max(0, Int(status.st_size)) : 0
        var bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = buffer.baseAddress.map { fread($0, 1, size, handle) } ?? 0
        }
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, handle) }
            if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
            if n < chunk.count {
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
        return bytes
    }
}
