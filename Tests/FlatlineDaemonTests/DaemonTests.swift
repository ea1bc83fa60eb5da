import AsyncHTTPClient
import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import FlatlineScrape
import FlatlineTestSupport
import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization
import Testing

@testable import FlatlineDaemon

/// `flatline run` in-process against a real nats-server with real traffic: a consumer freeze
/// reaches a webhook with its labels and explanation; /metrics parses and passes promtool; a
/// shutdown saves state and the next start continues from it.
@Suite("Daemon", .serialized)
struct DaemonTests {
    final class Hook: Sendable {
        let bodies = Mutex<[String]>([])

        func router() -> Router<BasicRequestContext> {
            let router = Router()
            router.post("/hook") { request, _ -> Response in
                let body = try await request.body.collect(upTo: 1 << 20)
                self.bodies.withLock { $0.append(String(buffer: body)) }
                return Response(status: .ok)
            }
            return router
        }
    }

    static func get(_ port: Int, _ path: String) throws -> String {
        String(decoding: try NATSServerProcess.httpGet(port: port, path: path), as: UTF8.self)
    }

    /// The shipped models, with the producer flood's warm-up cut from two minutes to 8 s.
    static func quickModels(in directory: TestSupport.TemporaryDirectory) throws -> String {
        try TestSupport.modelsWithFloodWarmup("8s", in: directory).path
    }

    @Test(
        "a consumer freeze and a producer flood reach the webhook, explained; the status page charts them in Chromium; state survives a restart; the live recording replays into the same alerts"
    )
    func freezeEndToEnd() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        // Kept when the replay's rows differ from the daemon's, for the recording and rows.
        let keep = Mutex(false)
        defer { if !keep.withLock({ $0 }) { directory.remove() } }
        let hook = Hook()
        let scenario = try directory.write(
            "scenario.yml",
            """
            name: daemon-test
            seed: 5
            duration: 45s
            streams: [{name: ORDERS, subjects: ["orders.>"]}]
            consumers: [{stream: ORDERS, name: worker, capacity: 200, max_ack_pending: 40, ack_wait: 30s, batch: 10}]
            publishers:
              - {name: orders-producer, subject: orders.new, rate: 30, payload: 200}
              - {name: telemetry-producer, subject: telemetry.host, rate: 40, payload: 300}
            incidents:
              - {kind: freeze, target: ORDERS/worker, mode: noack, at: 15s, duration: 28s}
              - {kind: flood, target: telemetry-producer, multiplier: 10, at: 22s, duration: 15s}
            """
        )
        try await TestHTTPServer.run(hook.router()) { hookPort in
            let yaml = """
                global: {scrape_interval: 1s}
                scrape_configs:
                  - job_name: nats
                    kind: nats
                    static_configs: [{targets: ["127.0.0.1:\(server.monitoringPort)"]}]
                    nats: {endpoints: [varz, connz, jsz, healthz]}
                route: {receiver: hook, group_by: [incident], group_wait: 0s, group_interval: 5s}
                receivers:
                  - name: hook
                    webhook_configs: [{url: "http://127.0.0.1:\(hookPort)/hook"}]
                """
            let configuration = try Configuration.parse(yaml, file: "flatline.yml")
            var options = DaemonOptions()
            options.dataDirectory = directory.file("data").path
            options.port = 0
            options.modelsDirectory = try Self.quickModels(in: directory)
            options.saveEvery = 5
            options.recordPath = directory.file("live.ndjson.gz").path
            let daemon = try Daemon(configuration: configuration, options: options, logger: TestSupport.quietLogger)
            let running = Task { try await daemon.run(signals: []) }
            // Real traffic with a freeze, from the loadgen command.
            let loadgen = Process()
            loadgen.executableURL = TestSupport.flatlineBinary
            loadgen.arguments = [
                "loadgen", "--server", server.url, "--scenario", scenario.path, "--out",
                directory.file("truth.json").path,
            ]
            loadgen.standardError = FileHandle.nullDevice
            try loadgen.run()
            let deadline = ContinuousClock.now + .seconds(60)
            func arrived(_ name: String) -> Bool { hook.bodies.withLock { $0.contains { $0.contains(name) } } }
            while !(arrived("ConsumerFreeze") && arrived("ProducerFlood")), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
            let port = try #require(daemon.port)
            // The status page, as a real browser renders it, while both alerts are active.
            let page = "http://127.0.0.1:\(port)/"
            let dom = try HeadlessChromium.dumpDOM(page)
            let screenshot = try HeadlessChromium.screenshot(
                page,
                to: directory.file("status.png"),
                width: 1280,
                height: 2400
            )
            let metrics = try Self.get(port, "/metrics")
            // A silence of the flood, once both were told: the alerts list says whom it mutes.
            let (silenced, created) = try await DaemonAPITests.request(
                .POST,
                "http://127.0.0.1:\(port)/api/v1/silences",
                #"{"matchers": ["alertname=\"ProducerFlood\""], "duration": "1h"}"#
            )
            #expect(silenced == 200, "\(created)")
            let silence = try #require(
                (try JSONSerialization.jsonObject(with: Data(created.utf8)) as? [String: Any])?["data"]
                    as? [String: Any]
            )
            let silenceID = try #require(silence["id"] as? String)
            let alerts = try Self.get(port, "/api/v1/alerts")
            let ready = try Self.get(port, "/readyz")
            loadgen.terminate()
            loadgen.waitUntilExit()
            await daemon.shutdown()
            try await running.value

            #expect(ready.contains("ready"))
            #expect(alerts.contains("\"alertname\":\"ConsumerFreeze\""), "\(alerts)")
            let listed = try #require(
                (try JSONSerialization.jsonObject(with: Data(alerts.utf8)) as? [String: Any])?["data"]
                    as? [[String: Any]]
            )
            for alert in listed {
                let name = (alert["labels"] as? [String: String])?["alertname"]
                let muted = try #require(alert["silencedBy"] as? [String], "\(alert)")
                #expect(muted == (name == "ProducerFlood" ? [silenceID] : []), "\(alert)")
            }
            #expect(listed.contains { ($0["labels"] as? [String: String])?["alertname"] == "ProducerFlood" })
            Self.checkStatusPage(dom: dom, screenshot: screenshot)
            // /metrics: the project's own parser reads it, promtool accepts it.
            let parsed = try ExpositionParser(format: .text).parse(Array(metrics.utf8))
            #expect(parsed.contains { $0.labels.metricName == "flatline_scrapes_total" })
            #expect(
                parsed.contains {
                    $0.labels.metricName == "flatline_anomaly_score" && $0.labels["metric"] == "gnatsd_varz_in_msgs"
                }
            )
            let file = directory.file("metrics.txt")
            try Data(metrics.utf8).write(to: file)
            let promtool = try TestSupport.run(
                URL(fileURLWithPath: "/bin/sh"),
                ["-c", "promtool check metrics < \(file.path)"]
            )
            #expect(promtool.status == 0, "\(promtool.standardOutput)\(promtool.standardError)")

            // `--record`: what the daemon scraped replays, with its configuration and models,
            // into the same incidents.
            let configFile = try directory.write("flatline.yml", yaml)
            let events = directory.file("replayed.ndjson")
            let replayed = try TestSupport.run(
                TestSupport.flatlineBinary,
                [
                    "replay", directory.file("live.ndjson.gz").path, "--config", configFile.path, "--models",
                    options.modelsDirectory, "--alerts-out", events.path, "--out", directory.file("rows.csv").path,
                    "--quiet",
                ]
            )
            #expect(replayed.status == 0, "\(replayed.standardError)")
            // The rows are the daemon's scores: each series' last verdict in the daemon is a row
            // of that series in the replay, number for number.
            var rowsOfSeries: [String: [[Substring]]] = [:]
            for line in try String(contentsOf: directory.file("rows.csv"), encoding: .utf8).split(separator: "\n")
                .dropFirst()
            {
                let fields = line.split(separator: ",", omittingEmptySubsequences: false)
                guard fields.count >= 8 else { continue }
                // The series is a quoted CSV field (its labels hold commas and doubled quotes).
                let series = fields.dropLast(7).joined(separator: ",").dropFirst().dropLast()
                    .replacingOccurrences(of: "\"\"", with: "\"")
                rowsOfSeries[series, default: []].append(Array(fields.suffix(7)))
            }
            let statuses = await daemon.pipeline.seriesStatuses.filter { $0.expected.isFinite }
            #expect(statuses.count > 50)
            for status in statuses {
                let numbers = [status.value, status.expected, status.lower, status.upper, status.score]
                let found = rowsOfSeries[status.labels.description, default: []].contains { row in
                    zip(row.dropFirst().prefix(5), numbers).allSatisfy { Double($0.0) == $0.1 }
                }
                if !found { keep.withLock { $0 = true } }
                #expect(
                    found,
                    """
                    \(status.labels): \(numbers) at \(status.time) not among the replayed rows; \
                    its last rows: \(rowsOfSeries[status.labels.description, default: []].suffix(3)); \
                    kept: \(directory.url.path)
                    """
                )
            }
            let replayedAlerts = try String(contentsOf: events, encoding: .utf8)
            #expect(replayedAlerts.contains("\"alertname\":\"ConsumerFreeze\""), "\(replayedAlerts)")
            #expect(replayedAlerts.contains("\"alertname\":\"ProducerFlood\""), "\(replayedAlerts)")
            // One pipeline: every alert the daemon raised, the replay raised with the same name,
            // fingerprint and start, and resolved at the same time (the last of each).
            var replayedByFingerprint: [String: (name: String, firing: String, resolved: String?)] = [:]
            for line in replayedAlerts.split(separator: "\n") {
                let record = try JSONDecoder().decode(AlertEventRecord.self, from: Data(line.utf8))
                var entry =
                    replayedByFingerprint[record.fingerprint] ?? (
                        record.labels["alertname"] ?? "", record.startsAt, nil
                    )
                if record.status == "firing" {
                    entry.firing = record.startsAt
                    entry.resolved = nil
                } else {
                    entry.resolved = record.ts
                }
                replayedByFingerprint[record.fingerprint] = entry
            }
            let live = await daemon.pipeline.engine.alerts.values.filter { $0.firedAt != nil }
            #expect(!live.isEmpty)
            for alert in live {
                let entry = replayedByFingerprint[alert.fingerprint.description]
                #expect(entry?.name == alert.labels["alertname"], "\(alert.labels) not replayed")
                #expect(entry?.firing == alert.firedAt?.description, "\(alert.labels): \(String(describing: entry))")
                #expect(
                    entry?.resolved == alert.resolvedAt?.description,
                    "\(alert.labels): \(String(describing: entry))"
                )
            }
            let liveFingerprints = Set(live.map(\.fingerprint.description))
            #expect(
                Set(replayedByFingerprint.keys).subtracting(liveFingerprints).isEmpty,
                "replay raised alerts the daemon did not"
            )
        }
        // The flood reached it too, naming the connection that floods.
        let flood = try #require(hook.bodies.withLock { $0.first { $0.contains("ProducerFlood") } })
        #expect(flood.contains("telemetry-producer"), "\(flood)")
        // The freeze reached the webhook with its labels and explanation.
        let freeze = try #require(hook.bodies.withLock { $0.first { $0.contains("ConsumerFreeze") } })
        let message = try #require(try JSONSerialization.jsonObject(with: Data(freeze.utf8)) as? [String: Any])
        let alert = try #require(
            (message["alerts"] as? [[String: Any]])?.first {
                ($0["labels"] as? [String: String])?["alertname"] == "ConsumerFreeze"
            }
        )
        let labels = try #require(alert["labels"] as? [String: String])
        #expect(labels["stream"] == "ORDERS" && labels["consumer"] == "worker" && labels["severity"] == "critical")
        let annotations = try #require(alert["annotations"] as? [String: String])
        #expect(annotations["summary"]?.contains("ORDERS/worker") == true)
        for key in ["description", "observed", "expected", "score", "detector", "since"] {
            #expect(annotations[key]?.isEmpty == false, "\(key)")
        }
        // Shutdown saved every state; a new daemon continues from it.
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.file("data").path)
        for name in ["alerts.json", "models.json", "outbox.sqlite"] { #expect(files.contains(name), "\(files)") }
        #expect(files.contains { $0.hasPrefix("detection-") })
        let saved = try StateDirectory(path: directory.file("data").path)
        let engine = try #require(saved.restoreAlerts(logger: TestSupport.quietLogger))
        #expect(!engine.alerts.isEmpty)
        let models = try #require(saved.restoreModels(logger: TestSupport.quietLogger))
        var evaluator = ModelEvaluator(models: try ModelDirectory.load(TestSupport.repositoryFile("models").path))
        #expect(evaluator.restore(models).contains("consumer_freeze"))
    }
}

extension DaemonTests {
    @Test(
        "a group's notification goes out when its group_wait is over: the flusher sleeps until the group is due, not a fixed tick"
    )
    func flushWhenDue() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        final class Arrivals: Sendable {
            let times = Mutex<[ContinuousClock.Instant]>([])
        }
        let arrivals = Arrivals()
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            _ = try await request.body.collect(upTo: 1 << 20)
            arrivals.times.withLock { $0.append(ContinuousClock.now) }
            return Response(status: .ok)
        }
        // A firing alert an earlier run saved, fired just now: its group waits group_wait (3 s)
        // from the start before it tells anyone.
        let state = try StateDirectory(path: directory.file("data").path)
        var engine = AlertEngine()
        _ = engine.evaluate(
            at: Pipeline.now(),
            [
                AlertObservation(
                    labels: ["alertname": "Saved", "incident": "one"],
                    condition: .active,
                    timing: AlertTiming()
                )
            ]
        )
        try state.save(engine)
        try await TestHTTPServer.run(router) { hookPort in
            let yaml = """
                scrape_configs: []
                route: {receiver: hook, group_by: [incident], group_wait: 3s, group_interval: 1m}
                receivers:
                  - name: hook
                    webhook_configs: [{url: "http://127.0.0.1:\(hookPort)/hook"}]
                """
            var options = DaemonOptions()
            options.dataDirectory = directory.file("data").path
            options.port = 0
            options.modelsDirectory = TestSupport.repositoryFile("models").path
            let started = ContinuousClock.now
            let daemon = try Daemon(
                configuration: try Configuration.parse(yaml, file: "flatline.yml"),
                options: options,
                logger: TestSupport.quietLogger
            )
            let running = Task { try await daemon.run(signals: []) }
            let deadline = ContinuousClock.now + .seconds(20)
            while arrivals.times.withLock({ $0.isEmpty }), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            await daemon.shutdown()
            try await running.value
            let first = try #require(arrivals.times.withLock { $0.first }, "nothing arrived")
            // Not before the group's wait, and on time: well before the flusher's longest sleep
            // (10 s) would have brought it.
            #expect(first - started >= .milliseconds(2900), "\(first - started)")
            #expect(first - started < .milliseconds(5000), "\(first - started)")
            #expect(arrivals.times.withLock { $0.count } == 1)
        }
    }

    /// The page Chromium loaded shows both alerts with their explanation and, for each, charts
    /// of its series (band, expected line, values, the alert's span), and the screenshot shows
    /// them drawn: the value line's blue and the alert span's tint are on the image.
    static func checkStatusPage(dom: String, screenshot: PNGImage) {
        for text in ["ConsumerFreeze", "ProducerFlood", "ORDERS/worker", "<dt>observed</dt>", "<dt>expected</dt>"] {
            #expect(dom.contains(text), "status page without \(text)")
        }
        let charts = dom.components(separatedBy: "<svg class=\"chart\"").count - 1
        #expect(charts >= 2, "charts: \(charts)")
        for element in [
            "<path class=\"band\"", "<polyline class=\"expected\"", "<polyline class=\"values\"",
            "<rect class=\"alert-span\"", "gnatsd_connz_in_msgs{",
        ] {
            #expect(dom.contains(element), "status page without \(element)")
        }
        #expect(screenshot.width == 1280 && screenshot.height == 2400)
        // #0969da, the value lines' stroke, drawn 2 px wide: solid pixels of exactly that color.
        #expect(screenshot.count(red: 0x09, green: 0x69, blue: 0xDA) > 100, "no value line on the screenshot")
        // The flood's rate and the freeze's growing backlog are far outside their bands: the
        // detectors flag them, and the page marks them with #d62728 discs.
        #expect(dom.contains("<circle class=\"anomaly\""), "no anomalous point marked")
        #expect(screenshot.count(red: 0xD6, green: 0x27, blue: 0x28) > 10, "anomalous points not drawn")
    }
}

/// The silences API: create (validated), list, expire; kept across a restart; `/readyz` says
/// why it is not ready.
@Suite("Daemon API", .serialized)
struct DaemonAPITests {
    static func request(
        _ method: NIOHTTP1.HTTPMethod,
        _ url: String,
        _ body: String? = nil,
        token: String? = nil
    ) async throws -> (Int, String) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer " + token) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), String(buffer: bytes))
    }

    static func withDaemon<T: Sendable>(
        data: String,
        yaml: String = "scrape_configs: []\n",
        directory: String = ".",
        _ body: @Sendable (Int) async throws -> T
    ) async throws -> T {
        var options = DaemonOptions()
        options.dataDirectory = data
        options.port = 0
        options.modelsDirectory = TestSupport.repositoryFile("models").path
        let configuration = try Configuration.parse(yaml, file: "flatline.yml", directory: directory)
        let daemon = try Daemon(configuration: configuration, options: options, logger: TestSupport.quietLogger)
        let running = Task { try await daemon.run(signals: []) }
        let deadline = ContinuousClock.now + .seconds(10)
        while daemon.port == nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let port = try #require(daemon.port)
        do {
            let result = try await body(port)
            await daemon.shutdown()
            try await running.value
            return result
        } catch {
            await daemon.shutdown()
            try? await running.value
            throw error
        }
    }

    @Test("web.tls_config: HTTPS with the configured certificate; a client certificate required when asked")
    func tls() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let certificates = try TestCertificates(in: directory.url)
        let yaml = """
            scrape_configs: []
            web:
              tls_config:
                cert_file: \(certificates.serverCertificate)
                key_file: \(certificates.serverKey)
                client_ca_file: \(certificates.caFile)
                min_version: TLS12
            """
        try await Self.withDaemon(data: directory.file("d").path, yaml: yaml) { port in
            var trusting = TLSConfiguration.makeClientConfiguration()
            trusting.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificates.caFile))
            var presenting = trusting
            presenting.certificateChain = try NIOSSLCertificate.fromPEMFile(certificates.clientCertificate).map {
                .certificate($0)
            }
            presenting.privateKey = .privateKey(try NIOSSLPrivateKey(file: certificates.clientKey, format: .pem))
            func get(_ url: String, _ tls: TLSConfiguration) async throws -> (Int, String) {
                let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
                do {
                    let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
                    let body = try await response.body.collect(upTo: 1 << 20)
                    try await client.shutdown()
                    return (Int(response.status.code), String(buffer: body))
                } catch {
                    try? await client.shutdown()
                    throw error
                }
            }
            // With the client certificate, over HTTPS to the name on the server's certificate.
            let (status, body) = try await get("https://localhost:\(port)/healthz", presenting)
            #expect(status == 200 && body == "ok\n")
            // Without one, the handshake is refused.
            await #expect(throws: (any Error).self) { _ = try await get("https://localhost:\(port)/healthz", trusting) }
            // Plain HTTP gets no answer from a TLS port.
            await #expect(throws: (any Error).self) {
                _ = try await Self.request(.GET, "http://127.0.0.1:\(port)/healthz")
            }
        }
        // A certificate file that is not there: the daemon does not start, and says which file.
        let broken = try Configuration.parse(
            "scrape_configs: []\nweb: {tls_config: {cert_file: /nonexistent/cert.pem, key_file: /nonexistent/key.pem}}\n",
            file: "flatline.yml"
        )
        var options = DaemonOptions()
        options.dataDirectory = directory.file("e").path
        options.modelsDirectory = TestSupport.repositoryFile("models").path
        #expect {
            _ = try Daemon(configuration: broken, options: options, logger: TestSupport.quietLogger)
        } throws: { error in
            "\(error)".contains("web.tls_config") && "\(error)".contains("/nonexistent/cert.pem")
        }
    }

    @Test("--record: a recording left by an earlier run is kept under a stamped name, never overwritten")
    func recordKeepsEarlier() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        var options = DaemonOptions()
        options.dataDirectory = directory.file("d").path
        options.modelsDirectory = TestSupport.repositoryFile("models").path
        options.recordPath = directory.file("live.ndjson.gz").path
        let configuration = try Configuration.parse("scrape_configs: []\n", file: "flatline.yml")
        try Data("earlier run\n".utf8).write(to: directory.file("live.ndjson.gz"))
        for _ in 0..<2 {
            _ = try Daemon(configuration: configuration, options: options, logger: TestSupport.quietLogger)
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.url.path).sorted()
        let kept = names.filter { $0.hasPrefix("live-") && $0.hasSuffix(".ndjson.gz") }
        // The earlier run's file, and the first start's (empty) one: two kept, one new.
        #expect(kept.count == 2 && names.contains("live.ndjson.gz"), "\(names)")
        let stamp = try #require(kept.first?.dropFirst(5).prefix(16))
        #expect(stamp.count == 16 && stamp.hasSuffix("Z") && stamp.contains("T"), "\(kept)")
        let contents = try kept.map { try Data(contentsOf: directory.file($0)) }
        #expect(contents.contains(Data("earlier run\n".utf8)))
        // A start that fails leaves the recording where it was; a directory is refused.
        let broken = try Configuration.parse(
            "scrape_configs: []\nweb: {tls_config: {cert_file: /nonexistent/cert.pem, key_file: /nonexistent/key.pem}}\n",
            file: "flatline.yml"
        )
        #expect(throws: DaemonError.self) {
            _ = try Daemon(configuration: broken, options: options, logger: TestSupport.quietLogger)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path).sorted() == names)
        var intoDirectory = options
        intoDirectory.recordPath = directory.file("d").path
        #expect {
            _ = try Daemon(configuration: configuration, options: intoDirectory, logger: TestSupport.quietLogger)
        } throws: { error in
            "\(error)".contains("is a directory")
        }
        #expect(
            Daemon.keptName("/var/lib/flatline/live.ndjson.gz", at: Date(timeIntervalSince1970: 1_796_372_112))
                == "/var/lib/flatline/live-20261204T081512Z.ndjson.gz"
        )
    }

    @Test("detector: the configuration's section is the detector the pipeline runs; a reload applies new thresholds")
    func detectorSection() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        var options = DaemonOptions()
        options.dataDirectory = directory.file("d").path
        options.modelsDirectory = TestSupport.repositoryFile("models").path
        let file = try directory.write(
            "flatline.yml",
            "scrape_configs: []\ndetector: {kind: ewma, calibration: {min_deviation: 5}}\n"
        )
        options.configFile = file.path
        let configured = try Configuration.load(path: file.path)
        let daemon = try Daemon(configuration: configured, options: options, logger: TestSupport.quietLogger)
        #expect(await daemon.pipeline.detector.kind == .ewma)
        #expect(await daemon.pipeline.detector.calibration.minDeviation == 5)
        // A judging parameter: running from the reload on. Another kind: at the next start.
        _ = try directory.write(
            "flatline.yml",
            "scrape_configs: []\ndetector: {kind: ewma, calibration: {min_deviation: 7, threshold: 0.99}}\n"
        )
        _ = try await daemon.reload()
        #expect(await daemon.pipeline.detector.calibration.minDeviation == 7)
        #expect(await daemon.pipeline.detector.calibration.threshold == 0.99)
        _ = try directory.write("flatline.yml", "scrape_configs: []\ndetector: {kind: robust}\n")
        _ = try await daemon.reload()
        #expect(await daemon.pipeline.detector.kind == .ewma)
        #expect(await daemon.pipeline.detector.calibration.minDeviation == 7)
        let plain = try Configuration.parse("scrape_configs: []\n", file: "flatline.yml")
        options.dataDirectory = directory.file("p").path
        let defaults = try Daemon(configuration: plain, options: options, logger: TestSupport.quietLogger)
        #expect(await defaults.pipeline.detector == DetectorConfiguration())
    }

    @Test("bearer auth: the API asks for the token, health and metrics stay open; without a token file all is open")
    func auth() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        _ = try directory.write("api.token", "s3cret\n")
        let yaml = "scrape_configs: []\nweb: {auth: {bearer_token_file: api.token}}\n"
        try await Self.withDaemon(data: directory.file("a").path, yaml: yaml, directory: directory.url.path) { port in
            let base = "http://127.0.0.1:\(port)"
            let none = try await Self.request(.GET, base + "/api/v1/alerts").0
            let wrong = try await Self.request(.GET, base + "/api/v1/alerts", token: "wrong").0
            let right = try await Self.request(.GET, base + "/api/v1/alerts", token: "s3cret").0
            let reload = try await Self.request(.POST, base + "/-/reload").0
            let metrics = try await Self.request(.GET, base + "/metrics").0
            let health = try await Self.request(.GET, base + "/healthz").0
            let healthy = try await Self.request(.GET, base + "/-/healthy").0
            let statuses: [Int] = [none, wrong, right, reload, metrics, health, healthy]
            #expect(statuses == [401, 401, 200, 401, 200, 200, 200])
        }
        let open = try await Self.withDaemon(data: directory.file("b").path) { port in
            try await Self.request(.GET, "http://127.0.0.1:\(port)/api/v1/alerts").0
        }
        #expect(open == 200)
    }

    @Test("one daemon per data directory: a second is refused before it touches the first one's files")
    func dataDirectoryLock() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let data = directory.file("d").path
        @Sendable func second(waiting: Double = 0.3) throws -> Daemon {
            var options = DaemonOptions()
            options.dataDirectory = data
            options.dataDirectoryWait = waiting
            options.port = 0
            options.modelsDirectory = TestSupport.repositoryFile("models").path
            let configuration = try Configuration.parse("scrape_configs: []\n", file: "flatline.yml")
            return try Daemon(configuration: configuration, options: options, logger: TestSupport.quietLogger)
        }
        try await Self.withDaemon(data: data) { _ in
            let walBefore = try FileManager.default.contentsOfDirectory(atPath: data + "/wal")
            #expect {
                _ = try second()
            } throws: { error in
                "\(error)" == "\(data): the data directory is in use by another process (pid \(getpid())): one daemon "
                    + "per data directory (give this one its own --data-dir; replicas share work through `cluster:`)"
            }
            // Its write-ahead log is the first daemon's still.
            #expect(try FileManager.default.contentsOfDirectory(atPath: data + "/wal") == walBefore)
        }
        // Stopped, the first lets it go.
        _ = try second()
        // A start while the daemon before it is still stopping waits for it (a restart).
        final class Waiter: @unchecked Sendable {
            let done = DispatchSemaphore(value: 0)
            let outcome = Mutex<String?>(nil)
        }
        let waiter = Waiter()
        try await Self.withDaemon(data: data) { _ in
            DispatchQueue.global().async {
                let outcome: String
                do {
                    _ = try second(waiting: 20)
                    outcome = "started"
                } catch {
                    outcome = "\(error)"
                }
                waiter.outcome.withLock { $0 = outcome }
                waiter.done.signal()
            }
            // Still waiting while the first runs.
            try await Task.sleep(for: .milliseconds(500))
            #expect(waiter.outcome.withLock { $0 } == nil)
        }
        #expect(waiter.done.wait(timeout: .now() + 30) == .success)
        #expect(waiter.outcome.withLock { $0 } == "started")
    }

    @Test("a listen address in use is said before anything starts, naming it")
    func listenInUse() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        try await Self.withDaemon(data: directory.file("a").path) { port in
            var options = DaemonOptions()
            options.dataDirectory = directory.file("b").path
            options.port = port
            options.modelsDirectory = TestSupport.repositoryFile("models").path
            let configuration = try Configuration.parse("scrape_configs: []\n", file: "flatline.yml")
            let second = try Daemon(configuration: configuration, options: options, logger: TestSupport.quietLogger)
            await #expect {
                try await second.run(signals: [])
            } throws: { error in
                "\(error)".hasPrefix("cannot listen on \(options.host):\(port): the address is in use")
            }
            // Nothing started: no state was saved.
            #expect(!FileManager.default.fileExists(atPath: directory.file("b/alerts.json").path))
        }
    }

    @Test("under /api/, no such endpoint and a body too large are answered in the JSON error shape")
    func jsonErrors() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let answers = try await Self.withDaemon(data: directory.file("d").path) { port in
            let base = "http://127.0.0.1:\(port)"
            return [
                try await Self.request(.GET, base + "/api/v1/rules"),
                try await Self.request(.PUT, base + "/api/v1/alerts", "{}"),
                try await Self.request(
                    .POST,
                    base + "/api/v1/silences",
                    #"{"matchers": [], "comment": ""# + String(repeating: "x", count: 70_000) + #""}"#
                ),
                // Outside the API, Hummingbird's own answer.
                try await Self.request(.GET, base + "/nothing"),
                try await Self.request(.GET, base + "/-/ready"),
                try await Self.request(.GET, base + "/-/healthy"),
                // Reloads take POST or PUT, as Prometheus's; a GET is told so.
                try await Self.request(.GET, base + "/-/reload"),
                try await Self.request(.PUT, base + "/-/reload"),
            ]
        }
        struct Failure: Decodable {
            var status: String
            var error: String
        }
        func failure(_ body: String) -> Failure? { try? JSONDecoder().decode(Failure.self, from: Data(body.utf8)) }
        #expect(answers[0].0 == 404 && failure(answers[0].1)?.error.contains("no endpoint GET /api/v1/rules") == true)
        #expect(answers[1].0 == 404 && failure(answers[1].1)?.error.contains("no endpoint PUT /api/v1/alerts") == true)
        #expect(answers[2].0 == 413 && failure(answers[2].1)?.error.contains("too large") == true, "\(answers[2])")
        #expect(answers[3].0 == 404 && failure(answers[3].1) == nil)
        #expect(answers[4].0 == 503 && answers[4].1.contains("no scrape done yet"))
        #expect(answers[5].0 == 200 && answers[5].1 == "ok\n")
        #expect(answers[6].0 == 405 && answers[6].1.contains("only POST (or PUT) reloads"), "\(answers[6])")
        // (No configuration file here: the built-in one is read again.)
        #expect(answers[7].0 == 200 && answers[7].1.hasPrefix("configuration reloaded"), "\(answers[7])")
    }

    @Test("every path of deploy/openapi.yaml is served (documentation and routes agree)")
    func openAPI() async throws {
        let text = try String(contentsOf: TestSupport.repositoryFile("deploy/openapi.yaml"), encoding: .utf8)
        let lines = text.split(separator: "\n")
        guard let start = lines.firstIndex(of: "paths:") else { throw TestError("no paths: in openapi.yaml") }
        let paths = lines[(start + 1)...].compactMap { line -> String? in
            guard line.hasPrefix("  /"), line.hasSuffix(":") else { return nil }
            return String(line.dropFirst(2).dropLast())
        }
        #expect(paths.count == 13)
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let statuses = try await Self.withDaemon(data: directory.file("d").path) { port in
            var out: [String: Int] = [:]
            for path in paths {
                let method: NIOHTTP1.HTTPMethod = path == "/-/reload" ? .POST : path.contains("{id}") ? .DELETE : .GET
                let url = "http://127.0.0.1:\(port)" + path.replacingOccurrences(of: "{id}", with: "unknown")
                out[path] = try await Self.request(method, url).0
            }
            return out
        }
        for path in paths {
            let status = statuses[path] ?? 0
            // Served: any answer but "no such route" (the unknown silence id is a documented 404).
            #expect(status != 404 || path.contains("{id}"), "\(path): \(status)")
        }
    }

    @Test("silences: bad ones refused with the reason, good ones listed, expired, and kept across a restart")
    func silences() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let data = directory.file("data").path
        let id = try await Self.withDaemon(data: data) { port in
            let base = "http://127.0.0.1:\(port)"
            let (readyStatus, ready) = try await Self.request(.GET, base + "/readyz")
            #expect(readyStatus == 503 && ready.contains("no scrape done yet"))
            // Counters exist before their first event, at 0.
            let (_, metrics) = try await Self.request(.GET, base + "/metrics")
            for reason in DropReason.allCases {
                #expect(
                    metrics.contains("flatline_samples_dropped_total{reason=\"\(reason.rawValue)\"} 0\n"),
                    "\(reason)"
                )
            }
            #expect(metrics.contains("flatline_wal_replayed_batches_total 0\n"), "\(metrics)")
            #expect(metrics.contains("flatline_wal_cut_segments_total 0\n"), "\(metrics)")
            let (badStatus, bad) = try await Self.request(
                .POST,
                base + "/api/v1/silences",
                #"{"matchers": ["stream=~\"(\""], "duration": "1h"}"#
            )
            #expect(badStatus == 400 && bad.contains("not a regular expression"), "\(bad)")
            let (noEnd, noEndText) = try await Self.request(
                .POST,
                base + "/api/v1/silences",
                #"{"matchers": ["a=\"b\""]}"#
            )
            #expect(noEnd == 400 && noEndText.contains("give endsAt or a duration"), "\(noEndText)")
            let (words, wordsText) = try await Self.request(
                .POST,
                base + "/api/v1/silences",
                #"{"matchers": ["a=\"b\""], "duration": "2 hours"}"#
            )
            #expect(
                words == 400 && wordsText.contains(#"duration \"2 hours\" is not a positive duration"#),
                "\(wordsText)"
            )
            // Alertmanager's matcher objects read as the same texts; a body that is neither says where.
            let (objects, objectsText) = try await Self.request(
                .POST,
                base + "/api/v1/silences",
                #"{"matchers": [{"name": "stream", "value": "OR.*", "isRegex": true}, {"name": "x", "value": "a\"b", "isRegex": false, "isEqual": false}], "duration": "1h"}"#
            )
            #expect(objects == 200, "\(objectsText)")
            #expect(objectsText.contains(#""matchers":["stream=~\"OR.*\"","x!=\"a\\\"b\""]"#), "\(objectsText)")
            let (shape, shapeText) = try await Self.request(
                .POST,
                base + "/api/v1/silences",
                #"{"matchers": [{"name": "stream"}], "duration": "1h"}"#
            )
            #expect(shape == 400 && shapeText.contains(#"missing \"matchers[0].value\""#), "\(shapeText)")
            let (both, bothText) = try await Self.request(
                .POST,
                base + "/api/v1/silences",
                #"{"matchers": ["a=\"b\""], "duration": "1h", "endsAt": "2030-01-01T00:00:00Z"}"#
            )
            #expect(both == 400 && bothText.contains("not both"), "\(bothText)")
            // A pending silence expired: it starts and ends now, and says expired.
            let later = Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000) + 3_600_000)
            let (_, pendingText) = try await Self.request(
                .POST,
                base + "/api/v1/silences",
                #"{"matchers": ["a=\"b\""], "duration": "1h", "startsAt": "\#(later)"}"#
            )
            let pending = try #require(
                (try JSONSerialization.jsonObject(with: Data(pendingText.utf8)) as? [String: Any])?["data"]
                    as? [String: Any],
                "\(pendingText)"
            )
            #expect(pending["status"] as? String == "pending", "\(pending)")
            let pendingID = try #require(pending["id"] as? String)
            #expect(try await Self.request(.DELETE, base + "/api/v1/silences/\(pendingID)").0 == 200)
            let (_, afterExpiry) = try await Self.request(.GET, base + "/api/v1/silences")
            let expiredOne = try #require(
                ((try JSONSerialization.jsonObject(with: Data(afterExpiry.utf8)) as? [String: Any])?["data"]
                    as? [[String: Any]])?.first { $0["id"] as? String == pendingID }
            )
            #expect(expiredOne["status"] as? String == "expired", "\(expiredOne)")
            #expect(
                (expiredOne["startsAt"] as? String ?? "") <= (expiredOne["endsAt"] as? String ?? ""),
                "\(expiredOne)"
            )
            let (status, created) = try await Self.request(
                .POST,
                base + "/api/v1/silences",
                #"{"matchers": ["stream=\"ORDERS\""], "duration": "2h", "createdBy": "ops", "comment": "maintenance"}"#
            )
            #expect(status == 200, "\(created)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(created.utf8)) as? [String: Any])
            let silence = try #require(object["data"] as? [String: Any])
            #expect(silence["status"] as? String == "active")
            let id = try #require(silence["id"] as? String)
            let (_, listed) = try await Self.request(.GET, base + "/api/v1/silences")
            #expect(listed.contains(id) && listed.contains("maintenance"))
            let (expired, _) = try await Self.request(.DELETE, base + "/api/v1/silences/\(id)")
            #expect(expired == 200)
            let (missing, _) = try await Self.request(.DELETE, base + "/api/v1/silences/nope")
            #expect(missing == 404)
            return id
        }
        // A new daemon on the same data directory knows the (now expired) silence.
        let listed = try await Self.withDaemon(data: data) { port in
            try await Self.request(.GET, "http://127.0.0.1:\(port)/api/v1/silences").1
        }
        #expect(listed.contains(id) && listed.contains("\"status\":\"expired\""), "\(listed)")
    }
}

/// Reloading: a broken configuration is refused with the reason and the running one stays; a
/// good one replaces the targets without a restart.
@Suite("Daemon reload", .serialized)
struct DaemonReloadTests {
    @Test("POST /-/reload: broken refused, old kept; good one takes over, the targets it took out leave the list")
    func reload() async throws {
        let first = try NATSServerProcess(jetStream: false)
        defer { first.stop() }
        let second = try NATSServerProcess(jetStream: false)
        defer { second.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        func yaml(_ port: Int) -> String {
            """
            global: {scrape_interval: 1s}
            scrape_configs:
              - job_name: nats
                kind: nats
                static_configs: [{targets: ["127.0.0.1:\(port)"]}]
                nats: {endpoints: [varz]}
            """
        }
        let file = try directory.write("flatline.yml", yaml(first.monitoringPort))
        var options = DaemonOptions()
        options.configFile = file.path
        options.dataDirectory = directory.file("data").path
        options.port = 0
        options.modelsDirectory = TestSupport.repositoryFile("models").path
        let daemon = try Daemon(
            configuration: try Configuration.load(path: file.path),
            options: options,
            logger: TestSupport.quietLogger
        )
        let running = Task { try await daemon.run(signals: []) }
        defer { running.cancel() }
        func targets() async throws -> String {
            let port = try #require(daemon.port)
            return try await DaemonAPITests.request(.GET, "http://127.0.0.1:\(port)/api/v1/targets").1
        }
        func waitFor(_ text: String) async throws -> Bool {
            let deadline = ContinuousClock.now + .seconds(15)
            while ContinuousClock.now < deadline {
                if daemon.port != nil, try await targets().contains(text) { return true }
                try await Task.sleep(for: .milliseconds(100))
            }
            return false
        }
        #expect(try await waitFor("127.0.0.1:\(first.monitoringPort)"))
        let port = try #require(daemon.port)
        try Data("scrape_configs:\n  - job_nam: typo\n".utf8).write(to: file)
        let (refusedStatus, refused) = try await DaemonAPITests.request(.POST, "http://127.0.0.1:\(port)/-/reload")
        #expect(refusedStatus == 400 && refused.contains("job_nam"), "\(refused)")
        #expect(daemon.configuration.targets.first?.address == "127.0.0.1:\(first.monitoringPort)")
        try Data(yaml(second.monitoringPort).utf8).write(to: file)
        let (status, body) = try await DaemonAPITests.request(.POST, "http://127.0.0.1:\(port)/-/reload")
        #expect(status == 200 && body.contains("1 targets"), "\(body)")
        #expect(try await waitFor("127.0.0.1:\(second.monitoringPort)"))
        // The target the reload took out is no longer listed (nor listed again by a late round).
        try await Task.sleep(for: .seconds(2))
        let listed = try await targets()
        #expect(!listed.contains("127.0.0.1:\(first.monitoringPort)"), "\(listed)")
        await daemon.shutdown()
        try await running.value
    }
}
