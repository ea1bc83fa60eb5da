import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import FlatlineScrape
import FlatlineTestSupport
import FlatlineYAML
import Foundation
import Hummingbird
import NIOHTTP1
import Testing

@testable import FlatlineDaemon

/// `backfill:`: a daemon that starts cold reads its targets' history from a real Prometheus
/// (its TSDB filled by promtool) before the first scrape.
@Suite("Backfill from Prometheus", .serialized)
struct BackfillTests {
    struct SeriesView: Decodable {
        var labels: [String: String]
        var value: Double
        var expected: Double?
        var lower: Double?
        var upper: Double?
        var anomalous: Bool
    }

    struct Envelope: Decodable { var data: [SeriesView] }

    /// Two weeks of a daily swing, every minute up to a minute ago, peaking now (180, its trough 20).
    static func history(port: Int, now: Int) -> String {
        var text = "# TYPE app_latency_seconds gauge\n"
        let end = now - 60
        for k in stride(from: 14 * 1_440, through: 0, by: -1) {
            let time = end - 60 * k
            let phase = Double(time - now) / 86_400 + 0.25
            let noise = Double((k * 7_919) % 13) / 4
            let value = 100 + 80 * sin(2 * .pi * phase) + noise
            text +=
                "app_latency_seconds{job=\"app\",instance=\"127.0.0.1:\(port)\"} \(String(format: "%.2f", value)) \(time)\n"
        }
        return text + "# EOF\n"
    }

    /// The target's series as the daemon judged its first scrape (waiting up to `seconds`).
    static func firstVerdict(_ port: Int, seconds: Int) async throws -> SeriesView? {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            // (Asynchronously: two daemons are polled at once, and a blocking GET would hold one
            // of the few threads their own actors need to answer it.)
            let (_, text) = try await DaemonAPITests.request(
                .GET,
                "http://127.0.0.1:\(port)/api/v1/series?match=__name__%3D%22app_latency_seconds%22"
            )
            if let found = try JSONDecoder().decode(Envelope.self, from: Data(text.utf8)).data.first { return found }
            try await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    @Test(
        "two weeks of a daily series: the first live scrape is judged against its season (a night's value at the peak is anomalous) and has a band; cold, it has neither"
    )
    func warmStart() async throws {
        let router = Router()
        // What the target says now: 25, a night's value at the hour of the daily peak.
        router.get("/metrics") { _, _ in "# TYPE app_latency_seconds gauge\napp_latency_seconds 25\n" }
        try await TestHTTPServer.run(router) { targetPort in
            let directory = try TestSupport.TemporaryDirectory()
            defer { directory.remove() }
            let now = Int(Date().timeIntervalSince1970)
            let prometheus = try PrometheusProcess(history: Self.history(port: targetPort, now: now))
            defer { prometheus.stop() }
            let jobs = """
                scrape_configs:
                  - job_name: app
                    kind: prometheus
                    scrape_interval: 60s
                    static_configs: [{targets: ["127.0.0.1:\(targetPort)"]}]

                """
            // The same target watched by a daemon with backfill and one without, side by side
            // (each waits for its target's offset in the 60 s interval, as Prometheus spreads them).
            let warmData = directory.file("warm").path
            let coldData = directory.file("cold").path
            async let warmVerdict = DaemonAPITests.withDaemon(
                data: warmData,
                yaml: jobs + "backfill: {url: \"\(prometheus.url)\", lookback: 14d}\n"
            ) { port in
                try await Self.firstVerdict(port, seconds: 120)
            }
            async let coldVerdict = DaemonAPITests.withDaemon(data: coldData, yaml: jobs) { port in
                // Once the target's first round is in, whatever the series shows is its verdict.
                let deadline = ContinuousClock.now + .seconds(75)
                while ContinuousClock.now < deadline {
                    let (_, targets) = try await DaemonAPITests.request(.GET, "http://127.0.0.1:\(port)/api/v1/targets")
                    if targets.contains("\"health\":\"up\"") { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                return try await Self.firstVerdict(port, seconds: 1)
            }
            let (warm, cold) = try await (warmVerdict, coldVerdict)
            let judged = try #require(warm, "the first scrape was not judged within two minutes")
            #expect(judged.value == 25)
            let expected = try #require(judged.expected, "no band on the first scrape")
            #expect(expected > 120, "expected the daily peak, got \(expected)")
            #expect(judged.lower != nil && judged.upper != nil)
            #expect(judged.anomalous, "\(judged)")

            // Cold, the first scrape is only what it is: no season to judge it by.
            let first = try #require(cold, "the cold daemon never showed the series")
            #expect(first.expected == nil || first.expected == 25, "\(first)")
            #expect(!first.anomalous)
        }
    }

    /// Fifteen minutes of a producer's connection as prometheus-nats-exporter (`-connz_detailed`,
    /// `-jsz`) stored it, every second up to two seconds ago, publishing about 20 msgs/s of 200
    /// bytes; with the exporter's first-page sums and a JetStream series naming the server.
    static func exporterHistory(monitoringPort: Int, cid: Int, now: Int) -> String {
        let server = "server_id=\"http://127.0.0.1:\(monitoringPort)\",job=\"nats-exporter\",instance=\"exporter:7777\""
        let connection = "\(server),cid=\"\(cid)\",name=\"orders-producer\",kind=\"Client\",type=\"nats\",lang=\"go\""
        var messages = "# TYPE gnatsd_connz_in_msgs gauge\n"
        var bytes = "# TYPE gnatsd_connz_in_bytes gauge\n"
        var streams = "# TYPE jetstream_server_total_streams gauge\n"
        let end = now - 2
        var count = 0
        for k in stride(from: 900, through: 0, by: -1) {
            let time = end - k
            count += 18 + (k * 7_919) % 5
            messages += "gnatsd_connz_in_msgs{\(connection)} \(count) \(time)\n"
            messages += "gnatsd_connz_in_msgs{\(server)} \(3 * count) \(time)\n"
            bytes += "gnatsd_connz_in_bytes{\(connection)} \(count * 230) \(time)\n"
            streams += "jetstream_server_total_streams{\(server),server_name=\"flatline-test\"} 0 \(time)\n"
        }
        return messages + bytes + streams + "# EOF\n"
    }

    @Test(
        "a NATS job starts warm from prometheus-nats-exporter's history: a flood in the first minute is alerted; cold, the flood model is still warming up"
    )
    func natsWarmStart() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        // A producer at 20 msgs/s that floods ×8 from 30 s on, for 20 s.
        let scenario = try directory.write(
            "scenario.yml",
            """
            name: backfill-flood
            seed: 3
            duration: 55s
            publishers: [{name: orders-producer, subject: orders.new, rate: 20, payload: 200}]
            incidents: [{kind: flood, target: orders-producer, multiplier: 8, at: 30s, duration: 20s}]
            """
        )
        let loadgen = Process()
        loadgen.executableURL = TestSupport.flatlineBinary
        loadgen.arguments = ["loadgen", "--server", server.url, "--scenario", scenario.path]
        loadgen.standardError = FileHandle.nullDevice
        loadgen.standardOutput = FileHandle.nullDevice
        try loadgen.run()
        defer {
            loadgen.terminate()
            loadgen.waitUntilExit()
        }
        // Its connection, as the exporter saw it for the last fifteen minutes.
        var cid: Int?
        let found = ContinuousClock.now + .seconds(10)
        while cid == nil, ContinuousClock.now < found {
            let connections = try server.monitor("/connz")["connections"] as? [[String: Any]] ?? []
            cid = connections.first { $0["name"] as? String == "orders-producer" }?["cid"] as? Int
            if cid == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let producer = try #require(cid, "the producer never connected")
        let prometheus = try PrometheusProcess(
            history: Self.exporterHistory(
                monitoringPort: server.monitoringPort,
                cid: producer,
                now: Int(Date().timeIntervalSince1970)
            )
        )
        defer { prometheus.stop() }
        let jobs = """
            scrape_configs:
              - job_name: nats
                kind: nats
                scrape_interval: 1s
                static_configs: [{targets: ["127.0.0.1:\(server.monitoringPort)"]}]
                nats: {endpoints: [varz, connz]}

            """
        // Until the flood's end: is there a ProducerFlood on the producer's connection?
        @Sendable func floodAlerted(_ port: Int) async throws -> Bool {
            let deadline = ContinuousClock.now + .seconds(55)
            while ContinuousClock.now < deadline {
                let (_, alerts) = try await DaemonAPITests.request(.GET, "http://127.0.0.1:\(port)/api/v1/alerts")
                if alerts.contains("ProducerFlood") && alerts.contains("\"cid\":\"\(producer)\"") { return true }
                try await Task.sleep(for: .milliseconds(250))
            }
            return false
        }
        async let warm = DaemonAPITests.withDaemon(
            data: directory.file("warm").path,
            yaml: jobs + "backfill: {url: \"\(prometheus.url)\", lookback: 20m}\n"
        ) { port in try await floodAlerted(port) }
        async let cold = DaemonAPITests.withDaemon(data: directory.file("cold").path, yaml: jobs) { port in
            try await floodAlerted(port)
        }
        let (warmAlerted, coldAlerted) = try await (warm, cold)
        #expect(warmAlerted, "the flood was not alerted after a backfill")
        #expect(!coldAlerted, "cold, the flood model had its two minutes of warm-up already?")
    }

    @Test("history becomes rounds in time order with the target's labels; counters by Prometheus's types, else by name")
    func rounds() throws {
        let configuration = try Configuration.parse(
            """
            global: {external_labels: {region: eu}}
            scrape_configs:
              - job_name: app
                kind: prometheus
                static_configs: [{targets: ["10.0.0.1:9100"], labels: {team: a}}]
            backfill: {url: "http://prometheus:9090"}
            """,
            file: "flatline.yml"
        )
        #expect(configuration.backfill?.lookback == 7.0 * 86_400)
        let target = try #require(configuration.targets.first)
        func labels(_ name: String) throws -> LabelSet {
            try LabelSet(validating: ["__name__": name, "job": "app", "instance": "10.0.0.1:9100"])
        }
        let t0 = Timestamp(milliseconds: 60_000)
        let t1 = Timestamp(milliseconds: 120_000)
        let answer = [
            PrometheusRange.Series(
                labels: try labels("requests_total"),
                points: [(t1, 9), (t0, 3)].sorted { $0.0 < $1.0 }
            ),
            PrometheusRange.Series(labels: try labels("latency_seconds_bucket"), points: [(t1, 4)]),
            PrometheusRange.Series(labels: try labels("queue"), points: [(t0, 1), (t1, 2)]),
            // Prometheus's own series of the scrape that Flatline's scrapes do not give.
            PrometheusRange.Series(labels: try labels("scrape_series_added"), points: [(t0, 5), (t1, 5)]),
        ]
        let typed = Backfill.typed(answer, types: ["latency_seconds": "histogram"])
        #expect(typed.map(\.0.labels.metricName) == ["requests_total", "latency_seconds_bucket", "queue"])
        let batches = Backfill.rounds(typed, of: target)
        #expect(batches.map(\.time) == [t0, t1])
        #expect(batches.map(\.samples.count) == [2, 3])
        #expect(batches.allSatisfy { $0.target == "app/10.0.0.1:9100" && !$0.event })
        let last = try #require(batches.last)
        for sample in last.samples {
            #expect(sample.labels["region"] == "eu" && sample.labels["team"] == "a", "live scrapes carry these")
        }
        let kinds = Dictionary(uniqueKeysWithValues: last.samples.map { ($0.labels.metricName, $0.kind) })
        #expect(kinds == ["requests_total": .counter, "latency_seconds_bucket": .counter, "queue": .gauge])
        #expect(PrometheusRange.kind(of: "queue_total", types: ["queue_total": "gauge"]) == .gauge)
        #expect(PrometheusRange.kind(of: "rpc_sum", types: ["rpc": "summary"]) == .counter)

        #expect(throws: ConfigError.self) {
            try Configuration.parse("backfill: {url: \"ftp://x\"}\n", file: "flatline.yml")
        }
        #expect(throws: ConfigError.self) {
            try Configuration.parse("backfill: {lookback: 1d}\n", file: "flatline.yml")
        }
        #expect(throws: ConfigError.self) {
            try Configuration.parse("backfill: {url: \"http://p:9090\", lookback: 2y}\n", file: "flatline.yml")
        }
        let exporter = try Configuration.parse(
            #"backfill: {url: "http://p:9090", nats_exporter: {prefix: nats, selector: '{instance="$host:7777"}'}}"#,
            file: "flatline.yml"
        )
        #expect(
            exporter.backfill?.natsExporter
                == NATSExporterSettings(prefix: "nats", selector: #"{instance="$host:7777"}"#)
        )
        for bad in [#"{prefix: "nats-x"}"#, #"{selector: 'instance="a"'}"#, #"{port: 7777}"#] {
            #expect(throws: ConfigError.self, "\(bad)") {
                try Configuration.parse(
                    #"backfill: {url: "http://p:9090", nats_exporter: "# + bad + "}\n",
                    file: "flatline.yml"
                )
            }
        }
    }
}

/// The past fed by a backfill never touches the live alerts, the write-ahead log or the outbox.
@Suite("Backfill and the live alerts")
struct BackfillAlertTests {
    @Test("a live alert survives a backfill; the history's own alerts are dropped; nothing goes to the write-ahead log")
    func liveAlertsSurvive() async throws {
        let model = try Model.parse(
            """
            name: queue_high
            description: a queue above 10
            kind: threshold
            group_by: [instance]
            threshold: {metric: queue, above: 10}
            alert: {name: QueueHigh, severity: warning, for: 0s, summary: "queue {{value}}", description: "the queue is high"}
            """,
            file: "queue_high.yml"
        )
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let state = try StateDirectory(path: directory.file("data").path)
        let pipeline = Pipeline(
            models: [model],
            routing: AlertingSettings(route: RouteSettings(receiver: "none"), receivers: []),
            detection: [:],
            notifier: nil,
            state: state,
            logger: TestSupport.quietLogger
        )
        func batch(_ target: String, _ value: Double, at second: Int64) throws -> ScrapeBatch {
            let time = Timestamp(milliseconds: 1_767_225_600_000 + second * 1000)
            let labels = ["job": "app", "instance": target]
            return ScrapeBatch(
                target: "app/\(target)",
                labels: labels,
                time: time,
                samples: [
                    Sample(
                        labels: try LabelSet(validating: labels.merging(["__name__": "queue"]) { a, _ in a }),
                        value: value,
                        timestamp: time
                    )
                ],
                health: ScrapeHealth(up: true, durationSeconds: 0, samplesScraped: 1, samplesDropped: 0),
                errors: [:],
                drops: DropCounts()
            )
        }
        let fired = await pipeline.ingest(try batch("a:1", 20, at: 100))
        #expect(fired.map { $0.status.rawValue } == ["firing"])
        func walBytes() throws -> Int {
            let wal = directory.file("data/wal").path
            return try FileManager.default.contentsOfDirectory(atPath: wal).reduce(0) { total, name in
                total + ((try FileManager.default.attributesOfItem(atPath: wal + "/" + name)[.size] as? Int) ?? 0)
            }
        }
        let walBefore = try walBytes()
        #expect(walBefore > 0, "the live round is in the write-ahead log")

        #expect(await pipeline.isCold(target: "app/b:1"))
        #expect(!(await pipeline.isCold(target: "app/a:1")))
        var history: [ScrapeBatch] = []
        for second in 0..<5 { history.append(try batch("b:1", 50, at: Int64(second))) }
        await pipeline.ingestHistory(history)
        #expect(try walBytes() == walBefore, "history goes to no write-ahead log")
        await pipeline.endBackfill()
        let alerts = await pipeline.alerts()
        #expect(alerts.map { $0.labels["instance"] } == ["a:1"], "\(alerts.map { $0.labels })")
        #expect(alerts.first?.state == .firing)
        #expect(!(await pipeline.isCold(target: "app/b:1")), "what the history taught is saved")
    }
}
