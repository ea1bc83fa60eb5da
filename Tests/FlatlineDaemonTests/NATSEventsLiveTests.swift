import FlatlineAlerting
import FlatlineCore
import FlatlineIngest
import FlatlineNATS
import FlatlineTestSupport
import Foundation
import Synchronization
import Testing

@testable import FlatlineConfig
@testable import FlatlineDaemon
@testable import FlatlineScrape

/// Events between scrapes, against a real nats-server: a client the server cuts off as a slow
/// consumer is alerted within two seconds by its disconnect event, however long the scrape
/// interval, and the scrape that follows does not count it again.
@Suite("Events between scrapes, live", .serialized)
struct NATSEventsLiveTests {
    static let serverConfiguration = """
        accounts {
          SYS { users = [ { user: sys, password: sys } ] }
          APP { users = [ { user: app, password: app } ] }
        }
        system_account: SYS
        write_deadline: "1s"
        max_pending: 2MB
        """

    @Test(
        "a slow consumer cut off between 30 s scrapes: SlowConsumerDisconnect within 2 s of its disconnect event, counted once",
        .timeLimit(.minutes(1))
    )
    func slowConsumerBetweenScrapes() async throws {
        let server = try NATSServerProcess(jetStream: false, configuration: Self.serverConfiguration)
        defer { server.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        _ = try directory.write("sys.password", "sys\n")
        let yaml = """
            scrape_configs:
              - job_name: cluster
                kind: nats_system
                scrape_interval: 30s
                static_configs: [{targets: ["127.0.0.1:\(server.port)"]}]
                nats: {endpoints: [varz, connz]}
                nats_system: {user: sys, password_file: \(directory.file("sys.password").path), timeout: 1s, expected_servers: 1}
            route: {receiver: hook, group_by: [incident], group_wait: 0s}
            receivers: [{name: hook, webhook_configs: [{url: "http://127.0.0.1:9/hook"}]}]
            """
        let configuration = try Configuration.parse(yaml, file: "flatline.yml")
        let job = try #require(configuration.scrapeConfigs.first)
        let routing = try #require(configuration.alerting)
        let pipeline = Pipeline(
            models: try ModelDirectory.load(TestSupport.repositoryFile("models").path),
            routing: routing,
            detection: [:],
            notifier: nil,
            state: nil,
            logger: TestSupport.quietLogger
        )
        let servers = SystemServers()
        var scraper = SystemScraper(
            job: job,
            global: configuration.global,
            recorder: nil,
            servers: servers,
            logger: TestSupport.quietLogger
        )
        let watcher = SystemEventWatcher(job: job, servers: servers, recorder: nil, logger: TestSupport.quietLogger)
        let arrivals = Mutex<[(batch: ScrapeBatch, at: Date)]>([])
        let watching = Task {
            await watcher.run { batch in
                arrivals.withLock { $0.append((batch, Date())) }
                await pipeline.ingest(batch)
            }
        }
        defer { watching.cancel() }
        // The first scrape: the server is known, nothing was cut off yet.
        for batch in await scraper.scrape() { await pipeline.ingest(batch) }
        // The watcher's subscription is in place before anything happens.
        let subscribed = ContinuousClock.now + .seconds(10)
        func isWatching() throws -> Bool {
            let connz = try server.monitor("/connz?subs=1&auth=1")
            return (connz["connections"] as? [[String: Any]] ?? []).contains {
                ($0["name"] as? String) == "flatline-cluster-events"
                    && ($0["subscriptions_list"] as? [String] ?? []).contains(SystemEventWatcher.subject)
            }
        }
        while try !isWatching(), ContinuousClock.now < subscribed { try await Task.sleep(for: .milliseconds(50)) }
        try #require(try isWatching(), "the event watcher never subscribed")

        // A subscriber that stops reading while 60 KB messages pour in: the server cuts it off.
        let app: (inout NATSClientConfiguration) -> Void = {
            $0.authentication = .userPassword(user: "app", password: "app")
        }
        try await TestSupport.withNATSClient(server.url, name: "slowpoke-1", configure: app) { slow in
            let subscription = try slow.subscribe(to: "big")
            try await slow.flush()
            slow.pauseReading()
            try await TestSupport.withNATSClient(server.url, name: "publisher", configure: app) { publisher in
                let payload = [UInt8](repeating: 120, count: 60_000)
                let deadline = ContinuousClock.now + .seconds(15)
                while arrivals.withLock({ $0.isEmpty }), ContinuousClock.now < deadline {
                    for _ in 0..<20 { try? await publisher.publish(payload, to: "big") }
                    try? await publisher.flush(timeout: .seconds(2))
                }
            }
            _ = subscription
        }
        let (batch, arrived) = try #require(
            arrivals.withLock { $0.first },
            "no slow-consumer event reached the pipeline"
        )
        #expect(batch.event && batch.target == "cluster/flatline-test")
        let counted = batch.samples.filter { $0.labels.metricName == "flatline_nats_client_group_slow_consumers_total" }
        #expect(counted.map { $0.labels["client_group"] } == ["slowpoke"] && counted.first?.value == 1)
        // Within two seconds of the server's disconnect (the event's own time).
        let delay = arrived.timeIntervalSince1970 - Double(batch.time.milliseconds) / 1000
        #expect(delay < 2, "the event arrived \(delay) s after the disconnect")
        let firing = await pipeline.engine.alerts(in: .firing)
        let alert = try #require(firing.first { $0.labels["alertname"] == "SlowConsumerDisconnect" }, "\(firing)")
        #expect(alert.labels["client_group"] == "slowpoke" && alert.labels["instance"] == "flatline-test")
        #expect(alert.firedAt == batch.time)

        // The next scrape sees `/varz` slow_consumers risen and the connection gone: the event
        // explains both, so the count stays one and nothing is put down as unattributed.
        let next = await scraper.scrape()
        let samples = next.flatMap(\.samples)
        #expect((samples.first { $0.labels.metricName == "gnatsd_varz_slow_consumers" }?.value ?? 0) >= 1)
        let after = Dictionary(
            samples.filter { $0.labels.metricName == "flatline_nats_client_group_slow_consumers_total" }
                .map { ($0.labels["client_group"] ?? "", $0.value) },
            uniquingKeysWith: { a, _ in a }
        )
        #expect(after == ["slowpoke": 1], "\(after)")
        #expect(watcher.statistics.value.withLock { $0.counted } == 1)
        await scraper.close()
    }
}

extension NATSEventsLiveTests {
    @Test(
        "a nats_events job: a message that reaches max_deliver fires ConsumerMaxDeliveries within 2 s of the advisory",
        .timeLimit(.minutes(1))
    )
    func maxDeliveries() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        let yaml = """
            scrape_configs:
              - job_name: orders-events
                kind: nats_events
                static_configs: [{targets: ["\(server.url)"]}]
            route: {receiver: hook, group_by: [incident], group_wait: 0s}
            receivers: [{name: hook, webhook_configs: [{url: "http://127.0.0.1:9/hook"}]}]
            """
        let configuration = try Configuration.parse(yaml, file: "flatline.yml")
        let job = try #require(configuration.scrapeConfigs.first)
        let pipeline = Pipeline(
            models: try ModelDirectory.load(TestSupport.repositoryFile("models").path),
            routing: try #require(configuration.alerting),
            detection: [:],
            notifier: nil,
            state: nil,
            logger: TestSupport.quietLogger
        )
        let watcher = AdvisoryWatcher(
            job: job,
            global: configuration.global,
            recorder: nil,
            logger: TestSupport.quietLogger
        )
        let arrivals = Mutex<[(batch: ScrapeBatch, at: Date)]>([])
        let watching = Task {
            await watcher.run { batch in
                arrivals.withLock { $0.append((batch, Date())) }
                await pipeline.ingest(batch)
            }
        }
        defer { watching.cancel() }
        let subscribed = ContinuousClock.now + .seconds(10)
        func isWatching() throws -> Bool {
            let connz = try server.monitor("/connz?subs=1")
            return (connz["connections"] as? [[String: Any]] ?? []).contains {
                ($0["name"] as? String) == "flatline-orders-events-events"
                    && ($0["subscriptions_list"] as? [String] ?? []).count == AdvisoryWatcher.subjects.count
            }
        }
        while try !isWatching(), ContinuousClock.now < subscribed { try await Task.sleep(for: .milliseconds(50)) }
        try #require(try isWatching(), "the advisory watcher never subscribed")

        // A worker that fetches the same message twice and never acks it: max_deliver 2.
        try await TestSupport.withNATSClient(server.url, name: "orders-worker") { client in
            let js = JetStream(client: client)
            try await js.createStream(StreamConfiguration(name: "ORDERS", subjects: ["orders.>"]))
            var consumer = ConsumerConfiguration(durableName: "worker")
            consumer.ackWait = 500_000_000
            consumer.maxDeliver = 2
            try await js.createConsumer(stream: "ORDERS", consumer)
            _ = try await js.publish(Array("poison".utf8), to: "orders.new")
            let deadline = ContinuousClock.now + .seconds(15)
            while arrivals.withLock({ $0.isEmpty }), ContinuousClock.now < deadline {
                _ = try await js.fetch(stream: "ORDERS", consumer: "worker", batch: 1, expires: .milliseconds(700))
            }
        }
        let (batch, arrived) = try #require(arrivals.withLock { $0.first }, "no advisory reached the pipeline")
        #expect(batch.event && batch.target == "orders-events/\(server.url)", "\(batch.target)")
        let counted = batch.samples.filter {
            $0.labels.metricName == "flatline_jetstream_consumer_max_deliveries_total"
        }
        #expect(counted.count == 1 && counted.first?.value == 1)
        #expect(counted.first?.labels["stream"] == "ORDERS" && counted.first?.labels["consumer"] == "worker")
        #expect(counted.first?.labels["job"] == "orders-events")
        let delay = arrived.timeIntervalSince1970 - Double(batch.time.milliseconds) / 1000
        #expect(delay < 2, "the advisory arrived \(delay) s after it was sent")
        let firing = await pipeline.engine.alerts(in: .firing)
        let alert = try #require(firing.first { $0.labels["alertname"] == "ConsumerMaxDeliveries" }, "\(firing)")
        #expect(alert.labels["stream"] == "ORDERS" && alert.labels["consumer"] == "worker")
        #expect(alert.firedAt == batch.time)
        #expect(watcher.statistics.counted["max_deliver"] == 1)
        // Whatever else comes on those subjects is counted and dropped, never a crash.
        for body in ["garbage", "[]", #"{"type":"io.nats.jetstream.advisory.v1.max_deliver"}"#] {
            #expect(await watcher.handle(Array(body.utf8)) == nil)
        }
        #expect(watcher.statistics.invalid == 3)
    }
}
