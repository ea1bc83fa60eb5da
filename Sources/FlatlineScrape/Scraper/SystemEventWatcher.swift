import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import FlatlineNATS
import Foundation
import Logging
import Synchronization

/// Listens to the disconnect events a cluster's servers publish to the system account
/// (`$SYS.ACCOUNT.<account>.DISCONNECT`): a client cut off as a slow consumer is counted on its
/// server's extractor the moment it happens and handed on as a batch at the event's time, so
/// `SlowConsumerDisconnect` fires within a second whatever the scrape interval. The scrapes that
/// follow do not count it again. Runs on a connection of its own, with the job's credentials.
///
/// Events of servers the job has not scraped yet, and events whose sample arrives after a
/// scrape already carried a later value of the series, are left to the scrapes (which count
/// every cut-off from `/varz` or the closed connections); bodies that are no event are counted
/// in ``Statistics`` and logged once per spell.
struct SystemEventWatcher: Sendable {
    /// The subject the servers publish disconnect events on.
    static let subject = "$SYS.ACCOUNT.*.DISCONNECT"

    struct Statistics: Sendable, Hashable {
        /// Disconnect events read.
        var events = 0
        /// Slow-consumer cut-offs counted from events.
        var counted = 0
        /// Cut-offs of servers not scraped yet (left to the scrapes).
        var unknownServer = 0
        /// Bodies that are no disconnect event.
        var invalid = 0
    }

    let job: ScrapeConfiguration
    let servers: SystemServers
    let recorder: Recorder?
    let logger: Logger
    let statistics = SharedStatistics()

    final class SharedStatistics: Sendable {
        let value = Mutex(Statistics())
    }

    /// Watches until the task is cancelled.
    func run(sink: @escaping @Sendable (ScrapeBatch) async -> Void) async {
        await EventListener.run(job: job, what: "disconnect events", subjects: [Self.subject], logger: logger) { body in
            if let batch = await handle(body) { await sink(batch) }
        }
    }

    /// One event: the batch it brings, if any.
    func handle(_ body: [UInt8]) async -> ScrapeBatch? {
        let event = EventListener.parse(body, subject: Self.subject, logger: logger) {
            statistics.value.withLock {
                $0.invalid += 1
                return $0.invalid
            }
        }
        guard case .clientDisconnect(let disconnect) = event else { return nil }
        statistics.value.withLock { $0.events += 1 }
        guard disconnect.isSlowConsumer else { return nil }
        let result = servers.states.withLock { states -> (ScrapeTarget, ScrapeBatch)? in
            guard var state = states[disconnect.serverName] else { return nil }
            let samples = state.extractor.slowConsumerDisconnected(
                cid: disconnect.cid,
                clientName: disconnect.clientName,
                at: disconnect.time
            )
            let batch = state.event(samples: samples, time: disconnect.time)
            states[disconnect.serverName] = state
            return (state.target, batch)
        }
        guard let (target, batch) = result else {
            statistics.value.withLock { $0.unknownServer += 1 }
            return nil
        }
        statistics.value.withLock { $0.counted += 1 }
        logger.info(
            "a client was cut off as a slow consumer",
            metadata: [
                "server": "\(disconnect.serverName)", "cid": "\(disconnect.cid)", "client": "\(disconnect.clientName)",
                "account": "\(disconnect.account)", "reason": "\(disconnect.reason)",
            ]
        )
        if let document = try? JSONDocument(parsing: body) {
            await recorder?.json(disconnect.time, target, NATSEvent.recordingEndpoint, page: 1, document)
        }
        return batch.samples.isEmpty ? nil : batch
    }
}
