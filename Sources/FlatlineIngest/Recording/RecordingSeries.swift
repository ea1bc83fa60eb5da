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
        var failures: [String: (count: Int, first: Int, reason: String)] = [:]
        var source = try RecordingSource(path: path, options: options, relabel: relabel)
        source.jobs = jobs
        while let batch = try source.next() {
            if let error = batch.error {
                let key = "\(batch.target ?? "-") /\(batch.endpoint)"
                var entry = failures[key] ?? (0, batch.line, error)
                entry.count += 1
                failures[key] = entry
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
            failures: failures.map {
                (key: $0.key, count: $0.value.count, firstLine: $0.value.first, reason: $0.value.reason)
            },
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
    /// endpoint, with the first one's line and reason), samples the checks dropped, lines of
    /// unknown endpoints, a cut-off end.
    public static func recordingWarnings(
        failures: [(key: String, count: Int, firstLine: Int, reason: String)],
        drops: DropCounts,
        skipped: [String: Int],
        truncation: RecordingError?
    ) -> [String] {
        var out = failures.sorted { $0.firstLine < $1.firstLine }.map { failure in
            "\(failure.key): \(failure.count) failed scrape\(failure.count == 1 ? "" : "s") (first at line \(failure.firstLine): \(failure.reason))"
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
