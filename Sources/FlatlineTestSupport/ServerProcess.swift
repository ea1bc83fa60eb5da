import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A server a test starts (nats-server, Alertmanager, Prometheus): run with its output in a log
/// file, waited for until it says it is ready, stopped politely and then firmly.
enum ServerProcess {
    /// Runs `binary` and waits up to `seconds` for `ready()`.
    /// - Throws: ``TestError`` with the end of the log when it exits or is not ready in time (the
    ///   process is killed).
    static func start(
        _ binary: String,
        _ arguments: [String],
        log: URL,
        name: String,
        port: Int,
        within seconds: Double,
        ready: () -> Bool
    ) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if ready() { return process }
            guard process.isRunning else { break }
            usleep(20_000)
        }
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        stop(process, grace: 1)
        throw TestError("\(name) did not start on port \(port): \(text.suffix(2000))")
    }

    /// Whether an HTTP server on `port` answers `path` with a body containing `text`.
    static func answers(port: Int, path: String, containing text: String) -> Bool {
        guard NATSServerProcess.accepts(port: port), let body = try? NATSServerProcess.httpGet(port: port, path: path)
        else { return false }
        return String(decoding: body, as: UTF8.self).contains(text)
    }

    /// SIGTERM, then SIGKILL after `grace` seconds.
    static func stop(_ process: Process?, grace: Double) {
        guard let process, process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(grace)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
