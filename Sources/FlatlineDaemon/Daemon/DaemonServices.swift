import FlatlineConfig
import FlatlineCore
import FlatlineNotify
import FlatlineScrape
import Logging
import ServiceLifecycle
import UnixSignals

// The daemon's parts, each a service of its `ServiceGroup` (``Daemon/run(signals:)`` orders
// them). Each runs until the group's graceful shutdown reaches it, then does its last work and
// returns; none returns before (the group would take that for a failure).

/// The scrapers of the running configuration, restarted at each reload. First, learning
/// continues where a crash stopped it (the write-ahead log, one synchronous call on the pipeline:
/// everything else that needs the pipeline waits for it, the HTTP server's `/healthz` does not);
/// then a target that starts cold reads its history from Prometheus (`backfill:`). At the end,
/// the recording of `--record` is closed.
struct ScrapeService: Service {
    let daemon: Daemon

    func run() async {
        let logger = daemon.logger
        await daemon.pipeline.recover()
        await cancelWhenGracefulShutdown {
            if let backfill = daemon.configuration.backfill {
                await Backfill.run(
                    backfill,
                    targets: daemon.configuration.targets,
                    pipeline: daemon.pipeline,
                    logger: logger
                )
            }
            while !Task.isCancelled {
                let seen = daemon.reloads.current
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { await scrape(logger: logger) }
                    group.addTask { await daemon.reloads.wait(past: seen) }
                    await group.next()
                    group.cancelAll()
                }
            }
        }
        await daemon.closeRecording()
    }

    /// The configuration of the moment, scraped until the task is cancelled.
    private func scrape(logger: Logger) async {
        let configuration = daemon.configuration
        let pipeline = daemon.pipeline
        let cluster = daemon.cluster
        cluster?.track(Scraper.units(of: configuration))
        let userAgent = cluster.map { Cluster.userAgent("flatline", replica: $0.settings.replica) } ?? "flatline"
        do {
            try await Scraper(
                configuration: configuration,
                recorder: daemon.recorder,
                userAgent: userAgent,
                owns: Self.ownership(cluster),
                taking: Self.takingOver(daemon.sharedState, pipeline: pipeline),
                discovered: Self.discovering(cluster),
                released: Self.releasing(cluster, pipeline: pipeline),
                logger: logger
            )
            .run { batch in
                await pipeline.ingest(batch)
            }
        } catch {
            logger.error("scraping cannot start", metadata: ["error": "\(error)"])
        }
        // Scrapers ended on their own (nothing to scrape): the next reload or the end.
        await daemon.reloads.wait(past: Int.max)
    }

    /// Whether this process scrapes a unit: its cluster's share, or everything.
    private static func ownership(_ cluster: Cluster?) -> (@Sendable (String) -> Bool)? {
        guard let cluster else { return nil }
        return { unit in cluster.owns(unit) }
    }

    /// The servers a `nats_system` job found, told to the cluster (units of their own).
    private static func discovering(_ cluster: Cluster?) -> (
        @Sendable (_ job: String, _ servers: [DiscoveredUnit]) -> Void
    )? {
        guard let cluster else { return nil }
        return { job, servers in cluster.discovered(job: job, servers: servers) }
    }

    /// A target now evaluated by another replica: its state and alerts are left to that one.
    private static func releasing(_ cluster: Cluster?, pipeline: Pipeline) -> (
        @Sendable (_ unit: String, _ labels: [String: String]) async -> Void
    )? {
        guard cluster != nil else { return nil }
        return { unit, labels in await pipeline.release(target: unit, labels: labels) }
    }

    /// Before the first scrape of a target taken over: its shared state, if it is cold here.
    private static func takingOver(_ shared: SharedState?, pipeline: Pipeline) -> (
        @Sendable (String) async -> Void
    )? {
        guard let shared else { return nil }
        return { unit in await shared.takeOver(unit, pipeline: pipeline) }
    }
}

/// Delivers what the outbox holds (through the cluster's stream, with `cluster:`), with the
/// receivers of the running configuration; a reload's new receivers take over and the old ones
/// are shut down. At the end the outbox gets `shutdownGrace` seconds to drain.
struct CourierService: Service {
    let daemon: Daemon

    func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let seen = daemon.reloads.current
                let notifier = daemon.notifier
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { await notifier.courier.run() }
                    if let shared = daemon.sharedDelivery {
                        group.addTask { await shared.run(integrations: notifier.receivers.values.flatMap { $0 }) }
                    }
                    group.addTask { await daemon.reloads.wait(past: seen) }
                    await group.next()
                    group.cancelAll()
                }
                if notifier !== daemon.notifier { await notifier.shutdown() }
            }
        }
        let notifier = daemon.notifier
        let left = await notifier.courier.drain(within: daemon.options.shutdownGrace) ?? 0
        if left > 0 {
            daemon.logger.warning(
                "notifications left in the outbox for the next start",
                metadata: ["pending": "\(left)"]
            )
        }
        await notifier.shutdown()
    }
}

/// Notifications when they are due: asleep until the earliest group's time (Alertmanager's
/// `group_wait`, `group_interval`, `repeat_interval`), woken when alert states change. At the
/// end, what is due is committed to the outbox.
struct FlushService: Service {
    let pipeline: Pipeline

    func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let wait = await pipeline.flushDue()
                await pipeline.timersMoved.wait(upTo: Duration.clamped(seconds: wait))
            }
        }
        await pipeline.flush()
    }
}

/// Firing alerts sent again to Alertmanager receivers every minute, as Prometheus does.
struct ResendService: Service {
    let pipeline: Pipeline

    func run() async {
        await cancelWhenGracefulShutdown {
            while true {
                do { try await Task.sleep(for: .seconds(60)) } catch { return }
                await pipeline.resend()
            }
        }
    }
}

/// Learned state saved every `--save-interval` (and shared with the cluster); at the end, a last
/// save and upload.
struct SaverService: Service {
    let daemon: Daemon

    func run() async {
        let pipeline = daemon.pipeline
        await cancelWhenGracefulShutdown {
            while true {
                do { try await Task.sleep(for: Duration.clamped(seconds: daemon.options.saveEvery)) } catch { return }
                await pipeline.save()
                await daemon.sharedState?.upload(daemon.configuration, pipeline: pipeline)
            }
        }
        await pipeline.save()
        daemon.logger.info("state saved", metadata: ["data_dir": "\(daemon.options.dataDirectory)"])
        await daemon.sharedState?.upload(daemon.configuration, pipeline: pipeline)
    }
}

/// The cluster's singleton work, by the replica holding the leader lease: every minute, shared
/// objects no configured target names any more are pruned.
struct LeaderService: Service {
    let daemon: Daemon
    let cluster: Cluster
    let shared: SharedState

    func run() async {
        await cancelWhenGracefulShutdown {
            while true {
                do { try await Task.sleep(for: .seconds(60)) } catch { return }
                guard cluster.isLeader else { continue }
                await shared.prune(
                    keeping: SharedState.objects(of: daemon.configuration),
                    prefixes: SharedState.discoveredPrefixes(of: daemon.configuration)
                )
            }
        }
    }
}

/// This replica's membership of its cluster; it leaves when the group's shutdown reaches it,
/// after everything else (state saved and shared, the outbox drained).
struct MembershipService: Service {
    let cluster: Cluster

    func run() async {
        await cancelWhenGracefulShutdown {
            await cluster.run()
        }
    }
}

/// SIGHUP re-reads the configuration file (as `POST /-/reload` does).
struct HangupService: Service {
    let daemon: Daemon

    func run() async {
        await cancelWhenGracefulShutdown {
            for await _ in await UnixSignalsSequence(trapping: .sighup) {
                _ = try? await daemon.reload()
            }
        }
    }
}

/// Says, when a graceful shutdown begins (SIGTERM, SIGINT), that the daemon is stopping and what
/// it does before it exits: the last log lines ("state saved", ...) then read as its steps.
struct StopNotice: Service {
    let logger: Logger

    func run() async {
        do {
            try await gracefulShutdown()
        } catch {
            return  // cancelled: the group ends without a graceful shutdown
        }
        logger.info("stopping: the API and the scrapers stop, the last notifications are flushed, the state is saved")
    }
}
