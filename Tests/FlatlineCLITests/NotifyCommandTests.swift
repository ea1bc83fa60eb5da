import FlatlineAlerting
import FlatlineCore
import FlatlineTestSupport
import Foundation
import Hummingbird
import NIOCore
import Synchronization
import Testing

/// `flatline notify`: recorded alert events through routes to a real HTTP receiver; a process
/// killed with SIGKILL while the receiver is down loses nothing: the next run delivers every
/// notification, under the keys the killed run used.
@Suite("flatline notify", .serialized)
struct NotifyCommandTests {
    final class Receiver: Sendable {
        let accepting = Atomic<Bool>(false)
        /// (idempotency key, answered status, body).
        let requests = Mutex<[(String, Int, String)]>([])

        var all: [(String, Int, String)] { requests.withLock { $0 } }

        func router() -> Router<BasicRequestContext> {
            let router = Router()
            router.post("/hook") { request, _ -> Response in
                let body = try await request.body.collect(upTo: 1 << 20)
                let status = self.accepting.load(ordering: .relaxed) ? 200 : 503
                self.requests.withLock {
                    $0.append(
                        (
                            request.headers.first { $0.name.canonicalName == "idempotency-key" }?.value ?? "", status,
                            String(buffer: body)
                        )
                    )
                }
                return Response(status: .init(code: status))
            }
            return router
        }
    }

    static func events(_ directory: TestSupport.TemporaryDirectory) throws -> URL {
        func event(_ stream: String, _ status: AlertEvent.Status, _ second: Int64) -> String {
            let labels = ["alertname": "ConsumerFreeze", "stream": stream, "severity": "critical"]
            let time = Timestamp(milliseconds: 1_767_225_600_000 + second * 1000)
            let alert = Alert(
                fingerprint: AlertFingerprint(labels: labels),
                labels: labels,
                annotations: ["summary": "\(stream) frozen"],
                state: status == .firing ? .firing : .resolved,
                timing: AlertTiming(),
                activeSince: Timestamp(milliseconds: 1_767_225_600_000),
                firedAt: Timestamp(milliseconds: 1_767_225_600_000),
                lastActive: time,
                lastSeen: time
            )
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let data =
                (try? encoder.encode(AlertEventRecord(AlertEvent(time: time, status: status, alert: alert)))) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
        let lines = [
            event("ORDERS", .firing, 0), event("PAYMENTS", .firing, 1), event("ORDERS", .resolved, 100),
        ]
        return try directory.write("events.ndjson", lines.joined(separator: "\n") + "\n")
    }

    @Test("kill -9 with the receiver down, restart with it back: every notification delivered, same keys")
    func killAndRestart() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let receiver = Receiver()
        let events = try Self.events(directory)
        try await TestHTTPServer.run(receiver.router()) { port in
            let config = try directory.write(
                "flatline.yml",
                """
                route: {receiver: hook, group_by: [stream], group_wait: 10s, group_interval: 1m}
                receivers:
                  - name: hook
                    webhook_configs: [{url: "http://127.0.0.1:\(port)/hook", timeout: 5s}]
                """
            )
            let data = directory.file("data").path
            // The first run: the receiver answers 503; it is killed while retrying.
            let process = Process()
            process.executableURL = TestSupport.flatlineBinary
            process.arguments = [
                "notify", "--config", config.path, "--data-dir", data, "--timeout", "60s", events.path,
            ]
            process.standardError = FileHandle.nullDevice
            try process.run()
            let deadline = ContinuousClock.now + .seconds(20)
            while receiver.all.count < 4 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)
            let refused = receiver.all
            #expect(refused.count >= 4 && refused.allSatisfy { $0.1 == 503 })

            // The receiver is back; the next run (no new events) delivers what was committed.
            receiver.accepting.store(true, ordering: .relaxed)
            let second = try TestSupport.run(
                TestSupport.flatlineBinary,
                ["notify", "--config", config.path, "--data-dir", data, "--timeout", "30s"]
            )
            #expect(second.status == 0, "\(second.standardError)")
            #expect(second.standardError.contains("0 waiting, 0 given up"), "\(second.standardError)")
        }
        let accepted = receiver.all.filter { $0.1 == 200 }
        // ORDERS firing, PAYMENTS firing, ORDERS resolved: three notifications, each accepted
        // once, under the key the killed run had already used for it (at least once, same key).
        #expect(accepted.count == 3, "\(receiver.all.map { "\($0.0) \($0.1)" })")
        #expect(Set(accepted.map(\.0)).count == 3)
        let refusedKeys = Set(receiver.all.filter { $0.1 == 503 }.map(\.0))
        #expect(refusedKeys.isSubset(of: Set(accepted.map(\.0))))
        let orders = accepted.filter { $0.2.contains("ORDERS") }.map { $0.2.contains("\"status\":\"resolved\"") }
        #expect(orders == [false, true])
    }

    /// `flatline notify --timeout timeout` of ``events(_:)`` to a webhook on 127.0.0.1:`port`.
    static func notifyEvents(
        to port: Int,
        webhookTimeout: String,
        timeout: String,
        in directory: TestSupport.TemporaryDirectory
    ) throws -> TestSupport.ProcessResult {
        let config = try directory.write(
            "flatline.yml",
            """
            route: {receiver: hook, group_by: [stream], group_wait: 0s}
            receivers:
              - name: hook
                webhook_configs: [{url: "http://127.0.0.1:\(port)/hook", timeout: \(webhookTimeout)}]
            """
        )
        return try TestSupport.run(
            TestSupport.flatlineBinary,
            [
                "notify", "--config", config.path, "--data-dir", directory.file("d").path, "--timeout", timeout,
                try events(directory).path,
            ],
            timeout: 60
        )
    }

    @Test("--timeout cuts a receiver that never answers: the attempt is said to be cut short, the notifications wait")
    func timeoutCutsShort() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        // Listening, never accepting: the kernel completes the connection, nobody answers.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 8) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        try #require(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let result = try Self.notifyEvents(to: port, webhookTimeout: "60s", timeout: "2s", in: directory)
        #expect(result.status == 1)
        // Three notifications (two groups' firing, then ORDERS resolved): none delivered, none lost.
        #expect(result.standardError.contains("0 delivered, 3 waiting, 0 given up"), "\(result.standardError)")
        #expect(result.standardError.contains("attempt cut short by stopping"), "\(result.standardError)")
        #expect(!result.standardError.contains("will retry"), "\(result.standardError)")
    }

    @Test("a receiver that refuses the connection fails each attempt at once, retried on the backoff")
    func refusedReceiver() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let port = try NATSServerProcess.freePort()
        let result = try Self.notifyEvents(to: port, webhookTimeout: "10s", timeout: "4s", in: directory)
        #expect(result.status == 1)
        #expect(result.standardError.contains("0 delivered, 3 waiting, 0 given up"), "\(result.standardError)")
        // Attempts 1 s, then 2 s apart: a second attempt within the 4 s (each attempt used to wait
        // out the client's own connection retries, ~5 s).
        #expect(result.standardError.contains("attempt=2"), "\(result.standardError)")
        #expect(result.standardError.contains("reason=connection refused"), "\(result.standardError)")
    }

    @Test("bad input is refused with the line and the reason")
    func badEvents() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let config = try directory.write(
            "flatline.yml",
            "route: {receiver: out}\nreceivers: [{name: out, file_configs: [{path: out.ndjson}]}]\n"
        )
        let events = try directory.write("events.ndjson", "{\"ts\":\"nope\"}\n")
        let result = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["notify", "--config", config.path, "--data-dir", directory.file("d").path, events.path]
        )
        #expect(result.status != 0)
        #expect(result.standardError.contains("events.ndjson:1: not an alert event"), "\(result.standardError)")
        let noRoute = try directory.write("plain.yml", "scrape_configs: []\n")
        let refused = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["notify", "--config", noRoute.path, "--data-dir", directory.file("d").path, events.path]
        )
        #expect(refused.status != 0)
        #expect(refused.standardError.contains("no route:"), "\(refused.standardError)")
    }
}
