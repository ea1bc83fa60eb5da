import FlatlineCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A Prometheus or OpenMetrics file read in chunks of whole lines, so that what is held at once
/// is a chunk, not the file. Each chunk is parsed with the declarations the lines before it left;
/// its series are numbered from 0 within the chunk (the parser keeps nothing of a chunk after it).
final class ExpositionChunks {
    let name: String
    private let parser: ExpositionParser
    private let chunkBytes: Int
    private let handle: UnsafeMutablePointer<FILE>
    private var state: ParseState
    /// The bytes after the last newline of what was read: the start of the next chunk.
    private var carry: [UInt8] = []
    private var linesDone = 0
    private var atEnd = false

    init(path: String, format: ExpositionFormat, chunkBytes: Int) throws(SeriesFileError) {
        guard let handle = fopen(path, "rb") else {
            throw SeriesFileError(file: path, line: 0, reason: "cannot open: \(String(cString: strerror(errno)))")
        }
        self.name = path
        self.handle = handle
        self.chunkBytes = Swift.max(1 << 12, chunkBytes)
        self.parser = ExpositionParser(format: format, internSeries: true)
        self.state = ParseState(format: format)
        state.internSeries = true
    }

    deinit {
        fclose(handle)
    }

    /// Parses the next chunk: `body` gets each sample with the chunk's bytes (where its timestamp
    /// text is) and, the first time a series comes in this chunk, the series. False at the end.
    /// - Throws: ``SeriesFileError`` naming the first bad line, or the read error.
    func next(_ body: (_ bytes: [UInt8], RawSample, _ new: ParsedSeries?) -> Void) throws(SeriesFileError) -> Bool {
        guard !atEnd else { return false }
        var buffer = carry
        carry = []
        let wanted = chunkBytes
        var whole = 0
        while true {
            let old = buffer.count
            buffer.append(contentsOf: repeatElement(0, count: wanted))
            let n = buffer.withUnsafeMutableBytes { fread($0.baseAddress.map { $0 + old }, 1, wanted, handle) }
            buffer.removeLast(wanted - n)
            if n < wanted {
                if ferror(handle) != 0 {
                    throw SeriesFileError(
                        file: name,
                        line: 0,
                        reason: "read error: \(String(cString: strerror(errno)))"
                    )
                }
                atEnd = true
                whole = buffer.count
                break
            }
            // A chunk ends after its last newline; a line longer than a chunk makes it longer.
            if let newline = buffer.lastIndex(of: 0x0A) {
                whole = newline + 1
                carry = Array(buffer[whole...])
                buffer.removeLast(buffer.count - whole)
                break
            }
        }
        if whole > 0 {
            do throws(ExpositionError) {
                linesDone += try parser.parseLines(buffer, 0..<whole, state: &state, firstLine: linesDone + 1) {
                    sample,
                    new in
                    body(buffer, sample, new)
                }
            } catch {
                throw SeriesFileError(file: name, line: error.line, reason: error.reason)
            }
            state.forgetSeries()
        }
        if atEnd {
            do throws(ExpositionError) {
                try parser.finish(state)
            } catch {
                throw SeriesFileError(file: name, line: error.line, reason: error.reason)
            }
        }
        return true
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
}

extension SeriesFile {
    /// Whether a file is Prometheus text or OpenMetrics, told as ``load(path:format:kind:threads:)``
    /// tells it (by name, then by its first 4 KiB and last 16 bytes); nil for another format, a
    /// compressed file or one that cannot be read.
    public static func expositionFormat(path: String, format: Format?) -> Format? {
        if let format { return format == .prometheus || format == .openmetrics ? format : nil }
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
        return detected == .prometheus || detected == .openmetrics ? detected : nil
    }

    /// The first pass over an exposition file read in chunks: its series, samples, ticks and
    /// step. Nil when the file is not laid out series after series (a series comes back after
    /// another began: it cannot be scored a block at a time; read it whole).
    ///
    /// - Throws: ``SeriesFileError`` as ``load(path:format:kind:threads:)`` would for the same
    ///   file: the first bad line, a sample without a timestamp, no usable data.
    public static func outline(
        path: String,
        format: Format,
        chunkBytes: Int = 1 << 24
    ) throws(SeriesFileError) -> SeriesFileOutline? {
        let chunks = try ExpositionChunks(
            path: path,
            format: format == .openmetrics ? .openMetrics : .text,
            chunkBytes: chunkBytes
        )
        var outline = SeriesFileOutline(name: path, format: format)
        var index: [LabelSet: Int] = [:]
        var idOfNumber: [Int] = []
        var current = -1
        var currentTimes: [Int64] = []
        var medians: [Double] = []
        var times = Set<Int64>()
        var missingTimestamp: Int?
        var usable = false
        var seriesMajor = true
        while seriesMajor {
            idOfNumber.removeAll(keepingCapacity: true)
            let more = try chunks.next { _, sample, new in
                guard seriesMajor else { return }
                var isNew = false
                if let new {
                    // A chunk numbers its series from 0 in order of first appearance.
                    if let known = index[new.labels] {
                        idOfNumber.append(known)
                    } else {
                        index[new.labels] = outline.series
                        idOfNumber.append(outline.series)
                        outline.series += 1
                        isNew = true
                    }
                }
                guard sample.series < idOfNumber.count else { return }
                let id = idOfNumber[sample.series]
                if id != current {
                    // Another series: the one before has ended, unless this one had begun already.
                    guard isNew || current < 0 else {
                        seriesMajor = false
                        return
                    }
                    if let median = Self.medianSpacing(&currentTimes) { medians.append(median) }
                    currentTimes.removeAll(keepingCapacity: true)
                    current = id
                }
                guard let timestamp = sample.timestamp else {
                    if missingTimestamp == nil { missingTimestamp = sample.line }
                    return
                }
                outline.rows += 1
                currentTimes.append(timestamp.milliseconds)
                times.insert(timestamp.milliseconds)
                if !usable && sample.value.isFinite { usable = true }
            }
            if !more { break }
        }
        guard seriesMajor else { return nil }
        if let median = Self.medianSpacing(&currentTimes) { medians.append(median) }
        if let line = missingTimestamp {
            throw SeriesFileError(
                file: path,
                line: line,
                reason: "sample has no timestamp; replay needs every sample timestamped"
            )
        }
        guard usable else {
            throw SeriesFileError(file: path, line: 0, reason: "no usable data: the file has no samples with values")
        }
        outline.times = times.sorted().map { Timestamp(milliseconds: $0) }
        medians.sort()
        outline.step = medians.isEmpty ? nil : medians[medians.count / 2]
        return outline
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

/// The second pass over an exposition file laid out series after series: blocks of whole series
/// of about `blockRows` samples each (a longer series is a block of its own), each a
/// ``SeriesFile`` of its own, in file order. Use after ``SeriesFile/outline(path:format:chunkBytes:)``
/// said the file is laid out so: the errors it would throw were thrown there.
public final class SeriesFileBlocks {
    private let chunks: ExpositionChunks
    private let format: SeriesFile.Format
    private let kind: MetricKind?
    private let blockRows: Int
    private var ready: [SeriesFile] = []
    private var ended = false
    // The block being filled, and its last series.
    private var series: [LabelSet] = []
    private var rows: [SeriesFile.Row] = []
    private var texts = TextArena()
    private var currentLabels: LabelSet?

    /// - Parameters:
    ///   - kind: force every series to be a counter or a gauge (as ``SeriesFile/load(path:format:kind:threads:)``).
    public init(
        path: String,
        format: SeriesFile.Format,
        kind: MetricKind? = nil,
        chunkBytes: Int = 1 << 24,
        blockRows: Int = 1 << 19
    ) throws(SeriesFileError) {
        chunks = try ExpositionChunks(
            path: path,
            format: format == .openmetrics ? .openMetrics : .text,
            chunkBytes: chunkBytes
        )
        self.format = format
        self.kind = kind
        self.blockRows = Swift.max(1, blockRows)
    }

    /// The next block; nil after the last.
    public func next() throws(SeriesFileError) -> SeriesFile? {
        while ready.isEmpty && !ended {
            var labelsOfNumber: [LabelSet] = []
            // The chunk's number of the series of the last sample: labels are compared only
            // where the number changes (two spellings of one label set are one series).
            var currentNumber = -1
            let more = try chunks.next { bytes, sample, new in
                if let new { labelsOfNumber.append(new.labels) }
                guard sample.series < labelsOfNumber.count, let timestamp = sample.timestamp,
                    let text = sample.timestampBytes
                else { return }
                if sample.series != currentNumber {
                    currentNumber = sample.series
                    let labels = labelsOfNumber[sample.series]
                    if labels != currentLabels {
                        if rows.count >= blockRows { complete() }
                        series.append(labels)
                        currentLabels = labels
                    }
                }
                rows.append(
                    SeriesFile.Row(
                        series: series.count - 1,
                        timestamp: timestamp,
                        text: texts.add(bytes, text, time: timestamp),
                        value: sample.value,
                        kind: kind ?? sample.kind,
                        line: sample.line
                    )
                )
            }
            if !more {
                ended = true
                if !rows.isEmpty { complete() }
            }
        }
        return ready.isEmpty ? nil : ready.removeFirst()
    }

    private func complete() {
        ready.append(
            SeriesFile(name: chunks.name, format: format, series: series, rows: rows, texts: texts.bytes)
        )
        series = []
        rows = []
        rows.reserveCapacity(blockRows)
        texts = TextArena()
    }
}
