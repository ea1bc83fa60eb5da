import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import FlatlineScrape
import Logging

/// `backfill:`: a target that starts cold (nothing learned, nothing saved) first reads its own
/// history from the Prometheus that scraped it, through the same pipeline as its live rounds, so
/// seasonal baselines and the models' warm-ups are behind it before the first scrape.
///
/// A `prometheus` job's series are in Prometheus under the names and labels Flatline scrapes
/// (`job`, `instance`, the target's own labels). A `nats` job's are Flatline's own extraction from
/// the monitoring JSON; Prometheus holds them as prometheus-nats-exporter scraped them, under the
/// same names with the exporter's labels (``ExporterSeries``), found by the server's monitoring
/// URL (`server_id`).
enum Backfill {
    /// Reads and feeds every cold target's history, one target at a time, `lookback` up to the
    /// moment its turn comes, at the job's scrape interval, in requests of 1,000 steps. A
    /// Prometheus that does not answer the first request means no backfill; a target's failure
    /// is logged and it keeps what it learned up to it. Stops when the task is cancelled.
    static func run(
        _ settings: BackfillSettings,
        targets: [ScrapeTarget],
        pipeline: Pipeline,
        logger: Logger,
        clock: () -> Timestamp = Pipeline.now
    ) async {
        let begun = clock()
        var skippedJobs = Set<String>()
        var cold: [ScrapeTarget] = []
        for target in targets {
            let job = target.job
            guard job.kind == .prometheus || job.kind == .nats else {
                if skippedJobs.insert(job.jobName).inserted {
                    logger.notice(
                        "backfill: not for this job: its servers are found at run time, or its samples are events",
                        metadata: ["job": "\(job.jobName)", "kind": "\(job.kind.rawValue)"]
                    )
                }
                continue
            }
            if await pipeline.isCold(target: target.name) {
                cold.append(target)
            } else {
                logger.info("backfill: the target has learned state already", metadata: ["target": "\(target.name)"])
            }
        }
        guard !cold.isEmpty else { return }
        // The metric types, and a probe: a Prometheus that does not answer costs one timeout,
        // not one per target.
        var probe = PrometheusRange(url: settings.url, queries: ["up"], start: begun, end: begun, step: 1)
        probe.timeout = settings.timeout
        probe.bearerTokenFile = settings.bearerTokenFile
        let types: [String: String]
        do {
            types = try await probe.metadata()
        } catch {
            logger.error(
                "backfill: Prometheus does not answer; every target starts cold",
                metadata: ["error": "\(error)"]
            )
            return
        }
        var fed = 0
        for target in cold {
            if Task.isCancelled { break }
            await feed(target, settings: settings, types: types, pipeline: pipeline, logger: logger, end: clock())
            fed += 1
        }
        await pipeline.endBackfill()
        // A series not seen for `stale_after` (10 minutes by default) is forgotten at its
        // target's first scrape: history read that long before it is lost.
        let took = clock().seconds - begun.seconds
        if took > 600 {
            logger.warning(
                "backfill took longer than a series stays remembered without samples (10 minutes by default): targets read first may start cold; shorten backfill.lookback",
                metadata: ["seconds": "\(took.rounded())", "targets": "\(fed)"]
            )
        }
    }

    /// Names of Prometheus's own scrape series that Flatline's scrapes do not have.
    static func foreign(_ name: String) -> Bool {
        name.hasPrefix("scrape_")
            && !["scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_dropped"].contains(name)
    }

    /// One cold target's history up to `end`, at its job's scrape interval.
    private static func feed(
        _ target: ScrapeTarget,
        settings: BackfillSettings,
        types: [String: String],
        pipeline: Pipeline,
        logger: Logger,
        end: Timestamp
    ) async {
        let job = target.job
        guard let start = Timestamp(exactMilliseconds: Double(end.milliseconds) - settings.lookback * 1000) else {
            return
        }
        // The labels the live series carry (a static label may set `instance`); a NATS server's,
        // the exporter's series of its monitoring URL.
        let jobLabel = target.labels["job"] ?? job.jobName
        let instance = target.labels["instance"] ?? target.address
        let query =
            job.kind == .nats
            ? ExporterSeries.selector(address: target.address, template: settings.natsExporter.selector)
            : "{job=\"\(LabelSet.escape(jobLabel))\",instance=\"\(LabelSet.escape(instance))\"}"
        var range = PrometheusRange(
            url: settings.url,
            queries: [query],
            start: start,
            end: end,
            step: job.scrapeInterval
        )
        range.pointsPerRequest = 1_000
        range.timeout = settings.timeout
        range.bearerTokenFile = settings.bearerTokenFile
        var rounds = 0
        var samples = 0
        var series = Set<LabelSet>()
        let clock = ContinuousClock()
        var lastReport = clock.now
        do {
            try await range.read(progress: { done, total in
                guard clock.now - lastReport > .seconds(10) || done == total else { return }
                lastReport = clock.now
                logger.info("backfilling", metadata: ["target": "\(target.name)", "requests": "\(done)/\(total)"])
            }) { answer, _ async throws(PrometheusRangeError) in
                let own: [(PrometheusRange.Series, MetricKind)] =
                    job.kind == .nats
                    ? Self.fromExporter(answer, prefix: settings.natsExporter.prefix)
                    : Self.typed(answer, types: types)
                let batches = Self.rounds(own, of: target)
                rounds += batches.count
                for (one, _) in own where !one.points.isEmpty { series.insert(one.labels) }
                samples += batches.reduce(0) { $0 + $1.samples.count }
                await pipeline.ingestHistory(batches)
            }
        } catch {
            logger.error(
                "backfill failed; the target continues from what it read",
                metadata: ["target": "\(target.name)", "error": "\(error)"]
            )
        }
        logger.info(
            "backfilled from Prometheus",
            metadata: [
                "target": "\(target.name)", "series": "\(series.count)", "samples": "\(samples)",
                "rounds": "\(rounds)", "since": "\(start)",
            ]
        )
    }

    /// The exporter's series of one server as Flatline's (``ExporterSeries``), with the server's
    /// name and cluster (from the series that carry them) on every one, as a live scrape sets
    /// them; series Flatline has no counterpart of are left out. Their kinds are Flatline's: the
    /// exporter calls every number a gauge.
    static func fromExporter(_ answer: [PrometheusRange.Series], prefix: String? = nil) -> [(
        PrometheusRange.Series, MetricKind
    )] {
        var server: [String: String] = [:]
        for one in answer where server.isEmpty { server = ExporterSeries.serverLabels(one.labels) }
        var out: [(PrometheusRange.Series, MetricKind)] = []
        for one in answer {
            guard let (pairs, kind) = ExporterSeries.flatline(one.labels, prefix: prefix),
                let labels = try? LabelSet(validating: pairs + server.map { ($0.key, $0.value) })
            else { continue }
            out.append((PrometheusRange.Series(labels: labels, points: one.points), kind))
        }
        return out
    }

    /// A `prometheus` job's series with their kinds, from the metadata's `types` (a family's
    /// `# TYPE`); Prometheus's own scrape series that Flatline does not have are left out.
    static func typed(_ answer: [PrometheusRange.Series], types: [String: String]) -> [(
        PrometheusRange.Series, MetricKind
    )] {
        answer.filter { !foreign($0.labels.metricName) }.map {
            ($0, PrometheusRange.kind(of: $0.labels.metricName, types: types))
        }
    }

    /// Series of known kinds as the target's past rounds: samples grouped by time, in time order,
    /// with the target's labels as a live scrape sets them (Prometheus keeps no external labels).
    /// Two series that became one (labels Flatline does not keep changed in Prometheus) give the
    /// later one's value at a time.
    static func rounds(_ answer: [(PrometheusRange.Series, MetricKind)], of target: ScrapeTarget) -> [ScrapeBatch] {
        var byTime: [Int64: [LabelSet: Sample]] = [:]
        for (one, kind) in answer {
            var labels = one.labels
            for (name, value) in target.labels where labels[name] != value {
                guard let set = try? labels.setting(name, to: value) else { continue }
                labels = set
            }
            for point in one.points {
                byTime[point.time.milliseconds, default: [:]][labels] = Sample(
                    labels: labels,
                    value: point.value,
                    timestamp: point.time,
                    kind: kind
                )
            }
        }
        return byTime.keys.sorted().map { ms in
            let samples = (byTime[ms] ?? [:]).values.sorted { $0.labels < $1.labels }
            return ScrapeBatch(
                target: target.name,
                labels: target.labels,
                time: Timestamp(milliseconds: ms),
                samples: samples,
                health: ScrapeHealth(up: true, durationSeconds: 0, samplesScraped: samples.count, samplesDropped: 0),
                errors: [:],
                drops: DropCounts()
            )
        }
    }
}
