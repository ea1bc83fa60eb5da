import FlatlineAlerting
import FlatlineCore
import FlatlineNotify
import FlatlineScrape
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import UnixSignals

/// How the daemon runs.
public struct DaemonOptions: Sendable {
    public var dataDirectory = "./data"
    public var host = "127.0.0.1"
    /// 0 picks a free port (tests).
    public var port = 9464
    /// Where people reach Flatline (`externalURL`, the alerts' links); by default from the listen address.
    public var externalURL: String?
    public var modelsDirectory = "models"
    /// Seconds between state saves.
    public var saveEvery = 60.0
    /// Seconds a shutdown waits for the outbox to drain.
    public var shutdownGrace = 10.0
    public var version = "0.1.0"

    public init() {}
}

/// The configuration the daemon runs with when it is given none: the local nats-server's
/// monitoring port, every 15 s, and a receiver that prints to standard output.
public enum DefaultConfiguration {
    public static let yaml = """
        scrape_configs:
          - job_name: nats
            kind: nats
            static_configs: [{targets: ["127.0.0.1:8222"]}]
        route:
          receiver: stdout
          group_by: [incident]
          group_wait: 10s
          group_interval: 1m
        receivers:
          - name: stdout
            file_configs: [{path: "-"}]
        """
}

/// `flatline run`: scrapers, the detection and alert pipeline, the notification outbox and the
/// HTTP API as one service group, with graceful shutdown (state saved, outbox given a grace to
/// drain) on SIGTERM and SIGINT.
public final class Daemon: Sendable {
    public let configuration: Configuration
    public let options: DaemonOptions
    public let pipeline: Pipeline
    public let notifier: Notifier
    public let metrics: DaemonMetrics
    private let logger: Logger
    private let boundPort = Mutex<Int?>(nil)
    private let group = Mutex<ServiceGroup?>(nil)

    /// Sets everything up; nothing runs until ``run(signals:)``.
    /// - Throws: ``DaemonError`` for models, a data directory or receivers that cannot be used.
    public init(configuration: Configuration, options: DaemonOptions, logger: Logger) throws(DaemonError) {
        self.configuration = configuration
        self.options = options
        self.logger = logger
        let models: [Model]
        do {
            models = try ModelDirectory.load(options.modelsDirectory)
        } catch {
            throw DaemonError(reason: "\(error)")
        }
        let state: StateDirectory
        let outbox: Outbox
        do {
            state = try StateDirectory(path: options.dataDirectory)
            outbox = try Outbox(path: options.dataDirectory + "/outbox.sqlite")
        } catch let error as StateFileError {
            throw DaemonError(reason: "\(error)")
        } catch {
            throw DaemonError(reason: "\(error)")
        }
        let routing: AlertingSettings
        if let alerting = configuration.alerting {
            routing = alerting
        } else {
            var route = RouteSettings(receiver: "stdout")
            route.groupBy = ["incident"]
            var stdout = ReceiverSettings(name: "stdout")
            stdout.files = [FileReceiverSettings(path: "-")]
            routing = AlertingSettings(route: route, receivers: [stdout])
            logger.notice("no route: in the configuration: notifications go to standard output")
        }
        metrics = DaemonMetrics(version: options.version)
        let external = options.externalURL ?? "http://\(options.host):\(options.port)"
        do {
            notifier = try Notifier(
                settings: routing,
                outbox: outbox,
                externalURL: external,
                metrics: metrics.notify,
                logger: logger
            )
        } catch {
            throw DaemonError(reason: "\(error)")
        }
        var intervals: [String: Double] = [:]
        for target in configuration.targets { intervals[target.name] = target.job.scrapeInterval }
        pipeline = Pipeline(
            models: models,
            routing: routing,
            intervals: intervals,
            notifier: notifier,
            state: state,
            metrics: metrics,
            logger: logger
        )
    }

    /// The port the HTTP server listens on, once it does.
    public var port: Int? { boundPort.withLock { $0 } }

    /// Asks a running daemon to stop, as SIGTERM does.
    public func shutdown() async {
        let running = group.withLock { $0 }
        await running?.triggerGracefulShutdown()
    }

    /// Runs until a signal (or ``shutdown()``): then saves state and gives the outbox
    /// `shutdownGrace` seconds to drain.
    public func run(signals: [UnixSignal] = [.sigterm, .sigint]) async throws {
        let core = Core(daemon: self)
        let app = Application(
            router: HTTPAPI.router(self),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "flatline"),
            onServerRunning: { channel in self.boundPort.withLock { $0 = channel.localAddress?.port } },
            logger: logger
        )
        let serviceGroup = ServiceGroup(
            configuration: .init(services: [core, app], gracefulShutdownSignals: signals, logger: logger)
        )
        group.withLock { $0 = serviceGroup }
        logger.info(
            "flatline running",
            metadata: [
                "targets": "\(configuration.targets.count)", "data_dir": "\(options.dataDirectory)",
                "listen": "\(options.host):\(options.port)",
            ]
        )
        try await serviceGroup.run()
    }

    /// Scrapes, evaluation, notification and saving, as one service.
    struct Core: Service {
        let daemon: Daemon

        func run() async throws {
            let pipeline = daemon.pipeline
            let notifier = daemon.notifier
            let logger = daemon.logger
            let scraper = Scraper(configuration: daemon.configuration, logger: logger)
            let saveEvery = daemon.options.saveEvery
            await cancelWhenGracefulShutdown {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        do {
                            try await scraper.run { batch in await pipeline.ingest(batch) }
                        } catch {
                            logger.error("scraping cannot start", metadata: ["error": "\(error)"])
                        }
                    }
                    group.addTask {
                        while !Task.isCancelled {
                            await pipeline.flush()
                            try? await Task.sleep(for: .milliseconds(250))
                        }
                    }
                    group.addTask {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .seconds(60))
                            await pipeline.resend()
                        }
                    }
                    group.addTask {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .milliseconds(Int64(saveEvery * 1000)))
                            if Task.isCancelled { break }
                            await pipeline.save()
                        }
                    }
                    group.addTask { await notifier.courier.run() }
                }
            }
            // Shutting down: tell what is due, save, and let the outbox drain for a while.
            await pipeline.flush()
            await pipeline.save()
            logger.info("state saved", metadata: ["data_dir": "\(daemon.options.dataDirectory)"])
            let deadline = ContinuousClock.now + .milliseconds(Int64(daemon.options.shutdownGrace * 1000))
            let courier = Task { await notifier.courier.run() }
            while (try? notifier.outbox.pendingCount()) ?? 0 > 0, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
            courier.cancel()
            await courier.value
            let left = (try? notifier.outbox.pendingCount()) ?? 0
            if left > 0 {
                logger.warning("notifications left in the outbox for the next start", metadata: ["pending": "\(left)"])
            }
            await notifier.shutdown()
        }
    }
}

/// The daemon cannot start.
public struct DaemonError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String

    public init(reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}
