import FlatlineCore
import FlatlineIngest
import FlatlineScrape
import Logging

/// `backfill:`: a target that starts cold (nothing learned, nothing saved) first reads its own
/// history from the Prometheus that scraped it, through the same pipeline as its live rounds, so
/// seasonal baselines and the models' warm-ups are behind it before the first scrape.
///
/// Only `prometheus` jobs: their series are in Prometheus under the names and labels Flatline
/// scrapes (`job`, `instance`, the target's own labels). A NATS job's series are Flatline's own
/// extraction from JSON, which Prometheus does not hold under those names.
enum Backfill {
    /// Reads and feeds every cold target's history, one target at a time, `lookback` up to
    /// `now` at the job's scrape interval, in requests of 1,000 steps. A failure is logged and
    /// the target keeps what it learned up to it.
    static func run(
        _ settings: BackfillSettings,
        targets: [ScrapeTarget],
        pipeline: Pipeline,
        logger: Logger,
        now: Timestamp
    ) async {
        var skippedJobs = Set<String>()
        var types: [String: String]?
        var fed = 0
        for target in targets {
            if Task.isCancelled { break }
            let job = target.job
            guard job.kind == .prometheus else {
                if skippedJobs.insert(job.jobName).inserted {
                    logger.notice(
                        "backfill: not for this job: its series are Flatline's own extraction, not in Prometheus",
                        metadata: ["job": "\(job.jobName)", "kind": "\(job.kind.rawValue)"]
                    )
                }
                continue
            }
            guard await pipeline.isCold(target: target.name) else {
                logger.info("backfill: the target has learned state already", metadata: ["target": "\(target.name)"])
                continue
            }
            guard let start = Timestamp(exactMilliseconds: Double(now.milliseconds) - settings.lookback * 1000) else {
                continue
            }
            let selector =
                "{job=\"\(LabelSet.escape(job.jobName))\",instance=\"\(LabelSet.escape(target.address))\"}"
            var range = PrometheusRange(
                url: settings.url,
                queries: [selector],
                start: start,
                end: now,
                step: job.scrapeInterval
            )
            range.pointsPerRequest = 1_000
            range.timeout = settings.timeout
            range.bearerTokenFile = settings.bearerTokenFile
            range.maxSeries = job.maxSeries ?? ScrapeConfiguration.defaultMaxSeries
            if types == nil {
                do {
                    types = try await range.metadata()
                } catch {
                    logger.notice(
                        "backfill: no metric types from Prometheus; names ending in _total are taken as counters",
                        metadata: ["error": "\(error)"]
                    )
                    types = [:]
                }
            }
            let kinds = types ?? [:]
            var rounds = 0
            var samples = 0
            var series = Set<LabelSet>()
            let clock = ContinuousClock()
            var lastReport = clock.now
            do {
                try await range.read(progress: { done, total in
                    guard clock.now - lastReport > .seconds(10) || done == total else { return }
                    lastReport = clock.now
                    logger.info(
                        "backfilling",
                        metadata: ["target": "\(target.name)", "requests": "\(done)/\(total)"]
                    )
                }) { answer async throws(PrometheusRangeError) in
                    let batches = Self.rounds(answer, of: target, types: kinds)
                    rounds += batches.count
                    for one in answer where !one.points.isEmpty { series.insert(one.labels) }
                    samples += batches.reduce(0) { $0 + $1.samples.count }
                    await pipeline.ingestHistory(batches)
                }
            } catch {
                logger.error(
                    "backfill failed; the target continues from what it read",
                    metadata: ["target": "\(target.name)", "error": "\(error)"]
                )
            }
            fed += 1
            logger.info(
                "backfilled from Prometheus",
                metadata: [
                    "target": "\(target.name)", "series": "\(series.count)", "samples": "\(samples)",
                    "rounds": "\(rounds)", "since": "\(start)",
                ]
            )
        }
        if fed > 0 { await pipeline.endBackfill() }
    }

    /// One answer as the target's past rounds: its samples grouped by time, in time order, with
    /// the target's labels as a live scrape sets them (Prometheus keeps no external labels).
    static func rounds(_ answer: [PrometheusRange.Series], of target: ScrapeTarget, types: [String: String])
        -> [ScrapeBatch]
    {
        var byTime: [Int64: [Sample]] = [:]
        for one in answer {
            var labels = one.labels
            for (name, value) in target.labels where labels[name] != value {
                guard let set = try? labels.setting(name, to: value) else { continue }
                labels = set
            }
            let kind = PrometheusRange.kind(of: labels.metricName, types: types)
            for point in one.points {
                byTime[point.time.milliseconds, default: []].append(
                    Sample(labels: labels, value: point.value, timestamp: point.time, kind: kind)
                )
            }
        }
        return byTime.keys.sorted().map { ms in
            let samples = byTime[ms] ?? []
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
