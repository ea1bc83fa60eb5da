import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real Prometheus (Debian's `prometheus`) on 127.0.0.1 that scrapes nothing and holds the
/// history it was given as an OpenMetrics file (turned into TSDB blocks by
/// `promtool tsdb create-blocks-from openmetrics`), for the length of a test.
public final class PrometheusProcess: @unchecked Sendable {
    public let port: Int
    public let directory: URL
    private var process: Process?

    public static var binary: String? {
        ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    public static var promtool: String? {
        ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The base URL of its HTTP API.
    public var url: String { "http://127.0.0.1:\(port)" }

    /// Creates blocks from `history` (OpenMetrics text with timestamps in seconds, ending in
    /// `# EOF`), starts Prometheus on them and waits until it is ready.
    public init(history: String) throws {
        guard let binary = Self.binary, let promtool = Self.promtool else {
            throw TestError("prometheus is not installed (make deps installs it)")
        }
        port = try NATSServerProcess.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("flatline-prom-\(UUID().uuidString)")
        let data = directory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        let input = directory.appendingPathComponent("history.om")
        try Data(history.utf8).write(to: input)
        let blocks = try TestSupport.run(
            URL(fileURLWithPath: promtool),
            ["tsdb", "create-blocks-from", "openmetrics", input.path, data.path]
        )
        guard blocks.status == 0 else {
            try? FileManager.default.removeItem(at: directory)
            throw TestError("promtool tsdb create-blocks-from openmetrics failed: \(blocks.standardError.suffix(2000))")
        }
        let config = directory.appendingPathComponent("prometheus.yml")
        try Data("global:\n  scrape_interval: 1m\n".utf8).write(to: config)
        let port = port
        do {
            process = try ServerProcess.start(
                binary,
                [
                    "--config.file=\(config.path)", "--storage.tsdb.path=\(data.path)",
                    // The history is old: kept whatever its age.
                    "--storage.tsdb.retention.time=100y", "--web.listen-address=127.0.0.1:\(port)",
                ],
                log: directory.appendingPathComponent("prometheus.log"),
                name: "Prometheus",
                port: port,
                within: 30
            ) { ServerProcess.answers(port: port, path: "/-/ready", containing: "Ready") }
        } catch {
            stop()
            throw error
        }
    }

    public func stop() {
        ServerProcess.stop(process, grace: 10)
        process = nil
        try? FileManager.default.removeItem(at: directory)
    }

    deinit {
        if let process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
