import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import FlatlineNATS
import Foundation
import Logging
import Synchronization

/// A `nats_events` job: listens to the JetStream consumer advisories of the account it connects
/// to (`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>`, `MSG_TERMINATED.>`, `MSG_NAKED.>`) and
/// counts them per stream and consumer into `flatline_jetstream_consumer_*_total` series, handed
/// on as a batch at each advisory's own time, so a message that hit `max_deliver` is alerted
/// within a second whatever the scrape interval. There are no scrapes: the job's one target is
/// its connection (`instance` is its server list).
struct AdvisoryWatcher: Sendable {
    static let subjects = [
        "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>", "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>",
        "$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.>",
    ]

    struct Statistics: Sendable, Hashable {
        /// Advisories counted, by kind.
        var counted: [String: Int] = [:]
        /// Bodies that are no advisory.
        var invalid = 0
    }

    let job: ScrapeConfiguration
    let recorder: Recorder?
    let logger: Logger
    private let state: Shared

    private final class Shared: Sendable {
        let target: Mutex<TargetState>
        let statistics = Mutex(Statistics())
        init(_ state: TargetState) { target = Mutex(state) }
    }

    init(job: ScrapeConfiguration, global: GlobalSettings, recorder: Recorder?, logger: Logger) {
        self.job = job
        self.recorder = recorder
        var logger = logger
        logger[metadataKey: "job"] = "\(job.jobName)"
        self.logger = logger
        var labels = global.externalLabels
        let address = Redaction.redactingUserinfo(job.targets.map(\.address).joined(separator: ","))
        labels["job"] = job.jobName
        labels["instance"] = address
        for target in job.targets { labels.merge(target.labels) { _, own in own } }
        state = Shared(TargetState(target: ScrapeTarget(job: job, address: address, labels: labels), global: global))
    }

    var statistics: Statistics { state.statistics.withLock { $0 } }

    /// Watches until the task is cancelled.
    func run(sink: @escaping @Sendable (ScrapeBatch) async -> Void) async {
        await EventListener.run(job: job, what: "JetStream advisories", subjects: Self.subjects, logger: logger) {
            body in
            if let batch = await handle(body) { await sink(batch) }
        }
    }

    /// One advisory: the batch it brings, if any.
    func handle(_ body: [UInt8]) async -> ScrapeBatch? {
        let event = EventListener.parse(body, subject: "$JS.EVENT.ADVISORY.CONSUMER", logger: logger) {
            state.statistics.withLock {
                $0.invalid += 1
                return $0.invalid
            }
        }
        guard case .consumerAdvisory(let advisory) = event else { return nil }
        state.statistics.withLock { $0.counted[advisory.kind.rawValue, default: 0] += 1 }
        let (target, batch) = state.target.withLock { state in
            let samples = state.extractor.advisory(advisory)
            return (state.target, state.event(samples: samples, time: advisory.time))
        }
        if let document = try? JSONDocument(parsing: body) {
            await recorder?.json(advisory.time, target, NATSEvent.recordingEndpoint, page: 1, document)
        }
        return batch.samples.isEmpty ? nil : batch
    }
}
