import FlatlineCore
import FlatlineIngest
import FlatlineScrape
import FlatlineTestSupport
import Foundation
import Hummingbird
import NIOCore
import Synchronization
import Testing

@testable import FlatlineDaemon

/// The write-ahead log: batches come back as they went in; a cut or damaged record ends its
/// segment (cut there, counted) and never a start; a snapshot truncates it; and a daemon killed
/// with SIGKILL continues its learning, so the next incident is caught as if it had never stopped.
@Suite("Write-ahead log", .serialized)
struct WriteAheadLogTests {
    static func batch(_ second: Int, values: [Double] = [1, .nan, -0.0, 1e300], event: Bool = false) throws
        -> ScrapeBatch
    {
        let time = Timestamp(milliseconds: 1_767_225_600_000 + Int64(second) * 1000)
        var samples: [Sample] = []
        for (k, value) in values.enumerated() {
            let labels = try LabelSet(validating: [
                "__name__": k % 2 == 0 ? "gnatsd_varz_in_msgs" : "x", "instance": "n1:8222", "job": "nats",
                "client_name": "naïve \"quoted\" \u{1F600} \(k)",
            ])
            samples.append(
                Sample(
                    labels: labels,
                    value: value,
                    timestamp: time,
                    kind: k % 2 == 0 ? .counter : .gauge,
                    counterReset: k == 2
                )
            )
        }
        var drops = DropCounts()
        drops.add(.outOfOrder, count: 3)
        return ScrapeBatch(
            target: "nats/n1:8222",
            labels: ["job": "nats", "instance": "n1:8222"],
            time: time,
            samples: samples,
            health: ScrapeHealth(up: second % 2 == 0, durationSeconds: 0.25, samplesScraped: 7, samplesDropped: 3),
            errors: second % 2 == 0 ? [:] : ["jsz": "HTTP 500"],
            drops: drops,
            event: event
        )
    }

    /// What a batch is made of, comparable (NaN as its bits).
    static func shape(_ batch: ScrapeBatch) -> String {
        let samples = batch.samples.map {
            "\($0.labels)=\($0.value.bitPattern)@\($0.timestamp.milliseconds)/\($0.kind)/\($0.counterReset)"
        }
        return "\(batch.target) \(batch.labels.sorted { $0.key < $1.key }) \(batch.time.milliseconds) \(batch.health) "
            + "\(batch.errors) \(batch.drops) \(batch.event) \(samples)"
    }

    @Test("CRC-32 gives the standard check value and zlib's")
    func checksum() {
        // The check value of the CRC-32 catalogue, and Python's zlib.crc32(b"flatline") (0x001aa1de).
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum(Array("flatline".utf8)) == 0x001A_A1DE)
        #expect(CRC32.checksum([]) == 0)
    }

    @Test("batches come back as they went in, in order, across segments; a snapshot truncates the log")
    func roundTrip() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        var options = WriteAheadLogSettings()
        options.segmentBytes = 2000
        let wal = try WriteAheadLog(
            directory: directory.file("wal").path,
            options: options,
            logger: TestSupport.quietLogger
        )
        let batches = try (0..<20).map { try Self.batch($0, event: $0 == 7) }
        for batch in batches { try wal.append(batch) }
        #expect(wal.segments().count > 3)
        var read: [ScrapeBatch] = []
        let reopened = try WriteAheadLog(directory: directory.file("wal").path, logger: TestSupport.quietLogger)
        let report = reopened.replay { read.append($0) }
        #expect(report.batches == 20 && report.cutSegments == 0)
        #expect(read.map(Self.shape) == batches.map(Self.shape))
        reopened.checkpoint()
        #expect(reopened.segments().isEmpty && reopened.size == 0)
        try reopened.append(try Self.batch(21))
        #expect(reopened.segments().count == 1)
    }

    @Test(
        "a record cut short or damaged ends its segment: cut at the last good record, counted; later segments still replay",
        arguments: ["cut", "flip", "huge", "garbage"]
    )
    func damaged(_ damage: String) throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        var options = WriteAheadLogSettings()
        options.segmentBytes = 1 << 20
        let path = directory.file("wal").path
        do {
            let wal = try WriteAheadLog(directory: path, options: options, logger: TestSupport.quietLogger)
            for second in 0..<5 { try wal.append(try Self.batch(second)) }
        }
        let first = try #require(try WriteAheadLog(directory: path, logger: TestSupport.quietLogger).segments().first)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: first.path)))
        let recordSize = bytes.count / 5
        switch damage {
        case "cut": bytes.removeLast(recordSize / 2)
        case "flip": bytes[3 * recordSize + 40] ^= 0xFF
        case "huge": bytes.replaceSubrange(3 * recordSize + 4..<3 * recordSize + 8, with: [0xFF, 0xFF, 0xFF, 0x7F])
        default: bytes += Array("not a record at all".utf8)
        }
        try Data(bytes).write(to: URL(fileURLWithPath: first.path))
        // A later segment, written after the damaged one.
        do {
            let wal = try WriteAheadLog(directory: path, options: options, logger: TestSupport.quietLogger)
            try wal.append(try Self.batch(10))
        }
        var seconds: [Int64] = []
        let wal = try WriteAheadLog(directory: path, logger: TestSupport.quietLogger)
        let report = wal.replay { seconds.append(($0.time.milliseconds - 1_767_225_600_000) / 1000) }
        let expected: [Int64] =
            damage == "garbage" ? [0, 1, 2, 3, 4, 10] : damage == "cut" ? [0, 1, 2, 3, 10] : [0, 1, 2, 10]
        #expect(seconds == expected)
        #expect(report.cutSegments == 1 && report.cutBytes > 0)
        // Cut on disk: a second replay finds nothing wrong.
        #expect(wal.replay { _ in }.cutSegments == 0)
    }

    @Test("records that decode to nonsense are refused with the reason, never trapped on")
    func hostileRecords() {
        let cases: [[UInt8]] = [
            [], [9], [1, 0], [1, 0] + [UInt8](repeating: 0xFF, count: 40),
            WALRecord.encode(
                ScrapeBatch(
                    target: "t",
                    labels: [:],
                    time: Timestamp(milliseconds: 0),
                    samples: [],
                    health: ScrapeHealth(up: true, durationSeconds: 0, samplesScraped: 0, samplesDropped: 0),
                    errors: [:],
                    drops: DropCounts()
                )
            ) + [0],
        ]
        for bytes in cases {
            guard case .failure = WALRecord.decode(bytes) else {
                Issue.record("\(bytes.prefix(8)) decoded")
                continue
            }
        }
        // A sample count of four billion with nothing behind it.
        var header = WALRecord.encode(
            ScrapeBatch(
                target: "t",
                labels: [:],
                time: Timestamp(milliseconds: 0),
                samples: [],
                health: ScrapeHealth(up: true, durationSeconds: 0, samplesScraped: 0, samplesDropped: 0),
                errors: [:],
                drops: DropCounts()
            )
        )
        header.replaceSubrange(header.count - 4..<header.count, with: [0xFF, 0xFF, 0xFF, 0xFF])
        if case .failure(let failure) = WALRecord.decode(header) {
            #expect(failure.description.contains("overruns"))
        } else {
            Issue.record("a count of four billion decoded")
        }
    }
}

extension WriteAheadLogTests {
    /// `flatline run` as its own process, on the data directory and configuration given.
    static func daemon(config: String, data: String, models: String, port: Int, extra: [String] = []) throws -> Process
    {
        let process = Process()
        process.executableURL = TestSupport.flatlineBinary
        process.arguments =
            [
                "run", "--config", config, "--data-dir", data, "--models", models, "--listen", "127.0.0.1:\(port)",
                "--save-interval", "10m",
            ] + extra
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    @Test(
        "killed with SIGKILL before it ever saved, restarted on the same data directory: the flood after the restart is alerted within seconds",
        .timeLimit(.minutes(3))
    )
    func killNine() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        // The flood model trusts its baseline after 20 s of normal traffic (2 minutes shipped).
        let models = try TestSupport.modelsWithFloodWarmup("20s", in: directory)
        let scenario = try directory.write(
            "scenario.yml",
            """
            name: crash-test
            seed: 3
            duration: 50s
            publishers:
              - {name: orders-producer, subject: orders.new, rate: 30, payload: 200}
              - {name: telemetry-producer, subject: telemetry.host, rate: 40, payload: 300}
            incidents:
              - {kind: flood, target: telemetry-producer, multiplier: 10, at: 32s, duration: 15s}
            """
        )
        let hook = DaemonTests.Hook()
        try await TestHTTPServer.run(hook.router()) { hookPort in
            let config = try directory.write(
                "flatline.yml",
                """
                global: {scrape_interval: 1s}
                scrape_configs:
                  - job_name: nats
                    kind: nats
                    static_configs: [{targets: ["127.0.0.1:\(server.monitoringPort)"]}]
                    nats: {endpoints: [varz, connz]}
                route: {receiver: hook, group_by: [incident], group_wait: 0s, group_interval: 5s}
                receivers:
                  - name: hook
                    webhook_configs: [{url: "http://127.0.0.1:\(hookPort)/hook"}]
                """
            )
            let data = directory.file("data").path
            let port = try NATSServerProcess.freePort()
            let loadgen = Process()
            loadgen.executableURL = TestSupport.flatlineBinary
            loadgen.arguments = ["loadgen", "--server", server.url, "--scenario", scenario.path]
            loadgen.standardOutput = FileHandle.nullDevice
            loadgen.standardError = FileHandle.nullDevice
            let started = ContinuousClock.now
            try loadgen.run()
            defer { if loadgen.isRunning { loadgen.terminate() } }
            let first = try Self.daemon(config: config.path, data: data, models: models.path, port: port)
            // 26 s of normal traffic learned, never saved (the save interval is ten minutes).
            try await Task.sleep(until: started + .seconds(26))
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()
            let files = try FileManager.default.contentsOfDirectory(atPath: data)
            #expect(!files.contains("models.json"), "\(files)")
            #expect(!(try FileManager.default.contentsOfDirectory(atPath: data + "/wal")).isEmpty)
            let second = try Self.daemon(config: config.path, data: data, models: models.path, port: port)
            defer { if second.isRunning { second.terminate() } }
            func arrived() -> Bool { hook.bodies.withLock { $0.contains { $0.contains("ProducerFlood") } } }
            while !arrived(), ContinuousClock.now < started + .seconds(48) {
                try await Task.sleep(for: .milliseconds(200))
            }
            let delay = ContinuousClock.now - started
            #expect(arrived(), "no ProducerFlood after the restart")
            // The flood starts about 32 s after loadgen did (it connects first): alerted within
            // seconds, as a daemon that never stopped would.
            #expect(delay < .seconds(40), "ProducerFlood \(delay) after loadgen started")
            second.terminate()
            second.waitUntilExit()
        }
        let alerted = try #require(hook.bodies.withLock { $0.first { $0.contains("ProducerFlood") } })
        #expect(alerted.contains("telemetry-producer"), "\(alerted)")
    }
}

extension WriteAheadLogTests {
    /// A Prometheus target whose `x` is 10, and a webhook that keeps what it is sent.
    final class TargetAndHook: Sendable {
        let bodies = Mutex<[String]>([])

        func router() -> Router<BasicRequestContext> {
            let router = Router()
            router.get("/metrics") { _, _ -> Response in
                Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "# TYPE x gauge\nx 10\n")))
            }
            router.post("/hook") { request, _ -> Response in
                let body = try await request.body.collect(upTo: 1 << 20)
                self.bodies.withLock { $0.append(String(buffer: body)) }
                return Response(status: .ok)
            }
            return router
        }

        /// Firing notifications of `alertname` received.
        func firing(_ alertname: String) -> Int {
            bodies.withLock { bodies in
                bodies.filter { $0.contains(alertname) && $0.contains(#""status":"firing""#) }.count
            }
        }
    }

    @Test(
        "killed with SIGKILL after an alert was told, restarted: the alert is not told again (the notification log)",
        .timeLimit(.minutes(2))
    )
    func toldOnce() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let models = directory.file("models")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        _ = try directory.write(
            "models/too_high.yml",
            """
            name: too_high
            kind: threshold
            group_by: [instance]
            threshold: {metric: x, above: 5}
            alert: {name: TooHigh, severity: warning, summary: "x is {{value}}", description: "x is high"}
            """
        )
        let server = TargetAndHook()
        try await TestHTTPServer.run(server.router()) { port in
            let config = try directory.write(
                "flatline.yml",
                """
                global: {scrape_interval: 1s}
                scrape_configs:
                  - job_name: app
                    static_configs: [{targets: ["127.0.0.1:\(port)"]}]
                route: {receiver: hook, group_by: [alertname], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}
                receivers:
                  - name: hook
                    webhook_configs: [{url: "http://127.0.0.1:\(port)/hook"}]
                """
            )
            let data = directory.file("data").path
            let listen = try NATSServerProcess.freePort()
            let first = try Self.daemon(config: config.path, data: data, models: models.path, port: listen)
            let deadline = ContinuousClock.now + .seconds(20)
            while server.firing("TooHigh") == 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            try #require(server.firing("TooHigh") == 1, "the alert was never told")
            try await Task.sleep(for: .seconds(1))
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()
            let second = try Self.daemon(config: config.path, data: data, models: models.path, port: listen)
            // Several scrapes and flushes: the alert fires on, and is not told again.
            try await Task.sleep(for: .seconds(6))
            second.terminate()
            second.waitUntilExit()
            #expect(server.firing("TooHigh") == 1, "told \(server.firing("TooHigh")) times")
        }
    }
}
