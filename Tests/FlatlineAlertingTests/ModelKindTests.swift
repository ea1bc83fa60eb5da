import FlatlineCore
import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineAlerting

/// The model kinds added for the classic NATS incidents, each through its shipped model, on
/// hand-made series with known answers; incidents; saved and restored evaluator state.
@Suite("Model kinds")
struct ModelKindTests {
    typealias M = ModelTests

    /// Runs models over ticks; returns "second:status:alertname" events and the last observations.
    static func run(
        _ models: [Model],
        _ ticks: [(Int, [Sample])],
        bank: DetectionBank? = nil
    ) -> (events: [String], engine: AlertEngine, last: [AlertObservation]) {
        var evaluator = ModelEvaluator(models: models)
        var engine = AlertEngine()
        var bank = bank
        var out: [String] = []
        var last: [AlertObservation] = []
        for (second, samples) in ticks {
            let verdicts = bank?.process(time: M.at(second), samples: samples) ?? []
            last = evaluator.observe(time: M.at(second), samples: samples, verdicts: verdicts)
            for event in engine.evaluate(at: M.at(second), last) {
                out.append("\(second):\(event.status.rawValue):\(event.alert.labels["alertname"] ?? "")")
            }
        }
        return (out, engine, last)
    }

    @Test("target_down: a failed scrape that lasts 30 s fires; one good scrape resolves")
    func targetDown() throws {
        let model = try M.model("target_down")
        var ticks: [(Int, [Sample])] = []
        for s in 0..<100 {
            let up: Double = (20..<30).contains(s) || (50..<90).contains(s) ? 0 : 1
            ticks.append((s, [try M.sample("up", up, ["job": "nats", "instance": "n1:8222"], at: s)]))
        }
        let result = Self.run([model], ticks)
        // 10 s down: shorter than `for`, nothing. 40 s down: fires at 30 s, resolves when back.
        #expect(result.events == ["80:firing:TargetDown", "90:resolved:TargetDown"], "\(result.events)")
    }

    @Test("jetstream storage: the ratio to the limit fires above 90%, clears below 85%, ignores no limit")
    func storageNearLimit() throws {
        let model = try M.model("jetstream_storage_near_limit")
        var ticks: [(Int, [Sample])] = []
        // 0-99 s at 80%, 100-199 s at 92%, 200-299 s at 88% (between: stays), then 80%.
        for s in 0..<400 {
            let used = s < 100 ? 80.0 : s < 200 ? 92 : s < 300 ? 88 : 80
            ticks.append(
                (
                    s,
                    [
                        try M.sample("jetstream_server_storage_bytes", used, ["instance": "n1"], at: s),
                        try M.sample("jetstream_server_max_storage", 100, ["instance": "n1"], at: s),
                        // An unlimited server (-1) is never near its limit.
                        try M.sample("jetstream_server_storage_bytes", 1e12, ["instance": "n2"], at: s),
                        try M.sample("jetstream_server_max_storage", -1, ["instance": "n2"], at: s),
                    ]
                )
            )
        }
        let result = Self.run([model], ticks)
        #expect(
            result.events == ["160:firing:JetStreamStorageNearLimit", "300:resolved:JetStreamStorageNearLimit"],
            "\(result.events)"
        )
        let partial = Self.run([model], Array(ticks[0..<170]))
        let observation = try #require(partial.last.first { $0.labels["instance"] == "n1" })
        #expect(observation.annotations["summary"] == "JetStream storage on n1 is 92% full")
        #expect(observation.annotations["observed"] == "0.92" && observation.annotations["expected"] == "at most 0.9")
    }

    @Test("route_loss: fewer routes than held fires; a lower count held for an hour becomes normal")
    func routeLoss() throws {
        let model = try M.model("route_loss")
        var ticks: [(Int, [Sample])] = []
        for s in stride(from: 0, to: 8000, by: 15) {
            // Two routes; one lost at 600 s for good.
            let routes: Double = s < 600 ? 2 : 1
            ticks.append((s, [try M.sample("gnatsd_varz_routes", routes, ["instance": "n1"], at: s)]))
        }
        let result = Self.run([model], ticks)
        // Fires once the loss held 30 s; after an hour at one route that is the new level.
        #expect(result.events == ["630:firing:RouteLoss", "4200:resolved:RouteLoss"], "\(result.events)")
        // A restart's short dip (under `for`) does not fire.
        var dip: [(Int, [Sample])] = []
        for s in stride(from: 0, to: 300, by: 15) {
            dip.append((s, [try M.sample("gnatsd_varz_routes", s == 150 ? 0 : 2, ["instance": "n1"], at: s)]))
        }
        #expect(Self.run([model], dip).events.isEmpty)
    }

    static func cutoffs(_ second: Int, group: String, count: Double) throws -> [Sample] {
        [
            try M.sample(
                "flatline_nats_client_group_slow_consumers_total",
                count,
                ["instance": "n1", "client_group": group],
                at: second
            )
        ]
    }

    @Test("slow_consumer_disconnect: names the client group; a counter born with its first cut-off counts")
    func slowConsumerDisconnect() throws {
        let model = try M.model("slow_consumer_disconnect")
        var ticks: [(Int, [Sample])] = []
        for s in 0..<500 {
            // api's cut-offs happened before the daemon started: a count that never rises.
            var samples = try Self.cutoffs(s, group: "api", count: 2)
            // telemetry-sub's series appears at 100 s with its first slow-consumer cut-off.
            if s >= 100 { samples += try Self.cutoffs(s, group: "telemetry-sub", count: 1) }
            ticks.append((s, samples))
        }
        let result = Self.run([model], ticks)
        // Resolved once 5 minutes passed without another.
        #expect(
            result.events == ["100:firing:SlowConsumerDisconnect", "401:resolved:SlowConsumerDisconnect"],
            "\(result.events)"
        )
        let alert = try #require(result.engine.alerts.values.first)
        #expect(alert.labels["client_group"] == "telemetry-sub")
        // Counters already there at the first tick are history, not news.
        let atStart = Self.run([model], [(0, try Self.cutoffs(0, group: "x", count: 3))])
        #expect(atStart.events.isEmpty)
    }

    static func closed(_ second: Int, group: String, reason: String, count: Double) throws -> [Sample] {
        [
            try M.sample(
                "flatline_nats_client_group_closed_total",
                count,
                ["instance": "n1", "client_group": group, "reason": reason],
                at: second
            ),
            try M.sample(
                "flatline_nats_client_group_closed_total",
                count,
                ["instance": "n1", "client_group": group],
                at: second
            ),
        ]
    }

    @Test("connection_churn: a client group closing 2/s against a usual 0.05/s fires")
    func connectionChurn() throws {
        let model = try M.model("connection_churn")
        var ticks: [(Int, [Sample])] = []
        var total = 0.0
        for s in stride(from: 0, to: 1200, by: 15) {
            total += s >= 900 && s < 1050 ? 30 : (s % 300 == 0 ? 15 * 0.05 * 20 : 0)
            ticks.append((s, try Self.closed(s, group: "api", reason: "Authorization Violation", count: total)))
        }
        let result = Self.run([model], ticks)
        #expect(result.events.first == "915:firing:ConnectionChurn", "\(result.events)")
        #expect(result.events.last?.hasSuffix("resolved:ConnectionChurn") == true, "\(result.events)")
    }

    static func consumer(_ second: Int, ackPending: Double, maxAckPending: Double, pending: Double = 0) throws
        -> [Sample]
    {
        let labels = ["instance": "n1", "account": "$G", "stream": "ORDERS", "consumer": "worker"]
        return [
            try M.sample("jetstream_consumer_num_ack_pending", ackPending, labels, at: second),
            try M.sample("flatline_nats_consumer_max_ack_pending", maxAckPending, labels, at: second),
            try M.sample("jetstream_consumer_num_pending", pending, labels, at: second),
            try M.sample(
                "jetstream_stream_limit_messages",
                100_000,
                ["instance": "n1", "account": "$G", "stream": "ORDERS"],
                at: second
            ),
        ]
    }

    @Test("consumer_backlog_forecast: a rising line says when it meets max_ack_pending")
    func backlogForecast() throws {
        let model = try M.model("consumer_backlog_forecast")
        var ticks: [(Int, [Sample])] = []
        // Noisy around 100 for 10 minutes, then rising 1 message a second (limit 2000).
        for s in stride(from: 0, to: 2100, by: 15) {
            let noise = Double((s / 15 * 7919) % 21) - 10
            let value = s < 600 ? 100 + noise : 100 + Double(s - 600) + noise
            ticks.append((s, try Self.consumer(s, ackPending: value, maxAckPending: 2000)))
        }
        let result = Self.run([model], ticks)
        let first = try #require(result.events.first)
        // At 1 msg/s from 100 at 600 s the line meets 2000 at 2500 s; the alert comes when that
        // is within the 15 min horizon, at 1600 s (give or take the noise), 15 minutes early.
        let second = try #require(Int(first.split(separator: ":")[0]))
        #expect(first.hasSuffix("firing:ConsumerBacklogForecast"))
        #expect((1575...1635).contains(second), "\(result.events)")
        let observation = try #require(result.last.first)
        #expect(observation.annotations["summary"]?.contains("will reach max_ack_pending (2000) in ") == true)
        // Flat noise, however high, is no trend.
        var flat: [(Int, [Sample])] = []
        for s in stride(from: 0, to: 1500, by: 15) {
            flat.append((s, try Self.consumer(s, ackPending: 1500 + Double((s * 31) % 200), maxAckPending: 2000)))
        }
        #expect(Self.run([model], flat).events.isEmpty)
    }

    @Test("consumer_backlog_forecast: a backlog that swings to its usual height is no forecast (beyond_peak)")
    func backlogSwings() throws {
        let shipped = try M.model("consumer_backlog_forecast")
        guard case .forecast(var parameters) = shipped.kind else {
            Issue.record("consumer_backlog_forecast is not a forecast model")
            return
        }
        #expect(parameters.beyondPeak == 3600 && parameters.confirmations == 2)
        // Batches: 200 rising 1 a second to 1700 over 25 minutes, acknowledged in 5; three times.
        var ticks: [(Int, [Sample])] = []
        for s in stride(from: 0, to: 5400, by: 15) {
            let phase = s % 1800
            let value = phase < 1500 ? 200 + Double(phase) : 1700 - Double(phase - 1500) * 5
            ticks.append((s, try Self.consumer(s, ackPending: value, maxAckPending: 2000)))
        }
        let firing = { (model: Model) in
            Self.run([model], ticks).events.filter { $0.contains("firing") }.compactMap {
                Int($0.split(separator: ":")[0])
            }
        }
        // Each rise's trend meets 2000 within 15 minutes: without the peak rule, every batch fires.
        var plain = shipped
        parameters.beyondPeak = 0
        plain.kind = .forecast(parameters)
        #expect(firing(plain).count == 3, "\(firing(plain))")
        // With it, only the first batch (no history yet): later rises never pass the last peak.
        let shippedFiring = firing(shipped)
        #expect(shippedFiring.count <= 1 && shippedFiring.allSatisfy { $0 < 1800 }, "\(shippedFiring)")
    }

    @Test("consumer_backlog_forecast: in its first two windows a consumer has no history to tell a swing from a trend")
    func backlogForecastNeedsHistory() throws {
        let shipped = try M.model("consumer_backlog_forecast")
        guard case .forecast(var parameters) = shipped.kind else {
            Issue.record("consumer_backlog_forecast is not a forecast model")
            return
        }
        // A backlog rising 3 a second from the consumer's first scrape (30 s apart) for 9 minutes.
        var ticks: [(Int, [Sample])] = []
        for s in stride(from: 0, to: 570, by: 30) {
            ticks.append((s, try Self.consumer(s, ackPending: 20 + Double(s * 3), maxAckPending: 2000)))
        }
        #expect(Self.run([shipped], ticks).events.isEmpty, "\(Self.run([shipped], ticks).events)")
        // Without the peak rule (and so without the history it needs), the same rise fires.
        var plain = shipped
        parameters.beyondPeak = 0
        plain.kind = .forecast(parameters)
        #expect(Self.run([plain], ticks).events.first?.hasSuffix("firing:ConsumerBacklogForecast") == true)
        // At the limit it fires at once, history or not.
        ticks.append((570, try Self.consumer(570, ackPending: 2000, maxAckPending: 2000)))
        #expect(Self.run([shipped], ticks).events.first == "570:firing:ConsumerBacklogForecast")
    }

    @Test("forecast confirmations: one window's trend is not enough; reaching the limit fires at once")
    func forecastConfirmations() throws {
        let shipped = try M.model("consumer_backlog_forecast")
        guard case .forecast(var parameters) = shipped.kind else {
            Issue.record("consumer_backlog_forecast is not a forecast model")
            return
        }
        parameters.beyondPeak = 0
        let events = { (confirmations: Int, ticks: [(Int, [Sample])]) -> [String] in
            var model = shipped
            parameters.confirmations = confirmations
            model.kind = .forecast(parameters)
            return Self.run([model], ticks).events
        }
        // A rise of 1 a second from 100 at 600 s: the trend comes within the horizon at ~1600 s;
        // with 3 confirmations the alert comes two scrapes (30 s) later than with 1.
        var rising: [(Int, [Sample])] = []
        for s in stride(from: 0, to: 2100, by: 15) {
            rising.append(
                (s, try Self.consumer(s, ackPending: s < 600 ? 100 : 100 + Double(s - 600), maxAckPending: 2000))
            )
        }
        let once = try #require(events(1, rising).first.flatMap { Int($0.split(separator: ":")[0]) })
        let thrice = try #require(events(3, rising).first.flatMap { Int($0.split(separator: ":")[0]) })
        #expect(thrice == once + 30, "\(once) \(thrice)")
        // At the limit itself: at once, whatever the confirmations.
        var full: [(Int, [Sample])] = []
        for s in stride(from: 0, to: 300, by: 15) {
            full.append((s, try Self.consumer(s, ackPending: s < 150 ? 100 : 2000, maxAckPending: 2000)))
        }
        #expect(events(5, full).first?.hasPrefix("150:firing") == true, "\(events(5, full))")
    }

    @Test("consumer_stream_limit_forecast: a consumer's backlog against its stream's max_msgs")
    func streamLimitForecast() throws {
        let model = try M.model("consumer_stream_limit_forecast")
        var ticks: [(Int, [Sample])] = []
        // Backlog growing 50/s from 10,000: 100,000 is reached at 1800 s.
        for s in stride(from: 0, to: 1200, by: 15) {
            ticks.append(
                (s, try Self.consumer(s, ackPending: 0, maxAckPending: 1000, pending: 10_000 + 50 * Double(s)))
            )
        }
        let result = Self.run([model], ticks)
        #expect(result.events.first == "300:firing:ConsumerStreamLimitForecast", "\(result.events)")
        let observation = try #require(result.last.first)
        // At 1185 s, 69,250 waiting; the line meets 100,000 in 615 s.
        #expect(
            observation.annotations["summary"]?.hasSuffix("(100000) in 10m15s") == true,
            "\(observation.annotations)"
        )
    }

    @Test("server_traffic_anomaly: a sustained jump of a server rate fires through the detector bank")
    func trafficAnomaly() throws {
        let model = try M.model("server_traffic_anomaly")
        var ticks: [(Int, [Sample])] = []
        var total = 0.0
        var rng = SplitMix64(seed: 5)
        for s in 0..<1500 {
            let rate = (1200..<1400).contains(s) ? 400.0 : 100 + 10 * (Double(rng.next() % 1000) / 500 - 1)
            total += rate
            ticks.append((s, [try M.sample("gnatsd_varz_in_msgs", total, ["instance": "n1"], at: s)]))
        }
        // The samples are counters: the bank turns them into rates.
        for i in ticks.indices {
            ticks[i].1 = ticks[i].1.map {
                var x = $0; x.kind = .counter; return x
            }
        }
        let bank = try DetectionBank(configuration: DetectorConfiguration(), step: 1)
        let result = Self.run([model], ticks, bank: bank)
        let firing = result.events.filter { $0.contains("firing") }
        #expect(firing.count == 1, "\(result.events)")
        // `for: 2m` after the jump at 1200 s.
        let second = try #require(Int(firing.first?.split(separator: ":")[0] ?? ""))
        #expect((1320...1340).contains(second), "\(result.events)")
        let alert = try #require(result.engine.alerts.values.first)
        #expect(alert.labels["signal"] == "gnatsd_varz_in_msgs")
        #expect(alert.annotations["band"]?.contains(" to ") == true)
        #expect(result.events.last?.contains("resolved") == true)
    }

    @Test("server_traffic_anomaly: a level that stays becomes the usual after settle_after")
    func trafficSettles() throws {
        var model = try M.model("server_traffic_anomaly")
        guard case .anomaly(var parameters) = model.kind else {
            Issue.record("server_traffic_anomaly is not an anomaly model")
            return
        }
        parameters.settleAfter = 600
        model.kind = .anomaly(parameters)
        var ticks: [(Int, [Sample])] = []
        var total = 0.0
        var rng = SplitMix64(seed: 9)
        for s in 0..<2400 {
            // 100/s, then 400/s from 1200 s on.
            let level = s >= 1200 ? 400.0 : 100
            total += level + 10 * (Double(rng.next() % 1000) / 500 - 1)
            var sample = try M.sample("gnatsd_varz_in_msgs", total, ["instance": "n1"], at: s)
            sample.kind = .counter
            ticks.append((s, [sample]))
        }
        let bank = try DetectionBank(configuration: DetectorConfiguration(), step: 1)
        let result = Self.run([model], ticks, bank: bank)
        // Fires after `for: 2m`, ends 600 s after the jump (+ keep_firing_for 1m). (The way back
        // is no second alert: the test above.)
        let events = result.events.map { $0.split(separator: ":").map(String.init) }
        #expect(events.count == 2, "\(result.events)")
        let fired = try #require(events.first.flatMap { Int($0[0]) })
        let resolved = try #require(events.last.flatMap { Int($0[0]) })
        #expect((1320...1340).contains(fired), "\(result.events)")
        #expect((1800...1880).contains(resolved) && events.last?[1] == "resolved", "\(result.events)")
    }

    @Test("incidents: a frozen consumer and its backlog forecast name each other")
    func incidents() throws {
        let freeze = try M.model("consumer_freeze")
        let forecast = try M.model("consumer_backlog_forecast")
        var ticks: [(Int, [Sample])] = []
        for s in stride(from: 0, to: 900, by: 15) {
            let frozen = s >= 600
            var samples = try M.consumer(
                s,
                floor: frozen ? 600 : Double(s),
                pending: 50,
                ackPending: frozen ? 1000 : 10
            )
            samples.append(
                try M.sample(
                    "flatline_nats_consumer_max_ack_pending",
                    1000,
                    ["instance": "n1", "account": "$G", "stream": "ORDERS", "consumer": "worker"],
                    at: s
                )
            )
            ticks.append((s, samples))
        }
        let result = Self.run([freeze, forecast], ticks)
        let firing = result.engine.alerts(in: .firing)
        #expect(firing.count == 2, "\(result.events)")
        for alert in firing {
            #expect(alert.labels["incident"] == "jetstream $G/ORDERS")
            let other = alert.labels["alertname"] == "ConsumerFreeze" ? "ConsumerBacklogForecast" : "ConsumerFreeze"
            #expect(alert.annotations["related"] == other, "\(alert.annotations)")
        }
    }

    @Test("saved state: a restored evaluator keeps its baselines; a cold one would have to relearn")
    func savedState() throws {
        let model = try M.model("producer_flood")
        var evaluator = ModelEvaluator(models: [model])
        var msgs = 0.0
        func tick(_ s: Int, rate: Double) throws -> [Sample] {
            msgs += rate
            return try M.connection(s, cid: "3", msgs: msgs, bytes: msgs * 200)
        }
        for s in 0..<300 { _ = evaluator.observe(time: M.at(s), samples: try tick(s, rate: 30)) }
        // Save (through JSON, as the daemon does), restore into a new evaluator, flood at once.
        let data = try JSONEncoder().encode(evaluator.state)
        var restored = ModelEvaluator(models: [model])
        #expect(restored.restore(try JSONDecoder().decode(ModelEvaluatorState.self, from: data)) == ["producer_flood"])
        var cold = ModelEvaluator(models: [model])
        var restoredActive = false
        var coldActive = false
        let savedMsgs = msgs
        for s in 300..<310 {
            let samples = try tick(s, rate: 200)
            restoredActive =
                restoredActive || restored.observe(time: M.at(s), samples: samples).contains { $0.condition == .active }
            coldActive =
                coldActive || cold.observe(time: M.at(s), samples: samples).contains { $0.condition == .active }
        }
        #expect(savedMsgs > 0)
        #expect(restoredActive && !coldActive)
        // A model whose kind changed does not take the old state.
        var other = try M.model("slow_consumer")
        other.name = "producer_flood"
        var changed = ModelEvaluator(models: [other])
        #expect(changed.restore(try JSONDecoder().decode(ModelEvaluatorState.self, from: data)).isEmpty)
    }

    @Test("shared state: the part of what the models learned of one instance makes another evaluator warm for it alone")
    func sharedPart() throws {
        let model = try M.model("producer_flood")
        var evaluator = ModelEvaluator(models: [model])
        var msgs = ["n1": 0.0, "n2": 0.0]
        func tick(_ s: Int, rate: Double) throws -> [Sample] {
            var out: [Sample] = []
            for instance in ["n1", "n2"] {
                msgs[instance, default: 0] += rate
                let labels = ["instance": instance, "cid": "3", "client_name": "producer"]
                let total = msgs[instance] ?? 0
                out.append(try M.sample("gnatsd_connz_in_msgs", total, labels, at: s))
                out.append(try M.sample("gnatsd_connz_in_bytes", total * 200, labels, at: s))
            }
            return out
        }
        for s in 0..<300 { _ = evaluator.observe(time: M.at(s), samples: try tick(s, rate: 30)) }
        let parts = evaluator.state.split { $0["instance"] }
        #expect(Set(parts.keys) == ["n1", "n2"])
        #expect(parts["n1"]?.things == 1 && parts["n2"]?.things == 1)
        // Through JSON, as the cluster's object store carries it.
        let n1 = try JSONDecoder().decode(
            ModelEvaluatorState.self,
            from: try JSONEncoder().encode(try #require(parts["n1"]))
        )
        var taker = ModelEvaluator(models: [model])
        #expect(taker.adopt(n1) == 1)
        // Again: nothing new (what it has is kept).
        #expect(taker.adopt(n1) == 0)
        #expect(taker.state.things == 1)
        // Both instances flood at once: n1 is known (its baseline came along), n2 is not.
        var flooded = Set<String>()
        for s in 300..<310 {
            for observation in taker.observe(time: M.at(s), samples: try tick(s, rate: 200))
            where observation.condition == .active {
                flooded.insert(observation.labels["instance"] ?? "?")
            }
        }
        #expect(flooded == ["n1"])
        // A part of another kind is not taken.
        var other = try M.model("slow_consumer")
        other.name = "producer_flood"
        var changed = ModelEvaluator(models: [other])
        #expect(changed.adopt(n1) == 0)
    }
}
