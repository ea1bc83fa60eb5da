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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "--config.file=\(config.path)", "--storage.path=\(directory.appendingPathComponent("data").path)",
            "--web.listen-address=127.0.0.1:\(port)", "--cluster.listen-address=",
        ]
        let log = directory.appendingPathComponent("alertmanager.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if NATSServerProcess.accepts(port: port),
                let ready = try? NATSServerProcess.httpGet(port: port, path: "/-/ready"),
                String(decoding: ready, as: UTF8.self).contains("OK")
            {
                return
            }
            guard process.isRunning else { break }
            usleep(50_000)
        }
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        stop()
        throw TestError("Alertmanager did not start on port \(port): \(text.suffix(2000))")
    }

    /// Alertmanager's current alerts (`GET /api/v2/alerts`).
    public func alerts() throws -> [[String: Any]] {
        let data = try NATSServerProcess.httpGet(port: port, path: "/api/v2/alerts")
        return (try JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []
    }

    public func stop() {
        if let process, process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        process = nil
        try? FileManager.default.removeItem(at: directory)
    }

    deinit {
        if let process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
