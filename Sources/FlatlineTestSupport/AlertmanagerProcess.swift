import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real Alertmanager (Debian's `prometheus-alertmanager`) on 127.0.0.1 with clustering off,
/// for the length of a test.
public final class AlertmanagerProcess: @unchecked Sendable {
    public let port: Int
    public let directory: URL
    private var process: Process?

    public static var binary: String? {
        ["/usr/bin/prometheus-alertmanager", "/usr/local/bin/alertmanager"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    /// Starts it with `configuration` (alertmanager.yml text) and waits until it is ready.
    public init(configuration: String) throws {
        guard let binary = Self.binary else {
            throw TestError("prometheus-alertmanager is not installed (make deps installs it)")
        }
        port = try NATSServerProcess.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("flatline-am-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let config = directory.appendingPathComponent("alertmanager.yml")
        try Data(configuration.utf8).write(to: config)
        let port = port
        do {
            process = try ServerProcess.start(
                binary,
                [
                    "--config.file=\(config.path)", "--storage.path=\(directory.appendingPathComponent("data").path)",
                    "--web.listen-address=127.0.0.1:\(port)", "--cluster.listen-address=",
                ],
                log: directory.appendingPathComponent("alertmanager.log"),
                name: "Alertmanager",
                port: port,
                within: 15
            ) { ServerProcess.answers(port: port, path: "/-/ready", containing: "OK") }
        } catch {
            stop()
            throw error
        }
    }

    /// Alertmanager's current alerts (`GET /api/v2/alerts`).
    public func alerts() throws -> [[String: Any]] {
        let data = try NATSServerProcess.httpGet(port: port, path: "/api/v2/alerts")
        return (try JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []
    }

    public func stop() {
        ServerProcess.stop(process, grace: 5)
        process = nil
        try? FileManager.default.removeItem(at: directory)
    }

    deinit {
        if let process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
