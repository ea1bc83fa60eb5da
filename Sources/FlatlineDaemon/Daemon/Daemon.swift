import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import FlatlineNotify
import FlatlineScrape
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization
import UnixSignals

/// How the daemon runs.
public struct DaemonOptions: Sendable {
    /// The configuration file, re-read on SIGHUP and `POST /-/reload`; `nil`: the built-in one.
    public var configFile: String?
    public var dataDirectory = "./data"
    public var host = "127.0.0.1"
    /// 0 picks a free port (tests).
    public var port = 9464
    /// Where people reach Flatline (`externalURL`, the alerts' links); by default from the listen address.
    public var externalURL: String?
    public var modelsDirectory = "models"
    /// Seconds between state saves. At 100,000 series a save writes about 250 MB and takes
    /// seconds of CPU, so not too often; a shutdown saves as well.
    public var saveEvery = 300.0
    /// Seconds a shutdown waits for the outbox to drain.
    public var shutdownGrace = 10.0
    /// Seconds an HTTP connection to the API may stay idle before it is closed.
    public var idleTimeout = 60.0
    /// Also write every raw scrape to this recording (the `flatline record` format; gzip when
    /// the name ends in `.gz`), so a live incident can be replayed.
    public var recordPath: String?
    /// The write-ahead log under the data directory (`nil`: none, a crash loses what was
    /// learned since the last save).
    public var writeAheadLog: WriteAheadLogSettings? = WriteAheadLogSettings()
    public var version = "0.1.0"
    /// This replica's name, over the configuration's `cluster.replica` (`--cluster.replica`).
    public var clusterReplica: String?

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
    public let options: DaemonOptions
    public let pipeline: Pipeline
    public let metrics: DaemonMetrics
    /// This replica's part in its cluster (`cluster:`); `nil`: it runs alone.
    public let cluster: Cluster?
    /// Notifications through the cluster, with `cluster:`.
    public let sharedDelivery: SharedDelivery?
    /// Learned state through the cluster, with `cluster:`.
    public let sharedState: SharedState?
    private let logger: Logger
    private let outbox: Outbox
    /// Where raw scrapes are recorded (`--record`), across reloads.
    private let recorder: Recorder?
    private let boundPort = Mutex<Int?>(nil)
    /// HTTPS, from `web.tls_config` at the start.
    private let tls: TLSConfiguration?
    private let group = Mutex<ServiceGroup?>(nil)

    /// What a (re)load sets up: the configuration and the notifier built from its receivers.
    struct Generation: Sendable {
        var configuration: Configuration
        var notifier: Notifier
    }

    private let generation: Mutex<Generation>
    /// Counts reloads; the core restarts its scrapers and courier when it changes.
    private let reloadCount = Mutex(0)

    /// The configuration running now.
    public var configuration: Configuration { generation.withLock { $0.configuration } }

    /// The notifier of the running configuration.
    public var notifier: Notifier { generation.withLock { $0.notifier } }

    /// Sets everything up; nothing runs until ``run(signals:)``.
    /// - Throws: ``DaemonError`` for models, a data directory or receivers that cannot be used.
    public init(configuration: Configuration, options: DaemonOptions, logger: Logger) throws(DaemonError) {
        let configuration = Self.named(configuration, options)
        var options = options
        if options.externalURL == nil {
            let scheme = configuration.web.tls == nil ? "http" : "https"
            options.externalURL = "\(scheme)://\(options.host):\(options.port)"
        }
        self.options = options
        self.logger = logger
        let models: [Model]
        do {
            models = try ModelDirectory.load(options.modelsDirectory)
        } catch {
            throw DaemonError(reason: "\(error)")
        }
        let state: StateDirectory
        do {
            state = try StateDirectory(path: options.dataDirectory)
            outbox = try Outbox(path: options.dataDirectory + "/outbox.sqlite")
        } catch let error as StateFileError {
            throw DaemonError(reason: "\(error)")
        } catch {
            throw DaemonError(reason: "\(error)")
        }
        tls = try configuration.web.tls.map { settings throws(DaemonError) in try Self.serverTLS(settings) }
        metrics = DaemonMetrics(version: options.version, clustered: configuration.cluster != nil)
        let routing = Self.routing(configuration, logger: logger)
        let clusterMetrics = metrics.cluster
        let cluster = configuration.cluster.map { settings in
            Cluster(
                settings: settings,
                version: options.version,
                api: options.externalURL,
                metrics: clusterMetrics,
                logger: logger
            )
        }
        self.cluster = cluster
        sharedDelivery = cluster.map { cluster in
            SharedDelivery(
                cluster: cluster,
                window: Self.duplicateWindow(routing),
                metrics: clusterMetrics,
                logger: logger
            )
        }
        sharedState = cluster.map { cluster in SharedState(cluster: cluster, state: state, logger: logger) }
        let notifier = try Self.notifier(
            routing,
            outbox: outbox,
            options: options,
            metrics: metrics,
            shared: sharedDelivery,
            logger: logger
        )
        generation = Mutex(Generation(configuration: configuration, notifier: notifier))
        pipeline = Pipeline(
            models: models,
            detector: configuration.detector,
            routing: routing,
            detection: Self.detection(configuration),
            notifier: notifier,
            state: state,
            metrics: metrics,
            writeAheadLog: options.writeAheadLog,
            logger: logger
        )
        // Last, once everything else is known to be usable: a start that fails leaves an earlier
        // recording where it was.
        var isDirectory: ObjCBool = false
        if let path = options.recordPath, FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard !isDirectory.boolValue else {
                throw DaemonError(reason: "--record \(path): is a directory, not a file")
            }
            // A recording of an earlier run (perhaps of the incident that made someone restart
            // the daemon) is kept, not overwritten.
            let stamped = Self.keptName(path, at: Date())
            // Restarts within one second (a crash loop) get -2, -3...
            var kept = stamped
            var k = 1
            while FileManager.default.fileExists(atPath: kept) && k < 1000 {
                k += 1
                kept = Self.keptName(path, at: Date(), suffix: "-\(k)")
            }
            do {
                try FileManager.default.moveItem(atPath: path, toPath: kept)
                logger.notice("the previous recording is kept", metadata: ["file": "\(kept)"])
            } catch {
                throw DaemonError(reason: "\(path): cannot keep the previous recording as \(kept): \(error)")
            }
        }
        do {
            recorder = try options.recordPath.map { path throws(RecordingError) in
                try Recorder(path: path) { error in
                    logger.error(
                        "recording stopped: the scrapes from now on are not recorded",
                        metadata: ["file": "\(path)", "reason": "\(error)"]
                    )
                }
            }
        } catch {
            throw DaemonError(reason: "\(error)")
        }
    }

    /// The configuration with `--cluster.replica` in place of its `cluster.replica`.
    private static func named(_ configuration: Configuration, _ options: DaemonOptions) -> Configuration {
        guard let replica = options.clusterReplica else { return configuration }
        var configuration = configuration
        configuration.cluster?.replica = replica
        return configuration
    }

    /// `dir/live.ndjson.gz` → `dir/live-20261204T081512Z.ndjson.gz`: the time goes before the
    /// first dot of the file's name, so the name still says its format.
    package static func keptName(_ path: String, at date: Date, suffix: String = "") -> String {
        let url = URL(fileURLWithPath: path)
        let name = url.lastPathComponent
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let stamp = formatter.string(from: date)
        let dot = name.firstIndex(of: ".") ?? name.endIndex
        let kept = name[..<dot] + "-" + stamp + suffix + name[dot...]
        return url.deletingLastPathComponent().appendingPathComponent(String(kept)).path
    }

    /// The HTTPS server's TLS configuration.
    /// - Throws: ``DaemonError`` naming the file that cannot be read.
    static func serverTLS(_ settings: WebTLSSettings) throws(DaemonError) -> TLSConfiguration {
        var configuration: TLSConfiguration
        do {
            configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(settings.certFile).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: settings.keyFile, format: .pem))
            )
        } catch {
            throw DaemonError(
                reason:
                    "web.tls_config: cannot use cert_file \(settings.certFile) and key_file \(settings.keyFile): \(error)"
            )
        }
        configuration.minimumTLSVersion = settings.minVersion == "TLS13" ? .tlsv13 : .tlsv12
        if let ca = settings.clientCAFile {
            do {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
            } catch {
                throw DaemonError(reason: "web.tls_config: cannot use client_ca_file \(ca): \(error)")
            }
        }
        switch settings.clientAuth {
        case .none: configuration.certificateVerification = .none
        case .verifyIfGiven: configuration.certificateVerification = .optionalVerification
        case .require: configuration.certificateVerification = .noHostnameVerification
        }
        return configuration
    }

    static func routing(_ configuration: Configuration, logger: Logger) -> AlertingSettings {
        if let alerting = configuration.alerting { return alerting }
        var route = RouteSettings(receiver: "stdout")
        route.groupBy = ["incident"]
        var stdout = ReceiverSettings(name: "stdout")
        stdout.files = [FileReceiverSettings(path: "-")]
        logger.notice("no route: in the configuration: notifications go to standard output")
        return AlertingSettings(route: route, receivers: [stdout])
    }

    static func notifier(
        _ routing: AlertingSettings,
        outbox: Outbox,
        options: DaemonOptions,
        metrics: DaemonMetrics,
        shared: SharedDelivery?,
        logger: Logger
    ) throws(DaemonError) -> Notifier {
        var forward: (@Sendable (any Integration) -> any Integration)?
        var userAgent = "Flatline"
        if let shared {
            forward = { integration in shared.forward(integration) }
            userAgent = Cluster.userAgent("Flatline", replica: shared.cluster.settings.replica)
        }
        do {
            return try Notifier(
                settings: routing,
                outbox: outbox,
                externalURL: options.externalURL ?? "",
                metrics: metrics.notify,
                userAgent: userAgent,
                sharedKeys: shared != nil,
                forward: forward,
                logger: logger
            )
        } catch {
            throw DaemonError(reason: "\(error)")
        }
    }

    /// The shortest `group_interval` of the routes: within it a replica never tells a group the
    /// same thing twice, so equal notifications closer than that are one told by two replicas.
    static func duplicateWindow(_ routing: AlertingSettings) -> Double {
        // An unset group_interval is the parent's (300 s at the root, as Alertmanager's).
        func shortest(_ route: RouteSettings, inherited: Double) -> Double {
            let own = route.groupInterval ?? inherited
            return route.routes.map { shortest($0, inherited: own) }.reduce(own, min)
        }
        return shortest(routing.route, inherited: 300)
    }

    /// How each target's series are detected, by target name; and by `JOB/*` for the targets a
    /// job finds as it runs (the servers of a `nats_system` job, a `nats_events` connection).
    public static func detection(_ configuration: Configuration) -> [String: DetectionSettings] {
        var out: [String: DetectionSettings] = [:]
        for job in configuration.scrapeConfigs {
            out[job.jobName + "/*"] = DetectionSettings(
                step: job.scrapeInterval,
                maxSeries: job.maxSeries,
                staleAfter: configuration.global.staleAfter
            )
        }
        for target in configuration.targets {
            out[target.name] = DetectionSettings(
                step: target.job.scrapeInterval,
                maxSeries: target.job.maxSeries,
                staleAfter: configuration.global.staleAfter
            )
        }
        return out
    }

    /// Re-reads the configuration file. A configuration that cannot be used is refused with the
    /// reason and the running one stays; a good one replaces the scrapers, routes and receivers
    /// (learned state and alert states carry on).
    /// - Returns: what happened, in words.
    /// - Throws: ``DaemonError`` with the reason the new configuration was refused.
    @discardableResult
    public func reload() async throws(DaemonError) -> String {
        var configuration: Configuration
        do {
            if let file = options.configFile {
                configuration = try Configuration.load(path: file)
            } else {
                configuration = try Configuration.parse(DefaultConfiguration.yaml, file: "(built-in configuration)")
            }
        } catch {
            logger.error("reload refused: the running configuration stays", metadata: ["reason": "\(error)"])
            throw DaemonError(reason: "\(error)")
        }
        configuration = Self.named(configuration, options)
        let routing = Self.routing(configuration, logger: logger)
        let notifier: Notifier
        do {
            notifier = try Self.notifier(
                routing,
                outbox: outbox,
                options: options,
                metrics: metrics,
                shared: sharedDelivery,
                logger: logger
            )
        } catch {
            logger.error("reload refused: the running configuration stays", metadata: ["reason": "\(error)"])
            throw error
        }
        if configuration.web.tls != self.configuration.web.tls {
            logger.warning("web.tls_config changed: it takes effect at the next start")
        }
        if configuration.cluster != self.configuration.cluster {
            logger.warning("cluster changed: it takes effect at the next start")
        }
        if configuration.detector != self.configuration.detector {
            // The banks learned with the running detector; a new one starts with the next run
            // (and learns afresh: saved state of another detector is not reused).
            logger.warning("detector changed: it takes effect at the next start")
        }
        sharedDelivery?.setWindow(Self.duplicateWindow(routing))
        await pipeline.reconfigure(routing: routing, detection: Self.detection(configuration), notifier: notifier)
        generation.withLock { $0 = Generation(configuration: configuration, notifier: notifier) }
        reloadCount.withLock { $0 += 1 }
        let text =
            "configuration reloaded: \(configuration.targets.count) targets, \(routing.receivers.count) receivers"
        logger.info("\(text)")
        return text
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
        let core = Core(daemon: self, trapHangup: !signals.isEmpty)
        // Idle connections are closed after a minute, and header sizes are bounded: a client
        // that opens connections and sends nothing cannot pile them up.
        let http1 = HTTP1Channel.Configuration(
            idleTimeout: .milliseconds(Int64(saturating: options.idleTimeout * 1000)),
            httpDecoderConfiguration: .init(maxHeaderFieldSize: 16 * 1024, maxHeaderListSize: 64 * 1024)
        )
        let server: HTTPServerBuilder =
            try tls.map { try .tls(.http1(configuration: http1), tlsConfiguration: $0) }
            ?? .http1(configuration: http1)
        let app = Application(
            router: HTTPAPI.router(self),
            server: server,
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
                "listen": "\(tls == nil ? "http" : "https")://\(options.host):\(options.port)",
            ]
        )
        try await serviceGroup.run()
    }

    /// Scrapes, evaluation, notification and saving, as one service. A reload ends the running
    /// generation (scrapers and courier) and starts the next with the new configuration.
    struct Core: Service {
        let daemon: Daemon
        let trapHangup: Bool

        func run() async throws {
            let pipeline = daemon.pipeline
            let logger = daemon.logger
            let saveEvery = daemon.options.saveEvery
            // Before the first scrape: learning continues where a crash stopped it.
            await pipeline.recover()
            // The cluster runs until the state is saved and shared at the end, then leaves.
            let membership = daemon.cluster.map { cluster in Task { await cluster.run() } }
            await cancelWhenGracefulShutdown {
                await withTaskGroup(of: Void.self) { group in
                    if trapHangup {
                        group.addTask {
                            for await _ in await UnixSignalsSequence(trapping: .sighup) {
                                _ = try? await daemon.reload()
                            }
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
                    if let cluster = daemon.cluster, let shared = daemon.sharedState {
                        // The cluster's singleton work, by the replica holding the leader lease.
                        group.addTask {
                            while !Task.isCancelled {
                                try? await Task.sleep(for: .seconds(60))
                                if cluster.isLeader {
                                    await shared.prune(
                                        keeping: SharedState.objects(of: daemon.configuration),
                                        prefixes: SharedState.discoveredPrefixes(of: daemon.configuration)
                                    )
                                }
                            }
                        }
                    }
                    group.addTask {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: Duration.clamped(seconds: saveEvery))
                            if Task.isCancelled { break }
                            await pipeline.save()
                            await daemon.sharedState?.upload(daemon.configuration, pipeline: pipeline)
                        }
                    }
                    group.addTask {
                        // A target that starts cold reads its history from Prometheus before the
                        // first scrape (`backfill:`), while notifications, resends and saves go on.
                        if let backfill = daemon.configuration.backfill {
                            await Backfill.run(
                                backfill,
                                targets: daemon.configuration.targets,
                                pipeline: pipeline,
                                logger: logger
                            )
                        }
                        await runGenerations(logger: logger)
                    }
                    await group.next()
                    group.cancelAll()
                }
            }
            await finish()
            membership?.cancel()
            await membership?.value
        }

        /// Scrapers and courier of the running configuration, until a reload or the end.
        private func runGenerations(logger: Logger) async {
            while !Task.isCancelled {
                let seen = daemon.reloadCount.withLock { $0 }
                let configuration = daemon.configuration
                let notifier = daemon.notifier
                let pipeline = daemon.pipeline
                let cluster = daemon.cluster
                cluster?.track(Scraper.units(of: configuration))
                let owns: (@Sendable (String) -> Bool)? = Self.ownership(cluster)
                let taking = Self.takingOver(daemon.sharedState, pipeline: pipeline)
                let discovered = Self.discovering(cluster)
                let released = Self.releasing(cluster, pipeline: pipeline)
                let userAgent =
                    cluster.map { Cluster.userAgent("flatline", replica: $0.settings.replica) } ?? "flatline"
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        do {
                            try await Scraper(
                                configuration: configuration,
                                recorder: daemon.recorder,
                                userAgent: userAgent,
                                owns: owns,
                                taking: taking,
                                discovered: discovered,
                                released: released,
                                logger: logger
                            )
                            .run { batch in
                                await pipeline.ingest(batch)
                            }
                        } catch {
                            logger.error("scraping cannot start", metadata: ["error": "\(error)"])
                        }
                        // Scrapers ended on their own (nothing to scrape): wait for the end.
                        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
                    }
                    group.addTask { await notifier.courier.run() }
                    if let shared = daemon.sharedDelivery {
                        group.addTask { await shared.run(integrations: notifier.receivers.values.flatMap { $0 }) }
                    }
                    group.addTask {
                        // Ends this generation when a reload installed the next.
                        while !Task.isCancelled, daemon.reloadCount.withLock({ $0 }) == seen {
                            try? await Task.sleep(for: .milliseconds(200))
                        }
                    }
                    await group.next()
                    group.cancelAll()
                }
                if notifier !== daemon.notifier { await notifier.shutdown() }
            }
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

        /// Shutting down: tell what is due, save, and let the outbox drain for a while.
        private func finish() async {
            let pipeline = daemon.pipeline
            let notifier = daemon.notifier
            let logger = daemon.logger
            await pipeline.flush()
            await pipeline.save()
            logger.info("state saved", metadata: ["data_dir": "\(daemon.options.dataDirectory)"])
            await daemon.sharedState?.upload(daemon.configuration, pipeline: pipeline)
            if let recorder = daemon.recorder, let path = daemon.options.recordPath {
                do {
                    try await recorder.close()
                    let lines = await recorder.count
                    logger.info("recording closed", metadata: ["file": "\(path)", "lines": "\(lines)"])
                } catch {
                    logger.error("recording incomplete", metadata: ["file": "\(path)", "reason": "\(error)"])
                }
            }
            let left = await notifier.courier.drain(within: daemon.options.shutdownGrace) ?? 0
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
