import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import FlatlineScrape
import Logging
import Synchronization

/// A recording made with `flatline run --record` replayed through the daemon's own pipeline:
/// the same per-target rounds (``RecordedRounds``: extraction, validation and scrape series as
/// the live scraper), the same per-target detection banks with the configuration's steps, the
/// same models and alert engine (``Pipeline``), clocked by the recording. With the configuration
/// the daemon ran with, the alerts (name, fingerprint, start, resolution) are the daemon's.
public enum DaemonReplay {
    public struct Result: Sendable {
        /// Alerts that fired or resolved, in the order the pipeline moved them.
        public var events: [AlertEvent] = []
        /// Batches fed: target rounds and events.
        public var batches = 0
        /// Lines of endpoints this version does not know, by endpoint.
        public var skipped: [String: Int] = [:]
        /// Scrapes recorded as failed or whose body could not be read, by `TARGET /ENDPOINT`.
        public var failures = RecordingFailures()
        /// Samples the checks dropped before detection, by reason (as the live scraper counts them).
        public var drops = DropCounts()
        /// Counter resets the detection banks saw.
        public var counterResets = 0
        /// Set when the recording was cut off (a crash): everything before the cut was replayed.
        public var truncation: RecordingError?
    }

    /// - Parameters:
    ///   - kind: every series taken as this kind (replay's `--kind`), instead of what the
    ///     recording says.
    ///   - maxGap: the longest gap in seconds a counter rate is taken across; `nil` for no limit.
    ///   - scored: called with each batch and its samples' verdicts, in the order they were
    ///     evaluated (no verdicts for an event between scrapes): a replay's rows, written as the
    ///     recording is read, so memory holds the series, not the recording.
    ///   - progress: called after each batch with the batches done so far.
    /// - Throws: ``RecordingError`` for a line that is not a recorded scrape.
    public static func run(
        recording path: String,
        configuration: Configuration,
        models: [Model],
        kind: MetricKind? = nil,
        maxGap: Double? = nil,
        logger: Logger,
        scored: (ScrapeBatch, [SampleVerdict]) -> Void = { _, _ in },
        progress: (Int) -> Void = { _ in }
    ) async throws(RecordingError) -> Result {
        var rounds = try RecordedRounds(path: path, configuration: configuration)
        var detection = Daemon.detection(configuration)
        if let maxGap {
            for key in detection.keys { detection[key]?.maxGap = maxGap }
        }
        // The recording's clock: the time of the batch being fed.
        let now = Mutex(Timestamp(milliseconds: 0))
        let pipeline = Pipeline(
            models: models,
            detector: configuration.detector,
            routing: configuration.alerting ?? AlertingSettings(route: RouteSettings(receiver: "none"), receivers: []),
            detection: detection,
            notifier: nil,
            state: nil,
            writeAheadLog: nil,
            keepsStatus: false,
            clock: { now.withLock { $0 } },
            logger: logger
        )
        var result = Result()
        while var batch = try rounds.next() {
            now.withLock { $0 = batch.time }
            if let kind {
                for k in batch.samples.indices { batch.samples[k].kind = kind }
            }
            result.drops.add(batch.drops)
            let (events, verdicts) = await pipeline.ingestScored(batch)
            result.events += events
            scored(batch, verdicts)
            result.batches += 1
            progress(result.batches)
        }
        result.skipped = rounds.skipped
        result.failures = rounds.failures
        result.truncation = rounds.truncation
        result.counterResets = await pipeline.counterResets
        return result
    }
}
