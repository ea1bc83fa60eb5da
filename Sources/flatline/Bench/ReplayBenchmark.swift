import FlatlineCore
import FlatlineIngest
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// `flatline bench --parts replay`: `flatline replay` end to end, each run in its own process
/// (time and peak RSS from `wait4`), on generated files of `series` × `points` samples at 15 s:
/// OpenMetrics (one file, series after series, as `gen_dataset.py` writes it, and the same tick
/// after tick), a recording of
/// Prometheus text bodies (one body a round, as `flatline record` writes them) and a one-series
/// CSV of the same number of samples; outputs CSV, NDJSON and anomalies only. Next to it in the
/// same run: the default detector alone over the same ticks, and the exposition parser alone.
struct ReplayBenchmark {
    struct Row {
        var name: String
        var samples: Int
        var seconds: Double
        var peakKilobytes: Int?
    }

    let executable: URL
    let series: Int
    let points: Int
    /// The shipped models, for the NATS recording's alerts.
    let models: String
    /// Connections and rounds of the NATS recording.
    let natsConnections: Int
    let natsRounds: Int
    let progress: (String) -> Void

    /// Runs every case; the generated files live in a temporary directory, removed at the end.
    func run() throws -> [Row] {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("flatline-bench-replay-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = TickSource(series: series, step: 15, seed: 11)
        progress("replay: writing \((series * points).formatted) samples")
        let om = directory.appendingPathComponent("all.om").path
        try writeOpenMetrics(source, to: om)
        let ticks = directory.appendingPathComponent("ticks.om").path
        try writeOpenMetrics(source, to: ticks, timeOrder: true)
        let recording = directory.appendingPathComponent("rounds.ndjson").path
        try writeRecording(source, to: recording)
        let csv = directory.appendingPathComponent("one.csv").path
        try writeCSV(source, to: csv)
        let total = series * points
        var rows: [Row] = []
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let cases: [(String, String, [String])] = [
            ("OpenMetrics → CSV, \(cores) cores", om, []),
            ("OpenMetrics → CSV, one core", om, ["--jobs", "1"]),
            ("OpenMetrics → NDJSON, \(cores) cores", om, ["--format", "ndjson"]),
            ("OpenMetrics → anomalies only, \(cores) cores", om, ["--anomalies-only"]),
            ("OpenMetrics tick after tick → CSV", ticks, []),
            ("recording → CSV", recording, []),
            ("CSV, one series → CSV", csv, []),
        ]
        for (name, input, options) in cases {
            progress("replay: \(name)")
            let (seconds, peak) = try spawn(["replay", input, "--out", "/dev/null", "--quiet"] + options)
            rows.append(Row(name: name, samples: total, seconds: seconds, peakKilobytes: peak))
        }
        // A NATS server's rounds (/connz, /jsz), scored, then also through the shipped models and
        // the alert engine as the daemon runs them (`--alerts-out`): the difference is the models.
        let nats = directory.appendingPathComponent("nats.ndjson").path
        progress("replay: writing a NATS recording")
        let natsSamples = try writeNATSRecording(to: nats)
        for (name, options) in [
            ("NATS recording → CSV", [String]()),
            ("NATS recording → CSV and alerts (shipped models)", ["--alerts-out", "/dev/null", "--models", models]),
        ] {
            progress("replay: \(name)")
            let (seconds, peak) = try spawn(["replay", nats, "--out", "/dev/null", "--quiet"] + options)
            rows.append(Row(name: name, samples: natsSamples, seconds: seconds, peakKilobytes: peak))
        }
        progress("replay: detection alone")
        rows.append(Row(name: "detection alone (surprise)", samples: total, seconds: try detection(source)))
        progress("replay: the exposition parser alone")
        let bytes = try FileBytes.read(om)
        for intern in [true, false] {
            let started = ContinuousClock.now
            var parsed = 0
            try ExpositionParser(format: .openMetrics, internSeries: intern).parseRaw(bytes) { _, _ in parsed += 1 }
            rows.append(
                Row(
                    name: intern
                        ? "exposition parser, one core (replay: series remembered)"
                        : "exposition parser, one core (live scrape)",
                    samples: parsed,
                    seconds: Self.seconds(ContinuousClock.now - started)
                )
            )
        }
        let started = ContinuousClock.now
        let file = try SeriesFile.parse(bytes, name: om, format: .openmetrics, threads: cores)
        rows.append(
            Row(
                name: "the file's rows (parser, \(cores) cores)",
                samples: file.rows.count,
                seconds: Self.seconds(ContinuousClock.now - started)
            )
        )
        return rows
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// The default detector over the same ticks, in this process.
    private func detection(_ source: TickSource) throws -> Double {
        var detector = try Detector(DetectorConfiguration(), step: 15)
        detector.reserve(capacity: series)
        var output = DetectorOutput()
        var values = [Double](repeating: 0, count: series)
        let started = ContinuousClock.now
        for t in 0..<points {
            source.fill(t, into: &values)
            detector.update(time: source.time(t), values: values, into: &output)
        }
        return Self.seconds(ContinuousClock.now - started)
    }

    /// Runs `flatline ARGUMENTS`; its wall time and peak resident set (kB).
    private func spawn(_ arguments: [String]) throws -> (Double, Int?) {
        let argv = ([executable.path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let started = ContinuousClock.now
        let spawned = posix_spawn(&pid, executable.path, nil, nil, argv, environ)
        guard spawned == 0 else {
            throw BenchError("cannot start \(executable.path): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw BenchError("waiting for replay: \(String(cString: strerror(errno)))") }
        }
        let seconds = Self.seconds(ContinuousClock.now - started)
        guard status == 0 else { throw BenchError("flatline \(arguments.joined(separator: " ")) failed (\(status))") }
        return (seconds, Int(exactly: usage.ru_maxrss))
    }

    // MARK: - inputs

    /// OpenMetrics, series after series (`timeOrder`: tick after tick).
    private func writeOpenMetrics(_ source: TickSource, to path: String, timeOrder: Bool = false) throws {
        // Every value of a tick first, then written out in the order asked for.
        var table = [[Double]](repeating: [], count: series)
        var values = [Double](repeating: 0, count: series)
        for t in 0..<points {
            source.fill(t, into: &values)
            for i in 0..<series { table[i].append(values[i]) }
        }
        var out: [UInt8] = []
        out.reserveCapacity(1 << 20)
        let file = try OutputSink(path: path)
        out.append(contentsOf: "# TYPE bench_rate gauge\n".utf8)
        let prefixes = (0..<series).map { Array("bench_rate{series=\"s\($0)\",job=\"bench\"} ".utf8) }
        // Nothing the size of the file is held: the bench's own memory counts in its children's
        // peak (they start as its copies).
        for k in 0..<(series * points) {
            let (t, i) = timeOrder ? (k / series, k % series) : (k % points, k / points)
            out.append(contentsOf: prefixes[i])
            out.append(contentsOf: table[i][t].description.utf8)
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: String(Int(source.time(t))).utf8)
            out.append(UInt8(ascii: "\n"))
            if out.count >= 1 << 20 {
                file.write(out)
                out.removeAll(keepingCapacity: true)
            }
        }
        out.append(contentsOf: "# EOF\n".utf8)
        file.write(out)
        try file.close()
    }

    private func writeRecording(_ source: TickSource, to path: String) throws {
        let writer = try RecordingWriter(path: path)
        var values = [Double](repeating: 0, count: series)
        for t in 0..<points {
            source.fill(t, into: &values)
            var body: [UInt8] = []
            body.reserveCapacity(series * 48)
            body.append(contentsOf: "# TYPE bench_rate gauge\n".utf8)
            for i in 0..<series {
                body.append(contentsOf: "bench_rate{series=\"s\(i)\"} \(values[i])\n".utf8)
            }
            let time = Timestamp(milliseconds: Int64(source.time(t)) * 1000)
            try writer.write(
                time: time,
                target: "bench:9100",
                labels: ["job": "bench"],
                endpoint: "metrics",
                text: body,
                contentType: "text/plain; version=0.0.4"
            )
        }
        try writer.close()
    }

    /// `natsRounds` rounds 15 s apart of one NATS server with `natsConnections` connections
    /// (pages of 1,024) whose counters move, and 50 streams of 4 consumers that make progress.
    /// Returns the samples the rounds hold (as extraction gives them).
    private func writeNATSRecording(to path: String) throws -> Int {
        let writer = try RecordingWriter(path: path)
        let labels = ["job": "nats", "instance": "127.0.0.1:8222"]
        var extractor = NATSExtractor(targetLabels: labels)
        var samples = 0
        for round in 0..<natsRounds {
            let time = Timestamp(milliseconds: 1_800_000_000_000 + Int64(round) * 15_000)
            // The server's clock in its bodies is what samples are stamped with.
            let now = time.description
            let pages = IngestBenchmark.connzPages(count: natsConnections, pageSize: 1024, round: round, now: now)
            let jsz = IngestBenchmark.jsz(streams: 50, consumers: 4, round: round, now: now)
            for (k, page) in pages.enumerated() {
                try writer.write(
                    time: time,
                    target: "127.0.0.1:8222",
                    labels: labels,
                    endpoint: "connz",
                    page: k + 1,
                    json: page
                )
            }
            try writer.write(time: time, target: "127.0.0.1:8222", labels: labels, endpoint: "jsz", json: jsz)
            samples += try extractor.extract(
                .connz,
                pages: pages.map { JSONPage(document: try JSONDocument(parsing: $0)) },
                scrapeTime: time
            ).count
            samples += try extractor.extract(
                .jsz,
                pages: [JSONPage(document: try JSONDocument(parsing: jsz))],
                scrapeTime: time
            ).count
        }
        try writer.close()
        return samples
    }

    private func writeCSV(_ source: TickSource, to path: String) throws {
        let one = TickSource(series: 1, step: 15, seed: 11)
        var values = [0.0]
        let file = try OutputSink(path: path)
        var out = Array("timestamp,value\n".utf8)
        for t in 0..<(series * points) {
            one.fill(t, into: &values)
            out.append(contentsOf: "\(Int(one.time(t))),\(values[0])\n".utf8)
            if out.count >= 1 << 20 {
                file.write(out)
                out.removeAll(keepingCapacity: true)
            }
        }
        file.write(out)
        try file.close()
    }
}
