import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real `nats-server` on 127.0.0.1 for a test: free ports, JetStream in a temporary store,
/// monitoring on, stopped by ``stop()`` (call it in a `defer`, so a failing test stops it too).
public final class NATSServerProcess: @unchecked Sendable {
    // @unchecked: the process handle and paths are set in init and only read after, except
    // `process`, which is replaced by restart() and read by stop(); tests call both from one task.

    /// The client port.
    public let port: Int
    /// The monitoring (HTTP) port.
    public let monitoringPort: Int
    /// The temporary directory holding the store, the config and the log.
    public let directory: URL
    private let arguments: [String]
    private var process: Process?

    /// `nats://127.0.0.1:PORT`
    public var url: String { "nats://127.0.0.1:\(port)" }
    /// `http://127.0.0.1:MONITORING_PORT`
    public var monitoringURL: String { "http://127.0.0.1:\(monitoringPort)" }

    /// The server binary: `$NATS_SERVER`, else the first `nats-server` on the usual paths.
    public static var binary: String? {
        if let path = ProcessInfo.processInfo.environment["NATS_SERVER"] { return path }
        return ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    /// Starts a server.
    ///
    /// - Parameters:
    ///   - jetStream: enable JetStream with a temporary store.
    ///   - configuration: extra configuration-file text (users, accounts, TLS...).
    ///   - extraArguments: more command-line arguments.
    public init(jetStream: Bool = true, configuration: String? = nil, extraArguments: [String] = []) throws {
        guard let binary = Self.binary else { throw TestError("nats-server is not installed (make deps installs it)") }
        port = try Self.freePort()
        monitoringPort = try Self.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("flatline-nats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var arguments = ["-a", "127.0.0.1", "-p", "\(port)", "-m", "\(monitoringPort)", "-n", "flatline-test"]
        if jetStream { arguments += ["-js", "-sd", directory.appendingPathComponent("js").path] }
        if let configuration {
            let file = directory.appendingPathComponent("server.conf")
            try Data(configuration.utf8).write(to: file)
            arguments += ["-c", file.path]
        }
        arguments += extraArguments
        self.arguments = [binary] + arguments
        try launch()
    }

    private func launch() throws {
        do {
            process = try ServerProcess.start(
                arguments[0],
                Array(arguments.dropFirst()),
                log: directory.appendingPathComponent("server.log"),
                name: "nats-server",
                port: port,
                within: 10
            ) { Self.accepts(port: port) && Self.accepts(port: monitoringPort) }
        } catch {
            stop()
            throw error
        }
    }

    /// The server's log so far.
    public var log: String {
        (try? String(contentsOf: directory.appendingPathComponent("server.log"), encoding: .utf8)) ?? ""
    }

    /// Kills the server (SIGKILL), as a crash would.
    public func kill() {
        guard let process, process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Starts the server again on the same ports (after ``kill()``).
    public func restart() throws {
        kill()
        try launch()
    }

    /// Stops the server and removes its files.
    public func stop() {
        ServerProcess.stop(process, grace: 5)
        process = nil
        try? FileManager.default.removeItem(at: directory)
    }

    deinit {
        if let process, process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }

    /// Fetches a monitoring endpoint (`/varz`, `/connz?subs=1`...) and decodes its JSON.
    public func monitor(_ path: String) throws -> [String: Any] {
        let data = try Self.httpGet(port: monitoringPort, path: path)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TestError("\(path) did not return a JSON object")
        }
        return object
    }

    /// A port on 127.0.0.1 nobody listens on right now.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw TestError("bind() failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    public static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return result == 0
    }

    /// A minimal HTTP/1.0 GET on 127.0.0.1, so tests need no HTTP client.
    public static func httpGet(port: Int, path: String) throws -> Data {
        try httpRequest(port: port, path: path).body
    }

    /// One HTTP/1.0 request to 127.0.0.1:`port`: the status and the body of the answer.
    public static func httpRequest(port: Int, method: String = "GET", path: String, body: [UInt8] = []) throws
        -> (status: Int, body: Data)
    {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw TestError("cannot connect to 127.0.0.1:\(port)") }
        // Connection: close, or a keep-alive server (Hummingbird) leaves the read waiting.
        let head =
            "\(method) \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            + (body.isEmpty ? "" : "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n") + "\r\n"
        let request = Array(head.utf8) + body
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response.append(contentsOf: chunk[0..<n])
        }
        guard let split = response.firstRange(of: Array("\r\n\r\n".utf8)),
            let status = String(decoding: response[..<split.lowerBound], as: UTF8.self).split(separator: " ")
                .dropFirst().first.flatMap({ Int($0) })
        else {
            throw TestError("malformed HTTP response")
        }
        return (status, Data(response[split.upperBound...]))
    }
}

/// A failure in test setup, with a message.
public struct TestError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
