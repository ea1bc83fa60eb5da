import FlatlineAlerting
import FlatlineCore
import FlatlineIngest
import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineDaemon

/// The recorded incident (a real nats-server: a freeze, a flood, a slow subscriber) replayed with
/// the shipped models: each incident is caught in time, names what is wrong, and nothing else
/// fires. Times come from the scenario's ground truth file.
@Suite("Replay with the shipped models")
struct ReplayAlertsTests {
    struct Phase: Decodable {
        var phase: String
        var start: String
        var end: String
    }

    static func time(_ text: String) throws -> Double {
        try #require(NumberText.parseTimestamp(text)).seconds
    }

    @Test("freeze within 15 s, flood within 5 s, slow consumer before the disconnect; no false alert")
    func scenario() throws {
        let fixtures = TestSupport.repositoryFile("Tests/FlatlineIngestTests/Fixtures/nats")
        let file = try SeriesFile.load(path: fixtures.appendingPathComponent("scenario-freeze-flood.ndjson.gz").path)
        let models = try ModelDirectory.load(TestSupport.repositoryFile("models").path)
        let result = try Replayer.run(file, configuration: DetectorConfiguration(), models: models)
        struct Truth: Decodable { var phases: [Phase] }
        let truth = try JSONDecoder().decode(
            Truth.self,
            from: Data(contentsOf: fixtures.appendingPathComponent("scenario-freeze-flood.phases.json"))
        )
        func phase(_ name: String) throws -> (Double, Double) {
            guard let p = truth.phases.first(where: { $0.phase == name }) else { throw TestError("no phase \(name)") }
            return (try Self.time(p.start), try Self.time(p.end))
        }
        let firing = result.alertEvents.filter { $0.status == .firing }
        func first(_ alertname: String, _ label: String, _ value: String) -> AlertEvent? {
            firing.first { $0.alert.labels["alertname"] == alertname && $0.alert.labels[label] == value }
        }

        let freeze = try phase("freeze")
        let frozen = try #require(first("ConsumerFreeze", "consumer", "worker"))
        #expect(frozen.time.seconds - freeze.0 <= 15)
        #expect(frozen.alert.labels["stream"] == "ORDERS")
        let resolved = try #require(
            result.alertEvents.first { $0.status == .resolved && $0.alert.fingerprint == frozen.alert.fingerprint }
        )
        #expect(resolved.time.seconds > freeze.1)
        #expect(resolved.time.seconds - freeze.1 < 30)

        let flood = try phase("flood")
        let flooding = try #require(first("ProducerFlood", "client_name", "orders-producer"))
        #expect(flooding.time.seconds - flood.0 <= 5)
        #expect(flooding.alert.annotations["summary"]?.contains("orders-producer") == true)

        let slow = try phase("slow")
        let slowAlert = try #require(first("SlowConsumer", "client_name", "telemetry-slow-sub"))
        // The server cut it off at 15:27:53.816 (scenario-freeze-flood.md).
        #expect(slowAlert.time.seconds < (try Self.time("2026-11-24T15:27:53.816Z")))
        #expect(slowAlert.time.seconds - slow.0 <= 15)

        // The frozen consumer's ack-pending count pinned at max_ack_pending: the backlog forecast
        // fires inside the freeze, as part of the same incident, and says so.
        let forecast = try #require(first("ConsumerBacklogForecast", "consumer", "worker"))
        #expect(forecast.time.seconds >= freeze.0 && forecast.time.seconds <= freeze.1)
        #expect(forecast.alert.labels["incident"] == frozen.alert.labels["incident"])
        #expect(forecast.alert.annotations["related"] == "ConsumerFreeze")

        // The cut-off itself, from /varz slow_consumers (this recording has no closed
        // connections until its end): put on the connection that left /connz, within a scrape.
        let cutOff = try #require(first("SlowConsumerDisconnect", "client_group", "telemetry-slow-sub"))
        #expect(cutOff.time.seconds - (try Self.time("2026-11-24T15:27:53.816Z")) <= 1)
        #expect(cutOff.alert.labels["incident"] == slowAlert.alert.labels["incident"])

        // Nothing else: exactly these five fired, none during the baseline, no freeze in the flood.
        #expect(firing.count == 5, "\(firing.map { "\($0.time) \($0.alert.labels)" })")
        let baseline = try phase("baseline")
        #expect(!firing.contains { $0.time.seconds < baseline.1 })
        #expect(
            !firing.contains {
                $0.alert.labels["alertname"] == "ConsumerFreeze" && $0.time.seconds >= flood.0
                    && $0.time.seconds <= flood.1
            }
        )
        for event in result.alertEvents {
            #expect(event.alert.fingerprint == AlertFingerprint(labels: event.alert.labels))
        }
    }
}
