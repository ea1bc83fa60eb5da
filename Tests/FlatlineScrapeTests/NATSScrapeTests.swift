import FlatlineCore
import FlatlineIngest
import FlatlineLoadgen
import FlatlineNATS
import FlatlineTestSupport
import Foundation
import Synchronization
import Testing

@testable import FlatlineConfig
@testable import FlatlineScrape

/// Scraping a real nats-server on 127.0.0.1: every endpoint under loadgen traffic, paging past
/// the page limit, a server restart, a reconnecting client, and a recording that replays into
/// the same series.
@Suite("Scraping a real nats-server", .serialized)
struct NATSScrapeTests {
    static func yaml(
        _ server: NATSServerProcess,
        endpoints: String,
        pageLimit: Int = 1024,
        interval: String = "5s",
        extra: String = ""
    ) -> String {
        """
        global: {scrape_interval: \(interval)}
        scrape_configs:
          - job_name: nats
            kind: nats
            static_configs: [{targets: ["127.0.0.1:\(server.monitoringPort)"], labels: {env: test}}]
            nats: {endpoints: [\(endpoints)], page_limit: \(pageLimit)}
        \(extra)
        """
    }

    /// Relabeling the live scrape applies, and the replay must apply the same way.
    static let relabel = """
            relabel_configs:
              - {source_labels: [client_name], regex: "(orders|audit)-.*", target_label: role}
              - {action: drop, source_labels: [__name__], regex: "flatline_nats_connection_idle_seconds"}
        """

    static let allEndpoints =
        "varz, connz, jsz, accstatz, healthz, subsz, routez, leafz, gatewayz, accountz, connz_closed"

    static let scenario = """
        name: scrape-test
        seed: 7
        duration: 30s
        streams:
          - {name: ORDERS, subjects: ["orders.>"], storage: memory}
        consumers:
          - {stream: ORDERS, name: worker, capacity: 200, max_ack_pending: 100, ack_wait: 5s, batch: 20}
        publishers:
          - {name: orders-producer, subject: orders.new, rate: 50, payload: 64}
        subscribers:
          - {name: audit-sub, subject: "orders.>"}
        """

    @Test("every endpoint under loadgen traffic; the recording replays into the same series")
    func allEndpointsAndReplay() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let generator = LoadGenerator(
            scenario: try Scenario.parse(yaml: Self.scenario),
            connection: try NATSClientConfiguration(urls: [server.url]),
            logger: TestSupport.quietLogger
        )
        let stop = StopSignal()
        let traffic = Task { try await generator.run(stop: stop) { _ in } }
        defer { stop.stop() }
        // Let the streams, consumers and connections come up.
        _ = await TestSupport.eventually(timeout: .seconds(10)) {
            ((try? server.monitor("/jsz?consumers=true"))?["consumers"] as? Int ?? 0) >= 1
        }
        let recording = directory.file("live.ndjson.gz").path
        let batches = try await ScrapeSupport.scrape(
            Self.yaml(server, endpoints: Self.allEndpoints, extra: Self.relabel),
            rounds: 2,
            recordTo: recording
        )
        stop.stop()
        _ = try await traffic.value
        try #require(batches.count == 2)
        for batch in batches {
            #expect(batch.errors.isEmpty, "\(batch.errors)")
            #expect(batch.health.up)
            #expect(ScrapeSupport.sample(batch.samples, "up")?.value == 1)
            #expect((ScrapeSupport.sample(batch.samples, "scrape_samples_scraped")?.value ?? 0) > 50)
            #expect(batch.labels == ["job": "nats", "instance": "127.0.0.1:\(server.monitoringPort)", "env": "test"])
        }
        let last = try #require(batches.last).samples
        let consumer = ["stream": "ORDERS", "consumer": "worker", "server_name": "flatline-test", "env": "test"]
        #expect(ScrapeSupport.sample(last, "jetstream_consumer_ack_floor_stream_seq", consumer) != nil)
        #expect(
            ScrapeSupport.sample(last, "gnatsd_connz_in_msgs", ["client_name": "orders-producer"])?.kind == .counter
        )
        #expect(ScrapeSupport.sample(last, "gnatsd_varz_in_msgs") != nil)
        #expect(ScrapeSupport.sample(last, "gnatsd_accstatz_received_messages", ["account": "$G"]) != nil)
        #expect(ScrapeSupport.sample(last, "gnatsd_healthz_status")?.value == 0)
        #expect(ScrapeSupport.sample(last, "gnatsd_subsz_num_subscriptions") != nil)
        #expect(ScrapeSupport.sample(last, "gnatsd_routez_num_routes")?.value == 0)
        #expect(ScrapeSupport.sample(last, "flatline_nats_closed_connections_total") != nil)
        for endpoint in ["leafz", "gatewayz", "accountz"] {
            #expect(last.contains { $0.labels.metricName.hasPrefix("gnatsd_\(endpoint)") })
        }
        // The server's clock: bodies' `now`, not ours, within a second of the round.
        for sample in last where sample.labels.metricName.hasPrefix("gnatsd_varz") {
            #expect(abs(sample.timestamp.seconds - batches[1].time.seconds) < 2)
        }

        // The recording, replayed through the same extraction and validation, gives the same
        // samples the live path gave.
        #expect(
            ScrapeSupport.sample(last, "gnatsd_connz_in_msgs", ["client_name": "orders-producer"])?.labels["role"]
                == "orders"
        )
        #expect(!last.contains { $0.labels.metricName == "flatline_nats_connection_idle_seconds" })
        let configuration = try Configuration.parse(
            Self.yaml(server, endpoints: Self.allEndpoints, extra: Self.relabel),
            file: "test.yml"
        )
        var source = try RecordingSource(path: recording)
        source.jobs = configuration.recordingJobs
        var replayed: [Sample] = []
        while let batch = try source.next() {
            #expect(batch.error == nil)
            replayed += batch.samples
        }
        let live = batches.flatMap(\.samples)
        #expect(replayed.count == live.count)
        #expect(Set(replayed) == Set(live))
    }

    @Test("300 connections with limit=100: every page, every connection")
    func paging() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        let connections = try RawConnections(port: server.port, count: 300) { "pager-\($0)" }
        defer { connections.closeAll() }
        _ = await TestSupport.eventually(timeout: .seconds(10)) {
            ((try? server.monitor("/varz"))?["connections"] as? Int ?? 0) >= 300
        }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let recording = directory.file("paged.ndjson").path
        let batches = try await ScrapeSupport.scrape(
            Self.yaml(server, endpoints: "varz, connz", pageLimit: 100),
            rounds: 1,
            recordTo: recording
        )
        let samples = try #require(batches.first).samples
        #expect(ScrapeSupport.sample(samples, "gnatsd_connz_num_connections")?.value == 300)
        let cids = Set(
            samples.filter { $0.labels.metricName == "gnatsd_connz_in_msgs" }.compactMap { $0.labels["cid"] }
        )
        #expect(cids.count == 300)
        #expect(
            ScrapeSupport.sample(samples, "flatline_nats_client_group_connections", ["client_group": "pager"])?.value
                == 300
        )
        // Three full pages and an empty fourth is not needed: pages stop at the total.
        let lines = try String(contentsOfFile: recording, encoding: .utf8).split(separator: "\n")
        let connzPages = lines.filter { $0.contains("\"endpoint\":\"connz\"") }
        #expect(connzPages.count == 3)
        #expect(connzPages.last?.contains("\"page\":3") == true)
    }

    @Test("a server restart marks counters as reset and keeps the series' names")
    func restart() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        let connections = try RawConnections(port: server.port, count: 3) { "publisher-\($0)" }
        defer { connections.closeAll() }
        let restarted = Mutex(false)
        let batches = try await ScrapeSupport.scrape(Self.yaml(server, endpoints: "varz, connz"), rounds: 2) { _ in
            guard !restarted.withLock({ $0 }) else { return }
            restarted.withLock { $0 = true }
            try? server.restart()
        }
        try #require(batches.count == 2)
        let before = batches[0].samples
        let after = batches[1].samples
        #expect(batches[1].health.up)
        #expect(ScrapeSupport.sample(before, "gnatsd_varz_in_msgs")?.counterReset == false)
        #expect(ScrapeSupport.sample(after, "gnatsd_varz_in_msgs")?.counterReset == true)
        #expect(ScrapeSupport.sample(after, "gnatsd_varz_connections")?.counterReset == false)
        let id = { (samples: [Sample]) in
            ScrapeSupport.sample(samples, "flatline_nats_server_info")?.labels["server_id"]
        }
        #expect(id(before) != nil && id(before) != id(after))
        #expect(
            ScrapeSupport.sample(after, "gnatsd_varz_in_msgs")?.labels
                == ScrapeSupport.sample(before, "gnatsd_varz_in_msgs")?.labels
        )
        // Counter rates restart with the server instead of going negative or spiking.
        var bank = try DetectionBank(configuration: DetectorConfiguration(kind: .ewma), step: 1)
        for batch in batches { _ = bank.process(time: batch.time, samples: batch.samples) }
        #expect(bank.counterResets >= 1)
    }

    @Test("a client that reconnects gets a new cid; its group keeps one history")
    func reconnect() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        let connection = Mutex<RawConnections?>(try RawConnections(port: server.port, count: 1) { _ in "recon-7" })
        let yaml = Self.yaml(server, endpoints: "varz, connz")
        let swapped = Mutex(false)
        let batches = try await ScrapeSupport.scrape(yaml, rounds: 2) { _ in
            guard !swapped.withLock({ $0 }) else { return }
            swapped.withLock { $0 = true }
            connection.withLock { $0?.closeAll() }
            let fresh = try? RawConnections(port: server.port, count: 1) { _ in "recon-7" }
            connection.withLock { $0 = fresh }
            _ = await TestSupport.eventually(timeout: .seconds(5)) {
                let list = (try? server.monitor("/connz"))?["connections"] as? [[String: Any]] ?? []
                return list.count == 1 && list.first?["name"] as? String == "recon-7"
            }
        }
        defer { connection.withLock { $0?.closeAll() } }
        try #require(batches.count == 2)
        let cid = { (samples: [Sample]) in
            ScrapeSupport.sample(samples, "gnatsd_connz_in_msgs", ["client_name": "recon-7"])?.labels["cid"]
        }
        #expect(cid(batches[0].samples) != nil && cid(batches[1].samples) != nil)
        #expect(cid(batches[0].samples) != cid(batches[1].samples))
        for batch in batches {
            let group = ScrapeSupport.sample(
                batch.samples,
                "flatline_nats_client_group_connections",
                ["client_group": "recon"]
            )
            #expect(group?.value == 1)
        }
    }
}
