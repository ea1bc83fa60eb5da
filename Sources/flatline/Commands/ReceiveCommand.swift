import ArgumentParser
import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineNotify
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import UnixSignals

struct ReceiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receive",
        abstract: "A webhook receiver that prints every notification it gets.",
        discussion: """
            Listens for Alertmanager-style webhook POSTs (from Flatline or Alertmanager) and \
            prints each alert as it fires and resolves, with its explanation. With \
            --secret-file it checks X-Flatline-Signature and refuses (401) what does not \
            verify. With --out it also appends each alert as an NDJSON event line (the format \
            of `flatline replay --alerts-out`). Stops on SIGINT or SIGTERM, or after --duration.
            """
    )

    @Option(help: "HOST:PORT to listen on.")
    var listen = "127.0.0.1:9095"

    @Option(help: "The signature secret file; requests must carry a valid X-Flatline-Signature.")
    var secretFile: String?

    @Option(help: "Append every alert as an NDJSON event line to this file.")
    var out: String?

    @Option(help: "Stop after this long (e.g. 5m); default: until a signal.")
    var duration: String?

    func run() async throws {
        guard let (host, port) = RunCommand.split(listen) else { throw ValidationError("--listen must be HOST:PORT") }
        let seconds = try duration.map { text -> Double in
            guard let value = DurationText.parse(text), value > 0 else {
                throw ValidationError("--duration: \"\(text)\" is not a duration")
            }
            return value
        }
        let secret = secretFile
        let output = out
        let logger = Logger(label: "flatline.receive") { _ in SwiftLogNoOpLogHandler() }
        let router = Router()
        let handle: @Sendable (Request) async throws -> Response = { request in
            let body = Data(try await request.body.collect(upTo: 16 << 20).readableBytesView)
            if let secret {
                let header = request.headers.first { $0.name.canonicalName == "x-flatline-signature" }?.value ?? ""
                guard Self.verify(header, body: body, secretFile: secret) else {
                    FileHandle.standardOutput.write(
                        Data("refused a request: X-Flatline-Signature does not verify\n".utf8)
                    )
                    return Response(status: .unauthorized)
                }
            }
            let message: WebhookMessage
            do {
                message = try JSONDecoder().decode(WebhookMessage.self, from: body)
            } catch {
                let reason = "not an Alertmanager webhook payload: \(DecodingError.describe(error))"
                FileHandle.standardOutput.write(Data("refused a request: \(reason)\n".utf8))
                return Response(
                    status: .badRequest,
                    body: ResponseBody(byteBuffer: ByteBuffer(string: reason + "\n"))
                )
            }
            Self.show(message)
            if let output { Self.append(message, to: output) }
            return Response(status: .ok)
        }
        router.post("/") { request, _ in try await handle(request) }
        router.post("/**") { request, _ in try await handle(request) }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "flatline-receive"),
            logger: logger
        )
        let group = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        FileHandle.standardOutput.write(Data("flatline receive: listening on http://\(host):\(port)/\n".utf8))
        if let seconds {
            let stopper = Task {
                try? await Task.sleep(for: Duration.clamped(seconds: seconds))
                await group.triggerGracefulShutdown()
            }
            defer { stopper.cancel() }
            try await group.run()
        } else {
            try await group.run()
        }
    }

    static func verify(_ header: String, body: Data, secretFile: String) -> Bool {
        guard case .success(let data) = BoundedFile.read(secretFile, limit: FileSecret.maxBytes) else { return false }
        let secret = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        var parts: [String: String] = [:]
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { parts[String(pair[0])] = String(pair[1]) }
        }
        guard let t = parts["t"], let time = Int64(t), abs(Date().timeIntervalSince1970 - Double(time)) < 300 else {
            return false
        }
        // Compared in constant time: how far a guess matches must not show in the answer's timing.
        let expected = Array(WebhookIntegration.signature(body: body, secret: secret, time: time).utf8)
        let given = Array(header.utf8)
        guard expected.count == given.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(expected, given) { difference |= a ^ b }
        return difference == 0
    }

    /// What was printed already: a group's messages repeat its unchanged alerts.
    static let printed = Mutex(Set<String>())

    /// Each alert in a few lines (once per firing or resolution): when, status, name and
    /// severity, where, and why.
    static func show(_ message: WebhookMessage) {
        var text = ""
        for alert in message.alerts {
            let key = alert.fingerprint + alert.status + alert.startsAt
            guard printed.withLock({ $0.insert(key).inserted }) else { continue }
            let firing = alert.status == "firing"
            let time = firing ? alert.startsAt : alert.endsAt
            let clock = time.count >= 19 ? String(time.dropFirst(11).prefix(8)) : time
            let name = alert.labels["alertname"] ?? "?"
            let severity = alert.labels["severity"].map { " (\($0))" } ?? ""
            text += "\(clock)  \(firing ? "FIRING  " : "RESOLVED")  \(name)\(severity)"
            if let incident = alert.labels["incident"] { text += "  [\(incident)]" }
            text += "\n"
            if let summary = alert.annotations["summary"] { text += "          \(summary)\n" }
            if firing {
                var why: [String] = []
                for key in ["observed", "expected", "band", "score", "since", "related"] {
                    if let value = alert.annotations[key], !value.isEmpty { why.append("\(key) \(value)") }
                }
                if !why.isEmpty { text += "          " + why.joined(separator: "; ") + "\n" }
                if let description = alert.annotations["description"] { text += "          \(description)\n" }
            }
        }
        // Straight to the file descriptor: a pipe (make demo) sees each alert at once.
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    static let appending = Mutex(())

    static func append(_ message: WebhookMessage, to path: String) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var lines = Data()
        for alert in message.alerts {
            let record = AlertEventRecord(
                ts: alert.status == "firing" ? alert.startsAt : alert.endsAt,
                status: alert.status,
                labels: alert.labels,
                annotations: alert.annotations,
                fingerprint: alert.fingerprint,
                startsAt: alert.startsAt,
                endsAt: alert.endsAt
            )
            guard let data = try? encoder.encode(record) else { continue }
            lines.append(data)
            lines.append(0x0A)
        }
        appending.withLock { _ in
            if !FileManager.default.fileExists(atPath: path) {
                _ = FileManager.default.createFile(atPath: path, contents: nil)
            }
            do {
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
                defer { try? handle.close() }
                _ = try handle.seekToEnd()
                try handle.write(contentsOf: lines)
            } catch {
                FileHandle.standardError.write(
                    Data("flatline receive: cannot append \(message.alerts.count) alerts to \(path): \(error)\n".utf8)
                )
            }
        }
    }
}
