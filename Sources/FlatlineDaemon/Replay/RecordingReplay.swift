import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import FlatlineScrape
import Logging

/// A recording replayed as the daemon evaluated it: the rounds of ``DaemonReplay`` (the daemon's
/// own pipeline, per target bank and step), each sample the daemon scored written as a row as
/// soon as its round is done. One read of the recording gives the rows and the alerts, and
/// memory holds the series and one block of rows, not the recording.
///
/// Rows come in the order the daemon evaluated them: round by round, a round's samples in the
/// order its extraction gave them (the scrape's own series, `up` and the others, last). A row's
/// timestamp is its sample's; an event between scrapes feeds the models, not the detectors, and
/// makes no row.
public enum RecordingReplay {
    public struct Result: Sendable {
        public var summary = ReplaySummary()
        /// The alerts, batches, skipped lines, failures and cut of the daemon's replay.
        public var daemon = DaemonReplay.Result()

        /// What a user is told about the recording besides the rows: failed scrapes, samples
        /// the checks dropped, lines of unknown endpoints, a cut-off end.
        public var warnings: [String] {
            SeriesFile.recordingWarnings(
                failures: daemon.failures,
                drops: daemon.drops,
                skipped: daemon.skipped,
                truncation: daemon.truncation
            )
        }
    }

    /// Rows formatted as one piece of output (about as many as a streamed file's block).
    public static let blockRows = 131_072

    /// Replays `path` and writes its rows after the writer's header (with the `series` column:
    /// a recording's rounds hold many series); nothing when no sample was scored.
    ///
    /// - Parameters:
    ///   - configuration: the daemon's, or the one the recording tells
    ///     (``RecordedRounds/inferConfiguration(path:detector:)``): its `detector:` is the
    ///     detector, each job's `scrape_interval` its targets' step.
    ///   - models: the incident models, for the alerts (none: rows only).
    ///   - kind: every series taken as this kind instead of what the recording says.
    ///   - maxGap: the longest gap in seconds a counter rate is taken across.
    ///   - threads: how many cores format a block of rows (the same bytes whatever the count).
    ///   - blockRows: rows formatted and handed to `sink` at a time (the same bytes whatever
    ///     the count).
    ///   - progress: called after each round with the rounds done so far.
    /// - Throws: ``RecordingError`` for a line that is not a recorded scrape.
    public static func run(
        recording path: String,
        configuration: Configuration,
        models: [Model],
        kind: MetricKind? = nil,
        maxGap: Double? = nil,
        writer: ReplayWriter,
        threads: Int = 1,
        blockRows: Int = RecordingReplay.blockRows,
        logger: Logger,
        progress: (Int) -> Void = { _ in },
        to sink: ([UInt8]) -> Void
    ) async throws(RecordingError) -> Result {
        var summary = ReplaySummary()
        // Every series' number and column; one block of rows, their points and timestamp texts.
        var numbers: [LabelSet: Int] = [:]
        var columns: [[UInt8]] = []
        // By target and bank slot, the series last scored there and its number: a series that
        // comes again is found without hashing its labels (equal label sets from the extractor's
        // memory share their storage, so comparing them is one pointer check).
        var bySlot: [String: [(labels: LabelSet, number: Int)?]] = [:]
        var rows: [SeriesFile.Row] = []
        var points: [ReplayPoint] = []
        var texts = TextArena()
        var steps: Set<Double> = []
        let detection = Daemon.detection(configuration)
        func flush() {
            guard !rows.isEmpty else { return }
            if summary.rows == rows.count { sink(writer.header(multi: true)) }
            let block = ReplayResult(
                file: SeriesFile(name: path, format: .recording, series: [], rows: rows, texts: texts.bytes),
                points: points,
                summary: ReplaySummary()
            )
            writer.writeRows(block, seriesColumn: columns, threads: threads, to: sink)
            rows.removeAll(keepingCapacity: true)
            points.removeAll(keepingCapacity: true)
            texts = TextArena()
        }
        let daemon = try await DaemonReplay.run(
            recording: path,
            configuration: configuration,
            models: models,
            kind: kind,
            maxGap: maxGap,
            logger: logger,
            scored: { batch, verdicts in
                guard !verdicts.isEmpty else { return }
                summary.ticks += 1
                if let settings = Pipeline.settings(detection, target: batch.target, job: batch.labels["job"]) {
                    steps.insert(settings.step)
                }
                var slots = bySlot.removeValue(forKey: batch.target) ?? []
                defer { bySlot[batch.target] = slots }
                for (sample, verdict) in zip(batch.samples, verdicts) {
                    var slot: Int?
                    switch verdict {
                    case .scored(let p): slot = p.slot
                    case .pending(let s): slot = s
                    case .dropped: slot = nil
                    }
                    if let s = slot, s < 0 || s >= SeriesStore.maximumCapacity { slot = nil }
                    let number: Int
                    if let slot, slot < slots.count, let known = slots[slot], known.labels == sample.labels {
                        number = known.number
                    } else {
                        if let known = numbers[sample.labels] {
                            number = known
                        } else {
                            number = columns.count
                            numbers[sample.labels] = number
                            columns.append(writer.seriesColumn(sample.labels))
                        }
                        if let slot {
                            if slot >= slots.count {
                                slots.append(contentsOf: repeatElement(nil, count: slot + 1 - slots.count))
                            }
                            slots[slot] = (sample.labels, number)
                        }
                    }
                    let point = ReplayPoint(verdict, value: sample.value)
                    switch verdict {
                    case .scored(let p):
                        summary.scored += 1
                        if p.anomaly { summary.anomalies += 1 }
                    case .pending: summary.pending += 1
                    case .dropped(let reason): summary.drops.add(reason)
                    }
                    rows.append(
                        SeriesFile.Row(
                            series: number,
                            timestamp: sample.timestamp,
                            text: texts.addDescription(of: sample.timestamp),
                            value: sample.value,
                            kind: sample.kind,
                            line: 0,
                            counterReset: sample.counterReset
                        )
                    )
                    points.append(point)
                }
                summary.rows += verdicts.count
                if rows.count >= blockRows { flush() }
            },
            progress: progress
        )
        flush()
        summary.series = columns.count
        summary.counterResets = daemon.counterResets
        summary.step = steps.min() ?? configuration.global.scrapeInterval
        return Result(summary: summary, daemon: daemon)
    }
}
