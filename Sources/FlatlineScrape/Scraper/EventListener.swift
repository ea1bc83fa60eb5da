import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import FlatlineNATS
import Logging
import Synchronization

/// A NATS connection with the job's servers and credentials that hands every message on the
/// given subjects to `handle`, one at a time, until the task is cancelled. The client reconnects
/// (and re-subscribes) by itself when the connection drops.
enum EventListener {
    static func run(
        job: ScrapeConfiguration,
        what: String,
        subjects: [String],
        logger: Logger,
        handle: @escaping @Sendable ([UInt8]) async -> Void
    ) async {
        var attempt = 0
        while !Task.isCancelled {
            let started = ContinuousClock.now
            await listen(job: job, what: what, subjects: subjects, logger: logger, handle: handle)
            // A client that gave up (or could not be set up) is made anew, after a pause that
            // grows while it keeps failing at once.
            attempt = ContinuousClock.now - started > .seconds(60) ? 1 : attempt + 1
            try? await Task.sleep(for: .seconds(min(60, 2 * attempt)))
        }
    }

    private static func listen(
        job: ScrapeConfiguration,
        what: String,
        subjects: [String],
        logger: Logger,
        handle: @escaping @Sendable ([UInt8]) async -> Void
    ) async {
        let client: NATSClient
        do {
            let name = "flatline-\(job.jobName)-events"
            client = NATSClient(configuration: try SystemScraper.clientConfiguration(job, name: name), logger: logger)
        } catch {
            logger.error("cannot listen to \(what)", metadata: ["reason": "\(error.reason)"])
            return
        }
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        try await client.run()
                    } catch {
                        logger.warning("\(what): the connection ended", metadata: ["error": "\(error)"])
                    }
                }
                var subscriptions: [NATSSubscription] = []
                for subject in subjects {
                    do {
                        subscriptions.append(try client.subscribe(to: subject))
                    } catch {
                        logger.error(
                            "cannot subscribe to \(what)",
                            metadata: ["subject": "\(subject)", "error": "\(error)"]
                        )
                    }
                }
                // One reader for all subjects, so events are handled in the order they came. A
                // reader that falls 10,000 events behind drops the newest (counted, logged).
                let (merged, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingOldest(10_000))
                let dropped = DropCounter()
                for subscription in subscriptions {
                    group.addTask {
                        for await message in subscription {
                            if case .dropped = continuation.yield(message.bytes) {
                                let count = dropped.value.wrappingAdd(1, ordering: .relaxed).newValue
                                if count == 1 || count % 1000 == 0 {
                                    logger.warning(
                                        "\(what): events dropped, too many waiting",
                                        metadata: ["dropped": "\(count)"]
                                    )
                                }
                            }
                        }
                    }
                }
                group.addTask {
                    for await body in merged { await handle(body) }
                }
                await group.next()
                continuation.finish()
                group.cancelAll()
                client.close()
            }
        } onCancel: {
            client.close()
        }
    }

    /// An event body parsed; one that is no event is counted (`countInvalid` returns the count
    /// so far) and logged: the first, then every thousandth (a server, or a rogue publisher,
    /// sending garbage must not flood the log).
    static func parse(_ body: [UInt8], subject: String, logger: Logger, countInvalid: () -> Int) -> NATSEvent? {
        do {
            return try NATSEvent.parse(body)
        } catch {
            let count = countInvalid()
            guard count == 1 || count % 1000 == 0 else { return nil }
            logger.warning(
                "ignoring a body that is no event",
                metadata: ["subject": "\(subject)", "reason": "\(error.reason)", "ignored": "\(count)"]
            )
            return nil
        }
    }
}

/// Events a listener dropped because its reader fell behind.
private final class DropCounter: Sendable {
    let value = Atomic<Int>(0)
}
