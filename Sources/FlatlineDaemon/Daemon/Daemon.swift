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
import NIOPosix
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
    /// Seconds a start waits for another process to let go of the data directory (a daemon on
    /// it still stopping) before it is refused.
    public var dataDirectoryWait = 10.0
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
    let logger: Logger
    /// The data directory, this process's alone while it runs.
    private let dataLock: DataDirectoryLock
    private let outbox: Outbox
    /// Where raw scrapes are recorded (`--record`), across reloads.
    let recorder: Recorder?
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
            // Before anything in it is read or written (the write-ahead log, the outbox).
            dataLock = try DataDirectoryLock(directory: options.dataDirectory, waiting: options.dataDirectoryWait) {
                logger.warning(
                    "the data directory is in use: waiting for it",
                    metadata: [
                        "data_dir": "\(options.dataDirectory)", "pid": "\($0 ?? "?")",
                        "seconds": "\(options.dataDirectoryWait)",
                    ]
                )
            }
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
        sharedDelivery?.setWindow(Self.duplicateWindow(routing))
        let kept = Set(configuration.targets.map(\.name))
        await pipeline.reconfigure(
            routing: routing,
            detection: Self.detection(configuration),
            notifier: notifier,
            detector: configuration.detector,
            removedTargets: Set(self.configuration.targets.map(\.name)).subtracting(kept)
        )
        generation.withLock { $0 = Generation(configuration: configuration, notifier: notifier) }
        reloads.advance()
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
    ///
    /// Each part is a service of one `ServiceGroup` (see `DaemonServices.swift`); a graceful
    /// shutdown stops them one at a time in the reverse of their order here: the HTTP API, SIGHUP,
    /// the scrapers (and the recording), the cluster's singleton work, re-sends, the flusher (a
    /// last flush), the saver (a last save and upload), the courier (the outbox's grace), and
    /// last the cluster membership (leaving once everything is saved and shared). Recovery from
    /// the write-ahead log is the scrapers' first step: the HTTP server answers `/healthz`
    /// meanwhile, and whatever needs the pipeline waits for it (one call on its actor).
    public func run(signals: [UnixSignal] = [.sigterm, .sigint]) async throws {
        // Stopped, it lets the data directory go: another daemon (a restart in the same
        // process) may take it.
        defer { dataLock.release() }
        // A listen address that cannot be had is said before anything starts (the write-ahead
        // log's recovery, the first scrapes, a save), in words that name it.
        if options.port != 0 { try await Self.checkListen(host: options.host, port: options.port) }
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
        var services: [any Service] = []
        if let cluster { services.append(MembershipService(cluster: cluster)) }
        services.append(CourierService(daemon: self))
        services.append(SaverService(daemon: self))
        services.append(FlushService(pipeline: pipeline))
        services.append(ResendService(pipeline: pipeline))
        if let cluster, let sharedState {
            services.append(LeaderService(daemon: self, cluster: cluster, shared: sharedState))
        }
        services.append(ScrapeService(daemon: self))
        if !signals.isEmpty { services.append(HangupService(daemon: self)) }
        services.append(app)
        // Last in the list, first told of a shutdown.
        services.append(StopNotice(logger: logger))
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                gracefulShutdownSignals: signals,
                logger: logger
            )
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

    /// Binds `host:port` and lets it go: the HTTP server binds it again at once.
    /// - Throws: ``DaemonError`` naming the address and why it cannot be listened on.
    static func checkListen(host: String, port: Int) async throws(DaemonError) {
        do {
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: port)
                .get()
            try await channel.close()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw DaemonError(
                reason: "cannot listen on \(host):\(port): the address is in use (by another flatline, or "
                    + "another program: give --listen another port)"
            )
        } catch let error as IOError where error.errnoCode == EACCES {
            throw DaemonError(
                reason: "cannot listen on \(host):\(port): permission denied (ports below 1024 need privileges)"
            )
        } catch {
            throw DaemonError(reason: "cannot listen on \(host):\(port): \(error)")
        }
    }

    /// The generation of the configuration: ``reload()`` starts the next, and the scrapers and
    /// the courier restart with it.
    let reloads = Generations()

    /// The recording of raw scrapes, closed when the scrapers stop for good.
    func closeRecording() async {
        guard let recorder, let path = options.recordPath else { return }
        do {
            try await recorder.close()
            let lines = await recorder.count
            logger.info("recording closed", metadata: ["file": "\(path)", "lines": "\(lines)"])
        } catch {
            logger.error("recording incomplete", metadata: ["file": "\(path)", "reason": "\(error)"])
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
