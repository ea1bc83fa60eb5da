import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import Logging

/// What one target keeps from round to round, whoever fetches its bodies (HTTP or the system
/// account): its extraction and validation state, and how a round ends.
struct TargetState {
    let target: ScrapeTarget
    var extractor: TargetExtractor
    var validator: SampleValidator

    init(target: ScrapeTarget, global: GlobalSettings) {
        self.target = target
        extractor = TargetExtractor(
            kind: target.job.kind,
            targetLabels: target.labels,
            options: target.job.nats.extraction,
            relabel: target.job.relabel,
            limits: target.job.limits
        )
        validator = SampleValidator(
            maxSeries: target.job.maxSeries,
            futureTolerance: global.futureTolerance,
            staleAfter: global.staleAfter,
            requirements: target.job.requiredLabels
        )
    }

    /// Ends a round: validates its samples, records its health, and adds the scrape's own series.
    mutating func finish(
        samples: [Sample],
        errors: [String: String],
        time: Timestamp,
        durationSeconds: Double,
        recorder: Recorder?
    ) async -> ScrapeBatch {
        let batch = close(samples: samples, errors: errors, time: time, durationSeconds: durationSeconds)
        await recorder?.health(time, target, batch.health)
        return batch
    }

    /// ``finish(samples:errors:time:durationSeconds:recorder:)`` without the recording.
    mutating func close(
        samples: [Sample],
        errors: [String: String],
        time: Timestamp,
        durationSeconds: Double
    ) -> ScrapeBatch {
        let (valid, validated) = validator.validate(samples, scrapeTime: time)
        let extraction = extractor.takeDrops()
        validator.count(extraction)
        var drops = validated
        drops.add(extraction)
        let health = ScrapeHealth(
            up: errors.isEmpty,
            durationSeconds: durationSeconds,
            samplesScraped: samples.count,
            samplesDropped: drops.total
        )
        return ScrapeBatch(
            target: target.name,
            labels: target.labels,
            time: time,
            samples: valid + extractor.healthSamples(health, drops: validator.drops, at: time),
            health: health,
            errors: errors,
            drops: drops
        )
    }

    /// Samples an event brought, validated as a scrape's are, as a batch at the event's time.
    mutating func event(samples: [Sample], time: Timestamp) -> ScrapeBatch {
        let (valid, drops) = validator.validate(samples, scrapeTime: time)
        return ScrapeBatch(
            target: target.name,
            labels: target.labels,
            time: time,
            samples: valid,
            health: ScrapeHealth(
                up: true,
                durationSeconds: 0,
                samplesScraped: samples.count,
                samplesDropped: drops.total
            ),
            errors: [:],
            drops: drops,
            event: true
        )
    }
}

/// Logs a failure once when it starts and once when it ends, not at every round.
struct FailureLog {
    private var last: [String: String] = [:]

    /// `errors` by what failed (an endpoint, or a server and endpoint).
    mutating func update(_ errors: [String: String], logger: Logger) {
        for (what, reason) in errors.sorted(by: { $0.key < $1.key }) where last[what] != reason {
            logger.warning("scrape failed", metadata: ["what": "\(what)", "reason": "\(reason)"])
        }
        for what in last.keys.sorted() where errors[what] == nil {
            logger.info("scrape recovered", metadata: ["what": "\(what)"])
        }
        last = errors
    }
}
