import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import FlatlineNotify
import FlatlineScrape
import Foundation
import Logging

/// How one target's series are detected: the configuration's scrape interval (the detectors'
/// step), the job's `max_series` and the global `stale_after`.
public struct DetectionSettings: Sendable, Hashable {
    public var step: Double
    public var maxSeries: Int?
    public var staleAfter: Double
    /// The longest gap in seconds a counter rate is taken across (replay's `--max-gap`); `nil`
    /// for no limit.
    public var maxGap: Double?

    public init(step: Double = 15, maxSeries: Int? = nil, staleAfter: Double = 600, maxGap: Double? = nil) {
        self.step = step
        self.maxSeries = maxSeries
        self.staleAfter = staleAfter
        self.maxGap = maxGap
    }
}

/// The daemon's state machine from scrapes to notifications: per target a detection bank, one
/// model evaluator and alert engine for all (the ``Evaluation``), the dispatcher, and the notifier's outbox. An
/// actor, fed by the scrapers' tasks and read by the HTTP API.
public actor Pipeline {
    /// What the API shows about a target.
    public struct TargetStatus: Sendable, Codable, Hashable {
        public var target: String
        public var job: String
        public var labels: [String: String]
        public var health: String
        public var lastScrape: String?
        public var lastScrapeDurationSeconds: Double?
        public var lastError: String?
        public var samples: Int
    }

    /// The latest verdict on one series, for `/metrics` and `/api/v1/series`.
    public struct SeriesStatus: Sendable, Hashable {
        public var labels: LabelSet
        public var time: Timestamp
        public var value: Double
        public var expected: Double
        public var lower: Double
        public var upper: Double
        public var score: Double
        public var anomaly: Bool
    }

    let models: [Model]
    /// The detector every bank runs (the configuration's `detector:`).
    public private(set) var detector: DetectorConfiguration
    /// How each target's series are detected, by target name.
    private(set) var detection: [String: DetectionSettings]
    let state: StateDirectory?
    let metrics: DaemonMetrics?
    let logger: Logger
    /// What time it is for the dispatcher, resends and silences: the wall clock in the daemon,
    /// the recording's own time in a replay. Detection and the models run on each batch's time;
    /// nothing here reads a clock of its own.
    let clock: @Sendable () -> Timestamp
    /// Detection, models, alert states and dispatcher: the evaluation replay and notify share.
    private var evaluation: Evaluation
    /// The alert states.
    var engine: AlertEngine { evaluation.engine }
    private var notifier: Notifier?
    private var targets: [String: TargetStatus] = [:]
    /// Targets the last reload removed: a round of theirs still in flight is not listed again.
    private var retiredTargets: Set<String> = []
    private var series: [LabelSet: SeriesStatus] = [:]
    /// At most this many series in `series` (for `/metrics`); new ones beyond are not kept.
    let maxExportedSeries: Int
    /// Whether the targets' status, the series' last verdicts and the charts are kept (for the
    /// API and the status page): not in a replay, which nobody browses.
    let keepsStatus: Bool
    private(set) var firstScrapeDone = false
    /// The metric names some model watches: their recent points are kept for the status page.
    private let chartedMetrics: Set<String>
    /// Recent points of the charted series, oldest first per series.
    private var history: [LabelSet: SeriesHistory] = [:]
    private var lastHistoryEviction: Int64 = 0
    /// At most this many series in `history`; new ones beyond are not kept.
    let maxChartedSeries: Int
    /// Points kept per charted series.
    let historyPoints: Int
    /// The batches fed since the last snapshot (under the data directory), for recovery.
    private var wal: WriteAheadLog?
    /// Feeding the write-ahead log again at start: nothing is notified, nothing appended.
    private var replaying = false
    /// Whether the last append to the write-ahead log failed (logged once per failing spell).
    private var walFailing = false
    /// The alert states of history fed by `backfill:`: its own, so the past never touches the
    /// live alerts; dropped at its end.
    private var pastEngine = AlertEngine()

    public init(
        models: [Model],
        detector: DetectorConfiguration = DetectorConfiguration(),
        routing: AlertingSettings,
        detection: [String: DetectionSettings],
        notifier: Notifier?,
        state: StateDirectory?,
        maxExportedSeries: Int = 10_000,
        maxChartedSeries: Int = 2_000,
        historyPoints: Int = 120,
        metrics: DaemonMetrics? = nil,
        writeAheadLog: WriteAheadLogSettings? = WriteAheadLogSettings(),
        keepsStatus: Bool = true,
        clock: @escaping @Sendable () -> Timestamp = Pipeline.now,
        logger: Logger
    ) {
        self.clock = clock
        self.keepsStatus = keepsStatus
        self.metrics = metrics
        if let state, let writeAheadLog {
            do {
                wal = try WriteAheadLog(directory: state.path + "/wal", options: writeAheadLog, logger: logger)
            } catch {
                logger.error(
                    "no write-ahead log: a crash loses what was learned since the last save",
                    metadata: ["error": "\(error)"]
                )
            }
        }
        self.models = models
        self.detector = detector
        self.detection = detection
        self.state = state
        self.logger = logger
        self.notifier = notifier
        self.maxExportedSeries = maxExportedSeries
        self.maxChartedSeries = maxChartedSeries
        self.historyPoints = max(historyPoints, 2)
        chartedMetrics = models.reduce(into: Set<String>()) { $0.formUnion($1.kind.primaryMetrics) }
        evaluation = Evaluation(models: models, routing: routing)
        if let state {
            if let saved = state.restoreModels(logger: logger) {
                let restored = evaluation.evaluator.restore(saved)
                logger.info("models continue from saved state", metadata: ["models": "\(restored.count)"])
            }
            if let saved = state.restoreSilences(logger: logger) {
                // Silences that ended more than a day ago are history.
                let cutoff = clock().advanced(bySeconds: -86_400)
                evaluation.dispatcher.silences = saved.filter { $0.endsAt > cutoff }
            }
            if let log = state.restoreNotificationLog(logger: logger) {
                evaluation.dispatcher.restore(notificationLog: log, at: clock(), maxAge: Self.notificationLogAge)
            }
            if let saved = state.restoreAlerts(logger: logger) {
                evaluation.engine = saved
                // Firing alerts go back to the dispatcher (the notification log says which were
                // told already, so a restart does not tell them again before repeat_interval),
                // and resolves not told yet.
                evaluation.dispatcher.readmit(
                    firing: evaluation.engine.alerts(in: .firing),
                    resolved: evaluation.engine.alerts(in: .resolved),
                    at: clock()
                )
            }
        }
    }

    /// A saved bank to go on with under the running detector and step: the saved one, judged
    /// with the running detector's thresholds when it learned alike (only judging parameters,
    /// or those of detectors not running, differ: said in the log); `nil` when it learned with
    /// another detector, another learning parameter or another scrape interval (said in the
    /// log, naming what differs): that target starts afresh.
    static func continuing(
        _ saved: DetectionBank,
        detector: DetectorConfiguration,
        step: Double,
        target: String,
        logger: Logger
    ) -> DetectionBank? {
        let was = saved.detector.configuration
        var metadata: Logger.Metadata = ["target": "\(target)"]
        if saved.detector.step != step {
            metadata["saved_step"] = "\(saved.detector.step)"
            metadata["step"] = "\(step)"
        } else if let difference = detector.learningDifference(from: was) {
            metadata["key"] = "\(difference.key)"
            metadata["saved"] = "\(difference.saved)"
            metadata["configured"] = "\(difference.now)"
        } else if let bank = saved.continuing(as: detector) {
            if was != detector {
                logger.info(
                    "saved detection state goes on with the configured detector's judging parameters",
                    metadata: metadata
                )
            }
            return bank
        }
        logger.notice(
            "saved detection state was learned with another detector or scrape interval; learning afresh",
            metadata: metadata.merging(
                ["saved_detector": "\(was.kind)", "detector": "\(detector.kind)"],
                uniquingKeysWith: { $1 }
            )
        )
        return nil
    }

    /// A target's detection settings: its own, else its job's (`JOB/*`: servers a `nats_system`
    /// job found), the job taken from the target's name (`JOB/ADDRESS`) when not given.
    static func settings(_ detection: [String: DetectionSettings], target: String, job: String?) -> DetectionSettings? {
        if let own = detection[target] { return own }
        let jobName = job ?? target.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        return detection[jobName + "/*"]
    }

    /// One target's round: detection, models, alert states, dispatcher.
    /// - Returns: the alerts that fired or resolved (for a replay's `--alerts-out`).
    @discardableResult
    public func ingest(_ batch: ScrapeBatch) -> [AlertEvent] {
        ingestScored(batch).events
    }

    /// One target's round, as ``ingest(_:)``, with each sample's verdict from the target's
    /// detection bank, in the batch's order (none for an event between scrapes, or when the
    /// target has no bank).
    public func ingestScored(_ batch: ScrapeBatch) -> (events: [AlertEvent], verdicts: [SampleVerdict]) {
        if let wal, !replaying {
            do {
                try wal.append(batch)
                if walFailing {
                    walFailing = false
                    logger.info("write-ahead log written again")
                }
            } catch {
                if !walFailing {
                    logger.error("cannot write the write-ahead log; evaluating anyway", metadata: ["error": "\(error)"])
                }
                walFailing = true
            }
            if wal.size > wal.options.maxBytes {
                logger.notice(
                    "write-ahead log past its size limit: saving state to truncate it",
                    metadata: ["bytes": "\(wal.size)"]
                )
                save()
            }
        }
        if batch.event {
            // Counters an event moved between scrapes: the models see them at once; detection,
            // the target's health and the scrape metrics wait for the next scrape.
            let events = evaluation.evaluate(time: batch.time, samples: batch.samples, verdicts: [], now: clock())
            notified(events)
            return (events, [])
        }
        firstScrapeDone = true
        let settings = Self.settings(detection, target: batch.target, job: batch.labels["job"]) ?? DetectionSettings()
        let round = evaluation.ingest(batch, now: clock()) {
            if let saved = state?.restoreDetection(source: batch.target, logger: logger),
                let bank = Self.continuing(
                    saved,
                    detector: detector,
                    step: settings.step,
                    target: batch.target,
                    logger: logger
                )
            {
                return bank
            }
            return newBank(target: batch.target, settings: settings)
        }
        guard let (verdicts, events) = round else { return ([], []) }
        notified(events)
        guard keepsStatus else { return (events, verdicts) }
        for (sample, verdict) in zip(batch.samples, verdicts) {
            guard let point = verdict.point else { continue }
            if chartedMetrics.contains(sample.labels.metricName) {
                remember(sample.labels, SeriesHistory.Point(time: batch.time, point), rate: sample.kind == .counter)
            }
            let status = SeriesStatus(
                labels: sample.labels,
                time: batch.time,
                value: point.value,
                expected: point.expected,
                lower: point.lower,
                upper: point.upper,
                score: point.score,
                anomaly: point.inBurst
            )
            // One lookup for a known series (its labels hashed once).
            if let index = series.index(forKey: sample.labels) {
                series.values[index] = status
            } else if series.count < maxExportedSeries {
                series[sample.labels] = status
            }
        }
        metrics?.scraped(
            job: batch.labels["job"] ?? "",
            target: batch.target,
            seconds: batch.health.durationSeconds,
            drops: batch.drops
        )
        metrics?.state(
            series: seriesCount,
            alerts: [
                "pending": evaluation.engine.alerts(in: .pending).count,
                "firing": evaluation.engine.alerts(in: .firing).count,
                "resolved": evaluation.engine.alerts(in: .resolved).count,
            ]
        )
        guard !retiredTargets.contains(batch.target) else { return (events, verdicts) }
        targets[batch.target] = TargetStatus(
            target: batch.target,
            job: batch.labels["job"] ?? "",
            labels: batch.labels,
            health: batch.health.up ? "up" : "down",
            lastScrape: batch.time.description,
            lastScrapeDurationSeconds: batch.health.durationSeconds,
            lastError: batch.errors.isEmpty
                ? nil : batch.errors.keys.sorted().map { "\($0): \(batch.errors[$0] ?? "")" }.joined(separator: "; "),
            samples: batch.samples.count
        )
        return (events, verdicts)
    }

    /// What the models learned of each unit (a target), told apart by its `instance` label (and
    /// its `job`, where a model groups by it): the parts a replica shares so that another one taking
    /// a target over keeps its baselines.
    public func modelParts(units: [String: (instance: String, job: String)]) -> [String: ModelEvaluatorState] {
        var byInstance: [String: [(job: String, unit: String)]] = [:]
        for (unit, labels) in units.sorted(by: { $0.key < $1.key }) {
            byInstance[labels.instance, default: []].append((labels.job, unit))
        }
        return evaluation.evaluator.state.split { labels in
            guard let instance = labels["instance"], let candidates = byInstance[instance] else { return nil }
            if let job = labels["job"] { return candidates.first { $0.job == job }?.unit }
            return candidates.first?.unit
        }
    }

    /// Takes what another replica's models learned of a target this one takes over, for the
    /// things it has no state of.
    /// - Returns: how many watched things it took.
    @discardableResult
    public func adoptModels(_ part: ModelEvaluatorState) -> Int {
        evaluation.evaluator.adopt(part)
    }

    /// A target another replica evaluates now (it moved away): what this process holds of it
    /// goes, silently. Its alerts are forgotten without a resolve (the new owner carries them on;
    /// a resolve from here would tell receivers they ended), its detection bank and saved file go
    /// (were it to come back, it would take the then-current shared state), and so do what the
    /// models learned of it and its series on the status page and `/metrics`. What belongs to it
    /// is told by the `instance` label of `labels` (and `job`, where it is set on both).
    /// - Returns: how many pending or firing alerts were forgotten.
    @discardableResult
    public func release(target: String, labels: [String: String]) -> Int {
        guard let instance = labels["instance"] else { return 0 }
        let job = labels["job"]
        func belongs(_ other: [String: String]) -> Bool {
            guard other["instance"] == instance else { return false }
            if let job, let theirs = other["job"] { return theirs == job }
            return true
        }
        func belongs(_ other: LabelSet) -> Bool {
            guard other["instance"] == instance else { return false }
            if let job, let theirs = other["job"] { return theirs == job }
            return true
        }
        evaluation.banks[target] = nil
        if let state { try? FileManager.default.removeItem(atPath: state.detectionFile(target)) }
        targets[target] = nil
        series = series.filter { !belongs($0.key) }
        history = history.filter { !belongs($0.key) }
        evaluation.evaluator.drop(where: belongs)
        let dropped = evaluation.engine.drop(where: belongs)
        logger.info(
            "target evaluated by another replica now: its state and alerts are left to it",
            metadata: ["target": "\(target)", "alerts": "\(dropped)"]
        )
        return dropped
    }

    /// Whether a target starts cold: nothing learned for it in memory, nothing saved.
    public func isCold(target: String) -> Bool {
        guard evaluation.banks[target] == nil else { return false }
        guard let state else { return true }
        return !FileManager.default.fileExists(atPath: state.detectionFile(target))
    }

    /// A cold target's history (`backfill:`), each batch one past round in time order, through
    /// detection and the models as the target's own rounds would go: nothing is notified or
    /// written to the write-ahead log, and the alerts it raises are forgotten by
    /// ``endBackfill()``.
    public func ingestHistory(_ batches: [ScrapeBatch]) {
        for batch in batches { ingestPast(batch) }
    }

    /// After the history: its alerts are the past, not news (the models keep what they learned;
    /// the live alerts, restored or recovered, are untouched); a save keeps what was learned, so a
    /// restart does not read the history again.
    public func endBackfill() {
        pastEngine = AlertEngine()
        save()
    }

    /// One past round: the bank and the models learn, the status page's charts fill; it tells
    /// nobody, counts no scrape and goes to no write-ahead log.
    @discardableResult
    private func ingestPast(_ batch: ScrapeBatch) -> [AlertEvent] {
        let settings = Self.settings(detection, target: batch.target, job: batch.labels["job"]) ?? DetectionSettings()
        guard
            var bank = evaluation.banks.removeValue(forKey: batch.target)
                ?? newBank(target: batch.target, settings: settings)
        else { return [] }
        let verdicts = bank.process(time: batch.time, samples: batch.samples)
        evaluation.banks[batch.target] = bank
        for (sample, verdict) in zip(batch.samples, verdicts) {
            guard let point = verdict.point, chartedMetrics.contains(sample.labels.metricName) else { continue }
            remember(sample.labels, SeriesHistory.Point(time: batch.time, point), rate: sample.kind == .counter)
        }
        let observations = evaluation.evaluator.observe(time: batch.time, samples: batch.samples, verdicts: verdicts)
        return pastEngine.evaluate(at: batch.time, observations)
    }

    /// A target's detection bank, learning from nothing.
    private func newBank(target: String, settings: DetectionSettings) -> DetectionBank? {
        do {
            return try DetectionBank(
                configuration: detector,
                step: settings.step,
                maxSeries: settings.maxSeries,
                maxGap: settings.maxGap,
                staleAfter: settings.staleAfter
            )
        } catch {
            logger.error("cannot set up detection", metadata: ["target": "\(target)", "error": "\(error)"])
            return nil
        }
    }

    /// Alerts that changed in a round (already with the dispatcher): logged, and what is due now
    /// flushed.
    private func notified(_ events: [AlertEvent]) {
        for event in events {
            logger.log(
                level: replaying ? .debug : .info,
                "alert \(event.status.rawValue)",
                metadata: [
                    "alertname": "\(event.alert.labels["alertname"] ?? "")",
                    "fingerprint": "\(event.alert.fingerprint)",
                    "summary": "\(event.alert.annotations["summary"] ?? "")",
                ]
            )
        }
        // Alerts that changed are due now when their group waits for nothing: no need to wait
        // for the next flush tick.
        if !events.isEmpty && !replaying { flush() }
        if !events.isEmpty { timersMoved.fire() }
    }

    /// Feeds the write-ahead log (the batches since the last save) through the pipeline again,
    /// so learning continues where a crash stopped it; then saves, which truncates the log.
    /// Alerts it fires or resolves are notified at the next flush, as after any restart.
    /// Call once, before the first scrape.
    @discardableResult
    public func recover() -> (batches: Int, cutSegments: Int) {
        guard let wal else { return (0, 0) }
        replaying = true
        let report = wal.replay { batch in ingest(batch) }
        replaying = false
        guard report.batches > 0 || report.cutSegments > 0 else { return (0, 0) }
        logger.info(
            "continued from the write-ahead log",
            metadata: [
                "batches": "\(report.batches)", "segments": "\(report.segments)",
                "segments_cut": "\(report.cutSegments)", "bytes_cut": "\(report.cutBytes)",
            ]
        )
        metrics?.walRecovered(batches: report.batches, cutSegments: report.cutSegments)
        save()
        return (report.batches, report.cutSegments)
    }

    private func remember(_ labels: LabelSet, _ point: SeriesHistory.Point, rate: Bool) {
        // One lookup for a known series (its labels hashed once).
        if let index = history.index(forKey: labels) {
            history.values[index].append(point)
            return
        }
        if history.count >= maxChartedSeries {
            // Full: series not seen for ten minutes (gone, or of a removed target) make room,
            // looked for at most once a minute.
            guard point.time - lastHistoryEviction >= 60_000 else { return }
            lastHistoryEviction = point.time
            let cutoff = point.time - 600_000
            history = history.filter { ($0.value.last?.time ?? 0) >= cutoff }
            guard history.count < maxChartedSeries else { return }
        }
        var fresh = SeriesHistory(capacity: historyPoints, rate: rate)
        fresh.append(point)
        history[labels] = fresh
    }

    /// How long what a group was told is remembered across a restart.
    static let notificationLogAge = 86_400.0

    /// Fired when a group's next flush may have come closer (alert states changed, a reload):
    /// the flusher, asleep until the time it was last told, wakes and asks again.
    nonisolated let timersMoved = Wakeup()

    /// The longest the flusher sleeps between two looks at the groups' timers, whatever they say
    /// (so a wall clock that jumps delays a notification by at most this).
    static let longestFlushSleep = 10.0

    /// Flushes what is due, then says how many seconds until the next group is due (at least
    /// 10 ms, at most ``longestFlushSleep``; 1 s while commits fail, which keep their groups due).
    public func flushDue() -> Double {
        flush()
        if commitFailing { return 1 }
        guard let next = evaluation.dispatcher.nextFlush else { return Self.longestFlushSleep }
        return min(Self.longestFlushSleep, max(0.01, next.seconds - clock().seconds))
    }

    /// Notifications due now, committed to the outbox.
    public func flush() {
        // The dispatcher marks groups notified (and drops resolved alerts) as it flushes: keep
        // its state from before, so a commit that fails (a full disk, an SQLite error) puts it
        // back and the same notifications, resolves included, are committed once the disk
        // recovers, at the next flush.
        let before = evaluation.dispatcher
        let notifications = evaluation.dispatcher.flush(at: clock())
        guard !notifications.isEmpty, let notifier else { return }
        do {
            try notifier.submit(notifications, tree: evaluation.dispatcher.tree, now: clock().seconds)
            if commitFailing {
                commitFailing = false
                logger.info("notifications committed again")
            }
            saveNotificationLog()
        } catch {
            evaluation.dispatcher = before
            if !commitFailing {
                logger.error(
                    "cannot commit notifications; kept, and retried at every flush",
                    metadata: ["error": "\(error)"]
                )
            }
            commitFailing = true
        }
    }

    /// Writes what each group was told, after the outbox took it: a crash right after does not
    /// make the next start tell it again.
    private func saveNotificationLog() {
        guard let state else { return }
        do {
            try state.save(notificationLog: evaluation.dispatcher.notificationLog)
            notificationLogFailing = false
        } catch {
            if !notificationLogFailing {
                logger.error("cannot save the notification log", metadata: ["error": "\(error)"])
            }
            notificationLogFailing = true
        }
    }

    private var notificationLogFailing = false

    /// Whether the last commit of notifications failed (logged once per failing spell).
    private(set) var commitFailing = false

    /// Alerts due for re-sending, to the Alertmanager receivers (Prometheus' every minute).
    public func resend(interval: Double = 60) {
        let now = clock()
        let due = evaluation.engine.dueForResend(at: now, interval: interval)
        guard !due.isEmpty, let notifier else { return }
        do {
            try notifier.resendToAlertmanagers(due, tree: evaluation.dispatcher.tree, at: now)
        } catch {
            logger.error("cannot commit re-sends", metadata: ["error": "\(error)"])
        }
    }

    /// Saves detection, model and alert state (atomically, each file on its own).
    public func save() {
        guard let state else { return }
        // Every file on its own: one that cannot be written never keeps the others from disk.
        var saved = true
        func attempt(_ what: String, _ body: () throws(StateFileError) -> Void) {
            do {
                try body()
            } catch {
                saved = false
                logger.error("cannot save state", metadata: ["state": "\(what)", "error": "\(error)"])
            }
        }
        defer {
            // What the log held is in the snapshot now, unless a file could not be written.
            if saved { wal?.checkpoint() }
        }
        for (target, bank) in evaluation.banks.sorted(by: { $0.key < $1.key }) {
            attempt("detection of \(target)") { () throws(StateFileError) in try state.save(bank, source: target) }
        }
        attempt("models") { () throws(StateFileError) in try state.save(evaluation.evaluator.state) }
        attempt("alerts") { () throws(StateFileError) in try state.save(engine) }
    }

    /// Takes a reloaded configuration's routing, receivers and targets: a new routing tree
    /// (silences kept, firing alerts routed again), the new notifier, the new targets' steps.
    /// Detection state and alert states carry on.
    ///
    /// - Parameters:
    ///   - detector: the reloaded `detector:`. One that learns as the running one does (only
    ///     judging parameters such as thresholds differ) runs from the next round on, every bank
    ///     going on with what it learned; another waits for the next start. Either is logged.
    ///   - removedTargets: the targets the reload took out of the configuration: they leave
    ///     the targets list (`/api/v1/targets`, the status page) and their detection state goes;
    ///     a round of theirs that was in flight no longer lists them again. Their alerts resolve
    ///     as their models' things go stale.
    public func reconfigure(
        routing: AlertingSettings,
        detection: [String: DetectionSettings],
        notifier: Notifier,
        detector reloaded: DetectorConfiguration? = nil,
        removedTargets: Set<String> = []
    ) {
        if let reloaded, reloaded != detector {
            if let difference = reloaded.learningDifference(from: detector) {
                // The banks learned with the running detector; one that learns otherwise starts
                // with the next run (and learns afresh: the saved state is not reused).
                logger.warning(
                    "detector changed: it takes effect at the next start, learning afresh",
                    metadata: [
                        "key": "\(difference.key)", "running": "\(difference.saved)", "configured": "\(difference.now)",
                    ]
                )
            } else if let banks = Self.continuing(evaluation.banks, as: reloaded) {
                evaluation.banks = banks
                detector = reloaded
                logger.info("detector changed: its judging parameters apply from the next round, learned state goes on")
            } else {
                logger.warning("detector changed: it takes effect at the next start")
            }
        }
        evaluation.reroute(routing, at: clock(), logAge: Self.notificationLogAge)
        timersMoved.fire()
        self.detection = detection
        self.notifier = notifier
        for (target, _) in evaluation.banks where Self.settings(detection, target: target, job: nil) == nil {
            evaluation.banks[target] = nil
        }
        targets = targets.filter { Self.settings(detection, target: $0.key, job: $0.value.job) != nil }
        for target in removedTargets {
            targets[target] = nil
            evaluation.banks[target] = nil
        }
        retiredTargets = removedTargets
    }

    /// Every bank judged with `configuration` from now on; `nil` when one cannot be.
    private static func continuing(_ banks: [String: DetectionBank], as configuration: DetectorConfiguration)
        -> [String: DetectionBank]?
    {
        var out: [String: DetectionBank] = [:]
        for (target, bank) in banks {
            guard let next = bank.continuing(as: configuration) else { return nil }
            out[target] = next
        }
        return out
    }

    // MARK: Silences

    /// The silences, newest first.
    public var silences: [Silence] { evaluation.dispatcher.silences.sorted { $0.startsAt > $1.startsAt } }

    /// Adds a silence; it mutes matching alerts from its start to its end.
    /// - Throws: ``DaemonError`` for matchers that do not parse or an end not after the start.
    public func addSilence(_ silence: Silence) throws(DaemonError) -> Silence {
        guard !silence.matchers.isEmpty else { throw DaemonError(reason: "a silence needs at least one matcher") }
        guard silence.matchers.count <= Self.maxSilenceMatchers else {
            throw DaemonError(reason: "a silence has at most \(Self.maxSilenceMatchers) matchers")
        }
        var parsed: [LabelMatcher] = []
        for text in silence.matchers {
            do {
                parsed.append(try LabelMatcher(parsing: text))
            } catch {
                throw DaemonError(reason: error.reason)
            }
        }
        // As Alertmanager: a silence whose every matcher matches the empty string would mute
        // everything that lacks those labels, which is almost everything.
        guard parsed.contains(where: { !$0.matches(String?.some("")) }) else {
            throw DaemonError(
                reason: "at least one matcher must not match the empty string (this silence would mute everything)"
            )
        }
        guard silence.endsAt > silence.startsAt else {
            throw DaemonError(reason: "endsAt must be after startsAt")
        }
        // Expired silences are kept for the list, the oldest forgotten first; live ones are capped.
        let now = clock()
        let live = evaluation.dispatcher.silences.filter { $0.endsAt > now }.count
        guard live < Self.maxSilences else {
            throw DaemonError(reason: "there are already \(Self.maxSilences) pending or active silences")
        }
        let expired = evaluation.dispatcher.silences.enumerated().filter { $0.element.endsAt <= now }
        if evaluation.dispatcher.silences.count >= Self.maxSilences + Self.maxExpiredSilences,
            let oldest = expired.first
        {
            evaluation.dispatcher.silences.remove(at: oldest.offset)
        }
        evaluation.dispatcher.silences.append(silence)
        saveSilences()
        return silence
    }

    /// The most pending or active silences, and expired ones kept besides them.
    public static let maxSilences = 1000
    public static let maxExpiredSilences = 1000
    /// The most matchers one silence may have.
    public static let maxSilenceMatchers = 64

    /// Ends a silence now. Returns whether there was one with that id.
    public func expireSilence(id: String) -> Bool {
        guard let index = evaluation.dispatcher.silences.firstIndex(where: { $0.id == id }) else { return false }
        let now = clock()
        // A pending silence ends before it began, as in Alertmanager: it starts and ends now.
        if evaluation.dispatcher.silences[index].startsAt > now { evaluation.dispatcher.silences[index].startsAt = now }
        if evaluation.dispatcher.silences[index].endsAt > now { evaluation.dispatcher.silences[index].endsAt = now }
        saveSilences()
        return true
    }

    private func saveSilences() {
        guard let state else { return }
        do {
            try state.save(silences: evaluation.dispatcher.silences)
        } catch {
            logger.error("cannot save silences", metadata: ["error": "\(error)"])
        }
    }

    public var targetStatuses: [TargetStatus] { targets.values.sorted { $0.target < $1.target } }

    public var seriesStatuses: [SeriesStatus] { series.values.sorted { $0.labels < $1.labels } }

    public var seriesCount: Int { evaluation.banks.values.reduce(0) { $0 + $1.store.count } }

    /// Counter resets the detection banks have seen.
    public var counterResets: Int { evaluation.banks.values.reduce(0) { $0 + $1.counterResets } }

    public func alerts() -> [Alert] {
        (evaluation.engine.alerts(in: .firing) + evaluation.engine.alerts(in: .pending)
            + evaluation.engine.alerts(in: .resolved))
    }

    /// What the status page shows: active alerts (firing first, then by severity and age) with
    /// the charts of the series their models watch, targets, recently resolved alerts, silences.
    func statusSnapshot(version: String, maxCharts: Int = 24, chartsPerAlert: Int = 4) -> StatusPage.Snapshot {
        let rank = ["critical": 0, "error": 1, "warning": 2, "info": 3]
        let active = (evaluation.engine.alerts(in: .firing) + evaluation.engine.alerts(in: .pending)).sorted {
            ($0.state == .firing ? 0 : 1, rank[$0.labels["severity"] ?? ""] ?? 4, $0.activeSince.milliseconds)
                < ($1.state == .firing ? 0 : 1, rank[$1.labels["severity"] ?? ""] ?? 4, $1.activeSince.milliseconds)
        }
        var left = maxCharts
        var panels: [StatusPage.AlertPanel] = []
        for alert in active {
            let charts = left > 0 ? charts(for: alert, limit: min(chartsPerAlert, left)) : []
            left -= charts.count
            panels.append(StatusPage.AlertPanel(alert: alert, charts: charts))
        }
        return StatusPage.Snapshot(
            now: clock(),
            version: version,
            targets: targetStatuses,
            active: panels,
            resolved: evaluation.engine.alerts(in: .resolved).sorted {
                ($0.resolvedAt?.milliseconds ?? 0) > ($1.resolvedAt?.milliseconds ?? 0)
            },
            silences: silences,
            series: seriesCount
        )
    }

    /// The kept series of the models that raise `alert`, of the thing it is about (the models'
    /// `group_by` labels equal to the alert's).
    private func charts(for alert: Alert, limit: Int) -> [StatusPage.Chart] {
        let name = alert.labels["alertname"] ?? ""
        var out: [StatusPage.Chart] = []
        for model in models where model.alert.name == name {
            let metrics = model.kind.primaryMetrics
            let found = history.filter { labels, _ in
                metrics.contains(labels.metricName)
                    && model.groupBy.allSatisfy { (labels[$0] ?? "") == (alert.labels[$0] ?? "") }
            }
            for (labels, ring) in found.sorted(by: { $0.key < $1.key }) {
                out.append(StatusPage.Chart(labels: labels, rate: ring.rate, points: ring.points))
            }
        }
        return Array(out.prefix(limit))
    }

    public static func now() -> Timestamp { Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)) }
}
