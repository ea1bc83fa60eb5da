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
        /// Set when the recording was cut off (a crash): everything before the cut was replayed.
        public var truncation: RecordingError?
    }

    /// - Parameters:
    ///   - progress: called after each batch with the batches done so far.
    /// - Throws: ``RecordingError`` for a line that is not a recorded scrape.
    public static func run(
        recording path: String,
        configuration: Configuration,
        models: [Model],
        logger: Logger,
        progress: (Int) -> Void = { _ in }
    ) async throws(RecordingError) -> Result {
        var rounds = try RecordedRounds(path: path, configuration: configuration)
        // The recording's clock: the time of the batch being fed.
        let now = Mutex(Timestamp(milliseconds: 0))
        let pipeline = Pipeline(
            models: models,
            detector: configuration.detector,
            routing: configuration.alerting ?? AlertingSettings(route: RouteSettings(receiver: "none"), receivers: []),
            detection: Daemon.detection(configuration),
            notifier: nil,
            state: nil,
            writeAheadLog: nil,
            clock: { now.withLock { $0 } },
            logger: logger
        )
        var result = Result()
        while let batch = try rounds.next() {
            now.withLock { $0 = batch.time }
            result.events += await pipeline.ingest(batch)
            result.batches += 1
            progress(result.batches)
        }
        result.skipped = rounds.skipped
        result.truncation = rounds.truncation
        return result
    }
}
