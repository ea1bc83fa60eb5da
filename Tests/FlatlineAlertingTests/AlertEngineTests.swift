import FlatlineCore
import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineAlerting

/// The alert state machine, driven by a clock in a table, and fingerprints against the ones real
/// Alertmanager payloads carry.
@Suite("Alert engine")
struct AlertEngineTests {
    static let labels = [
        "alertname": "ConsumerFreeze", "severity": "critical", "stream": "ORDERS", "consumer": "worker",
    ]

    static func at(_ seconds: Int) -> Timestamp { Timestamp(milliseconds: 1_767_225_600_000 + Int64(seconds) * 1000) }

    /// Runs `steps` of (second, condition) and returns the events as "second:status".
    static func run(_ timing: AlertTiming, _ steps: [(Int, AlertCondition?)], retention: Double = 900) -> (
        [String], AlertEngine
    ) {
        var engine = AlertEngine(resolvedRetention: retention)
        var events: [String] = []
        for (second, condition) in steps {
            let observations =
                condition.map {
                    [
                        AlertObservation(
                            labels: labels,
                            annotations: ["summary": "s\(second)"],
                            condition: $0,
                            timing: timing
                        )
                    ]
                } ?? []
            for event in engine.evaluate(at: at(second), observations) {
                events.append("\(second):\(event.status.rawValue)")
            }
        }
        return (events, engine)
    }

    @Test(
        "transitions with for, keep_firing_for, hysteresis and staleness",
        arguments: [
            // Fires at once without `for`; resolves when the condition clears.
            ("no for", AlertTiming(), [(0, .active), (1, .active), (2, .inactive)], ["0:firing", "2:resolved"]),
            // `for: 10s`: pending until the condition has held 10 s.
            (
                "for", AlertTiming(forSeconds: 10),
                [(0, .active), (5, .active), (9, .active), (10, .active), (11, .active)], ["10:firing"]
            ),
            // A pending alert whose condition clears never fires, and starts over.
            (
                "pending cleared", AlertTiming(forSeconds: 10),
                [(0, .active), (5, .inactive), (8, .active), (15, .active), (18, .active)], ["18:firing"]
            ),
            // keep_firing_for: a short clear does not resolve.
            (
                "keep firing", AlertTiming(keepFiringFor: 5),
                [
                    (0, .active), (1, .inactive), (3, .inactive), (4, .active), (6, .inactive), (8, .inactive),
                    (10, .inactive),
                ], ["0:firing", "10:resolved"]
            ),
            // Hysteresis: in the band the state holds, in both directions.
            (
                "band holds firing", AlertTiming(), [(0, .active), (1, .unchanged), (2, .unchanged), (3, .inactive)],
                ["0:firing", "3:resolved"]
            ),
            (
                "band holds pending", AlertTiming(forSeconds: 2),
                [(0, .active), (1, .unchanged), (2, .unchanged), (3, .active)], ["3:firing"]
            ),
            ("band does not start", AlertTiming(), [(0, .unchanged), (1, .inactive), (2, .unchanged)], []),
            // Not observed: the state holds until stale_after, then the condition counts as cleared.
            (
                "stale", AlertTiming(staleAfter: 10), [(0, .active), (5, nil), (9, nil), (10, nil)],
                ["0:firing", "10:resolved"]
            ),
            // Firing again after resolving is a new alert with the same fingerprint.
            (
                "again", AlertTiming(), [(0, .active), (1, .inactive), (2, .active)],
                ["0:firing", "1:resolved", "2:firing"]
            ),
        ] as [(String, AlertTiming, [(Int, AlertCondition?)], [String])]
    )
    func transitions(name: String, timing: AlertTiming, steps: [(Int, AlertCondition?)], expected: [String]) {
        #expect(Self.run(timing, steps).0 == expected, "\(name)")
    }

    @Test("a firing alert keeps its start; annotations follow the latest observation")
    func firingDetails() throws {
        let (_, engine) = Self.run(AlertTiming(forSeconds: 2), [(0, .active), (2, .active), (7, .active)])
        let alert = try #require(engine.alerts(in: .firing).first)
        #expect(alert.activeSince == Self.at(0))
        #expect(alert.firedAt == Self.at(2))
        #expect(alert.lastActive == Self.at(7))
        #expect(alert.annotations["summary"] == "s7")
        #expect(alert.fingerprint == AlertFingerprint(labels: Self.labels))
    }

    @Test("resolved alerts are kept for the retention and re-sent; then forgotten")
    func retentionAndResend() throws {
        var (_, engine) = Self.run(AlertTiming(), [(0, .active), (10, .inactive)], retention: 60)
        #expect(engine.alerts(in: .resolved).count == 1)
        #expect(engine.dueForResend(at: Self.at(11), interval: 30).count == 1)
        #expect(engine.dueForResend(at: Self.at(20), interval: 30).isEmpty)
        #expect(engine.dueForResend(at: Self.at(41), interval: 30).count == 1)
        _ = engine.evaluate(at: Self.at(69), [])
        #expect(engine.alerts(in: .resolved).count == 1)
        _ = engine.evaluate(at: Self.at(71), [])
        #expect(engine.alerts.isEmpty)
    }

    @Test("pending alerts are not sent; firing ones are, every interval")
    func resend() {
        var (_, engine) = Self.run(AlertTiming(forSeconds: 100), [(0, .active)])
        #expect(engine.dueForResend(at: Self.at(1), interval: 60).isEmpty)
        (_, engine) = Self.run(AlertTiming(), [(0, .active)])
        #expect(engine.dueForResend(at: Self.at(0), interval: 60).count == 1)
        #expect(engine.dueForResend(at: Self.at(59), interval: 60).isEmpty)
        #expect(engine.dueForResend(at: Self.at(60), interval: 60).count == 1)
    }

    @Test("state saved in the middle of a firing alert restores it: no second firing, it resolves later")
    func saveRestore() throws {
        let timing = AlertTiming(forSeconds: 5)
        let (events, engine) = Self.run(timing, [(0, .active), (5, .active), (6, .active)])
        #expect(events == ["5:firing"])
        let data = try JSONEncoder().encode(engine)
        var restored = try JSONDecoder().decode(AlertEngine.self, from: data)
        #expect(restored.alerts == engine.alerts)
        let observation = AlertObservation(labels: Self.labels, condition: .active, timing: timing)
        #expect(restored.evaluate(at: Self.at(7), [observation]).isEmpty)
        let cleared = AlertObservation(labels: Self.labels, condition: .inactive, timing: timing)
        #expect(restored.evaluate(at: Self.at(8), [cleared]).map(\.status) == [.resolved])
        _ = engine
        // A tampered file (labels that do not match the fingerprint) is refused, not trusted.
        let text = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "ORDERS", with: "PAYMENTS")
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(AlertEngine.self, from: Data(text.utf8)) }
    }

    @Test("fingerprints equal Alertmanager's for the same labels")
    func fingerprints() throws {
        let directory = try #require(Bundle.module.url(forResource: "Fixtures/alertmanager", withExtension: nil))
        var checked = 0
        for name in ["webhook-v4-example", "webhook-v4-resolved-example", "webhook-v4-from-prometheus"] {
            let url = directory.appendingPathComponent(name + ".json")
            let payload = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            for alert in payload["alerts"] as? [[String: Any]] ?? [] {
                let labels = try #require(alert["labels"] as? [String: String])
                let expected = try #require(alert["fingerprint"] as? String)
                #expect(AlertFingerprint(labels: labels).description == expected, "\(name): \(labels)")
                checked += 1
            }
        }
        #expect(checked >= 3)
        // Known values of the algorithm: the empty set is the FNV-1a offset basis.
        #expect(AlertFingerprint(labels: [:]).description == "cbf29ce484222325")
        // Order of insertion does not matter; a value change does.
        #expect(AlertFingerprint(labels: ["a": "1", "b": "2"]) == AlertFingerprint(labels: ["b": "2", "a": "1"]))
        #expect(AlertFingerprint(labels: ["a": "1", "b": "2"]) != AlertFingerprint(labels: ["a": "1", "b": "3"]))
        // Separators keep "ab"="" apart from "a"="b".
        #expect(AlertFingerprint(labels: ["ab": ""]) != AlertFingerprint(labels: ["a": "b"]))
    }
}
