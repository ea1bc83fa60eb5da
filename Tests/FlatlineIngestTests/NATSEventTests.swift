import FlatlineCore
import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineIngest

/// Events a server publishes between scrapes: parsed from bodies a real nats-server sent
/// (`scripts/reference/record_nats_events.py`), hostile bodies refused with the reason, and a
/// slow consumer's disconnect counted once whichever path (event, `/varz` rise, closed ring)
/// sees it first.
@Suite("NATS events")
struct NATSEventTests {
    static func fixture(_ name: String) throws -> [UInt8] {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/nats/\(name)", withExtension: "json"))
        return [UInt8](try Data(contentsOf: url))
    }

    static func slowCounts(_ samples: [Sample]) -> [String: Double] {
        Dictionary(
            samples.filter { $0.labels.metricName == "flatline_nats_client_group_slow_consumers_total" }
                .map { ($0.labels["client_group"] ?? "", $0.value) },
            uniquingKeysWith: { a, _ in a }
        )
    }

    @Test("a slow consumer's disconnect event from nats-server 2.9: server, cid, client, account, reason, time")
    func disconnect() throws {
        let body = try Self.fixture("events-disconnect-slow-consumer")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        let client = try #require(json["client"] as? [String: Any])
        let server = try #require(json["server"] as? [String: Any])
        guard case .clientDisconnect(let event) = try NATSEvent.parse(body) else {
            Issue.record("not a disconnect")
            return
        }
        #expect(event.serverName == server["name"] as? String)
        #expect(event.serverID == server["id"] as? String)
        #expect(event.cid == client["id"] as? Int)
        #expect(event.clientName == client["name"] as? String)
        #expect(event.account == client["acc"] as? String)
        #expect(event.reason == json["reason"] as? String && event.isSlowConsumer)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let text = try #require(json["timestamp"] as? String)
        // Foundation keeps milliseconds: compare at that precision.
        let date = try #require(formatter.date(from: String(text.prefix(23)) + "Z"))
        #expect(event.time == Timestamp(milliseconds: Int64((date.timeIntervalSince1970 * 1000).rounded())))
    }

    @Test("a max_deliver advisory from nats-server 2.9 is counted per stream and consumer, from one")
    func maxDeliver() throws {
        let body = try Self.fixture("events-max-deliver")
        guard case .consumerAdvisory(let advisory) = try NATSEvent.parse(body) else {
            Issue.record("not an advisory")
            return
        }
        #expect(advisory.kind == .maxDeliveries && advisory.stream == "S1" && advisory.consumer == "C1")
        var counter = ConsumerAdvisoryCounter(targetLabels: ["job": "events", "instance": "n1"])
        let first = counter.count(advisory)
        let second = counter.count(advisory)
        #expect(first.map(\.value) == [1] && second.map(\.value) == [2])
        // The counter starts at zero with its first advisory, and says so.
        #expect(first.first?.counterReset == true && second.first?.counterReset == false)
        #expect(second.first?.labels.metricName == "flatline_jetstream_consumer_max_deliveries_total")
        #expect(second.first?.labels["stream"] == "S1" && second.first?.labels["consumer"] == "C1")
        #expect(second.first?.labels["job"] == "events" && second.first?.kind == .counter)
        #expect(second.first?.timestamp == advisory.time)
    }

    @Test(
        "bodies that are no event are refused with the reason; events Flatline does not use are ignored",
        arguments: [
            ("not json", "event"),
            ("[1,2]", "expected a JSON object"),
            (#"{"id":"x"}"#, "no \"type\""),
            (
                #"{"type":"io.nats.server.advisory.v1.client_disconnect","timestamp":"2026-01-01T00:00:00Z"}"#,
                "no \"client\""
            ),
            (
                #"{"type":"io.nats.server.advisory.v1.client_disconnect","timestamp":"2026-01-01T00:00:00Z","server":{"name":"a"},"client":{"id":1e30}}"#,
                "no whole client"
            ),
            (
                #"{"type":"io.nats.server.advisory.v1.client_disconnect","timestamp":"2026-01-01T00:00:00Z","server":{"name":"a"},"client":{"id":-3}}"#,
                "no whole client"
            ),
            (
                #"{"type":"io.nats.server.advisory.v1.client_disconnect","server":{"name":"a"},"client":{"id":3}}"#,
                "no valid \"timestamp\""
            ),
            (
                #"{"type":"io.nats.server.advisory.v1.client_disconnect","timestamp":"2026-01-01T00:00:00Z","client":{"id":3}}"#,
                "no server name"
            ),
            (
                #"{"type":"io.nats.jetstream.advisory.v1.max_deliver","timestamp":"2026-01-01T00:00:00Z","stream":"S"}"#,
                "no \"stream\" or \"consumer\""
            ),
            (#"{"type":"io.nats.jetstream.advisory.v1.max_deliver","stream":"S","consumer":"C"}"#, "timestamp"),
        ]
    )
    func hostile(body: String, reason: String) {
        #expect {
            _ = try NATSEvent.parse(Array(body.utf8))
        } throws: { error in
            (error as? ExtractionError)?.description.contains(reason) == true
        }
    }

    @Test("events of other kinds parse to nothing; long names are cut")
    func others() throws {
        let created = #"{"type":"io.nats.jetstream.advisory.v1.stream_action","stream":"S1","action":"create"}"#
        #expect(try NATSEvent.parse(Array(created.utf8)) == nil)
        let long = String(repeating: "n", count: 5000)
        let body = """
            {"type":"io.nats.server.advisory.v1.client_disconnect","timestamp":"2026-01-01T00:00:00Z",
             "server":{"name":"a"},"client":{"id":3,"name":"\(long)"},"reason":"Client Closed"}
            """
        guard case .clientDisconnect(let event) = try NATSEvent.parse(Array(body.utf8)) else {
            Issue.record("not a disconnect")
            return
        }
        #expect(event.clientName.count <= 201 && event.clientName.hasSuffix("…") && !event.isSlowConsumer)
    }

    /// Two scrapes of `/varz` and `/connz` with the given slow-consumer count and connections.
    static func round(
        _ extractor: inout NATSExtractor,
        second: Int,
        slow: Int,
        connections: String
    ) throws -> [Sample] {
        let now = "2026-01-01T00:00:\(second < 10 ? "0" : "")\(second)Z"
        let time = Timestamp(milliseconds: 1_767_225_600_000 + Int64(second) * 1000)
        _ = try extractor.extract(
            .varz,
            pages: [NATSExtractorTests.page(#"{"server_id":"A","now":"\#(now)","slow_consumers":\#(slow)}"#)],
            scrapeTime: time
        )
        return try extractor.extract(
            .connz,
            pages: [
                NATSExtractorTests.page(#"{"server_id":"A","now":"\#(now)","total":2,"connections":[\#(connections)]}"#)
            ],
            scrapeTime: time
        )
    }

    @Test("a cut-off told by its event first is counted once: the /varz rise and the connection gone explain it")
    func eventThenVarz() throws {
        var extractor = NATSExtractor(targetLabels: NATSExtractorTests.target)
        let two = #"{"cid":7,"name":"slowpoke-1","pending_bytes":900000},{"cid":8,"name":"api-1","pending_bytes":0}"#
        _ = try Self.round(&extractor, second: 0, slow: 0, connections: two)
        _ = try Self.round(&extractor, second: 1, slow: 0, connections: two)
        let time = Timestamp(milliseconds: 1_767_225_601_500)
        let told = extractor.slowConsumerDisconnected(cid: 7, clientName: "slowpoke-1", at: time)
        #expect(Self.slowCounts(told) == ["slowpoke": 1])
        #expect(told.first?.timestamp == time && told.first?.labels["instance"] == "127.0.0.1:8222")
        // The same event again (a redelivery) counts nothing.
        #expect(extractor.slowConsumerDisconnected(cid: 7, clientName: "slowpoke-1", at: time).isEmpty)
        let after = try Self.round(&extractor, second: 2, slow: 1, connections: #"{"cid":8,"name":"api-1"}"#)
        #expect(Self.slowCounts(after) == ["slowpoke": 1])
        // A later cut-off no event told of is still put on the connection that left.
        let later = try Self.round(&extractor, second: 3, slow: 2, connections: "")
        #expect(Self.slowCounts(later) == ["slowpoke": 1, "api": 1])
    }

    @Test("a cut-off a scrape saw first is not counted again by its late event; the closed ring does not double either")
    func scrapeThenEvent() throws {
        var extractor = NATSExtractor(targetLabels: NATSExtractorTests.target)
        let two = #"{"cid":7,"name":"slowpoke-1","pending_bytes":900000},{"cid":8,"name":"api-1","pending_bytes":0}"#
        _ = try Self.round(&extractor, second: 0, slow: 0, connections: two)
        _ = try Self.round(&extractor, second: 1, slow: 0, connections: two)
        let after = try Self.round(&extractor, second: 2, slow: 1, connections: #"{"cid":8,"name":"api-1"}"#)
        #expect(Self.slowCounts(after) == ["slowpoke": 1])
        let late = extractor.slowConsumerDisconnected(
            cid: 7,
            clientName: "slowpoke-1",
            at: Timestamp(milliseconds: 1_767_225_602_100)
        )
        #expect(late.isEmpty)

        var closedFirst = NATSExtractor(targetLabels: NATSExtractorTests.target)
        _ = try closedFirst.extract(
            .connzClosed,
            pages: [try NATSExtractorTests.page(#"{"server_id":"A","connections":[]}"#)],
            scrapeTime: NATSExtractorTests.scrapeTime
        )
        let told = closedFirst.slowConsumerDisconnected(
            cid: 9,
            clientName: "telemetry-sub",
            at: NATSExtractorTests.scrapeTime
        )
        #expect(Self.slowCounts(told) == ["telemetry-sub": 1])
        let ring = #"""
            {"server_id":"A","connections":[{"cid":9,"name":"telemetry-sub","reason":"Slow Consumer (Write Deadline)"}]}
            """#
        let samples = try closedFirst.extract(
            .connzClosed,
            pages: [try NATSExtractorTests.page(ring)],
            scrapeTime: NATSExtractorTests.scrapeTime
        )
        #expect(Self.slowCounts(samples) == ["telemetry-sub": 1])
    }
}

extension NATSEventTests {
    @Test(
        "recorded events replay as they were counted live: the disconnect on its server's counter, the advisory on its consumer's"
    )
    func recorded() throws {
        let disconnect = String(decoding: try Self.fixture("events-disconnect-slow-consumer"), as: UTF8.self)
            .replacingOccurrences(of: "\n", with: "")
        let advisory = String(decoding: try Self.fixture("events-max-deliver"), as: UTF8.self)
            .replacingOccurrences(of: "\n", with: "")
        let server = #"{"job":"cluster","instance":"NDSAQFTXDHZBE24TYGULGYVMWOYYHYQVNV7LGHNYM4XUAYAINOY5W7QS"}"#
        let events = #"{"job":"orders-events","instance":"nats://127.0.0.1:4222"}"#
        let lines = [
            #"{"ts":"2026-12-04T11:18:50.000Z","target":"s","labels":\#(server),"endpoint":"varz","body":{"server_id":"S","now":"2026-12-04T11:18:50Z","slow_consumers":0}}"#,
            #"{"ts":"2026-12-04T11:18:57.962Z","target":"s","labels":\#(server),"endpoint":"event","body":\#(disconnect)}"#,
            #"{"ts":"2026-12-04T11:19:01.364Z","target":"e","labels":\#(events),"endpoint":"event","body":\#(advisory)}"#,
            #"{"ts":"2026-12-04T11:19:01.900Z","target":"e","labels":\#(events),"endpoint":"event","body":{"type":"io.nats.jetstream.advisory.v1.stream_action"}}"#,
        ]
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write("events.ndjson", lines.joined(separator: "\n") + "\n")
        var source = try RecordingSource(path: file.path)
        var batches: [RecordedBatch] = []
        while let batch = try source.next() { batches.append(batch) }
        #expect(batches.count == 4 && batches.allSatisfy { $0.error == nil }, "\(batches.map(\.error))")
        let cut = batches[1].samples
        #expect(Self.slowCounts(cut) == ["slowpoke": 1])
        let cutAt = try Self.time("2026-12-04T11:18:57.962Z")
        #expect(cut.first?.labels["job"] == "cluster" && cut.first?.timestamp == cutAt)
        let counted = batches[2].samples
        #expect(counted.map(\.labels.metricName) == ["flatline_jetstream_consumer_max_deliveries_total"])
        #expect(counted.first?.labels["stream"] == "S1" && counted.first?.labels["job"] == "orders-events")
        #expect(batches[3].samples.isEmpty)
    }

    static func time(_ text: String) throws -> Timestamp { try #require(NumberText.parseTimestamp(text)) }
}
