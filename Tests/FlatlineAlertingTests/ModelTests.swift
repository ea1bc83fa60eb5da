import FlatlineCore
import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineAlerting

/// The shipped models parse, bad model files are refused with the reason, and each model kind
/// decides as documented on hand-made series.
@Suite("Models")
struct ModelTests {
    static func shipped() throws -> [Model] {
        try ModelDirectory.load(TestSupport.repositoryFile("models").path)
    }

    static func model(_ name: String) throws -> Model {
        try #require(try shipped().first { $0.name == name })
    }

    /// The shipped `producer_flood` model and its surge parameters.
    static func flood() throws -> (model: Model, parameters: Model.SurgeParameters) {
        let model = try model("producer_flood")
        let parameters: Model.SurgeParameters? = if case .surge(let p) = model.kind { p } else { nil }
        return (model, try #require(parameters, "producer_flood is not a surge model"))
    }

    static func at(_ second: Int) -> Timestamp { Timestamp(milliseconds: 1_767_225_600_000 + Int64(second) * 1000) }

    static func sample(_ name: String, _ value: Double, _ labels: [String: String], at second: Int) throws -> Sample {
        var all = labels
        all["__name__"] = name
        return Sample(labels: try LabelSet(validating: all), value: value, timestamp: at(second))
    }

    @Test("every shipped model parses")
    func shippedModels() throws {
        let names = try Self.shipped().map(\.name)
        #expect(
            names == [
                "connection_churn", "consumer_backlog_forecast", "consumer_freeze", "consumer_max_deliveries",
                "consumer_stream_limit_forecast",
                "gateway_loss", "jetstream_account_storage_near_limit", "jetstream_memory_near_limit",
                "jetstream_storage_near_limit", "leafnode_loss", "producer_flood", "route_loss",
                "server_traffic_anomaly", "server_unhealthy", "slow_consumer", "slow_consumer_disconnect",
                "target_down",
            ]
        )
        // Every shipped model names its incident and fills every placeholder it uses from its
        // labels or its kind's numbers (checked on the rendered text in each kind's test).
        for model in try Self.shipped() {
            #expect(model.incident != nil, "\(model.name)")
            #expect(!model.description.isEmpty, "\(model.name)")
        }
    }

    @Test(
        "bad model files name the reason",
        arguments: [
            ("name: x\nkind: stall\n", "m.yml:1: group_by: must list label names"),
            ("name: x\nkind: magic\ngroup_by: [a]\n", "m.yml:2: kind: \"magic\" is not a model kind"),
            ("name: x\nkind: stall\ngroup_by: [a]\nstall: {progress: p}\n", "m.yml:4: stall.waiting: must list gauges"),
            ("name: x\nkind: growth\ngroup_by: [a]\ngrowth: {metric: m}\n", "m.yml:1: alert: required"),
            ("name: x\nkindd: stall\n", "m.yml:2: kindd: unknown key"),
            (
                "name: x\nkind: threshold\ngroup_by: [a]\nthreshold: {metric: m, above: 1, below: 0}\n",
                "m.yml:4: threshold: needs exactly one of above: or below:"
            ),
            (
                "name: x\nkind: threshold\ngroup_by: [a]\nthreshold: {metric: m, above: 0.9, clear: 0.95}\n",
                "m.yml:4: threshold.clear: must be on the normal side"
            ),
            (
                "name: x\nkind: forecast\ngroup_by: [a]\nforecast: {metric: m, limit: 5, limit_on: [b]}\n",
                "m.yml:4: forecast.limit_on: must list some of the group_by labels"
            ),
            (
                "name: x\nkind: drop\ngroup_by: [a]\ndrop: {metric: m, min_dropp: 1}\n",
                "m.yml:4: drop.min_dropp: unknown key"
            ),
            (
                "name: x\nkind: drop\ngroup_by: [a]\ndrop: {metric: m}\nsurge: {}\n",
                "m.yml:5: surge: does not belong to a model of kind drop"
            ),
            (
                "name: x\nkind: drop\ngroup_by: [a]\ndrop: {metric: m}\ndrop: {metric: n}\n",
                "m.yml:4: not valid YAML: a key given twice in one mapping: drop"
            ),
            (
                "name: x\nkind: anomaly\ngroup_by: [a]\nanomaly: {metrics: [m], direction: up}\n",
                "m.yml:4: anomaly.direction: must be above, below or both"
            ),
            ("name: x\nkind: drop\ngroup_by: [a]\nmatch: ['a=~\"(\"']\ndrop: {metric: m}\n", "m.yml:4: match: "),
            (
                "name: x\nkind: growth\ngroup_by: [a]\ngrowth: {metric: m, min_value: lots}\nalert: {}\n",
                "m.yml:4: growth.min_value: \"lots\" is not a number or a duration"
            ),
            // Values that would alert on every client, or never.
            (
                "name: x\nkind: surge\ngroup_by: [a]\nsurge: {messages: m, factor: -2}\n",
                "m.yml:4: surge.factor: must be 1 or more"
            ),
            (
                "name: x\nkind: surge\ngroup_by: [a]\nsurge: {messages: m, sigmas: -5}\n",
                "m.yml:4: surge.sigmas: must be 0 or more"
            ),
            (
                "name: x\nkind: surge\ngroup_by: [a]\nsurge: {messages: m, min_rate: -20}\n",
                "m.yml:4: surge.min_rate: must be 0 or more"
            ),
            (
                "name: x\nkind: surge\ngroup_by: [a]\nsurge: {messages: m, min_payload: -16}\n",
                "m.yml:4: surge.min_payload: must be 0 or more"
            ),
            (
                "name: x\nkind: stall\ngroup_by: [a]\nstall: {progress: p, waiting: [w], stall_after: 0}\n",
                "m.yml:4: stall.stall_after: must be above 0"
            ),
            (
                "name: x\nkind: drop\ngroup_by: [a]\ndrop: {metric: m}\nalert: {name: A, severity: warning, for: 300000y}\n",
                "m.yml:5: alert.for: \"300000y\" is longer than a year"
            ),
        ]
    )
    func badModels(text: String, reason: String) {
        #expect {
            _ = try Model.parse(text, file: "m.yml")
        } throws: { error in
            guard let error = error as? ModelError else { return false }
            return error.file == "m.yml" && error.description.contains(reason)
        }
    }

    /// Runs a model over ticks of samples; returns "second:firing|resolved" events.
    static func events(_ model: Model, _ ticks: [(Int, [Sample])]) -> [String] {
        var evaluator = ModelEvaluator(models: [model])
        var engine = AlertEngine()
        var out: [String] = []
        for (second, samples) in ticks {
            for event in engine.evaluate(at: at(second), evaluator.observe(time: at(second), samples: samples)) {
                out.append("\(second):\(event.status.rawValue)")
            }
        }
        return out
    }

    static func consumer(
        _ second: Int,
        floor: Double,
        pending: Double,
        ackPending: Double = 0,
        delivered: Double? = nil
    ) throws -> [Sample] {
        let labels = ["instance": "n1", "account": "$G", "stream": "ORDERS", "consumer": "worker"]
        var out = [
            try sample("jetstream_consumer_ack_floor_stream_seq", floor, labels, at: second),
            try sample("jetstream_consumer_num_pending", pending, labels, at: second),
            try sample("jetstream_consumer_num_ack_pending", ackPending, labels, at: second),
        ]
        if let delivered {
            out.append(try sample("jetstream_consumer_delivered_stream_seq", delivered, labels, at: second))
        }
        return out
    }

    /// ``consumer(_:floor:pending:ackPending:delivered:)`` with the server's own clocks: seconds
    /// since the last acknowledgement and since the last delivery.
    static func consumer(
        _ second: Int,
        floor: Double,
        pending: Double,
        ackPending: Double,
        lastAck: Double,
        lastDelivery: Double
    ) throws -> [Sample] {
        let labels = ["instance": "n1", "account": "$G", "stream": "ORDERS", "consumer": "worker"]
        return try consumer(second, floor: floor, pending: pending, ackPending: ackPending) + [
            try sample("jetstream_consumer_last_ack_seconds", lastAck, labels, at: second),
            try sample("jetstream_consumer_last_delivery_seconds", lastDelivery, labels, at: second),
        ]
    }

    @Test(
        "consumer_freeze at 30 s scrapes with the server's clocks: a freeze seen by one scrape 20 s into it fires there, though in-flight acks moved the floor",
        arguments: [false, true]
    )
    func freezeSeenByOneScrape(waitingBefore: Bool) throws {
        let model = try Self.model("consumer_freeze")
        var ticks: [(Int, [Sample])] = []
        var floor = 0.0
        for s in stride(from: 0, to: 300, by: 30) {
            floor += 600
            // Caught up at most scrapes (nothing waiting), or always a few in flight.
            let inFlight: Double = waitingBefore || (s / 30) % 2 == 0 ? 12 : 0
            ticks.append(
                (
                    s,
                    try Self.consumer(
                        s,
                        floor: floor,
                        pending: 0,
                        ackPending: inFlight,
                        lastAck: 0.3,
                        lastDelivery: 0.1
                    )
                )
            )
        }
        // Nobody pulls from 280 s: at 300 s the floor moved by the last acks of 280 s, and 400
        // messages wait, nothing acked or delivered for 20 s.
        ticks.append(
            (300, try Self.consumer(300, floor: floor + 9, pending: 400, ackPending: 0, lastAck: 20, lastDelivery: 20))
        )
        ticks.append(
            (
                330,
                try Self.consumer(330, floor: floor + 1000, pending: 0, ackPending: 10, lastAck: 0.2, lastDelivery: 0.1)
            )
        )
        #expect(Self.events(model, ticks) == ["300:firing", "330:resolved"])
    }

    @Test(
        "consumer_freeze at 30 s scrapes: a freeze in a consumer's first minutes fires at the first scrape 10 s into it (two idle readings decide)"
    )
    func freezeEarlyInALife() throws {
        let model = try Self.model("consumer_freeze")
        // Two scrapes of a busy consumer, then nobody pulls from 70 s: at 90 s the floor moved
        // (the acks of 60-70 s), 527 messages wait, nothing acked or delivered for 19.3 s; at 120
        // s the workers are back and the floor moved again. The floor never stood still between
        // two scrapes: only the server's clock shows the freeze.
        var ticks: [(Int, [Sample])] = [
            (30, try Self.consumer(30, floor: 1250, pending: 0, ackPending: 20, lastAck: 0.5, lastDelivery: 0.1)),
            (60, try Self.consumer(60, floor: 2324, pending: 0, ackPending: 3, lastAck: 0.15, lastDelivery: 0.1)),
            (90, try Self.consumer(90, floor: 2580, pending: 527, ackPending: 0, lastAck: 19.3, lastDelivery: 19.3)),
            (120, try Self.consumer(120, floor: 4355, pending: 0, ackPending: 7, lastAck: 0.2, lastDelivery: 0.1)),
        ]
        #expect(Self.events(model, ticks) == ["90:firing", "120:resolved"])
        // One reading is not enough to know a consumer's usual idle: seen once, then 19 s idle
        // with work waiting while the floor moved, it may be one that acknowledges in batches.
        ticks = [
            (30, try Self.consumer(30, floor: 1250, pending: 0, ackPending: 20, lastAck: 0.5, lastDelivery: 0.1)),
            (60, try Self.consumer(60, floor: 2324, pending: 527, ackPending: 0, lastAck: 19, lastDelivery: 19)),
            (90, try Self.consumer(90, floor: 4355, pending: 0, ackPending: 7, lastAck: 0.2, lastDelivery: 0.1)),
        ]
        #expect(Self.events(model, ticks).isEmpty)
    }

    @Test(
        "consumer_freeze with the server's clocks: work that arrives after a quiet spell and is being taken is no freeze"
    )
    func burstAfterQuiet() throws {
        let model = try Self.model("consumer_freeze")
        var ticks: [(Int, [Sample])] = []
        for s in stride(from: 0, to: 150, by: 15) {
            ticks.append(
                (
                    s,
                    try Self.consumer(
                        s,
                        floor: Double(s * 10),
                        pending: 2,
                        ackPending: 5,
                        lastAck: 0.4,
                        lastDelivery: 0.2
                    )
                )
            )
        }
        // Quiet for ten minutes: nothing waits, the last ack grows old.
        for s in stride(from: 150, to: 750, by: 15) {
            ticks.append(
                (
                    s,
                    try Self.consumer(
                        s,
                        floor: 1490,
                        pending: 0,
                        ackPending: 0,
                        lastAck: Double(s - 150),
                        lastDelivery: Double(s - 150)
                    )
                )
            )
        }
        // A burst lands just before the scrape: fetched (delivered 0.2 s ago), not acked yet.
        ticks.append(
            (750, try Self.consumer(750, floor: 1490, pending: 300, ackPending: 10, lastAck: 600, lastDelivery: 0.2))
        )
        ticks.append(
            (765, try Self.consumer(765, floor: 1800, pending: 0, ackPending: 0, lastAck: 0.3, lastDelivery: 0.3))
        )
        #expect(Self.events(model, ticks).isEmpty)
        // The same burst that nobody takes: it waited since the last empty scrape, at most.
        ticks.removeLast(2)
        ticks.append(
            (750, try Self.consumer(750, floor: 1490, pending: 300, ackPending: 0, lastAck: 600, lastDelivery: 600))
        )
        #expect(Self.events(model, ticks) == ["750:firing"])
    }

    @Test("consumer_freeze with the server's clocks: acks that do not move the floor (one held message) are no freeze")
    func heldMessageWithClocks() throws {
        let model = try Self.model("consumer_freeze")
        var ticks: [(Int, [Sample])] = []
        for s in stride(from: 0, to: 300, by: 15) {
            ticks.append(
                (
                    s,
                    try Self.consumer(
                        s,
                        floor: Double(s * 10),
                        pending: 1,
                        ackPending: 4,
                        lastAck: 0.5,
                        lastDelivery: 0.2
                    )
                )
            )
        }
        for s in stride(from: 300, to: 360, by: 15) {
            ticks.append(
                (s, try Self.consumer(s, floor: 2990, pending: 1, ackPending: 20, lastAck: 0.4, lastDelivery: 0.1))
            )
        }
        #expect(Self.events(model, ticks).isEmpty)
    }

    @Test(
        "consumer_freeze at 15 and 30 s scrapes: a consumer that advanced at every scrape is frozen after one scrape without progress",
        arguments: [15, 30]
    )
    func freezeAtProductionIntervals(_ interval: Int) throws {
        let model = try Self.model("consumer_freeze")
        var ticks: [(Int, [Sample])] = []
        var floor = 0.0
        var delivered = 0.0
        for s in stride(from: 0, to: 600, by: interval) {
            floor += Double(interval * 20)
            delivered = floor + 30
            ticks.append((s, try Self.consumer(s, floor: floor, pending: 10, ackPending: 30, delivered: delivered)))
        }
        // From 600 s a worker that fetches but never acks: deliveries pile up as ack-pending.
        for (k, s) in stride(from: 600, to: 720, by: interval).enumerated() {
            let fetched = min(200, 30 + Double(k + 1) * 100)
            ticks.append(
                (
                    s,
                    try Self.consumer(
                        s,
                        floor: floor,
                        pending: 100 + Double(k * 50),
                        ackPending: fetched,
                        delivered: floor + fetched
                    )
                )
            )
        }
        // The last advance was seen at 600 - interval: the first scrape without progress fires.
        let events = Self.events(model, ticks)
        #expect(events.first == "600:firing", "\(events)")
    }

    @Test("consumer_freeze at 15 s scrapes: one message held past ack_wait while deliveries are acked is no freeze")
    func heldMessageAtFifteenSeconds() throws {
        let model = try Self.model("consumer_freeze")
        var ticks: [(Int, [Sample])] = []
        for s in stride(from: 0, to: 300, by: 15) {
            let floor = Double(s * 10)
            ticks.append((s, try Self.consumer(s, floor: floor, pending: 0, ackPending: 4, delivered: floor + 4)))
        }
        // The floor stands at 2,990 for 45 s (one lost message), while 10 messages a second
        // are delivered and acknowledged: ack-pending stays near 20, the deliveries advance.
        for (k, s) in stride(from: 300, to: 345, by: 15).enumerated() {
            let delivered = 3000 + Double((k + 1) * 150)
            ticks.append(
                (s, try Self.consumer(s, floor: 2990, pending: 1, ackPending: Double(18 + k), delivered: delivered))
            )
        }
        for s in stride(from: 345, to: 400, by: 15) {
            let floor = Double(s * 10)
            ticks.append((s, try Self.consumer(s, floor: floor, pending: 0, ackPending: 4, delivered: floor + 4)))
        }
        #expect(Self.events(model, ticks).isEmpty)
    }

    @Test("consumer_freeze: a still ack floor with work waiting fires after 10 s; progress resolves it")
    func freeze() throws {
        let model = try Self.model("consumer_freeze")
        var ticks: [(Int, [Sample])] = []
        for s in 0..<30 { ticks.append((s, try Self.consumer(s, floor: Double(s * 20), pending: 5))) }
        // Frozen from second 30: the floor stays, work piles up.
        for s in 30..<50 { ticks.append((s, try Self.consumer(s, floor: 580, pending: Double(s), ackPending: 200))) }
        for s in 50..<55 { ticks.append((s, try Self.consumer(s, floor: 580 + Double(s - 49) * 100, pending: 3))) }
        #expect(Self.events(model, ticks) == ["39:firing", "50:resolved"])
    }

    @Test("consumer_freeze: an idle consumer (nothing waiting) or a busy one in a flood does not fire")
    func noFreeze() throws {
        let model = try Self.model("consumer_freeze")
        var idle: [(Int, [Sample])] = []
        for s in 0..<60 { idle.append((s, try Self.consumer(s, floor: 100, pending: 0))) }
        #expect(Self.events(model, idle).isEmpty)
        // A flood: pending grows fast, but the floor keeps moving.
        var flood: [(Int, [Sample])] = []
        for s in 0..<60 {
            flood.append((s, try Self.consumer(s, floor: Double(s * 500), pending: Double(s * 400), ackPending: 200)))
        }
        #expect(Self.events(model, flood).isEmpty)
    }

    @Test("consumer_freeze: one message held past ack_wait while the rest are acked is no freeze")
    func heldMessage() throws {
        let model = try Self.model("consumer_freeze")
        var ticks: [(Int, [Sample])] = []
        for s in 0..<30 { ticks.append((s, try Self.consumer(s, floor: Double(s * 20), pending: 0, ackPending: 5))) }
        // From 30 s one message is not acked: the floor stands for its 20 s ack_wait, while
        // ack-pending goes up and down with the others' acks.
        for s in 30..<50 {
            ticks.append((s, try Self.consumer(s, floor: 600, pending: 2, ackPending: Double(20 + (s % 3) * 4))))
        }
        for s in 50..<60 { ticks.append((s, try Self.consumer(s, floor: Double(s * 30), pending: 0, ackPending: 5))) }
        #expect(Self.events(model, ticks).isEmpty)
        // The same floor with ack-pending only rising or flat (nothing acked): a freeze.
        var frozen: [(Int, [Sample])] = []
        for s in 0..<30 { frozen.append((s, try Self.consumer(s, floor: Double(s * 20), pending: 0, ackPending: 5))) }
        for s in 30..<50 {
            frozen.append((s, try Self.consumer(s, floor: 600, pending: 2, ackPending: Double(min(100, 20 + s)))))
        }
        #expect(Self.events(model, frozen) == ["40:firing"])
    }

    @Test("consumer_freeze: a consumer that usually acks every 20 s waits three times that")
    func slowBatchConsumer() throws {
        let model = try Self.model("consumer_freeze")
        var ticks: [(Int, [Sample])] = []
        for s in 0..<200 { ticks.append((s, try Self.consumer(s, floor: Double((s / 20) * 50), pending: 10))) }
        let events = Self.events(model, ticks)
        // Cold start: before it learned the gap, the first 20 s gap fires once; then never again.
        #expect(events.filter { $0.hasSuffix("firing") }.count <= 1, "\(events)")
        #expect(!events.contains { $0.hasSuffix("firing") && (Int($0.split(separator: ":")[0]) ?? 0) > 60 })
    }

    static func connection(
        _ second: Int,
        cid: String,
        pending: Double? = nil,
        msgs: Double? = nil,
        bytes: Double? = nil
    )
        throws -> [Sample]
    {
        let labels = ["instance": "n1", "cid": cid, "client_name": "client-\(cid)"]
        var out: [Sample] = []
        if let pending { out.append(try sample("gnatsd_connz_pending_bytes", pending, labels, at: second)) }
        if let msgs { out.append(try sample("gnatsd_connz_in_msgs", msgs, labels, at: second)) }
        if let bytes { out.append(try sample("gnatsd_connz_in_bytes", bytes, labels, at: second)) }
        return out
    }

    @Test("slow_consumer: a queue over 128 KiB seen rising by two scrapes fires; draining resolves it")
    func slowConsumer() throws {
        let model = try Self.model("slow_consumer")
        var ticks: [(Int, [Sample])] = []
        for s in 0..<10 { ticks.append((s, try Self.connection(s, cid: "7", pending: 0))) }
        for s in 10..<20 { ticks.append((s, try Self.connection(s, cid: "7", pending: Double(s - 9) * 450_000))) }
        for s in 20..<24 { ticks.append((s, try Self.connection(s, cid: "7", pending: 1000))) }
        let events = Self.events(model, ticks)
        #expect(events == ["10:firing", "20:resolved"], "\(events)")
        // A big but steady queue (a bulk reader keeping up) does not fire.
        var steady: [(Int, [Sample])] = []
        for s in 0..<30 {
            steady.append((s, try Self.connection(s, cid: "8", pending: 3_000_000 + Double(s % 2) * 1000)))
        }
        #expect(Self.events(model, steady).isEmpty)
    }

    @Test("producer_flood: 4x its baseline with payload fires; an acknowledging worker's surge does not")
    func flood() throws {
        let model = try Self.model("producer_flood")
        var ticks: [(Int, [Sample])] = []
        var msgs = 0.0
        var bytes = 0.0
        var ackMsgs = 0.0
        var ackBytes = 0.0
        for s in 0..<200 {
            let flooding = (150..<165).contains(s)
            let rate = flooding ? 120.0 : 30.0 + Double(s % 3)
            msgs += rate
            bytes += rate * 256
            // A worker that acks a backlog at 25x its usual rate: messages, hardly any bytes.
            let acks = flooding ? 500.0 : 20.0
            ackMsgs += acks
            ackBytes += acks * 0.5
            ticks.append(
                (
                    s,
                    try Self.connection(s, cid: "3", msgs: msgs, bytes: bytes)
                        + Self.connection(s, cid: "4", msgs: ackMsgs, bytes: ackBytes)
                )
            )
        }
        let events = Self.events(model, ticks)
        #expect(events.first == "151:firing", "\(events)")
        #expect(events.filter { $0.hasSuffix("firing") }.count == 1, "\(events)")
        #expect(events.contains { $0.hasSuffix("resolved") })
    }

    @Test("producer_flood: a producer that swings and bursts by nature needs a surge beyond its own spread")
    func noisyProducer() throws {
        let model = try Self.model("producer_flood")
        var rng = SplitMix64(seed: 3)
        func run(flood: Bool) throws -> [String] {
            var ticks: [(Int, [Sample])] = []
            var msgs = 0.0
            for s in 0..<900 {
                // About 20/s, swinging by 80% over 4 minutes, with bursts up to 3.5x the mean.
                let swing = 1 + 0.8 * sin(Double(s) / 240 * 2 * .pi)
                let burst = Double(rng.next() % 100) < 4 ? 2.2 : 1 + Double(rng.next() % 50) / 100
                var rate = 20 * swing * burst
                if flood && (700..<720).contains(s) { rate = 20 * 8 }
                msgs += rate.rounded()
                ticks.append((s, try Self.connection(s, cid: "4", msgs: msgs, bytes: msgs * 300)))
            }
            return Self.events(model, ticks)
        }
        #expect(try run(flood: false).isEmpty, "peaks of a noisy producer are no flood")
        let flooded = try run(flood: true)
        #expect(
            flooded.first.map { $0.hasSuffix("firing") && (Int($0.split(separator: ":")[0]) ?? 0) >= 700 } == true,
            "\(flooded)"
        )
    }

    @Test("producer_flood: scrapes that come a millisecond early still make the warm-up and the surge's length")
    func floodScrapeJitter() throws {
        let model = try Self.model("producer_flood")
        /// Scrapes every `step` seconds less 1 ms (timestamps drift as real ones do), 25 msgs/s
        /// and `multiple` times that from interval `flood` on; the scrapes whose round fired.
        func firing(step: Int64, flood: Int, scrapes: Int, multiple: Double = 8) throws -> [Int] {
            var evaluator = ModelEvaluator(models: [model])
            var engine = AlertEngine()
            let labels = try LabelSet(validating: [
                "__name__": "gnatsd_connz_in_msgs", "instance": "n1", "cid": "3", "client_name": "orders",
            ])
            let byteLabels = try labels.setting("__name__", to: "gnatsd_connz_in_bytes")
            var msgs = 0.0
            var out: [Int] = []
            for k in 0..<scrapes {
                if k > 0 { msgs += Double(step) * (k >= flood ? 25 * multiple : 25) }
                let time = Timestamp(milliseconds: 1_767_225_600_000 + Int64(k) * (step * 1000 - 1))
                let samples = [
                    Sample(labels: labels, value: msgs, timestamp: time, kind: .counter),
                    Sample(labels: byteLabels, value: msgs * 300, timestamp: time, kind: .counter),
                ]
                for event in engine.evaluate(at: time, evaluator.observe(time: time, samples: samples))
                where event.status == .firing {
                    out.append(k)
                }
            }
            return out
        }
        // At 30 s, four intervals of normal traffic measure 119.996 s: the 2 m warm-up is done
        // and the flood in the fifth fires at once.
        #expect(try firing(step: 30, flood: 5, scrapes: 8).first == 5)
        // At 1 s, two flooded intervals measure 1.998 s: the 2 s surge is complete (a x3 flood:
        // a x8 one fires at its first scrape, `instant`).
        #expect(try firing(step: 1, flood: 200, scrapes: 210, multiple: 3).first == 201)
        #expect(try firing(step: 1, flood: 200, scrapes: 210).first == 200)
        // Nothing reaches a duration before it has begun, whatever the interval.
        #expect(!SurgeWatch.reaches(0, 0, step: 300))
        #expect(SurgeWatch.reaches(119.996, 120, step: 30) && !SurgeWatch.reaches(90, 120, step: 30))
    }

    @Test("producer_flood: no alert before the baseline is learned, nor for a quiet client's blip")
    func floodColdStartAndFloor() throws {
        let model = try Self.model("producer_flood")
        var ticks: [(Int, [Sample])] = []
        var msgs = 0.0
        for s in 0..<200 {
            // Starts high (no baseline yet), then a 1 msg/s client jumping to 10 msgs/s (10x, but
            // only 9 above: under min_rate).
            let rate = s < 5 ? 500.0 : (s == 150 || s == 151 ? 10.0 : 1.0)
            msgs += rate
            ticks.append((s, try Self.connection(s, cid: "5", msgs: msgs, bytes: msgs * 100)))
        }
        #expect(Self.events(model, ticks).isEmpty)
    }

    @Test("producer_flood: a slow producer that triples is a flood over 15 s scrapes, not over 1 s (min_rate_interval)")
    func floodSurplusFollowsTheInterval() throws {
        let (model, p) = try Self.flood()
        #expect(SurgeWatch.minSurplus(p, over: 1) == 20)
        #expect(SurgeWatch.minSurplus(p, over: 0.5) == 20, "never more than min_rate")
        #expect(abs(SurgeWatch.minSurplus(p, over: 15) - 20 / 15.0.squareRoot()) < 1e-12)
        #expect(abs(SurgeWatch.minSurplus(p, over: 30) - 20 / 30.0.squareRoot()) < 1e-12)
        var everyInterval = p
        everyInterval.minRateInterval = 0
        #expect(SurgeWatch.minSurplus(everyInterval, over: 15) == 20)

        // 8 msgs/s that become 24 for two minutes: 16/s above the baseline, under min_rate
        // (20) for one second, over its 15 s share (5.2).
        func run(_ model: Model, every step: Int) throws -> [String] {
            var ticks: [(Int, [Sample])] = []
            var msgs = 0.0
            for s in 0..<900 {
                msgs += (600..<720).contains(s) ? 24 : 8 + Double(s % 2)
                if s % step == 0 {
                    ticks.append((s, try Self.connection(s, cid: "6", msgs: msgs, bytes: msgs * 1000)))
                }
            }
            return Self.events(model, ticks)
        }
        #expect(try run(model, every: 1).isEmpty, "16 msgs/s more for one second is under min_rate")
        let at15 = try run(model, every: 15)
        #expect(at15.first == "615:firing", "\(at15)")
        var fixed = model
        fixed.kind = .surge(everyInterval)
        #expect(try run(fixed, every: 15).isEmpty, "without min_rate_interval the surplus must be 20 at every interval")
    }

    @Test(
        "producer_flood: a x4 flood 3 s before a 15 s scrape reads x1.6: a steady producer fires there, a noisy one does not (steady_factor)"
    )
    func floodOfASteadyProducer() throws {
        let (model, p) = try Self.flood()
        #expect(p.steadyFactor == 1.5 && p.steadySigmas == 8)
        #expect(SurgeWatch.threshold(p, from: 25, spread: 1, over: 15) == 37.5, "steady: 1.5x")
        #expect(SurgeWatch.threshold(p, from: 25, spread: 4, over: 15) == 50, "8 deviations are more than 2x: 2x")
        var without = p
        without.steadyFactor = 0
        #expect(SurgeWatch.threshold(without, from: 25, spread: 1, over: 15) == 50)
        // 25 msgs/s scraped every 15 s, varying by `swing` from one interval to the next, and
        // four times that from second 897 on (3 s before the scrape at 900).
        func run(_ model: Model, swing: Double) throws -> [String] {
            var ticks: [(Int, [Sample])] = []
            var msgs = 0.0
            var rng = SplitMix64(seed: 9)
            var rate = 25.0
            for s in 0..<1200 {
                if s % 15 == 0 { rate = 25 * (1 + swing * (Double(rng.next() % 2001) / 1000 - 1)) }
                msgs += s >= 897 ? 100 : rate
                if s % 15 == 0 {
                    ticks.append(
                        (s, try Self.connection(s, cid: "8", msgs: msgs.rounded(), bytes: msgs.rounded() * 400))
                    )
                }
            }
            return Self.events(model, ticks)
        }
        #expect(try run(model, swing: 0.04).first == "900:firing", "a steady producer, at the first scrape")
        var usualOnly = model
        usualOnly.kind = .surge(without)
        #expect(try run(usualOnly, swing: 0.04).first == "915:firing", "without the steady rule, one scrape later")
        #expect(try run(model, swing: 0.3).first == "915:firing", "a producer that varies by 30% needs the full 2x")
    }

    @Test("producer_flood: at 1 s scrapes a x8 flood fires at its first scrape, a x3 one after 2 s (instant)")
    func floodAtOnce() throws {
        let (model, p) = try Self.flood()
        #expect(p.instant == 2)
        #expect(SurgeWatch.instantThreshold(p, from: 25, spread: 1, over: 1) == 100, "4x the baseline")
        #expect(SurgeWatch.instantThreshold(p, from: 25, spread: 8, over: 1) == 105, "10 deviations above it")
        #expect(SurgeWatch.instantThreshold(p, from: 2, spread: 0, over: 1) == 42, "40 msgs/s above it")
        var never = p
        never.instant = 0
        #expect(SurgeWatch.instantThreshold(never, from: 25, spread: 1, over: 1) == .infinity)
        // 25 msgs/s (24 to 26), `multiple` times that from second 600 to 660.
        func run(_ model: Model, multiple: Double) throws -> [String] {
            var ticks: [(Int, [Sample])] = []
            var msgs = 0.0
            for s in 0..<700 {
                msgs += (600..<660).contains(s) ? 25 * multiple : 24 + Double(s % 3)
                ticks.append((s, try Self.connection(s, cid: "9", msgs: msgs, bytes: msgs * 500)))
            }
            return Self.events(model, ticks)
        }
        var waiting = model
        waiting.kind = .surge(never)
        #expect(try run(model, multiple: 8).first == "600:firing")
        #expect(try run(waiting, multiple: 8).first == "601:firing", "without instant: two scrapes")
        #expect(try run(model, multiple: 3).first == "601:firing", "x3 is under 4x: two scrapes")
    }

    @Test(
        "producer_flood: a burst at the top of a producer's slow swing is no flood; a flood there is (level_half_life)"
    )
    func floodAtTheTopOfASwing() throws {
        let (model, p) = try Self.flood()
        #expect(p.levelHalfLife == 30)
        // 45 msgs/s swinging by 35% over 4 minutes (a 5-minute baseline averages the swing away),
        // with a 3-second burst of 2.4x the mean at the top of the swing (s 780: 1.35x its mean).
        func run(_ model: Model, burst: Double, seconds: Range<Int>) throws -> [String] {
            var ticks: [(Int, [Sample])] = []
            var msgs = 0.0
            for s in 0..<900 {
                let swing = 1 + 0.35 * sin(Double(s - 720) / 240 * 2 * .pi)
                msgs += (seconds.contains(s) ? 45 * burst : 45 * swing + Double(s % 3) * 4).rounded()
                ticks.append((s, try Self.connection(s, cid: "7", msgs: msgs, bytes: msgs * 600)))
            }
            return Self.events(model, ticks)
        }
        #expect(try run(model, burst: 2.4, seconds: 779..<782).isEmpty, "a 2.4x burst at the top of the swing")
        var slowOnly = model
        var withoutLevel = p
        withoutLevel.levelHalfLife = 0
        slowOnly.kind = .surge(withoutLevel)
        let measuredFromTheBaseline = try run(slowOnly, burst: 2.4, seconds: 779..<782)
        #expect(measuredFromTheBaseline.first == "780:firing", "without the level: \(measuredFromTheBaseline)")
        let flood = try run(model, burst: 4, seconds: 779..<830)
        #expect(flood.first == "780:firing", "a 4x flood at the top of the swing: \(flood)")
    }

    @Test("annotations are filled from the alert's labels and the model's numbers")
    func annotations() throws {
        let model = try Self.model("consumer_freeze")
        var evaluator = ModelEvaluator(models: [model])
        var last: [AlertObservation] = []
        for s in 0..<15 {
            last = evaluator.observe(time: Self.at(s), samples: try Self.consumer(s, floor: 5, pending: 40))
        }
        let observation = try #require(last.first)
        #expect(observation.condition == .active)
        #expect(observation.labels["alertname"] == "ConsumerFreeze")
        #expect(observation.labels["stream"] == "ORDERS" && observation.labels["consumer"] == "worker")
        let summary = try #require(observation.annotations["summary"])
        #expect(summary == "Consumer ORDERS/worker has not acknowledged anything for 14 s (40 messages waiting)")
        #expect(observation.annotations["description"]?.contains("{{") == false)
        #expect(TextTemplate("a {{ x }} b {{missing}} c {{y").render(["x": "1"]) == "a 1 b  c {{y")
        #expect(TextTemplate("{{x}}{{ y }}}} é {{x}}").render(["x": "1", "y": "ü"]) == "1ü}} é 1")
        #expect(TextTemplate("").render(["x": "1"]).isEmpty)
        #expect(TextTemplate("{{x").render(["x": "1"]) == "{{x")
    }

    @Test("an alert carries the annotations of its last active observation, resolved too; the others are not rendered")
    func annotationsOfActive() throws {
        let model = try Self.model("consumer_freeze")
        var evaluator = ModelEvaluator(models: [model])
        var engine = AlertEngine()
        var lastActive: [String: String] = [:]
        var events: [AlertEvent] = []
        func tick(_ s: Int, _ samples: [Sample]) {
            let observations = evaluator.observe(time: Self.at(s), samples: samples)
            for observation in observations {
                if observation.condition == .active {
                    lastActive = observation.annotations
                } else {
                    #expect(observation.annotations.isEmpty, "second \(s)")
                }
            }
            events += engine.evaluate(at: Self.at(s), observations)
        }
        for s in 0..<30 { tick(s, try Self.consumer(s, floor: Double(s * 20), pending: 5)) }
        for s in 30..<50 { tick(s, try Self.consumer(s, floor: 580, pending: Double(s), ackPending: 200)) }
        let frozen = lastActive
        for s in 50..<55 { tick(s, try Self.consumer(s, floor: 580 + Double(s - 49) * 100, pending: 3)) }
        #expect(events.map(\.status) == [.firing, .resolved])
        let resolved = try #require(events.last)
        #expect(resolved.alert.annotations["summary"]?.contains("49 messages waiting") == true)
        for (name, text) in frozen { #expect(resolved.alert.annotations[name] == text, "\(name)") }
        #expect(!frozen.isEmpty)
    }
}
