import ArgumentParser
import FlatlineConfig
import FlatlineCore
import FlatlineDaemon
import FlatlineScrape
import FlatlineYAML
import Foundation
import Logging

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the early-warning daemon.",
        discussion: """
            Scrapes the configured targets, scores every series, runs the models, and sends \
            alerts through the configured routes and receivers, with an HTTP API (/metrics, \
            /healthz, /readyz, /api/v1/...). Without --config it watches the local nats-server \
            (monitoring on 127.0.0.1:8222) and prints notifications to standard output. SIGTERM \
            or SIGINT stop it after saving state; SIGHUP (or POST /-/reload) re-reads the \
            configuration, keeping the running one if the new one is refused.
            """
    )

    @Option(help: "The configuration file; without one, the local nats-server with a stdout receiver.")
    var config: String?

    @Option(help: "Where state and the notification outbox live.")
    var dataDir = "./data"

    @Option(help: "HOST:PORT of the HTTP API.")
    var listen = "127.0.0.1:9464"

    @Option(help: "Where people reach Flatline (alert links, externalURL); default http://LISTEN.")
    var externalURL: String?

    @Option(help: "The models directory.")
    var models = "models"

    /// Said with an error about a models directory that is not there (the default is relative).
    static let modelsHint = "the shipped models are in the repository's models/ directory; pass --models DIR"

    @Option(
        name: .customLong("save-interval"),
        parsing: .unconditional,
        help: "How often learned state is saved (a shutdown saves too); a save truncates the write-ahead log."
    )
    var saveInterval = DurationArgument(seconds: 300)

    @Option(help: "Also write every raw scrape to this recording (gzip when it ends in .gz), for flatline replay.")
    var record: String?

    @Option(help: "Size of a write-ahead log segment (a new one starts past it), e.g. 64MiB.")
    var walSegmentSize = "64MiB"

    @Option(help: "Past this size of the write-ahead log, state is saved and the log truncated, e.g. 1GiB.")
    var walMaxSize = "1GiB"

    @Flag(help: "No write-ahead log: a crash loses what was learned since the last save.")
    var noWal = false

    @Option(
        name: .customLong("cluster.replica"),
        help:
            "This replica's name in its cluster (overrides cluster.replica: one configuration file for every replica)."
    )
    var clusterReplica: String?

    @Option(help: "Log lines as text or json.")
    var logFormat = "text"

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    func validate() throws {
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format must be text or json") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be trace, debug, info, notice, warning, error or critical")
        }
        guard saveInterval.seconds >= 1 else { throw ValidationError("--save-interval must be at least 1s") }
        for (flag, text) in [("--wal-segment-size", walSegmentSize), ("--wal-max-size", walMaxSize)] {
            guard let bytes = ByteSize.parse(text), bytes >= 4096 else {
                throw ValidationError(
                    "\(flag) must be a size of at least 4KiB (64MiB, 1GiB, or bytes), not \"\(text)\""
                )
            }
        }
        if let clusterReplica, !ClusterSettings.isValidName(clusterReplica) {
            throw ValidationError(
                "--cluster.replica \"\(clusterReplica)\" is not a name (1 to 48 letters, digits, - and _)"
            )
        }
        guard Self.split(listen) != nil else {
            throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:9464")
        }
    }

    static func split(_ address: String) -> (String, Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        return (String(address[..<colon]), port)
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let json = logFormat == "json"
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "flatline")
        let configuration: Configuration
        do {
            if let config {
                configuration = try Configuration.load(path: config)
            } else {
                configuration = try Configuration.parse(DefaultConfiguration.yaml, file: "(built-in configuration)")
            }
        } catch {
            throw CommandFailure("\(error)")
        }
        if clusterReplica != nil, configuration.cluster == nil {
            throw CommandFailure("--cluster.replica: the configuration has no cluster: section")
        }
        var options = DaemonOptions()
        options.clusterReplica = clusterReplica
        options.configFile = config
        options.dataDirectory = dataDir
        if let (host, port) = Self.split(listen) {
            options.host = host
            options.port = port
        }
        options.externalURL = externalURL
        options.modelsDirectory = models
        options.saveEvery = saveInterval.seconds
        options.recordPath = record
        if noWal {
            options.writeAheadLog = nil
        } else {
            var wal = WriteAheadLogSettings()
            wal.segmentBytes = ByteSize.parse(walSegmentSize) ?? wal.segmentBytes
            wal.maxBytes = ByteSize.parse(walMaxSize) ?? wal.maxBytes
            options.writeAheadLog = wal
        }
        let daemon: Daemon
        do {
            daemon = try Daemon(configuration: configuration, options: options, logger: logger)
        } catch let error where !FileManager.default.fileExists(atPath: models) {
            throw CommandFailure("\(error) (\(Self.modelsHint))")
        } catch {
            throw CommandFailure("\(error)")
        }
        do {
            try await daemon.run()
        } catch let error as DaemonError {
            throw CommandFailure("\(error)")
        }
    }
}

/// One JSON object per log line on standard error: `ts`, `level`, `logger`, `msg`, and the
/// metadata's keys.
struct JSONLogHandler: LogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    init(label: String) {
        self.label = label
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [String: String] = [:]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new }) {
            fields[key] = "\(value)"
        }
        fields["ts"] = Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)).description
        fields["level"] = event.level.rawValue
        fields["logger"] = label
        fields["msg"] = "\(event.message)"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var data = try? encoder.encode(fields) else { return }
        data.append(0x0A)
        FileHandle.standardError.write(data)
    }
}
