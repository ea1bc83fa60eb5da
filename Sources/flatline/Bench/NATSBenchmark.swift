import FlatlineNATS
import Foundation
import Logging
import NIOCore

/// Publish and request/reply throughput against a local nats-server, next to Python's nats-py
/// doing the same work in the same run.
struct NATSBenchmark {
    struct Result {
        var name: String
        var perSecond: Double
        var megabytesPerSecond: Double?
        var python: Double?
    }

    let logger: Logger
    let publishCounts: (small: Int, large: Int)
    let requestSeconds: Double
    let progress: (String) -> Void

    /// Runs everything against a fresh server; `python` is a command that runs the nats-py
    /// script (or nil). Returns the results and, when the Python side failed, why.
    func run(python: [String]?) async throws -> ([Result], String?) {
        let server = try LocalServer()
        defer { server.stop() }
        let url = "nats://127.0.0.1:\(server.port)"
        var configuration = try NATSClientConfiguration(urls: [url], name: "flatline-bench")
        configuration.writeBufferHighWater = 16 * 1024 * 1024
        let client = NATSClient(configuration: configuration, logger: logger)
        var results: [Result] = []
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.run() }
            defer { client.close() }
            try await client.waitUntilConnected()
            for (size, count) in [(16, publishCounts.small), (1024, publishCounts.large)] {
                progress("publish \(size) B")
                let payload = [UInt8](repeating: 120, count: size)
                let clock = ContinuousClock()
                let start = clock.now
                for _ in 0..<count { try await client.publish(payload, to: "bench.publish") }
                try await client.flush(timeout: .seconds(60))
                let seconds = (clock.now - start).seconds
                results.append(
                    Result(
                        name: "publish \(size) B",
                        perSecond: Double(count) / seconds,
                        megabytesPerSecond: Double(count * size) / seconds / 1e6
                    )
                )
            }
            progress("request/reply")
            let service = try client.subscribe(to: "bench.echo")
            group.addTask {
                try await withTaskExecutorPreference(client.taskExecutor) {
                    for await request in service {
                        if let reply = request.replyTo { try await client.publish(request.payload, to: reply) }
                    }
                }
            }
            try await client.flush()
            for (name, executor) in [
                ("request/reply, 16 B", nil), ("request/reply on the client's loop", client.taskExecutor),
            ] {
                let rate = try await withTaskExecutorPreference(executor) {
                    let clock = ContinuousClock()
                    let start = clock.now
                    var done = 0
                    while (clock.now - start).seconds < requestSeconds {
                        _ = try await client.request([UInt8](repeating: 1, count: 16), to: "bench.echo")
                        done += 1
                    }
                    return Double(done) / (clock.now - start).seconds
                }
                results.append(Result(name: name, perSecond: rate))
            }
            try service.unsubscribe()
            client.close()
            try await group.waitForAll()
        }
        var failure: String?
        if let python {
            progress("nats-py")
            do {
                let py = try Self.runPython(python, url: url, counts: publishCounts, seconds: requestSeconds)
                for i in results.indices { results[i].python = py[results[i].name] }
            } catch {
                failure = "\(error)"
            }
        }
        return (results, failure)
    }

    static func runPython(_ command: [String], url: String, counts: (small: Int, large: Int), seconds: Double) throws
        -> [String: Double]
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command + [url, "\(counts.small)", "\(counts.large)", "\(seconds)"]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Python's stderr is short (a traceback at most); read it after stdout.
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let last = errors.split(separator: "\n").last.map(String.init) ?? "no message"
            throw BenchError("\(command.joined(separator: " ")) exited with \(process.terminationStatus): \(last)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Double] else {
            throw BenchError("\(command.joined(separator: " ")) printed no JSON result")
        }
        return object
    }

    /// A nats-server on a random 127.0.0.1 port (`-p -1`) for the benchmark's lifetime; the port
    /// is read from its log, a temporary file (a pipe nobody drains could fill and stall it).
    final class LocalServer {
        let port: Int
        private let process: Process
        private let log: URL

        init() throws {
            guard
                let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"].first(
                    where: {
                        FileManager.default.isExecutableFile(atPath: $0)
                    })
            else { throw BenchError("nats-server is not installed (make deps installs it)") }
            log = FileManager.default.temporaryDirectory.appendingPathComponent(
                "flatline-bench-\(UUID().uuidString).log"
            )
            process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["-a", "127.0.0.1", "-p", "-1", "-l", log.path]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let marker = "Listening for client connections on 127.0.0.1:"
            var text = ""
            let deadline = Date().addingTimeInterval(10)
            while !text.contains("Server is ready") && process.isRunning && Date() < deadline {
                usleep(20_000)
                text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            }
            let port = text.range(of: marker).flatMap { Int(text[$0.upperBound...].prefix { $0.isNumber }) }
            guard let port, text.contains("Server is ready") else {
                if process.isRunning { process.terminate() }
                try? FileManager.default.removeItem(at: log)
                throw BenchError("nats-server did not start within 10 s: \(text.suffix(500))")
            }
            self.port = port
        }

        func stop() {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            try? FileManager.default.removeItem(at: log)
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
