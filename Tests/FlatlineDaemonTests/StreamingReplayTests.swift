import FlatlineCore
import FlatlineIngest
import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineDaemon

/// A file laid out series after series is replayed a block of series at a time, read in chunks:
/// the same bytes and totals as the whole file in one bank, whatever the chunk, block and core
/// counts.
@Suite("Replay a block of series at a time")
struct StreamingReplayTests {
    /// How the samples are laid out.
    enum Layout {
        /// Series after series, as `promtool tsdb dump` and `gen_dataset.py` write them.
        case series
        /// In time order (a stable sort of the above by time).
        case time
        /// The k-th sample of every series, then the (k+1)-th: neither (series that skip a
        /// sample fall behind, so times go back).
        case neither
    }

    /// Series on schedules of their own (every 15 s, some 7 s later, some every 30 s), samples
    /// missing now and then, counters with a reset, a NaN, a spike.
    static func file(series: Int, points: Int, openMetrics: Bool = false, layout: Layout = .series) -> String {
        var generator = UInt64(7)
        func next() -> UInt64 {
            generator = generator &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return generator >> 33
        }
        var samples: [[String]] = Array(repeating: [], count: series)
        var times: [[Int]] = Array(repeating: [], count: series)
        var counters = [Int](repeating: 0, count: series)
        for s in 0..<series {
            for k in 0..<points {
                if next() % 25 == 0 || (s % 5 == 1 && k % 2 == 1) { continue }
                let ms = 1_700_000_000_000 + k * 15_000 + (s % 7 == 0 ? 7_000 : 0)
                times[s].append(ms)
                let time = openMetrics ? "\(ms / 1000).\(String(ms % 1000).leftPadded(3))" : "\(ms)"
                if s % 2 == 0 {
                    counters[s] += Int(next() % 50) * (k > 150 && k < 160 && s == 4 ? 20 : 1)
                    if k == 100 && s == 8 { counters[s] = 0 }
                    samples[s].append("requests_total{svc=\"s\(s)\"} \(counters[s]) \(time)")
                } else {
                    let value = Double(next() % 1000) / 100 + (k == 120 && s == 3 ? 80 : 10)
                    samples[s].append("temperature{svc=\"s\(s)\"} \(k == 50 && s == 5 ? "NaN" : String(value)) \(time)")
                }
            }
        }
        var lines = ["# TYPE requests_total counter", "# TYPE temperature gauge"]
        switch layout {
        case .series:
            for s in 0..<series { lines += samples[s] }
        case .time:
            let all = (0..<series).flatMap { s in samples[s].indices.map { (times[s][$0], samples[s][$0]) } }
            lines += all.enumerated().sorted { ($0.element.0, $0.offset) < ($1.element.0, $1.offset) }.map(\.element.1)
        case .neither:
            for k in 0..<points {
                for s in 0..<series where k < samples[s].count { lines.append(samples[s][k]) }
            }
        }
        if openMetrics { lines.append("# EOF") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The output and totals of the whole file in memory, as replay reads a file it cannot stream.
    static func whole(_ path: String, _ configuration: DetectorConfiguration, format: ReplayOutputFormat = .csv)
        throws -> ([UInt8], ReplaySummary)
    {
        let file = try SeriesFile.load(path: path)
        let result = try Replayer.run(file, configuration: configuration)
        var bytes: [UInt8] = []
        ReplayWriter(format: format).write(result) { bytes += $0 }
        return (bytes, result.summary)
    }

    static func streamed(
        _ path: String,
        _ configuration: DetectorConfiguration,
        format: ReplayOutputFormat = .csv,
        threads: Int,
        chunkBytes: Int,
        blockRows: Int,
        keepSamples: Bool = true
    ) throws -> ([UInt8], ReplaySummary)? {
        var settings = StreamingReplay.Settings(configuration: configuration)
        settings.threads = threads
        settings.chunkBytes = chunkBytes
        settings.blockRows = blockRows
        settings.keepSamples = keepSamples
        let fileFormat = try #require(SeriesFile.streamableFormat(path: path, format: nil))
        guard let replay = try StreamingReplay(path: path, format: fileFormat, settings: settings) else { return nil }
        if fileFormat != .csv {
            // Where the temporary directory is held in memory, nothing is kept.
            let possible = SampleSpill.create() != nil
            #expect(
                replay.outline.isSpilled == (keepSamples && possible),
                "the first pass keeps the samples when asked"
            )
        }
        var bytes: [UInt8] = []
        let summary = try replay.run(writer: ReplayWriter(format: format)) { bytes += $0 }
        return (bytes, summary)
    }

    @Test(
        "the same bytes and totals as the whole file, for every chunk, block and core count",
        arguments: [
            (DetectorKind.surprise, Layout.series), (.ewma, .series), (.robust, .series),
            (.surprise, .time), (.seasonal, .time), (.ensemble, .time),
        ]
    )
    func sameAsWhole(kind: DetectorKind, layout: Layout) throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        var configuration = DetectorConfiguration()
        configuration.kind = kind
        for openMetrics in [false, true] {
            let path = try directory.write(
                openMetrics ? "series.om" : "series.prom",
                // Series after series, enough series for two cores (64 each).
                Self.file(series: layout == .series ? 130 : 40, points: 130, openMetrics: openMetrics, layout: layout)
            ).path
            let (expected, totals) = try Self.whole(path, configuration)
            #expect(String(decoding: expected, as: UTF8.self).contains(",1\n"), "something is flagged")
            // Chunks and blocks far smaller than a series or a tick, a few of each, and the defaults.
            let sizes = openMetrics ? [(2, 4096, 700)] : [(1, 4096, 37), (2, 4096, 700), (3, 1 << 24, 1 << 18)]
            // The second pass reads the samples the first kept; and (the first size again) parses
            // the text.
            for ((threads, chunkBytes, blockRows), keep) in sizes.map({ ($0, true) }) + [(sizes[0], false)] {
                let (bytes, summary) = try #require(
                    try Self.streamed(
                        path,
                        configuration,
                        threads: threads,
                        chunkBytes: chunkBytes,
                        blockRows: blockRows,
                        keepSamples: keep
                    )
                )
                #expect(
                    bytes == expected,
                    "\(kind) \(layout) \(openMetrics) \(threads) \(chunkBytes) \(blockRows) kept: \(keep)"
                )
                // The cores that scored (a round held one block more than that).
                #expect(summary.parts == (layout == .time ? 1 : Swift.min(threads, 2)))
                #expect(summary.rows == totals.rows && summary.series == totals.series)
                #expect(summary.scored == totals.scored && summary.pending == totals.pending)
                #expect(summary.missing == totals.missing && summary.anomalies == totals.anomalies)
                #expect(summary.drops == totals.drops && summary.counterResets == totals.counterResets)
                #expect(summary.ticks == totals.ticks && summary.step == totals.step)
            }
        }
        let path = directory.file("series.prom").path
        let (ndjson, _) = try Self.whole(path, configuration, format: .ndjson)
        let streamed = try #require(
            try Self.streamed(path, configuration, format: .ndjson, threads: 2, chunkBytes: 4096, blockRows: 900)
        )
        #expect(streamed.0 == ndjson)
    }

    @Test(
        "a block's rows on the file's ticks: every tick kept, each tick's rows in file order; a time not among them refused"
    )
    func ticksOnTimes() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        // Series after series, some on their own schedules, samples missing now and then.
        let path = try directory.write("series.prom", Self.file(series: 20, points: 90)).path
        let file = try SeriesFile.load(path: path)
        // The file's ticks and more: times before, between and after its own.
        let own = Set(file.rows.map(\.timestamp.milliseconds))
        let extra: [Int64] = [1, (own.min() ?? 0) + 1, (own.max() ?? 0) + 5_000]
        let all = Set(own).union(extra).sorted().map { Timestamp(milliseconds: $0) }
        let ticks = try #require(Replayer.Ticks(file, on: all))
        #expect(ticks.times == all)
        #expect(ticks.starts.count == all.count + 1 && ticks.starts.last == file.rows.count)
        for (t, time) in all.enumerated() {
            let expected = file.rows.indices.filter { file.rows[$0].timestamp == time }.map { Int32($0) }
            #expect(Array(ticks.order[ticks.starts[t]..<ticks.starts[t + 1]]) == expected, "tick \(t)")
        }
        // A row whose time is missing from the ticks.
        var fewer = all
        fewer.remove(at: all.count / 2)
        #expect(Replayer.Ticks(file, on: fewer) == nil)
        #expect(Replayer.Ticks(file, on: []) == nil)
    }

    @Test("pieces written into kept buffers are the bytes written afresh; a kept buffer too small is passed over")
    func reusedBuffers() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write("series.prom", Self.file(series: 12, points: 130)).path
        let result = try Replayer.run(try SeriesFile.load(path: path), configuration: DetectorConfiguration())
        for format in [ReplayOutputFormat.csv, .ndjson] {
            let writer = ReplayWriter(format: format)
            var expected: [UInt8] = []
            writer.writeRows(result, multi: true) { expected += $0 }
            // Kept from before: one too small for the piece, one big enough and full of old bytes.
            let small = OutputBuffer(capacity: 16)
            let big = OutputBuffer(capacity: 1 << 20)
            big.base.update(repeating: UInt8(ascii: "x"), count: big.capacity)
            var spares = [big, small]
            let pieces = writer.renderRows(result, multi: true, reusing: &spares)
            #expect(pieces.count == 1 && pieces[0] === big)
            #expect(spares.count == 1 && spares[0] === small)
            #expect(pieces.flatMap { Array($0.bytes) } == expected)
            // And again, into the same buffer.
            spares += pieces
            let again = writer.renderRows(result, multi: true, reusing: &spares)
            #expect(again.count == 1 && again[0] === big && again.flatMap { Array($0.bytes) } == expected)
        }
    }

    @Test("blocks hold whole series or whole ticks, about the rows asked for; every sample comes once, in file order")
    func blocks() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        for layout in [Layout.series, .time] {
            let path = try directory.write("file.prom", Self.file(series: 60, points: 200, layout: layout)).path
            let outline = try #require(try SeriesFile.outline(path: path, format: .prometheus, chunkBytes: 4096))
            #expect(outline.layout == (layout == .series ? .seriesAfterSeries : .timeOrder))
            let whole = try SeriesFile.load(path: path)
            #expect(outline.series == whole.series.count && outline.rows == whole.rows.count)
            #expect(outline.step == (try Replayer.inferStep(whole)))
            #expect(outline.times == Array(Set(whole.rows.map(\.timestamp))).sorted())
            let blocks = try SeriesFileBlocks(
                path: path,
                format: .prometheus,
                layout: outline.layout,
                chunkBytes: 4096,
                blockRows: 1000
            )
            var rows: [(LabelSet, Int64)] = []
            var count = 0
            var lastTime: Timestamp?
            while let block = try blocks.next() {
                count += 1
                if layout == .series {
                    let longest = Dictionary(grouping: block.rows, by: \.series).values.map(\.count).max() ?? 0
                    #expect(block.rows.count < 1000 + longest, "a block ends with the series that reached the rows")
                } else {
                    let widest = Dictionary(grouping: block.rows, by: \.timestamp).values.map(\.count).max() ?? 0
                    #expect(block.rows.count < 1000 + widest, "a block ends with the tick that reached the rows")
                    #expect(lastTime == nil || block.rows[0].timestamp > lastTime!, "a tick is not split")
                    lastTime = block.rows.last?.timestamp
                }
                rows += block.rows.map { (block.series[$0.series], $0.timestamp.milliseconds) }
            }
            #expect(count > 5)
            #expect(rows.count == whole.rows.count)
            #expect(rows.map(\.0) == whole.rows.map { whole.series[$0.series] })
            #expect(rows.map(\.1) == whole.rows.map(\.timestamp.milliseconds))
        }
    }

    @Test(
        "the samples the first pass kept come back as the text gives them; without a spill (a full disk), or read a second time, the text is parsed"
    )
    func spill() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        for layout in [Layout.series, .time] {
            let path = try directory.write(
                "file.om",
                Self.file(series: 30, points: 120, openMetrics: true, layout: layout)
            ).path
            func blocks(_ source: SeriesFileBlocks) throws -> [SeriesFile] {
                var all: [SeriesFile] = []
                while let block = try source.next() { all.append(block) }
                return all
            }
            /// Whether two lists of blocks are the same, NaN values included (a row's value by its
            /// bits); an issue says where they first differ (the blocks are too long to print).
            func same(_ a: [SeriesFile], _ b: [SeriesFile]) -> Bool {
                func rows(_ file: SeriesFile) -> [String] {
                    file.rows.map {
                        "\($0.series) \($0.timestamp.milliseconds) \($0.text) \($0.value.map(\.bitPattern) ?? 0) "
                            + "\($0.kind) \($0.counterReset) \($0.line)"
                    }
                }
                guard a.count == b.count else {
                    Issue.record("\(a.count) blocks against \(b.count)")
                    return false
                }
                for (k, (x, y)) in zip(a, b).enumerated() {
                    let (xRows, yRows) = (rows(x), rows(y))
                    guard x.series == y.series, xRows == yRows, x.texts == y.texts, x.name == y.name else {
                        let i = xRows.indices.first { $0 >= yRows.count || xRows[$0] != yRows[$0] }
                        Issue.record("block \(k) differs; rows first at \(i.map { "\($0): \(xRows[$0])" } ?? "none")")
                        return false
                    }
                }
                return true
            }
            let parsed = try blocks(
                SeriesFileBlocks(
                    path: path,
                    format: .openmetrics,
                    layout: layout == .series ? .seriesAfterSeries : .timeOrder,
                    chunkBytes: 4096,
                    blockRows: 500
                )
            )
            #expect(parsed.count > 5)
            // In a directory on disk (the temporary directory may be held in memory).
            let onDisk = FileManager.default.currentDirectoryPath + "/.build"
            let outline = try #require(
                try SeriesFile.outline(
                    path: path,
                    format: .openmetrics,
                    chunkBytes: 4096,
                    threads: 2,
                    spill: try #require(SampleSpill.create(in: onDisk))
                )
            )
            #expect(outline.isSpilled && outline.labels.count == outline.series)
            let first = try blocks(SeriesFileBlocks(outline: outline, chunkBytes: 4096, blockRows: 500))
            #expect(same(first, parsed), "read back: \(layout)")
            // Read once: a second reader of the same outline parses the text.
            let second = try blocks(SeriesFileBlocks(outline: outline, chunkBytes: 4096, blockRows: 500))
            #expect(same(second, parsed))

            // A device that refuses every write: the outline has no spill and the blocks are parsed.
            let full = try #require(SampleSpill.open(path: "/dev/full"))
            let refused = try #require(
                try SeriesFile.outline(path: path, format: .openmetrics, chunkBytes: 4096, threads: 2, spill: full)
            )
            #expect(full.failed && !refused.isSpilled && refused.labels.isEmpty)
            #expect(refused.rows == outline.rows && refused.times == outline.times && refused.step == outline.step)
            #expect(same(try blocks(SeriesFileBlocks(outline: refused, chunkBytes: 4096, blockRows: 500)), parsed))
        }
        // Not in a file system held in memory: the samples would take memory, not disk.
        if case .success(let descriptor) = FileAccess.anonymousTemporaryFile(prefix: "flatline-test", in: "/dev/shm") {
            #expect(FileAccess.isInMemory(descriptor: descriptor))
            close(descriptor)
            #expect(SampleSpill.create(in: "/dev/shm") == nil)
        }
        let disk = FileManager.default.currentDirectoryPath + "/.build"
        if case .success(let descriptor) = FileAccess.anonymousTemporaryFile(prefix: "flatline-test", in: disk) {
            #expect(!FileAccess.isInMemory(descriptor: descriptor))
            close(descriptor)
        }
    }

    @Test("a file neither series after series nor in time order is read whole")
    func neither() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write("ticks.prom", Self.file(series: 20, points: 50, layout: .neither)).path
        #expect(try Self.streamed(path, DetectorConfiguration(), threads: 2, chunkBytes: 4096, blockRows: 100) == nil)
        var seasonal = DetectorConfiguration()
        seasonal.kind = .seasonal
        let series = try directory.write("series.prom", Self.file(series: 20, points: 50)).path
        #expect(
            try Self.streamed(series, seasonal, threads: 2, chunkBytes: 4096, blockRows: 100) == nil,
            "a detector whose series learn from each other is not split"
        )
    }

    @Test(
        "a CSV series in time order streams with the same bytes; out of order it is read whole; its errors are the same"
    )
    func csv() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        var lines = ["timestamp,value"]
        var generator = UInt64(3)
        for k in 0..<3000 {
            generator = generator &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let time = 1_700_000_000 + k * 60
            let value = k == 2000 ? "90" : k % 97 == 5 ? "" : String(Double(generator >> 40 % 1000) / 100 + 10)
            lines.append(k % 500 == 7 ? "\"\(time)\",\(value)\r" : "\(time),\(value)")
            if k == 1500 { lines.append("\(time),11") }  // the same time twice: a duplicate
        }
        let path = try directory.write("one.csv", lines.joined(separator: "\n") + "\n").path
        for kind in [DetectorKind.surprise, .ensemble] {
            var configuration = DetectorConfiguration()
            configuration.kind = kind
            let (expected, totals) = try Self.whole(path, configuration)
            #expect(String(decoding: expected, as: UTF8.self).contains(",1\n"), "something is flagged")
            let (bytes, summary) = try #require(
                try Self.streamed(path, configuration, threads: 2, chunkBytes: 4096, blockRows: 250)
            )
            #expect(bytes == expected, "\(kind)")
            #expect(summary.rows == totals.rows && summary.missing == totals.missing && summary.drops == totals.drops)
        }
        let back = try directory.write("back.csv", "timestamp,value\n1700000060,1\n1700000000,2\n1700000120,3\n").path
        #expect(try Self.streamed(back, DetectorConfiguration(), threads: 2, chunkBytes: 4096, blockRows: 1) == nil)
        let bad = try directory.write("bad.csv", (lines + ["1800000000,twelve"]).joined(separator: "\n") + "\n").path
        let empty = try directory.write("empty.csv", "timestamp,value\n").path
        for file in [bad, empty] {
            let wholeError = #expect(throws: SeriesFileError.self) { try SeriesFile.load(path: file) }
            let streamError = #expect(throws: ReplayError.self) {
                try Self.streamed(file, DetectorConfiguration(), threads: 2, chunkBytes: 4096, blockRows: 100)
            }
            #expect(streamError?.description == wholeError?.description)
        }
    }

    @Test("a bad file is refused before anything is written, with the error the whole file gives")
    func errors() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let good = Self.file(series: 40, points: 100).split(separator: "\n").map(String.init)
        func replacing(_ line: Int, with text: String) -> String {
            var lines = good
            lines[line] = text
            return lines.joined(separator: "\n") + "\n"
        }
        let withoutEOF = Self.file(series: 40, points: 100, openMetrics: true).split(separator: "\n").dropLast()
        let cases = [
            ("bad-value.prom", replacing(3000, with: "temperature{svc=\"s99\"} twelve 1700000000000")),
            ("no-time.prom", replacing(2500, with: good[2500].split(separator: " ").dropLast().joined(separator: " "))),
            ("no-eof.om", withoutEOF.joined(separator: "\n") + "\n"),
        ]
        for (name, text) in cases {
            let path = try directory.write(name, text).path
            let wholeError = #expect(throws: SeriesFileError.self) { try SeriesFile.load(path: path) }
            let streamError = #expect(throws: ReplayError.self) {
                try Self.streamed(path, DetectorConfiguration(), threads: 2, chunkBytes: 4096, blockRows: 100)
            }
            #expect(streamError?.description == wholeError?.description, "\(name)")
            #expect(wholeError?.line ?? 0 > 100 || name.hasSuffix(".om"), "\(name): the error is past the first chunk")
        }
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        String(repeating: "0", count: Swift.max(0, width - count)) + self
    }
}
