import Dispatch
import FlatlineCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file read in chunks of whole lines (about `chunkBytes` each; a line longer than that makes
/// its chunk longer), so that what is held at once is a chunk, not the file.
///
/// A chunk handed back with ``recycle(_:)`` is read into again: memory the process already has,
/// not fresh pages the kernel must fault in and clear (most of what a large file's first pass
/// spent reading).
final class FileChunks {
    let name: String
    private let chunkBytes: Int
    private let handle: UnsafeMutablePointer<FILE>
    /// The bytes after the last newline of what was read: the start of the next chunk.
    private var carry: [UInt8] = []
    private var atEnd = false
    /// Chunks handed back, to read into again.
    private var spares: [[UInt8]] = []
    /// The most spares kept (a reader holds at most two chunks at a time).
    static let maxSpares = 2

    /// The longest line read: past it the file is refused (a file without newlines is not read
    /// whole into memory).
    private let maxLineBytes: Int
    /// Where the next chunk starts in the file.
    private var offset = 0
    /// The file's size when it was opened (nil for what is not a regular file).
    private let fileSize: Int?
    /// The longest line of a series file, by default.
    static let defaultMaxLineBytes = 1 << 28

    init(path: String, chunkBytes: Int, maxLineBytes: Int = FileChunks.defaultMaxLineBytes) throws(SeriesFileError) {
        guard let handle = fopen(path, "rb") else {
            throw SeriesFileError(file: path, line: 0, reason: "cannot open: \(String(cString: strerror(errno)))")
        }
        self.name = path
        self.handle = handle
        var status = stat()
        fileSize =
            fstat(fileno(handle), &status) == 0 && status.st_mode & S_IFMT == S_IFREG
            ? Int(clamping: status.st_size) : nil
        self.chunkBytes = Swift.max(1 << 12, chunkBytes)
        self.maxLineBytes = Swift.max(1, maxLineBytes)
    }

    deinit {
        fclose(handle)
    }

    /// Takes back a chunk ``read()`` gave, once nothing else holds it, to read the next into.
    func recycle(_ bytes: consuming [UInt8]) {
        if spares.count < Self.maxSpares { spares.append(bytes) }
    }

    /// The next chunk of whole lines (its last line may lack a newline at the end of the file),
    /// and whether it is the last; nil after the last.
    /// - Throws: ``SeriesFileError`` when the file cannot be read.
    func read() throws(SeriesFileError) -> (bytes: [UInt8], last: Bool)? {
        guard !atEnd else { return nil }
        // A spare's bytes are overwritten: only its count is adjusted (growing it writes zeros,
        // on first use and where a chunk is longer than the last).
        var buffer = spares.popLast() ?? []
        var filled = 0
        var first = true
        while true {
            // A line longer than a chunk: the buffer doubles, so a long line is copied a few
            // times, not once per chunk's worth of it.
            var wanted = first ? chunkBytes : Swift.max(chunkBytes, filled)
            if let fileSize {
                // No more than the file has left (by its size when opened; reads go on if it
                // grew), and one byte over so that the read that reaches the end sees it: a small
                // file is read into a buffer of its size, not a chunk's.
                let left = Swift.max(0, fileSize &- offset &- (first ? carry.count : filled))
                wanted = Swift.min(wanted, Swift.max(left &+ 1, 1 << 16))
            }
            let size = (first ? carry.count : filled) + wanted
            if buffer.count < size {
                // The standard library's fill, not a generic sequence's (element by element in
                // a debug build: seconds for a chunk).
                buffer.append(contentsOf: [UInt8](repeating: 0, count: size - buffer.count))
            } else if buffer.count > size {
                buffer.removeLast(buffer.count - size)
            }
            var failed = false
            let n = buffer.withUnsafeMutableBufferPointer { space -> Int in
                guard let base = space.baseAddress else { return 0 }
                if first {
                    carry.withUnsafeBufferPointer { had in
                        if let from = had.baseAddress { base.update(from: from, count: had.count) }
                    }
                    filled = carry.count
                }
                let n = fread(base + filled, 1, wanted, handle)
                failed = n < wanted && ferror(handle) != 0
                return n
            }
            if failed {
                throw SeriesFileError(file: name, line: 0, reason: "read error: \(String(cString: strerror(errno)))")
            }
            first = false
            let start = filled
            filled += n
            if n < wanted {
                buffer.removeLast(buffer.count - filled)
                carry.removeAll(keepingCapacity: true)
                atEnd = true
                offset += filled
                return (buffer, true)
            }
            // Only what was just read can hold the chunk's last newline: the bytes before it had none.
            if let newline = buffer[start..<filled].lastIndex(of: 0x0A) {
                carry.removeAll(keepingCapacity: true)
                carry.append(contentsOf: buffer[(newline + 1)..<filled])
                buffer.removeLast(buffer.count - newline - 1)
                offset += buffer.count
                return (buffer, false)
            }
            // No newline since the chunk began: one line, as long as what was read.
            if filled > maxLineBytes {
                atEnd = true
                throw SeriesFileError(
                    file: name,
                    line: 0,
                    reason: "the line at byte \(offset) is longer than \(maxLineBytes) bytes (no newline)"
                )
            }
        }
    }
}

/// A Prometheus or OpenMetrics file read in chunks of whole lines. Each chunk is parsed with the
/// declarations the lines before it left; its series are numbered from 0 within the chunk (the
/// parser keeps nothing of a chunk after it).
final class ExpositionChunks {
    let name: String
    /// How a chunk is parsed; any thread may use it.
    let parsing: ChunkParser
    private let file: FileChunks
    private var state: ParseState
    private var linesDone = 0

    init(path: String, format: ExpositionFormat, chunkBytes: Int) throws(SeriesFileError) {
        file = try FileChunks(path: path, chunkBytes: chunkBytes)
        self.name = path
        self.parsing = ChunkParser(name: path, parser: ExpositionParser(format: format, internSeries: true))
        self.state = ParseState(format: format)
        state.internSeries = true
    }

    /// The next chunk (see ``FileChunks/read()``).
    func read() throws(SeriesFileError) -> (bytes: [UInt8], last: Bool)? {
        try file.read()
    }

    /// Takes back a chunk ``read()`` gave (see ``FileChunks/recycle(_:)``).
    func recycle(_ bytes: consuming [UInt8]) {
        file.recycle(bytes)
    }

    /// Parses the next chunk: `body` gets each sample with the chunk's bytes (where its timestamp
    /// text is) and, the first time a series comes in this chunk, the series. False at the end.
    /// - Throws: ``SeriesFileError`` naming the first bad line, or the read error.
    func next(_ body: (_ bytes: [UInt8], RawSample, _ new: ParsedSeries?) -> Void) throws(SeriesFileError) -> Bool {
        guard let (buffer, last) = try read() else { return false }
        linesDone += try parsing.parse(buffer, last: last, state: &state, firstLine: linesDone + 1) {
            body(buffer, $0, $1)
        }
        recycle(consume buffer)
        return true
    }

    /// The state `buffer`'s comment lines leave, from `state`: where the chunk after it starts.
    /// Nil when a comment line is bad (parsing the chunk names it).
    func declarations(after buffer: [UInt8], from state: ParseState) -> ParseState? {
        try? parsing.parser.declarations(buffer, before: buffer.count, from: state)
    }

    /// The state the next chunk of ``next(_:)`` starts from, and the lines read so far.
    var position: (state: ParseState, lines: Int) {
        get { (state, linesDone) }
        set { (state, linesDone) = newValue }
    }
}

/// What one chunk of a file holds, for ``SeriesFile/outline(path:format:chunkBytes:)``: each
/// sample's series (by the chunk's number) and time, in file order; with `keepsSamples`, also
/// what the second pass needs of each (for a ``SampleSpill``).
struct ChunkOutline: Sendable {
    /// The chunk's series by number, in order of first appearance.
    var labels: [LabelSet] = []
    var numbers: [Int32] = []
    var times: [Int64] = []
    var usable = false
    var missingTimestamp: Int?
    /// Whether the columns below are filled.
    let keepsSamples: Bool
    var values: [Double] = []
    var lines: [Int] = []
    /// ``kindCode(_:)`` of each.
    var kinds: [UInt8] = []
    /// Where each sample's timestamp text is in `texts`.
    var textOffsets: [UInt32] = []
    var textCounts: [UInt32] = []
    var texts = TextArena()
    /// A timestamp's text too long to keep (past 4 GiB of text in a chunk): the samples are not
    /// kept (the second pass parses the text again).
    var textOverflow = false

    init(keepsSamples: Bool = false) {
        self.keepsSamples = keepsSamples
    }

    /// Room for `samples` without growing (a chunk holds about as many as the one before).
    init(reserving samples: Int, keepsSamples: Bool) {
        self.keepsSamples = keepsSamples
        numbers.reserveCapacity(samples)
        times.reserveCapacity(samples)
        guard keepsSamples else { return }
        values.reserveCapacity(samples)
        lines.reserveCapacity(samples)
        kinds.reserveCapacity(samples)
        textOffsets.reserveCapacity(samples)
        textCounts.reserveCapacity(samples)
    }

    mutating func add(_ sample: RawSample, _ new: ParsedSeries?, bytes: [UInt8]) {
        if let new { labels.append(new.labels) }
        guard let timestamp = sample.timestamp else {
            if missingTimestamp == nil { missingTimestamp = sample.line }
            return
        }
        guard sample.series < labels.count else { return }
        numbers.append(Int32(truncatingIfNeeded: sample.series))
        times.append(timestamp.milliseconds)
        if !usable && sample.value.isFinite { usable = true }
        guard keepsSamples else { return }
        let span = texts.add(bytes, sample.timestampBytes ?? 0..<0, time: timestamp)
        values.append(sample.value)
        lines.append(sample.line)
        kinds.append(Self.kindCode(sample.kind))
        guard let offset = UInt32(exactly: span.offset), let count = UInt32(exactly: span.count) else {
            textOverflow = true
            textOffsets.append(0)
            textCounts.append(0)
            return
        }
        textOffsets.append(offset)
        textCounts.append(count)
    }

    static func kindCode(_ kind: MetricKind) -> UInt8 { kind == .counter ? 1 : 0 }
    static func kind(code: UInt8) -> MetricKind { code == 1 ? .counter : .gauge }
}

/// One series' spacings between distinct times that come in order: a count per spacing (a
/// regular series has one or two), so its median is the median of every spacing.
struct SpacingCounts: Sendable {
    private var last = Int64.min
    private var spacing: Int64 = 0
    private var run = 0
    private var counts: [Int64: Int] = [:]

    /// Adds the next time (not before the last); true when it brought a spacing not seen before.
    mutating func add(_ time: Int64) -> Bool {
        guard last != .min else {
            last = time
            return false
        }
        guard time > last else { return false }
        let gap = time &- last
        last = time
        if gap == spacing {
            run += 1
            return false
        }
        if run > 0 { counts[spacing, default: 0] += run }
        spacing = gap
        run = 1
        return counts[gap] == nil
    }

    /// The median spacing in seconds (of n spacings, the (n/2)-th smallest); nil for none.
    func median() -> Double? {
        var all = counts
        if run > 0 { all[spacing, default: 0] += run }
        let total = all.values.reduce(0, +)
        guard total > 0 else { return nil }
        var seen = 0
        for gap in all.keys.sorted() {
            seen += all[gap] ?? 0
            if seen > total / 2 { return Double(gap) / 1000 }
        }
        return nil
    }
}

/// The chunks' outlines joined in file order, watching for the two layouts a file can be
/// streamed in: series after series, and time order (tick after tick).
struct Outliner {
    var outline: SeriesFileOutline
    private var seriesMajor = true
    private var timeOrdered = true
    private var index: [LabelSet: Int] = [:]
    private var missingTimestamp: Int?
    private var usable = false
    // Series after series: the series being read, its times, the spacings of those before.
    private var current = -1
    private var currentTimes: [Int64] = []
    private var lastSchedule: [Int64] = []
    private var medians: [Double] = []
    private var times = Set<Int64>()
    // In time order: the ticks so far, and each series' spacings.
    private var lastTime = Int64.min
    private var ticks: [Int64] = []
    private var spacings: [SpacingCounts] = []
    private var distinctSpacings = 0
    /// The most distinct spacings kept over all series: past it (timestamps that jitter by the
    /// millisecond, over many series) the file is read whole.
    static let maxDistinctSpacings = 1 << 21

    /// Whether the outline keeps every series' labels (``SeriesFileOutline/labels``).
    private(set) var keepsLabels: Bool

    init(name: String, format: SeriesFile.Format, keepsLabels: Bool = false) {
        outline = SeriesFileOutline(name: name, format: format)
        self.keepsLabels = keepsLabels
    }

    /// Whether the file may still be streamed.
    var streamable: Bool { seriesMajor || timeOrdered }

    /// Whether the file may still be streamed in time order.
    var inTimeOrder: Bool { timeOrdered }

    /// The labels are no longer needed (the spill was dropped).
    mutating func stopKeepingLabels() {
        keepsLabels = false
        outline.labels = []
    }

    /// Joins the next chunk; returns the file's number of each of its series (by the chunk's
    /// number), empty once the file cannot be streamed.
    @discardableResult
    mutating func merge(_ chunk: ChunkOutline) -> [Int] {
        guard streamable else { return [] }
        var ids: [Int] = []
        ids.reserveCapacity(chunk.labels.count)
        for labels in chunk.labels {
            if let known = index[labels] {
                ids.append(known)
            } else {
                index[labels] = outline.series
                ids.append(outline.series)
                if keepsLabels { outline.labels.append(labels) }
                outline.series += 1
                if timeOrdered { spacings.append(SpacingCounts()) }
            }
        }
        for k in chunk.numbers.indices {
            let id = ids[Int(chunk.numbers[k])]
            let time = chunk.times[k]
            if seriesMajor {
                if id != current {
                    // Series after series: each series that comes is the next new one.
                    if id == current + 1 {
                        close()
                        current = id
                    } else {
                        seriesMajor = false
                        currentTimes = []
                        times = []
                    }
                }
                if seriesMajor { currentTimes.append(time) }
            }
            if timeOrdered {
                if time < lastTime || distinctSpacings > Self.maxDistinctSpacings {
                    timeOrdered = false
                    spacings = []
                    ticks = []
                } else {
                    if time != lastTime {
                        ticks.append(time)
                        lastTime = time
                    }
                    if spacings[id].add(time) { distinctSpacings += 1 }
                }
            }
            if !streamable { return [] }
        }
        outline.rows += chunk.numbers.count
        usable = usable || chunk.usable
        if missingTimestamp == nil { missingTimestamp = chunk.missingTimestamp }
        return ids
    }

    /// The series just ended: its spacing, and its times among the file's (each schedule that
    /// several series share in a row is added once).
    private mutating func close() {
        if let median = SeriesFile.medianSpacing(&currentTimes) { medians.append(median) }
        if currentTimes != lastSchedule {
            times.formUnion(currentTimes)
            swap(&lastSchedule, &currentTimes)
        }
        currentTimes.removeAll(keepingCapacity: true)
    }

    /// The outline; nil when the file can be streamed in neither layout. A file in time order
    /// streams so even when it is also series after series (one series): its blocks are then
    /// stretches of time, not whole series.
    /// - Throws: ``SeriesFileError`` for a sample without a timestamp, or no usable data.
    mutating func finish() throws(SeriesFileError) -> SeriesFileOutline? {
        guard streamable else { return nil }
        if let line = missingTimestamp {
            throw SeriesFileError(
                file: outline.name,
                line: line,
                reason: "sample has no timestamp; replay needs every sample timestamped"
            )
        }
        guard usable else {
            throw SeriesFileError(
                file: outline.name,
                line: 0,
                reason: "no usable data: the file has no samples with values"
            )
        }
        if timeOrdered {
            outline.layout = .timeOrder
            outline.times = ticks.map { Timestamp(milliseconds: $0) }
            medians = spacings.compactMap { $0.median() }
        } else {
            close()
            outline.layout = .seriesAfterSeries
            outline.times = times.sorted().map { Timestamp(milliseconds: $0) }
        }
        medians.sort()
        outline.step = medians.isEmpty ? nil : medians[medians.count / 2]
        return outline
    }
}

/// Parses chunks of one file.
struct ChunkParser: Sendable {
    let name: String
    let parser: ExpositionParser

    /// Parses one chunk from `state` (the declarations of the lines before it), numbering its lines
    /// from `firstLine`; returns how many lines it has. `state` then holds the chunk's
    /// declarations and no series.
    func parse(
        _ buffer: [UInt8],
        last: Bool,
        state: inout ParseState,
        firstLine: Int,
        _ body: (RawSample, _ new: ParsedSeries?) -> Void
    ) throws(SeriesFileError) -> Int {
        do throws(ExpositionError) {
            let lines =
                buffer.isEmpty
                ? 0 : try parser.parseLines(buffer, 0..<buffer.count, state: &state, firstLine: firstLine, body)
            state.forgetSeries()
            if last { try parser.finish(state) }
            return lines
        } catch {
            throw SeriesFileError(file: name, line: error.line, reason: error.reason)
        }
    }
}

/// What a first pass over a large exposition file learns, so the second can score it a block of
/// series at a time (``SeriesFile/outline(path:format:kind:chunkBytes:)``).
public struct SeriesFileOutline: Sendable {
    /// The file's name, for messages.
    public var name: String
    public var format: SeriesFile.Format
    /// How many distinct series, and samples.
    public var series = 0
    public var rows = 0
    /// Every distinct timestamp of the file, in time order: the ticks every series' clock moves
    /// through.
    public var times: [Timestamp] = []
    /// The median over series of each series' median spacing (as ``SeriesFile`` replay infers
    /// the step); nil when no series has two distinct timestamps.
    public var step: Double?
    /// How the file is laid out, and so streamed.
    public var layout = Layout.seriesAfterSeries
    /// What the reader of the file should know (a CSV's columns that are not scored).
    public var warnings: [String] = []
    /// The samples as the first pass parsed them, for the second to read back instead of the
    /// text (``SeriesFileBlocks``); nil when the first pass was not asked to keep them or could
    /// not (no temporary file, a full disk).
    package var spill: SampleSpill?
    /// Every series' labels by the file's number, when `spill` is there.
    package var labels: [LabelSet] = []

    /// Whether the second pass reads the samples back from a temporary file (not the text).
    public var isSpilled: Bool { spill != nil }

    public enum Layout: Hashable, Sendable {
        /// Each series' samples together: blocks of whole series, each through every tick.
        case seriesAfterSeries
        /// Timestamps never go back (tick after tick, or one series): blocks of whole ticks,
        /// through one bank carried from block to block.
        case timeOrder
    }
}

extension SeriesFile {
    /// The format of a file a replay can stream (Prometheus text, OpenMetrics or CSV), told as
    /// ``load(path:format:kind:threads:)`` tells it (by name, then by its first 4 KiB and last 16
    /// bytes); nil for a recording, a compressed file, one that is not a regular file (a pipe) or
    /// one that cannot be read.
    public static func streamableFormat(path: String, format: Format?) -> Format? {
        // Two passes read the file twice: a pipe (standard input, a process substitution) is
        // read once, whole.
        var status = stat()
        guard stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { return nil }
        if let format { return format == .recording ? nil : format }
        if isRecordingName(path) { return nil }
        guard let handle = fopen(path, "rb") else { return nil }
        defer { fclose(handle) }
        var head = [UInt8](repeating: 0, count: 4096)
        let n = head.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, handle) }
        head.removeLast(head.count - n)
        var tail = [UInt8](repeating: 0, count: 16)
        if fseek(handle, -16, SEEK_END) == 0 {
            let m = tail.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, handle) }
            tail.removeLast(tail.count - m)
        } else {
            tail = Array(head.suffix(16))
        }
        guard !head.starts(with: [0x1F, 0x8B]) else { return nil }
        let sample = n < 4096 ? head : head + tail
        guard let detected = try? detectFormat(sample, name: path) else { return nil }
        return detected == .recording ? nil : detected
    }

    /// The first pass over an exposition file read in chunks: its series, samples, ticks, step
    /// and layout. Nil when the file is neither laid out series after series nor in time order
    /// (a series comes back after another began, and a timestamp goes back): it cannot be
    /// scored a block at a time; read it whole.
    ///
    /// - Throws: ``SeriesFileError`` as ``load(path:format:kind:threads:)`` would for the same
    ///   file: the first bad line, a sample without a timestamp, no usable data.
    ///
    /// - Parameters:
    ///   - threads: with more than one, two chunks are parsed at a time side by side.
    ///   - keepSamples: keep the parsed samples in a temporary file (``SampleSpill``) for the
    ///     second pass to read back instead of parsing the text again; without a temporary file
    ///     (none can be made, it would be held in memory, the disk fills) the outline has none and
    ///     the second pass parses.
    ///   - keepOnlyInTimeOrder: keep them only while the file is in time order (for a detector
    ///     whose series cannot be split, series after series is read whole).
    public static func outline(
        path: String,
        format: Format,
        chunkBytes: Int = 1 << 24,
        threads: Int = 2,
        keepSamples: Bool = false,
        keepOnlyInTimeOrder: Bool = false
    ) throws(SeriesFileError) -> SeriesFileOutline? {
        try outline(
            path: path,
            format: format,
            chunkBytes: chunkBytes,
            threads: threads,
            spill: keepSamples ? SampleSpill.create() : nil,
            timeOrderOnly: keepOnlyInTimeOrder
        )
    }

    /// The first pass, keeping the samples in `spill` (none: not kept).
    package static func outline(
        path: String,
        format: Format,
        chunkBytes: Int,
        threads: Int,
        spill: SampleSpill?,
        timeOrderOnly: Bool = false
    ) throws(SeriesFileError) -> SeriesFileOutline? {
        let chunks = try ExpositionChunks(
            path: path,
            format: format == .openmetrics ? .openMetrics : .text,
            chunkBytes: chunkBytes
        )
        var spill = spill
        var outline = Outliner(name: path, format: format, keepsLabels: spill != nil)
        // The most samples a chunk held so far: room the next chunks' outlines start with.
        var samplesPerChunk = 0
        // Two chunks at a time, side by side: the second from the declarations the first's
        // comment lines leave.
        while outline.streamable {
            // No binding holds a chunk but `pair`: once parsed, the chunks go back to be read into.
            var pair: [(bytes: [UInt8], last: Bool)] = []
            if let chunk = try chunks.read() { pair.append(chunk) } else { break }
            if threads > 1, !pair[0].last, let chunk = try chunks.read() { pair.append(chunk) }
            var (state, lines) = chunks.position
            var starts = [(state, lines + 1)]
            if pair.count == 2 {
                guard let next = chunks.declarations(after: pair[0].bytes, from: state) else {
                    // A bad comment line in the first: parsing it says where.
                    var bad = state
                    let bytes = pair[0].bytes
                    _ = try chunks.parsing.parse(bytes, last: false, state: &bad, firstLine: lines + 1) { _, _ in }
                    return nil
                }
                let firstLines = SeriesFile.lineCount(pair[0].bytes, 0..<pair[0].bytes.count)
                starts.append((next, lines + 1 + firstLines))
            }
            var results = [Result<(ChunkOutline, ParseState, Int), SeriesFileError>?](repeating: nil, count: pair.count)
            let parsing = chunks.parsing
            let work = consume pair
            let begin = starts
            let reserve = samplesPerChunk
            let keeping = spill != nil
            results.withUnsafeMutableBufferPointer { results in
                let out = UnsafeSendablePointer(results)
                DispatchQueue.concurrentPerform(iterations: work.count) { k in
                    var state = begin[k].0
                    var chunk = ChunkOutline(reserving: reserve, keepsSamples: keeping)
                    let bytes = work[k].bytes
                    do throws(SeriesFileError) {
                        let count = try parsing.parse(
                            bytes,
                            last: work[k].last,
                            state: &state,
                            firstLine: begin[k].1
                        ) { sample, new in chunk.add(sample, new, bytes: bytes) }
                        out.value[k] = .success((chunk, state, count))
                    } catch {
                        out.value[k] = .failure(error)
                    }
                }
            }
            for chunk in consume work { chunks.recycle(chunk.bytes) }
            for result in results {
                guard let result else { continue }
                let (chunk, after, count) = try result.get()
                samplesPerChunk = Swift.max(samplesPerChunk, chunk.numbers.count)
                let ids = outline.merge(chunk)
                if let kept = spill {
                    // Kept only while it may be read back: not for a file that cannot be streamed,
                    // nor series after series for a detector that is not split (`keepSamples`
                    // asked only in time order), nor after a failed write (its space given back).
                    let readable = !chunk.textOverflow && outline.streamable && (!timeOrderOnly || outline.inTimeOrder)
                    if readable { kept.append(chunk, ids: ids) }
                    if !readable || kept.failed {
                        spill = nil
                        outline.stopKeepingLabels()
                    }
                }
                state = after
                lines += count
            }
            chunks.position = (state, lines)
        }
        guard var result = try outline.finish() else { return nil }
        if let spill, spill.finishWriting() {
            result.spill = spill
        } else {
            result.labels = []
        }
        return result
    }

    /// The median spacing between distinct sorted `times` (sorted in place); nil for fewer than
    /// two distinct times.
    static func medianSpacing(_ times: inout [Int64]) -> Double? {
        times.sort()
        var gaps: [Int64] = []
        for i in times.indices.dropFirst() where times[i] > times[i - 1] { gaps.append(times[i] - times[i - 1]) }
        guard !gaps.isEmpty else { return nil }
        gaps.sort()
        return Double(gaps[gaps.count / 2]) / 1000
    }
}

/// The second pass over an exposition file that ``SeriesFile/outline(path:format:chunkBytes:)``
/// found streamable: blocks of about `blockRows` samples, each a ``SeriesFile`` of its own, in
/// file order. Series after series, a block holds whole series (a longer series is a block of its
/// own); in time order, whole ticks. The errors the file could throw were thrown by the outline.
/// The samples come from the outline's ``SampleSpill`` when it has one, else from parsing the
/// text again: the same blocks either way. (Reading the spill back can fail: a read error of the
/// temporary file.)
public final class SeriesFileBlocks {
    private let source: Source
    private let format: SeriesFile.Format
    private let layout: SeriesFileOutline.Layout
    private let kind: MetricKind?
    private let blockRows: Int
    private var ready: [SeriesFile] = []
    private var ended = false
    /// Nil only while a chunk fills it.
    private var filling: Filling?
    /// The spilled chunk last read.
    private var spilled = SpilledChunk()

    private enum Source {
        case text(ExpositionChunks)
        /// The spill, and every series' labels by the file's number.
        case spill(SampleSpill, [LabelSet])
    }

    /// The block being filled: its series, rows and texts; its last series and time. A value, so
    /// that parsing a chunk fills a local copy (a class's stored properties would be checked for
    /// exclusive access at run time, on every sample).
    private struct Filling {
        let name: String
        let format: SeriesFile.Format
        let layout: SeriesFileOutline.Layout
        let kind: MetricKind?
        let blockRows: Int
        var series: [LabelSet] = []
        var rows: [SeriesFile.Row] = []
        var texts = TextArena()
        var currentLabels: LabelSet?
        var lastTime: Timestamp?
        /// In time order: the block's series by labels, and by the chunk's numbers (-1: not yet).
        var indexInBlock: [LabelSet: Int] = [:]
        var indexOfNumber: [Int] = []
        /// The chunk's series by its numbers.
        var labelsOfNumber: [LabelSet] = []
        /// The chunk's number of the series of the last sample: labels are compared only where
        /// the number changes (two spellings of one label set are one series).
        var currentNumber = -1
        var done: [SeriesFile] = []

        init(
            name: String,
            format: SeriesFile.Format,
            layout: SeriesFileOutline.Layout,
            kind: MetricKind?,
            blockRows: Int
        ) {
            self.name = name
            self.format = format
            self.layout = layout
            self.kind = kind
            self.blockRows = blockRows
        }

        /// A new chunk begins: its series are numbered from 0 (`labels`, or as they come).
        mutating func startChunk(labels: [LabelSet] = []) {
            labelsOfNumber = labels
            currentNumber = -1
            indexOfNumber.removeAll(keepingCapacity: true)
            indexOfNumber.append(contentsOf: repeatElement(-1, count: labels.count))
        }

        /// The next sample of the chunk, its timestamp's text in `bytes`; `new` its series, the
        /// first time it comes in the chunk.
        mutating func add(_ bytes: [UInt8], _ sample: RawSample, _ new: ParsedSeries?) {
            if let new {
                labelsOfNumber.append(new.labels)
                indexOfNumber.append(-1)
            }
            guard sample.series < labelsOfNumber.count, let timestamp = sample.timestamp,
                let text = sample.timestampBytes
            else { return }
            let index: Int
            switch layout {
            case .seriesAfterSeries:
                if sample.series != currentNumber {
                    currentNumber = sample.series
                    let labels = labelsOfNumber[sample.series]
                    if labels != currentLabels {
                        if rows.count >= blockRows { complete() }
                        series.append(labels)
                        currentLabels = labels
                    }
                }
                index = series.count - 1
            case .timeOrder:
                if rows.count >= blockRows, timestamp != lastTime { complete() }
                lastTime = timestamp
                if indexOfNumber[sample.series] >= 0 {
                    index = indexOfNumber[sample.series]
                } else {
                    let labels = labelsOfNumber[sample.series]
                    if let known = indexInBlock[labels] {
                        index = known
                    } else {
                        index = series.count
                        indexInBlock[labels] = index
                        series.append(labels)
                    }
                    indexOfNumber[sample.series] = index
                }
            }
            rows.append(
                SeriesFile.Row(
                    series: index,
                    timestamp: timestamp,
                    text: texts.add(bytes, text, time: timestamp),
                    value: sample.value,
                    kind: kind ?? sample.kind,
                    line: sample.line
                )
            )
        }

        mutating func complete() {
            done.append(SeriesFile(name: name, format: format, series: series, rows: rows, texts: texts.bytes))
            series = []
            rows = []
            rows.reserveCapacity(blockRows)
            texts = TextArena()
            indexInBlock = [:]
            for k in indexOfNumber.indices { indexOfNumber[k] = -1 }
        }
    }

    /// - Parameters:
    ///   - kind: force every series to be a counter or a gauge (as ``SeriesFile/load(path:format:kind:threads:)``).
    public convenience init(
        path: String,
        format: SeriesFile.Format,
        layout: SeriesFileOutline.Layout = .seriesAfterSeries,
        kind: MetricKind? = nil,
        chunkBytes: Int = 1 << 24,
        blockRows: Int = 1 << 17
    ) throws(SeriesFileError) {
        try self.init(
            path: path,
            format: format,
            outline: nil,
            layout: layout,
            kind: kind,
            chunkBytes: chunkBytes,
            blockRows: blockRows
        )
    }

    /// The blocks of the file `outline` describes, read back from its spill when it has one (a
    /// spill is read once: the blocks of a second reader are parsed from the text).
    public convenience init(
        outline: SeriesFileOutline,
        kind: MetricKind? = nil,
        chunkBytes: Int = 1 << 24,
        blockRows: Int = 1 << 17
    ) throws(SeriesFileError) {
        try self.init(
            path: outline.name,
            format: outline.format,
            outline: outline,
            layout: outline.layout,
            kind: kind,
            chunkBytes: chunkBytes,
            blockRows: blockRows
        )
    }

    private init(
        path: String,
        format: SeriesFile.Format,
        outline: SeriesFileOutline?,
        layout: SeriesFileOutline.Layout,
        kind: MetricKind?,
        chunkBytes: Int,
        blockRows: Int
    ) throws(SeriesFileError) {
        if let outline, let spill = outline.spill, spill.claim() {
            source = .spill(spill, outline.labels)
        } else {
            source = .text(
                try ExpositionChunks(
                    path: path,
                    format: format == .openmetrics ? .openMetrics : .text,
                    chunkBytes: chunkBytes
                )
            )
        }
        self.format = format
        self.layout = layout
        self.kind = kind
        self.blockRows = Swift.max(1, blockRows)
        filling = Filling(name: path, format: format, layout: layout, kind: kind, blockRows: self.blockRows)
    }

    /// The next block; nil after the last.
    public func next() throws(SeriesFileError) -> SeriesFile? {
        while ready.isEmpty && !ended {
            // Taken out for the chunk and put back after it, never copied (its arrays stay unique).
            guard var block = filling.take() else { return nil }
            defer {
                ready.append(contentsOf: block.done)
                block.done = []
                filling = block
            }
            let more: Bool
            switch source {
            case .text(let chunks):
                block.startChunk()
                more = try chunks.next { bytes, sample, new in block.add(bytes, sample, new) }
            case .spill(let spill, let labels):
                more = try spill.next(into: &spilled, file: block.name, series: labels.count)
                if more { Self.replay(spilled, labels: labels, into: &block) }
            }
            if !more {
                ended = true
                if !block.rows.isEmpty { block.complete() }
            }
        }
        return ready.isEmpty ? nil : ready.removeFirst()
    }

    /// A spilled chunk's samples into `block`, as parsing the chunk would give them.
    private static func replay(_ chunk: SpilledChunk, labels: [LabelSet], into block: inout Filling) {
        // The ids are the file's (checked as read).
        block.startChunk(labels: chunk.ids.map { labels[$0] })
        for k in chunk.numbers.indices {
            let offset = Int(chunk.textOffsets[k])
            let sample = RawSample(
                series: Int(chunk.numbers[k]),
                value: chunk.values[k],
                type: .unknown,
                kind: ChunkOutline.kind(code: chunk.kinds[k]),
                timestamp: Timestamp(milliseconds: chunk.times[k]),
                timestampBytes: offset..<(offset + Int(chunk.textCounts[k])),
                line: chunk.lines[k]
            )
            block.add(chunk.texts, sample, nil)
        }
    }
}

/// Where the second pass of a streamed replay takes its blocks from.
public protocol SeriesBlockSource: AnyObject {
    /// The next block; nil after the last.
    func next() throws(SeriesFileError) -> SeriesFile?
}

extension SeriesFileBlocks: SeriesBlockSource {}

extension SeriesFile {
    /// The first pass over a CSV file read in chunks (see ``outline(path:format:chunkBytes:threads:)``):
    /// nil unless its rows are in time order (rows out of order are scored in time order, which
    /// needs the whole file).
    /// - Throws: ``SeriesFileError`` as ``load(path:format:kind:threads:)`` would for the same file.
    public static func outlineCSV(path: String, chunkBytes: Int = 1 << 24) throws(SeriesFileError)
        -> SeriesFileOutline?
    {
        let file = try FileChunks(path: path, chunkBytes: chunkBytes)
        var reader = CSVReader(name: path)
        var outliner = Outliner(name: path, format: .csv)
        var rows = 0
        while outliner.streamable, let (bytes, _) = try file.read() {
            var chunk = ChunkOutline()
            chunk.labels = [CSVSeries.series]
            var texts = TextArena()
            try reader.parse(bytes, 0..<bytes.count, texts: &texts) { row in
                chunk.numbers.append(0)
                chunk.times.append(row.timestamp.milliseconds)
                if !chunk.usable, row.value?.isFinite == true { chunk.usable = true }
            }
            file.recycle(consume bytes)
            rows += chunk.numbers.count
            outliner.merge(chunk)
        }
        guard outliner.streamable else { return nil }
        guard rows > 0 else { throw CSVSeries.noRows(path) }
        guard var outline = try outliner.finish(), outline.layout == .timeOrder else { return nil }
        if let warning = reader.warning { outline.warnings.append(warning) }
        return outline
    }
}

/// The second pass over a CSV file in time order: blocks of whole ticks of about `blockRows`
/// rows, in file order.
public final class CSVBlocks: SeriesBlockSource {
    private let file: FileChunks
    private var reader: CSVReader
    private let kind: MetricKind?
    private let blockRows: Int
    private var ready: [SeriesFile] = []
    private var ended = false
    private var rows: [SeriesFile.Row] = []
    private var texts = TextArena()
    private var lastTime: Timestamp?

    public init(path: String, kind: MetricKind? = nil, chunkBytes: Int = 1 << 24, blockRows: Int = 1 << 17)
        throws(SeriesFileError)
    {
        file = try FileChunks(path: path, chunkBytes: chunkBytes)
        reader = CSVReader(name: path)
        self.kind = kind
        self.blockRows = Swift.max(1, blockRows)
    }

    public func next() throws(SeriesFileError) -> SeriesFile? {
        while ready.isEmpty && !ended {
            guard let (bytes, _) = try file.read() else {
                ended = true
                if !rows.isEmpty { complete() }
                continue
            }
            var chunkRows: [SeriesFile.Row] = []
            var chunkTexts = TextArena()
            try reader.parse(bytes, 0..<bytes.count, texts: &chunkTexts) { chunkRows.append($0) }
            file.recycle(consume bytes)
            let arena = chunkTexts.bytes
            for var row in chunkRows {
                if rows.count >= blockRows, row.timestamp != lastTime { complete() }
                lastTime = row.timestamp
                row.text = texts.add(arena, row.text.offset..<(row.text.offset + row.text.count), time: row.timestamp)
                if let kind { row.kind = kind }
                rows.append(row)
            }
        }
        return ready.isEmpty ? nil : ready.removeFirst()
    }

    private func complete() {
        ready.append(
            SeriesFile(name: file.name, format: .csv, series: [CSVSeries.series], rows: rows, texts: texts.bytes)
        )
        rows = []
        rows.reserveCapacity(blockRows)
        texts = TextArena()
    }
}
