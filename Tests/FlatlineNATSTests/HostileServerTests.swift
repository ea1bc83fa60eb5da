import FlatlineTestSupport
import Foundation
import Synchronization
import Testing

@testable import FlatlineNATS

/// Servers that do not behave: one that accepts the connection and never says INFO, one that
/// announces an absurd max_payload and then sends a message of that size.
@Suite("Hostile NATS servers", .serialized)
struct HostileServerTests {
    /// A TCP server on 127.0.0.1 that runs `serve` for each connection on a thread of its own.
    final class FakeServer: Sendable {
        let port: Int
        private let fd: Int32

        init(_ serve: @escaping @Sendable (Int32) -> Void) throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            self.fd = fd
            var yes: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = 0
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0, listen(fd, 8) == 0 else { throw TestError("cannot listen") }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            port = Int(UInt16(bigEndian: address.sin_port))
            let listener = fd
            Thread.detachNewThread {
                while true {
                    let client = accept(listener, nil, nil)
                    guard client >= 0 else { return }
                    Thread.detachNewThread {
                        serve(client)
                        close(client)
                    }
                }
            }
        }

        func stop() {
            shutdown(fd, Int32(SHUT_RDWR))
            close(fd)
        }

        static func send(_ fd: Int32, _ text: String) {
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }

        static func receive(_ fd: Int32) -> String {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
        }
    }

    @Test(
        "a server that never sends INFO is given up at the connect timeout, and the next one is used",
        .timeLimit(.minutes(1))
    )
    func silentServer() async throws {
        let silent = try FakeServer { fd in
            // Accept, then say nothing for a long time.
            Thread.sleep(forTimeInterval: 30)
            _ = fd
        }
        defer { silent.stop() }
        let real = try NATSServerProcess(jetStream: false)
        defer { real.stop() }
        var configuration = try NATSClientConfiguration(urls: ["nats://127.0.0.1:\(silent.port)", real.url])
        configuration.connectTimeout = .seconds(1)
        configuration.reconnectDelay = .milliseconds(20)
        let client = NATSClient(configuration: configuration, logger: TestSupport.quietLogger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.run() }
            let started = ContinuousClock.now
            try await client.waitUntilConnected(timeout: .seconds(20))
            #expect(ContinuousClock.now - started < .seconds(15))
            #expect(client.serverInfo?.serverID != nil && client.serverInfo?.serverID != "FAKE")
            client.close()
            try await group.waitForAll()
        }
    }

    @Test(
        "INFO with max_payload 1e18, then a message of 10^11 bytes: refused at the client's own cap",
        .timeLimit(.minutes(1))
    )
    func hugePayload() async throws {
        let rogue = try FakeServer { fd in
            FakeServer.send(
                fd,
                #"INFO {"server_id":"FAKE","version":"2.9.10","max_payload":1000000000000000000,"headers":true}"#
                    + "\r\n"
            )
            var seen = ""
            while !seen.contains("PING") {
                let more = FakeServer.receive(fd)
                if more.isEmpty { return }
                seen += more
            }
            FakeServer.send(fd, "PONG\r\n")
            FakeServer.send(fd, "MSG a 1 100000000000\r\n" + String(repeating: "x", count: 1000))
            Thread.sleep(forTimeInterval: 5)
        }
        defer { rogue.stop() }
        var configuration = try NATSClientConfiguration(urls: ["nats://127.0.0.1:\(rogue.port)"])
        configuration.reconnectDelay = .milliseconds(200)
        let client = NATSClient(configuration: configuration, logger: TestSupport.quietLogger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.run() }
            // The connection is dropped at the message's header, long before 10¹¹ bytes.
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline, client.lastError?.code != .protocolViolation {
                try await Task.sleep(for: .milliseconds(20))
            }
            let error = try #require(client.lastError)
            #expect(error.code == .protocolViolation, "\(error)")
            #expect(error.message.contains("exceeds \(64 * 1024 * 1024)"), "\(error)")
            client.close()
            try? await group.waitForAll()
        }
    }
}
