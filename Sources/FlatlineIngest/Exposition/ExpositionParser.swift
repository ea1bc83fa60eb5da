import FlatlineCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Parses the Prometheus text format 0.0.4 and OpenMetrics 1.0 the way Prometheus 2.42 does.
///
/// What Prometheus accepts, this accepts: `NaN`, `±Inf`, lowercase `inf`/`nan`/`infinity`,
/// exponents, a trailing comma in text-format labels, `{}`, a missing final newline, repeated
/// `TYPE`/`HELP` lines and interleaved families in text, undefined escapes kept literally, OpenMetrics
/// exemplars (ignored) and counters without `_total`. What it rejects, this rejects, naming the line:
/// CR line endings, hex values and digit separators, float or negative text timestamps, repeated
/// label names, invalid UTF-8, lines starting with whitespace; and in OpenMetrics a missing
/// `# EOF`, data after it, blank lines, free comments, trailing commas and a `UNIT` that is not
/// the family name's suffix. Duplicate series are all returned; consumers keep the first.
public struct ExpositionParser: Sendable {
    /// The format to parse.
    public var format: ExpositionFormat
    /// Remember each series' parsed labels by its bytes, so a series that comes again (a
    /// replayed file holds each thousands of times) is not parsed and validated again. Off for
    /// a live scrape, where each series comes once.
    public var internSeries = false

    public init(format: ExpositionFormat, internSeries: Bool = false) {
        self.format = format
        self.internSeries = internSeries
    }

    /// Parses a whole exposition.
    /// - Parameter bytes: the body.
    /// - Returns: every sample, in order.
    /// - Throws: ``ExpositionError`` naming the first bad line.
    public func parse(_ bytes: some Collection<UInt8>) throws(ExpositionError) -> [ExposedSample] {
        var samples: [ExposedSample] = []
        try parse(bytes) { sample in samples.append(sample) }
        return samples
    }

    /// Parses a whole exposition, handing each sample to `body` as soon as its line is read.
    /// - Throws: ``ExpositionError`` naming the first bad line (samples before it were handed over).
    public func parse(
        _ bytes: some Collection<UInt8>,
        _ body: (ExposedSample) -> Void
    ) throws(ExpositionError) {
        let buffer = Array(bytes)
        var series: [LabelSet] = []
        try parseRaw(buffer) { sample, new in
            if let new { series.append(new.labels) }
            body(
                ExposedSample(
                    labels: series[sample.series],
                    value: sample.value,
                    timestamp: sample.timestamp,
                    timestampText: sample.timestampBytes.map { Substring(String(decoding: buffer[$0], as: UTF8.self)) },
                    type: sample.type,
                    kind: sample.kind,
                    line: sample.line
                )
            )
        }
    }

    /// Parses a whole exposition without building a sample per line: each sample names its series
    /// by number (in order of first appearance; with ``internSeries``, the same bytes are the same
    /// number), and `new` carries the series the first time its number comes. Timestamps are
    /// given as the range of their text in `buffer`.
    /// - Throws: ``ExpositionError`` naming the first bad line (samples before it were handed over).
    package func parseRaw(
        _ buffer: [UInt8],
        _ body: (RawSample, _ new: ParsedSeries?) -> Void
    ) throws(ExpositionError) {
        var state = ParseState(format: format)
        state.internSeries = internSeries
        _ = try parseLines(buffer, 0..<buffer.count, state: &state, firstLine: 1, body)
        try finish(state)
    }

    /// Parses the lines of `buffer` in `range` (whole lines) with `state` as the lines before
    /// left it, numbering them from `firstLine`; returns how many lines there were. A body split
    /// into pieces is parsed piece by piece, each from the declarations before it
    /// (``declarations(_:before:)``), then ``finish(_:)`` with the last piece's state.
    package func parseLines(
        _ buffer: [UInt8],
        _ range: Range<Int>,
        state: inout ParseState,
        firstLine: Int,
        _ body: (RawSample, _ new: ParsedSeries?) -> Void
    ) throws(ExpositionError) -> Int {
        var start = range.lowerBound
        var line = firstLine - 1
        try buffer.withUnsafeBufferPointer { bytes throws(ExpositionError) in
            while start < range.upperBound {
                line += 1
                let end = Swift.min(Self.lineEnd(bytes, from: start), range.upperBound)
                let slice = bytes[start..<end]
                let isLast = end >= bytes.count - 1
                if state.sawEOF {
                    throw ExpositionError(line: line, reason: "unexpected data after # EOF")
                }
                let parsed: RawSample?
                do throws(ExpositionError) {
                    parsed = try state.parseLine(slice, bytes, buffer, line: line)
                } catch {
                    throw Self.namingLineEnding(error, slice)
                }
                if let sample = parsed {
                    body(sample, state.newSeries)
                    state.newSeries = nil
                }
                if state.sawEOF && !isLast {
                    // Only a single final newline may follow "# EOF".
                    throw ExpositionError(line: line + 1, reason: "unexpected data after # EOF")
                }
                start = end + 1
            }
        }
        return line - firstLine + 1
    }

    /// ``parseRaw(_:_:)`` for one of a source's successive bodies (a target's scrapes):
    /// series the previous body had are taken from `memory` instead of parsed again, and
    /// `memory` then holds this body's series.
    package func parseRaw(
        _ buffer: [UInt8],
        memory: inout SeriesMemory,
        _ body: (RawSample, _ new: ParsedSeries?) -> Void
    ) throws(ExpositionError) {
        var state = ParseState(format: format)
        state.internSeries = internSeries
        state.memory = memory
        state.remembers = true
        memory = SeriesMemory(base: [], limit: 0)  // not a copy to write on: the state holds it
        defer {
            state.memory.endBody()
            memory = state.memory
        }
        _ = try parseLines(buffer, 0..<buffer.count, state: &state, firstLine: 1, body)
        try finish(state)
    }

    /// The checks of a whole body, after its last line.
    package func finish(_ state: ParseState) throws(ExpositionError) {
        if format == .openMetrics && !state.sawEOF {
            throw ExpositionError(line: 0, reason: "data does not end with # EOF")
        }
    }

    /// The state the comment lines of `buffer` before `offset` (a line's start) leave: what a
    /// piece of the body that starts there is parsed from. Sample lines are skipped unread, so
    /// this is quick; errors are those of the comment lines.
    ///
    /// - Parameter start: the state the lines before `buffer` left (a body read in chunks);
    ///   nil for a fresh one.
    package func declarations(_ buffer: [UInt8], before offset: Int, from start: ParseState? = nil)
        throws(ExpositionError) -> ParseState
    {
        var state = start ?? ParseState(format: format)
        state.internSeries = internSeries
        try buffer.withUnsafeBufferPointer { bytes throws(ExpositionError) in
            guard let base = bytes.baseAddress else { return }
            var start = 0
            while start < offset {
                if bytes[start] == UInt8(ascii: "#") {
                    let end = Swift.min(Self.lineEnd(bytes, from: start), offset)
                    do throws(ExpositionError) {
                        try state.parseComment(bytes[start..<end], 0)
                    } catch {
                        throw Self.namingLineEnding(error, bytes[start..<end])
                    }
                    start = end + 1
                    continue
                }
                // The next '#' that starts a line ('#' inside a sample line is rare).
                var at = start + 1
                while true {
                    guard at < offset, let found = memchr(base + at, Int32(UInt8(ascii: "#")), offset - at) else {
                        return
                    }
                    at = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
                    if bytes[at - 1] == 0x0A { break }
                    at += 1
                }
                start = at
            }
        }
        return state
    }

    /// `error` of `line`, saying so when the line ends in a carriage return: Windows line
    /// endings, which the format (and Prometheus) does not take, show up only as a bad value,
    /// name or type otherwise.
    static func namingLineEnding(_ error: ExpositionError, _ line: Slice<UnsafeBufferPointer<UInt8>>)
        -> ExpositionError
    {
        guard line.last == 0x0D else { return error }
        var named = error
        named.reason +=
            " (the line ends in a carriage return: the text format takes \\n line endings, not Windows' \\r\\n)"
        return named
    }

    /// The index of the next newline at or after `start`, or the end.
    @inline(__always)
    static func lineEnd(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        guard let base = bytes.baseAddress, start < bytes.count else { return bytes.count }
        guard let found = memchr(base + start, 0x0A, bytes.count - start) else { return bytes.count }
        return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
    }
}

/// A series of a parsed exposition: its labels and metric name, and what its family declared.
package struct ParsedSeries: Sendable {
    /// Its labels, with the source's own merged in when the body is parsed with a
    /// ``SeriesMemory`` that has them (``SeriesMemory/base``).
    package var labels: LabelSet
    package var name: String
    var type: MetricType
    var kind: MetricKind
    /// ``ParseState/typeGeneration`` when `type` and `kind` were decided.
    var generation: Int
}

/// What one source's bodies parsed to, kept from one body to the next (see
/// ``ExpositionParser/parseRaw(_:memory:_:)``): the series of the last body by their bytes, at
/// most `limit`, in the order the body gave them.
///
/// A target gives its series in the same order scrape after scrape, so the series after the one
/// last found is tried first, by its bytes, before any hashing; a series is otherwise found by a
/// 64-bit hash of its bytes (then compared byte for byte). One table lives from body to body:
/// each series is stamped with the last body that had it, and only a body that left some out
/// rebuilds the table without them.
package struct SeriesMemory: Sendable {
    /// Labels every series of the source gets (a target's own), merged in once per series.
    package let base: [Label]
    package let limit: Int
    private var entries: [ParsedSeries] = []
    private var spans: [Range<Int>] = []
    private var keys: [UInt8] = []
    private var hashes: [UInt64] = []
    /// Where each series' label set lives (``LabelSet/storageAddress``), for prefetching.
    private var addresses: [UInt] = []
    /// How many series ahead of the one found the next label sets are prefetched.
    private static let prefetchDistance = 4
    private var index: [UInt64: Int] = [:]
    /// One `String` per metric name, shared by the series of a family (`limit` at most).
    private var names: [String: String] = [:]
    /// The body each series was last found or added in.
    private var seen: [Int] = []
    private var body = 1
    /// Series found or added in this body (each counted once).
    private var seenInBody = 0
    /// The series after the one last found: where the next line's series most likely is.
    private var next = 0

    package init(base: [Label], limit: Int) {
        self.base = base
        self.limit = limit
    }

    /// The most series a body leaves for the next: more than any target a job lets through.
    package static let defaultLimit = 1 << 20

    /// How many series are remembered (after a body: how many of its series).
    package var count: Int { entries.count }

    /// `name` as the series before with this name have it: a family's series share one string,
    /// so reading a remembered series' name touches memory its neighbours just touched.
    mutating func name(_ name: String) -> String {
        guard limit > 0 else { return name }
        if let shared = names[name] { return shared }
        if names.count < limit { names[name] = name }
        return name
    }

    /// The series remembered at the place after the one last found, when `line` begins with its
    /// bytes and a space or tab (it then ends there: its bytes were a whole series when read);
    /// nil otherwise. Taken as found.
    mutating func next(startOf line: Slice<UnsafeBufferPointer<UInt8>>) -> (series: ParsedSeries, end: Int)? {
        guard next < entries.count else { return nil }
        let span = spans[next]
        let end = line.startIndex + span.count
        guard end < line.endIndex, line[end] == 0x20 || line[end] == 0x09 else { return nil }
        let same = keys.withUnsafeBufferPointer { keys in
            guard let a = keys.baseAddress, let b = line.base.baseAddress else { return false }
            return memcmp(a + span.lowerBound, b + line.startIndex, span.count) == 0
        }
        return same ? (take(next), end) : nil
    }

    /// What a series' bytes are remembered as.
    enum Lookup {
        case found(ParsedSeries)
        /// Not remembered: its hash, for ``add(_:_:_:)``.
        case missing(hash: UInt64)
    }

    /// A series by its bytes (after ``next(startOf:)`` did not find it).
    mutating func lookUp(_ bytes: UnsafeBufferPointer<UInt8>) -> Lookup {
        let hash = Self.hash(bytes)
        if let k = index[hash], matches(k, bytes) {
            return .found(take(k))
        }
        return .missing(hash: hash)
    }

    @inline(__always)
    private func matches(_ k: Int, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let span = spans[k]
        guard span.count == bytes.count else { return false }
        return keys.withUnsafeBufferPointer { keys in
            guard let a = keys.baseAddress, let b = bytes.baseAddress else { return bytes.isEmpty }
            return memcmp(a + span.lowerBound, b, span.count) == 0
        }
    }

    @inline(__always)
    private mutating func take(_ k: Int) -> ParsedSeries {
        if seen[k] != body {
            seen[k] = body
            seenInBody += 1
        }
        next = k + 1
        // Most of a remembered series' cost is the first touch of its label set (the sample
        // retains it): ask for the one a few lines on now, so it has arrived when its line comes.
        if k + Self.prefetchDistance < addresses.count {
            LabelSet.prefetch(storageAt: addresses[k + Self.prefetchDistance])
        }
        return entries[k]
    }

    /// Remembers a series this body had that ``lookUp(_:)`` did not find (unless the table is
    /// full, or another series has the same hash: that one is parsed every time instead).
    mutating func add(_ hash: UInt64, _ bytes: UnsafeBufferPointer<UInt8>, _ parsed: ParsedSeries) {
        guard entries.count < limit, index[hash] == nil else { return }
        index[hash] = entries.count
        spans.append(keys.count..<(keys.count + bytes.count))
        keys.append(contentsOf: bytes)
        hashes.append(hash)
        addresses.append(parsed.labels.storageAddress)
        entries.append(parsed)
        seen.append(body)
        seenInBody += 1
    }

    /// After a body (read whole or not): forgets the series it did not have.
    mutating func endBody() {
        if seenInBody < entries.count {
            var kept = SeriesMemory(base: base, limit: limit)
            kept.body = body
            kept.names = names
            kept.entries.reserveCapacity(seenInBody)
            kept.spans.reserveCapacity(seenInBody)
            kept.hashes.reserveCapacity(seenInBody)
            kept.addresses.reserveCapacity(seenInBody)
            kept.seen.reserveCapacity(seenInBody)
            kept.index.reserveCapacity(seenInBody)
            keys.withUnsafeBufferPointer { keys in
                for k in entries.indices where seen[k] == body {
                    kept.add(hashes[k], UnsafeBufferPointer(rebasing: keys[spans[k]]), entries[k])
                }
            }
            self = kept
        }
        body += 1
        seenInBody = 0
        next = 0
    }

    /// A quick 64-bit hash of a series' bytes, eight at a time (the table's dictionary hashes
    /// it again with the process's random seed, so crafted bytes gain nothing but misses).
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0x243F_6A88_85A3_08D3 ^ UInt64(bytes.count)
        guard let base = bytes.baseAddress else { return h }
        let raw = UnsafeRawPointer(base)
        var i = 0
        while i + 8 <= bytes.count {
            let word = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            h = (h ^ word) &* 0x9E37_79B9_7F4A_7C15
            h ^= h >> 32
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < bytes.count {
            tail |= UInt64(bytes[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ tail) &* 0xBF58_476D_1CE4_E5B9
        return h ^ (h >> 31)
    }
}

/// A series' bytes as a dictionary key, hashed in one pass over the bytes (an `ArraySlice<UInt8>`
/// key is hashed byte by byte).
struct SeriesBytes: Hashable, Sendable {
    let bytes: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
    }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    static func == (a: Self, b: Self) -> Bool {
        a.bytes.count == b.bytes.count
            && a.bytes.withUnsafeBytes { x in
                b.bytes.withUnsafeBytes { y in
                    guard let p = x.baseAddress, let q = y.baseAddress else { return true }
                    return memcmp(p, q, x.count) == 0
                }
            }
    }
}

/// One sample line as read: its series by number, its value and timestamp.
package struct RawSample: Sendable {
    /// The series' number (see ``ExpositionParser/parseRaw(_:_:)``).
    package var series: Int
    package var value: Double
    /// The declared type of its family, and counter or gauge (as in ``ExposedSample``).
    package var type: MetricType
    package var kind: MetricKind
    package var timestamp: Timestamp?
    /// Where the timestamp's text is in the body.
    package var timestampBytes: Range<Int>?
    /// The 1-based line.
    package var line: Int
}

/// One line of a body being parsed, with the body's own indices.
typealias Line = Slice<UnsafeBufferPointer<UInt8>>

/// Per-body parsing state: declared types and units.
package struct ParseState: Sendable {
    let format: ExpositionFormat
    var types: [String: MetricType] = [:]
    var units: [String: String] = [:]
    var helps: Set<String> = []
    /// The OpenMetrics `# EOF` line has been read.
    var sawEOF = false
    /// Every series so far, by number (kept when interning: a later line may name one).
    var series: [ParsedSeries] = []
    var seriesCount = 0
    /// The series the last sample line brought first, for the caller.
    var newSeries: ParsedSeries?
    /// Bumped by every `# TYPE`, so a remembered series' type is decided again after one.
    var typeGeneration = 0
    /// With `internSeries`: the series' numbers by the bytes of their name and label block, and
    /// the last line's (a file's lines mostly repeat the series of the line before).
    var internSeries = false
    var numbers: [SeriesBytes: Int] = [:]
    var lastSeries: (bytes: Range<Int>, number: Int)?
    /// What earlier bodies of the same source parsed to, when the caller keeps it.
    var memory = SeriesMemory(base: [], limit: 0)
    var remembers = false
    /// The last name ``classify(_:)`` decided, under which declarations.
    var lastClassified: (name: String, generation: Int, type: MetricType, kind: MetricKind)?
    /// The most series remembered (a body of distinct series gains nothing from more).
    static let maxInterned = 1 << 20

    init(format: ExpositionFormat) {
        self.format = format
    }

    var isOpenMetrics: Bool { format == .openMetrics }

    /// Forgets the series read so far (and every reference into the buffer they were read
    /// from), keeping the declarations: the next buffer of the same body numbers its series
    /// from 0 again. A file read in chunks keeps no chunk alive this way.
    package mutating func forgetSeries() {
        series = []
        seriesCount = 0
        numbers = [:]
        lastSeries = nil
        newSeries = nil
    }

    mutating func parseLine(
        _ line: Line,
        _ body: UnsafeBufferPointer<UInt8>,
        _ buffer: [UInt8],
        line number: Int
    ) throws(ExpositionError) -> RawSample? {
        guard let first = line.first else {
            if isOpenMetrics {
                throw ExpositionError(line: number, reason: "blank lines are not allowed in OpenMetrics")
            }
            return nil
        }
        if first == UInt8(ascii: "#") {
            try parseComment(line, number)
            return nil
        }
        if first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") {
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) {
                if isOpenMetrics {
                    throw ExpositionError(line: number, reason: "blank lines are not allowed in OpenMetrics")
                }
                return nil
            }
            // Prometheus 2.42 reads the whitespace as part of the metric name and rejects it.
            throw ExpositionError(line: number, reason: "a sample line must not start with whitespace")
        }
        return try parseSample(line, body, buffer, number)
    }

    // MARK: Comments and metadata

    mutating func parseComment(_ line: Line, _ number: Int) throws(ExpositionError) {
        var cursor = Cursor(line)
        cursor.advance()  // '#'
        let hadSpace = cursor.skipSpaces() > 0
        let keyword = cursor.token()
        if isOpenMetrics {
            if keyword == "EOF" && hadSpace && cursor.atEnd {
                sawEOF = true
                return
            }
            guard hadSpace, ["TYPE", "HELP", "UNIT"].contains(keyword) else {
                throw ExpositionError(
                    line: number,
                    reason: "OpenMetrics allows only # TYPE, # HELP, # UNIT and # EOF lines"
                )
            }
        } else {
            guard hadSpace, keyword == "TYPE" || keyword == "HELP" else { return }  // a plain comment
        }
        guard cursor.skipSpaces() > 0 else {
            throw ExpositionError(line: number, reason: "# \(keyword) needs a metric name")
        }
        let name = cursor.token()
        guard LabelSet.isValidMetricName(name) else {
            throw ExpositionError(line: number, reason: "invalid metric name \"\(name)\" in # \(keyword)")
        }
        switch keyword {
        case "TYPE":
            guard cursor.skipSpaces() > 0 else {
                throw ExpositionError(line: number, reason: "# TYPE \(name) needs a type")
            }
            let typeName = cursor.token()
            let allowed: [MetricType] =
                isOpenMetrics
                ? [.counter, .gauge, .histogram, .gaugeHistogram, .stateSet, .info, .summary, .unknown]
                : [.counter, .gauge, .histogram, .summary, .untyped]
            guard let type = MetricType(rawValue: typeName), allowed.contains(type) else {
                throw ExpositionError(line: number, reason: "unknown metric type \"\(typeName)\" for \(name)")
            }
            if isOpenMetrics && types[name] != nil {
                throw ExpositionError(line: number, reason: "second # TYPE for \(name)")
            }
            types[name] = type
            typeGeneration &+= 1
        case "UNIT":
            cursor.skipSpaces()
            let unit = cursor.rest()
            if !unit.isEmpty && !(name.hasSuffix("_" + unit)) {
                throw ExpositionError(
                    line: number,
                    reason: "unit \"\(unit)\" is not a suffix of the metric name \(name)"
                )
            }
            units[name] = unit
        default:  // HELP
            if isOpenMetrics && helps.contains(name) {
                throw ExpositionError(line: number, reason: "second # HELP for \(name)")
            }
            helps.insert(name)
        }
    }

    // MARK: Samples

    mutating func parseSample(
        _ line: Line,
        _ body: UnsafeBufferPointer<UInt8>,
        _ buffer: [UInt8],
        _ number: Int
    ) throws(ExpositionError) -> RawSample {
        var cursor = Cursor(line)
        // A series seen before in this body: the same bytes parse to the same labels.
        var known: Int?
        var seriesBytes: Range<Int>?
        // A series an earlier body of the same source had: its labels as parsed then.
        var remembered: ParsedSeries?
        var memoryHash: UInt64?
        if remembers, let (series, end) = memory.next(startOf: line) {
            // The series after the one the memory found last, byte for byte.
            remembered = series
            seriesBytes = line.startIndex..<end
            cursor.index = end
        } else if internSeries, let last = lastSeries, let end = Self.startsWith(line, body, last.bytes) {
            // The series of the line before, byte for byte, and a space after it: the same
            // series (a scan of these bytes would end where it ended), without scanning.
            seriesBytes = line.startIndex..<end
            known = last.number
            cursor.index = end
        } else if internSeries || remembers, let end = Cursor.seriesEnd(line) {
            let range = line.startIndex..<end
            seriesBytes = range
            if internSeries {
                if let last = lastSeries, Self.same(body, last.bytes, range) {
                    known = last.number
                } else if let number = numbers[SeriesBytes(buffer[range])] {
                    known = number
                    lastSeries = (range, number)
                }
            }
            if known == nil, remembers {
                switch memory.lookUp(UnsafeBufferPointer(rebasing: body[range])) {
                case .found(let series): remembered = series
                case .missing(let hash): memoryHash = hash
                }
            }
            if known != nil || remembered != nil { cursor.index = end }
        }
        var name = ""
        var pairs: [(String, String)] = []
        if known == nil && remembered == nil {
            name = cursor.metricName()
            guard !name.isEmpty else {
                throw ExpositionError(line: number, reason: "expected a metric name at the start of the line")
            }
            pairs.reserveCapacity(8)
            pairs.append((LabelSet.metricNameLabel, name))
            if cursor.peek == UInt8(ascii: "{") {
                try parseLabels(&cursor, into: &pairs, number)
            }
        }
        let afterSeries = cursor.index
        guard cursor.skipSpaces() > 0 else {
            throw ExpositionError(line: number, reason: "expected a space between the series and its value")
        }
        let valueBytes = cursor.tokenRange()
        guard let value = NumberText.parseDouble(UnsafeBufferPointer(rebasing: body[valueBytes])) else {
            throw ExpositionError(line: number, reason: "invalid value \"\(Self.printable(body, valueBytes))\"")
        }
        var timestamp: Timestamp?
        var timestampBytes: Range<Int>?
        if cursor.skipSpaces() > 0 && !cursor.atEnd && cursor.peek != UInt8(ascii: "#") {
            let range = cursor.tokenRange()
            timestampBytes = range
            timestamp = try parseTimestamp(body, range, number)
            cursor.skipSpaces()
        }
        if !cursor.atEnd {
            if isOpenMetrics && cursor.peek == UInt8(ascii: "#") {
                try skipExemplar(&cursor, number)
            } else {
                throw ExpositionError(
                    line: number,
                    reason:
                        "unexpected \"\(Self.printable(cursor.rest()))\" after the \(timestamp == nil ? "value" : "timestamp")"
                )
            }
        }
        let id: Int
        if let known {
            id = known
            if series[id].generation != typeGeneration {
                (series[id].type, series[id].kind) = classify(series[id].name)
                series[id].generation = typeGeneration
            }
        } else {
            var parsed: ParsedSeries
            if let remembered {
                parsed = remembered
                (parsed.type, parsed.kind) = classify(parsed.name)
                parsed.generation = typeGeneration
            } else {
                // Names were scanned as names and checked for repeats in ``parseLabels``.
                let labels = LabelSet(parsed: pairs)
                let (type, kind) = classify(name)
                let base = memory.base
                parsed = ParsedSeries(
                    labels: base.isEmpty
                        ? labels : LabelSet(uncheckedSorted: LabelSet.mergingTargetLabels(base, into: labels.labels)),
                    name: memory.name(name),
                    type: type,
                    kind: kind,
                    generation: typeGeneration
                )
            }
            id = seriesCount
            seriesCount += 1
            newSeries = parsed
            // Remembered only where the quick scan and the parser agree on where the series ends.
            if let seriesBytes, seriesBytes.upperBound == afterSeries {
                if let hash = memoryHash {
                    memory.add(hash, UnsafeBufferPointer(rebasing: body[seriesBytes]), parsed)
                }
                if internSeries, numbers.count < Self.maxInterned {
                    numbers[SeriesBytes(buffer[seriesBytes])] = id
                    lastSeries = (seriesBytes, id)
                }
            }
            if internSeries { series.append(parsed) }
            return RawSample(
                series: id,
                value: value,
                type: parsed.type,
                kind: parsed.kind,
                timestamp: timestamp,
                timestampBytes: timestampBytes,
                line: number
            )
        }
        return RawSample(
            series: id,
            value: value,
            type: series[id].type,
            kind: series[id].kind,
            timestamp: timestamp,
            timestampBytes: timestampBytes,
            line: number
        )
    }

    /// Where the series ends when `line` begins with the bytes `series` of `body` followed by a
    /// space or tab; nil otherwise.
    @inline(__always)
    static func startsWith(_ line: Line, _ body: UnsafeBufferPointer<UInt8>, _ series: Range<Int>) -> Int? {
        let end = line.startIndex + series.count
        guard end < line.endIndex, body[end] == 0x20 || body[end] == 0x09, let base = body.baseAddress,
            memcmp(base + line.startIndex, base + series.lowerBound, series.count) == 0
        else { return nil }
        return end
    }

    /// Whether two ranges of `body` hold the same bytes.
    @inline(__always)
    static func same(_ body: UnsafeBufferPointer<UInt8>, _ a: Range<Int>, _ b: Range<Int>) -> Bool {
        guard a.count == b.count, let base = body.baseAddress else { return false }
        return memcmp(base + a.lowerBound, base + b.lowerBound, a.count) == 0
    }

    /// Up to this many names, a label's uniqueness is checked by a scan of those before it.
    static let fewLabels = 16

    func parseLabels(_ cursor: inout Cursor, into pairs: inout [(String, String)], _ number: Int)
        throws(ExpositionError)
    {
        cursor.advance()  // '{'
        // Names so far: looked up in `pairs` (the metric name first) while they are few, in a
        // set once there are many (a hostile line may carry thousands).
        var seen: Set<String> = []
        var expectName = true
        while true {
            cursor.skipSpaces()
            guard let byte = cursor.peek else { throw ExpositionError(line: number, reason: "unterminated label set") }
            if byte == UInt8(ascii: "}") {
                // Reached only for `{}` or after a value; a dangling comma is handled below.
                cursor.advance()
                return
            }
            guard expectName else { throw ExpositionError(line: number, reason: "expected , or } between labels") }
            let name = cursor.labelName()
            guard !name.isEmpty else {
                throw ExpositionError(
                    line: number,
                    reason: "expected a label name, found \"\(Self.printable(cursor.rest()))\""
                )
            }
            cursor.skipSpaces()
            guard cursor.peek == UInt8(ascii: "=") else {
                throw ExpositionError(line: number, reason: "expected = after label name \(name)")
            }
            cursor.advance()
            cursor.skipSpaces()
            guard cursor.peek == UInt8(ascii: "\"") else {
                throw ExpositionError(line: number, reason: "expected a quoted value for label \(name)")
            }
            let value = try cursor.quotedValue(number, label: name)
            // `__name__` is taken in every label set (an exemplar's too: its pairs start empty).
            if pairs.count < Self.fewLabels {
                if name == LabelSet.metricNameLabel || pairs.contains(where: { $0.0 == name }) {
                    throw ExpositionError(line: number, reason: "label name \"\(name)\" is not unique")
                }
            } else {
                if seen.isEmpty { seen = Set(pairs.lazy.map(\.0) + [LabelSet.metricNameLabel]) }
                guard seen.insert(name).inserted else {
                    throw ExpositionError(line: number, reason: "label name \"\(name)\" is not unique")
                }
            }
            pairs.append((name, value))
            cursor.skipSpaces()
            if cursor.peek == UInt8(ascii: ",") {
                cursor.advance()
                expectName = true
                cursor.skipSpaces()
                if cursor.peek == UInt8(ascii: "}") {
                    if isOpenMetrics { throw ExpositionError(line: number, reason: "trailing comma in the label set") }
                    cursor.advance()
                    return
                }
            } else {
                expectName = false
            }
        }
    }

    func parseTimestamp(_ body: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ number: Int) throws(ExpositionError)
        -> Timestamp
    {
        let text = UnsafeBufferPointer(rebasing: body[range])
        if isOpenMetrics {
            // Whole seconds (most files): exact in a double and after × 1000 up to 12 digits, so
            // the same time as the decimal path gives, without it.
            if text.count <= 12, let whole = NumberText.parseDigits(text) {
                return Timestamp(milliseconds: whole * 1000)
            }
            guard let seconds = NumberText.parseDouble(text), seconds.isFinite, let t = Timestamp(seconds: seconds)
            else {
                throw ExpositionError(line: number, reason: "invalid timestamp \"\(Self.printable(body, range))\"")
            }
            return t
        }
        guard let ms = NumberText.parseDigits(text) else {
            throw ExpositionError(
                line: number,
                reason:
                    "invalid timestamp \"\(Self.printable(body, range))\": the text format takes integer milliseconds"
            )
        }
        return Timestamp(milliseconds: ms)
    }

    func skipExemplar(_ cursor: inout Cursor, _ number: Int) throws(ExpositionError) {
        cursor.advance()  // '#'
        guard cursor.skipSpaces() > 0, cursor.peek == UInt8(ascii: "{") else {
            throw ExpositionError(line: number, reason: "malformed exemplar")
        }
        var pairs: [(String, String)] = []
        try parseLabels(&cursor, into: &pairs, number)
        guard cursor.skipSpaces() > 0, Self.parseValue(cursor.token()) != nil else {
            throw ExpositionError(line: number, reason: "exemplar needs a value")
        }
        if cursor.skipSpaces() > 0 && !cursor.atEnd {
            guard Self.parseValue(cursor.token()) != nil else {
                throw ExpositionError(line: number, reason: "invalid exemplar timestamp")
            }
        }
        guard cursor.atEnd else { throw ExpositionError(line: number, reason: "unexpected text after the exemplar") }
    }

    /// ``decide(_:)`` with the last answer remembered: the series of one family come together.
    mutating func classify(_ name: String) -> (MetricType, MetricKind) {
        if let last = lastClassified, last.generation == typeGeneration, last.name == name {
            return (last.type, last.kind)
        }
        let (type, kind) = decide(name)
        lastClassified = (name, typeGeneration, type, kind)
        return (type, kind)
    }

    /// The declared family type of a sample name, and whether it counts up.
    func decide(_ name: String) -> (MetricType, MetricKind) {
        if let type = types[name] {
            switch type {
            case .counter: return (type, isOpenMetrics && name.hasSuffix("_created") ? .gauge : .counter)
            case .histogram, .summary: return (type, .gauge)  // a summary's quantiles, a bare histogram name
            default: return (type, .gauge)
            }
        }
        for suffix in ["_total", "_created", "_bucket", "_count", "_sum", "_gcount", "_gsum", "_info"]
        where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            guard let type = types[base] else { continue }
            switch (type, suffix) {
            case (.counter, "_total"): return (type, .counter)
            case (.histogram, "_bucket"), (.histogram, "_count"), (.histogram, "_sum"): return (type, .counter)
            case (.summary, "_count"), (.summary, "_sum"): return (type, .counter)
            default: return (type, .gauge)
            }
        }
        let undeclared: MetricType = isOpenMetrics ? .unknown : .untyped
        return (undeclared, name.hasSuffix("_total") ? .counter : .gauge)
    }

    static func parseValue(_ text: String) -> Double? { NumberText.parseDouble(text) }

    /// A range of the body as text for an error message.
    static func printable(_ body: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
        printable(String(decoding: UnsafeBufferPointer(rebasing: body[range]), as: UTF8.self))
    }

    /// Text for an error message, with control characters made visible.
    static func printable(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(40) {
            switch scalar {
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

/// A read position in one line.
struct Cursor {
    let bytes: Line
    var index: Int

    init(_ bytes: Line) {
        self.bytes = bytes
        index = bytes.startIndex
    }

    var atEnd: Bool { index >= bytes.endIndex }
    var peek: UInt8? { atEnd ? nil : bytes[index] }

    mutating func advance() { index += 1 }

    /// Skips spaces and tabs; returns how many.
    @discardableResult
    mutating func skipSpaces() -> Int {
        let start = index
        while let b = peek, b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") { index += 1 }
        return index - start
    }

    /// Where everything up to the next space, tab or end is.
    mutating func tokenRange() -> Range<Int> {
        let start = index
        while let b = peek, b != UInt8(ascii: " ") && b != UInt8(ascii: "\t") { index += 1 }
        return start..<index
    }

    /// Everything up to the next space, tab or end.
    mutating func token() -> String {
        let start = index
        while let b = peek, b != UInt8(ascii: " ") && b != UInt8(ascii: "\t") { index += 1 }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    mutating func rest() -> String {
        let start = index
        index = bytes.endIndex
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    /// Where the series (a metric name and its label block, if any) of a sample line ends: the
    /// index after the name, or after the `}` that closes the labels (quotes and escapes
    /// respected); nil when the line ends first or has no name.
    static func seriesEnd(_ line: Line) -> Int? {
        var i = line.startIndex
        while i < line.endIndex, isNameByte(line[i], first: i == line.startIndex, colon: true) { i += 1 }
        guard i > line.startIndex else { return nil }
        guard i < line.endIndex, line[i] == UInt8(ascii: "{") else { return i }
        i += 1
        var quoted = false
        while i < line.endIndex {
            let b = line[i]
            if quoted {
                if b == UInt8(ascii: "\\") {
                    i += 1
                } else if b == UInt8(ascii: "\"") {
                    quoted = false
                }
            } else if b == UInt8(ascii: "\"") {
                quoted = true
            } else if b == UInt8(ascii: "}") {
                return i + 1
            }
            i += 1
        }
        return nil
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    mutating func metricName() -> String {
        let start = index
        while let b = peek, Self.isNameByte(b, first: index == start, colon: true) { index += 1 }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`.
    mutating func labelName() -> String {
        let start = index
        while let b = peek, Self.isNameByte(b, first: index == start, colon: false) { index += 1 }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    /// A double-quoted value with `\\`, `\"` and `\n` escapes; other escapes are kept literally.
    mutating func quotedValue(_ number: Int, label: String) throws(ExpositionError) -> String {
        advance()  // opening quote
        // Most values have no escape: read them straight from the line (one string, no copy
        // byte by byte); an escape falls through to the loop below, from the value's start.
        let start = index
        var ascii = true
        var end = index
        while end < bytes.endIndex {
            let b = bytes[end]
            if b == UInt8(ascii: "\\") { break }
            if b == UInt8(ascii: "\"") {
                let text = UnsafeBufferPointer(rebasing: bytes[start..<end])
                index = end + 1
                if ascii { return String(decoding: text, as: UTF8.self) }
                guard let valid = String(validating: text, as: UTF8.self) else {
                    throw ExpositionError(line: number, reason: "invalid UTF-8 in the value of label \(label)")
                }
                return valid
            }
            ascii = ascii && b < 0x80
            end += 1
        }
        var out: [UInt8] = []
        while let b = peek {
            advance()
            switch b {
            case UInt8(ascii: "\""):
                guard let text = String(validating: out, as: UTF8.self) else {
                    throw ExpositionError(line: number, reason: "invalid UTF-8 in the value of label \(label)")
                }
                return text
            case UInt8(ascii: "\\"):
                guard let next = peek else { break }
                advance()
                switch next {
                case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
                case UInt8(ascii: "n"): out.append(UInt8(ascii: "\n"))
                default: out.append(contentsOf: [UInt8(ascii: "\\"), next])
                }
            default:
                out.append(b)
            }
        }
        throw ExpositionError(line: number, reason: "unterminated value of label \(label)")
    }

    static func isNameByte(_ b: UInt8, first: Bool, colon: Bool) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
            || b == UInt8(ascii: "_") || (colon && b == UInt8(ascii: ":"))
            || (!first && b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
    }
}
