import FlatlineCore
import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineIngest

/// The recorded incident (a real nats-server with a freeze, a flood and a slow consumer) read
/// back through extraction: the series an operator would see, against the scenario's ground
/// truth in scenario-freeze-flood.md.
@Suite("Recorded incident through extraction")
struct RecordingReplayTests {
    static func load() throws -> SeriesFile {
        let url = try #require(
            Bundle.module.url(forResource: "Fixtures/nats/scenario-freeze-flood.ndjson", withExtension: "gz")
        )
        return try SeriesFile.load(path: url.path)
    }

    static func time(_ text: String) throws -> Timestamp {
        try #require(NumberText.parseTimestamp(text))
    }

    /// (time, value) of the one series named `name` with `labels`.
    static func series(_ file: SeriesFile, _ name: String, _ labels: [String: String] = [:]) throws -> [(
        Timestamp, Double
    )] {
        let matching = file.series.indices.filter { i in
            file.series[i].metricName == name && labels.allSatisfy { file.series[i][$0.key] == $0.value }
        }
        try #require(matching.count == 1, "\(name) \(labels): \(matching.count) series")
        return file.rows.filter { $0.series == matching[0] }.map { ($0.timestamp, $0.value ?? .nan) }
    }

    @Test("every series carries the target and server labels; the recording needs no other input")
    func labels() throws {
        let file = try Self.load()
        #expect(file.format == .recording)
        #expect(file.warnings.isEmpty)
        #expect(file.series.count > 200)
        for labels in file.series {
            #expect(labels["job"] == "nats")
            #expect(labels["instance"] == "recording")
            #expect(labels["server_name"] == "scenario-srv")
        }
    }

    @Test("the freeze: the worker's ack floor stands still for the minute, its age reaches 60 s")
    func freeze() throws {
        let file = try Self.load()
        let consumer = ["stream": "ORDERS", "consumer": "worker"]
        let floor = try Self.series(file, "jetstream_consumer_ack_floor_stream_seq", consumer)
        let freezeStart = try Self.time("2026-11-24T15:24:51.314Z")
        let freezeEnd = try Self.time("2026-11-24T15:25:51.321Z")
        let during = floor.filter { $0.0 > freezeStart.advanced(bySeconds: 2) && $0.0 < freezeEnd }
        let before = floor.filter { $0.0 < freezeStart }
        #expect(during.count > 50)
        #expect(Set(during.map(\.1)).count == 1, "the ack floor moved during the freeze")
        // Before it, the worker acked ~20 messages a second.
        let rate = try #require(before.last).1 - before[before.count - 31].1
        #expect(rate > 400 && rate < 800, "ack floor rose \(rate) in 30 s before the freeze")
        let age = try Self.series(file, "jetstream_consumer_last_ack_seconds", consumer)
        let atEnd = try #require(age.last { $0.0 <= freezeEnd })
        #expect(atEnd.1 > 58 && atEnd.1 < 62)
        // And the backlog grows behind it.
        let pending = try Self.series(file, "jetstream_consumer_num_pending", consumer)
        let pendingAtEnd = try #require(pending.last { $0.0 <= freezeEnd }).1
        #expect(pendingAtEnd > 500)
    }

    @Test("the slow consumer: its queue grows, the server cuts it, it comes back under a new cid")
    func slowConsumer() throws {
        let file = try Self.load()
        let queued = try Self.series(
            file,
            "gnatsd_connz_pending_bytes",
            ["client_name": "telemetry-slow-sub", "cid": "26"]
        )
        #expect(try #require(queued.map(\.1).max()) > 3_000_000)
        // cid 26 ends when the server closes it (15:27:53.8); cid 27 appears when the client
        // reconnects (15:28:12).
        #expect(try #require(queued.last).0 < Self.time("2026-11-24T15:27:54.5Z"))
        let again = try Self.series(file, "gnatsd_connz_in_msgs", ["client_name": "telemetry-slow-sub", "cid": "27"])
        #expect(try #require(again.first).0 > Self.time("2026-11-24T15:28:00Z"))
        // The server-wide slow consumer counter rose by one.
        let slow = try Self.series(file, "gnatsd_varz_slow_consumers")
        #expect(try #require(slow.last).1 - (try #require(slow.first).1) == 1)
        // The group keeps one history through the reconnect: its totals never go down.
        let group = try Self.series(file, "flatline_nats_client_group_out_msgs", ["client_group": "telemetry-slow-sub"])
        #expect(zip(group, group.dropFirst()).allSatisfy { $0.1 <= $1.1 })
        #expect(group.count > 280)
    }

    @Test("the flood: the orders stream's last sequence climbs ~50x faster")
    func flood() throws {
        let file = try Self.load()
        let lastSeq = try Self.series(file, "jetstream_stream_last_seq", ["stream": "ORDERS"])
        func rise(_ from: String, _ to: String) throws -> Double {
            let a = try Self.time(from)
            let b = try Self.time(to)
            let inside = lastSeq.filter { $0.0 >= a && $0.0 <= b }
            return try #require(inside.last).1 - (try #require(inside.first).1)
        }
        let baseline = try rise("2026-11-24T15:23:40Z", "2026-11-24T15:24:40Z") / 60
        let flood = try rise("2026-11-24T15:26:25Z", "2026-11-24T15:26:50Z") / 25
        #expect(baseline > 15 && baseline < 25)
        #expect(flood > 20 * baseline)
    }
}
