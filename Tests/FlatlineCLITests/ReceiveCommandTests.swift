import FlatlineAlerting
import FlatlineTestSupport
import Foundation
import Testing

/// `flatline receive`: prints what Flatline's webhook sends, with the explanation, writes the
/// event lines, and refuses requests whose signature does not verify.
@Suite("flatline receive", .serialized)
struct ReceiveCommandTests {
    @Test("a notification from `flatline notify` is printed and logged; a bad signature is refused")
    func receive() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        _ = try directory.write("hook.secret", "shared-secret\n")
        let port = try NATSServerProcess.freePort()
        let receiver = Process()
        receiver.executableURL = TestSupport.flatlineBinary
        receiver.arguments = [
            "receive", "--listen", "127.0.0.1:\(port)", "--secret-file", directory.file("hook.secret").path,
            "--out", directory.file("received.ndjson").path, "--duration", "20s",
        ]
        let output = Pipe()
        receiver.standardOutput = output
        try receiver.run()
        defer { if receiver.isRunning { receiver.terminate() } }
        while !NATSServerProcess.accepts(port: port) { try await Task.sleep(for: .milliseconds(50)) }

        let labels = ["alertname": "ConsumerFreeze", "consumer": "worker", "severity": "critical", "stream": "ORDERS"]
        let line =
            #"{"annotations":{"summary":"Consumer ORDERS/worker has not acknowledged anything for 10 s","observed":"10"},"endsAt":"0001-01-01T00:00:00Z","fingerprint":"FINGERPRINT","labels":{"alertname":"ConsumerFreeze","consumer":"worker","severity":"critical","stream":"ORDERS"},"startsAt":"2026-11-24T15:25:01.316Z","status":"firing","ts":"2026-11-24T15:25:01.316Z"}"#
        let events = try directory.write(
            "events.ndjson",
            line.replacingOccurrences(of: "FINGERPRINT", with: AlertFingerprint(labels: labels).description) + "\n"
        )
        for (name, secret) in [("good", "hook.secret"), ("bad", "wrong.secret")] {
            _ = try directory.write("wrong.secret", "not-the-secret\n")
            let config = try directory.write(
                "\(name).yml",
                """
                route: {receiver: hook, group_wait: 0s}
                receivers:
                  - name: hook
                    webhook_configs: [{url: "http://127.0.0.1:\(port)/", signature_secret_file: \(secret)}]
                """
            )
            _ = try TestSupport.run(
                TestSupport.flatlineBinary,
                [
                    "notify", "--config", config.path, "--data-dir", directory.file("data-\(name)").path, "--timeout",
                    "5s", events.path,
                ]
            )
        }
        receiver.terminate()
        receiver.waitUntilExit()
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(printed.contains("FIRING    ConsumerFreeze (critical)"), "\(printed)")
        #expect(printed.contains("Consumer ORDERS/worker has not acknowledged anything for 10 s"))
        #expect(printed.contains("observed 10"))
        #expect(printed.contains("refused a request: X-Flatline-Signature does not verify"))
        let lines = try String(contentsOf: directory.file("received.ndjson"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains("\"alertname\":\"ConsumerFreeze\"") == true)
    }

    @Test("a body that is not a webhook payload is refused with what it lacks, by its JSON path")
    func badPayload() async throws {
        let port = try NATSServerProcess.freePort()
        let receiver = Process()
        receiver.executableURL = TestSupport.flatlineBinary
        receiver.arguments = ["receive", "--listen", "127.0.0.1:\(port)", "--duration", "20s"]
        let output = Pipe()
        receiver.standardOutput = output
        try receiver.run()
        defer { if receiver.isRunning { receiver.terminate() } }
        while !NATSServerProcess.accepts(port: port) { try await Task.sleep(for: .milliseconds(50)) }
        let base =
            #"{"version":"4","groupKey":"k","truncatedAlerts":0,"status":"firing","receiver":"r","groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"x","#
        for (body, reason) in [
            ("hello", "not JSON"),
            (#"{"status":"firing"}"#, #"missing "#),
            (base + #""alerts":3}"#, #""alerts" is not an array"#),
            (base + #""alerts":[{"status":"firing","labels":[]}]}"#, #""alerts[0].labels" is not an object"#),
        ] {
            let answer = try NATSServerProcess.httpRequest(
                port: port,
                method: "POST",
                path: "/",
                body: Array(body.utf8)
            )
            let text = String(decoding: answer.body, as: UTF8.self)
            #expect(answer.status == 400, "\(body): \(answer.status)")
            #expect(text.contains("not an Alertmanager webhook payload: \(reason)"), "\(body): \(text)")
        }
        receiver.terminate()
        receiver.waitUntilExit()
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(printed.contains(#"refused a request: not an Alertmanager webhook payload: "alerts" is not an array"#))
    }
}
