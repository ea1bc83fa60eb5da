import FlatlineCore

extension SeriesFile {
    /// Whether a file name says it is a recording of raw scrapes.
    static func isRecordingName(_ path: String) -> Bool {
        let lower = path.lowercased()
        return [".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz"].contains { lower.hasSuffix($0) }
    }

    /// Reads a recording of raw scrapes into series through ``RecordingSource``: every sample the
    /// live path would produce, in recording order.
    ///
    /// - Parameter kind: force every series to be a counter or a gauge.
    /// - Throws: ``SeriesFileError`` naming the file and line of a bad line, or when the
    ///   recording yields no samples.
    public static func loadRecording(
        path: String,
        options: NATSExtractionOptions = NATSExtractionOptions(),
        relabel: [RelabelRule] = [],
        jobs: [String: RecordingSource.JobSettings] = [:],
        kind: MetricKind? = nil
    ) throws(SeriesFileError) -> SeriesFile {
        var series: [LabelSet] = []
        var index: [LabelSet: Int] = [:]
        var rows: [Row] = []
        var texts = TextArena()
        var failures = RecordingFailures()
        var source = try RecordingSource(path: path, options: options, relabel: relabel)
        source.jobs = jobs
        while let batch = try source.next() {
            if let error = batch.error {
                failures.add(target: batch.target, endpoint: batch.endpoint, line: batch.line, reason: error)
            }
            for sample in batch.samples {
                let slot: Int
                if let known = index[sample.labels] {
                    slot = known
                } else {
                    slot = series.count
                    series.append(sample.labels)
                    index[sample.labels] = slot
                }
                rows.append(
                    Row(
                        series: slot,
                        timestamp: sample.timestamp,
                        text: texts.addDescription(of: sample.timestamp),
                        value: sample.value,
                        kind: kind ?? sample.kind,
                        line: batch.line,
                        counterReset: sample.counterReset
                    )
                )
            }
        }
        let warnings = Self.recordingWarnings(
            failures: failures,
            drops: source.drops,
            skipped: source.skipped,
            truncation: source.truncation
        )
        guard !rows.isEmpty else {
            let cut = source.truncation.map { "; \($0.reason) at line \($0.line)" } ?? ""
            throw SeriesFileError(file: path, line: 0, reason: "no usable data: the recording yields no samples" + cut)
        }
        return SeriesFile(
            name: path,
            format: .recording,
            series: series,
            rows: rows,
            texts: texts.bytes,
            warnings: warnings
        )
    }

    /// What a user is told about a recording besides its rows: failed scrapes (by target and
    /// endpoint, with the first one's line and reason), scrapes the recorder's stop cut short,
    /// samples the checks dropped, lines of unknown endpoints, a cut-off end.
    public static func recordingWarnings(
        failures: RecordingFailures,
        drops: DropCounts,
        skipped: [String: Int],
        truncation: RecordingError?
    ) -> [String] {
        var out = failures.failed.sorted { $0.value.firstLine < $1.value.firstLine }.map { key, failure in
            "\(key): \(failure.count) failed scrape\(failure.count == 1 ? "" : "s") (first at line \(failure.firstLine): \(failure.reason))"
        }
        let stopped = failures.stopped.values.reduce(0, +)
        if stopped > 0 {
            out.append(
                "\(stopped) scrape\(stopped == 1 ? " was" : "s were") cut short when the recording stopped (its last round; not a failure of the targets)"
            )
        }
        if drops.total > 0 {
            let reasons = DropReason.allCases.filter { drops[$0] > 0 }.map { "\($0.rawValue)=\(drops[$0])" }
            out.append("validation dropped \(drops.total) samples: " + reasons.joined(separator: " "))
        }
        for (endpoint, count) in skipped.sorted(by: { $0.key < $1.key }) {
            out.append("/\(endpoint): \(count) line\(count == 1 ? "" : "s") of an unknown endpoint skipped")
        }
        if let truncation {
            out.append("line \(truncation.line): \(truncation.reason); replayed what came before")
        }
        return out
    }
}

/// The failed scrapes of a recording by `TARGET /ENDPOINT`, apart from the scrapes the
/// recorder's own stop cut short: `flatline record` stopped by Ctrl-C or SIGTERM writes the round
/// in flight with `cut short: stopping` (`CancellationError()` in recordings made before that
/// text), which says nothing about the targets.
public struct RecordingFailures: Sendable, Hashable {
    /// The failed scrapes of one target's endpoint.
    public struct Failure: Sendable, Hashable {
        public var count: Int
        /// The recording's line of the first, and why it failed.
        public var firstLine: Int
        public var reason: String
    }

    public private(set) var failed: [String: Failure] = [:]
    /// Scrapes cut short by the recorder stopping, by `TARGET /ENDPOINT`.
    public private(set) var stopped: [String: Int] = [:]

    /// The reasons a recorder's stop writes.
    static let stopping: Set<String> = ["cut short: stopping", "CancellationError()"]

    public init() {}

    /// Counts a failed scrape of `endpoint` of `target` at `line`.
    public mutating func add(target: String?, endpoint: String, line: Int, reason: String) {
        let key = "\(target ?? "-") /\(endpoint)"
        if Self.stopping.contains(reason) {
            stopped[key, default: 0] += 1
        } else if failed[key] != nil {
            failed[key]?.count += 1
        } else {
            failed[key] = Failure(count: 1, firstLine: line, reason: reason)
        }
    }
}
