import FlatlineLoadgen
import FlatlineNATS
import FlatlineTestSupport
import Foundation
import Synchronization
import Testing

@Suite("Scenarios")
struct ScenarioTests {
    @Test("the built-in scenario parses, validates and has a freeze and a flood")
    func builtIn() throws {
        let scenario = try Scenario.parse(yaml: Scenario.builtInYAML)
        #expect(scenario.name == "freeze-and-flood")
        #expect(scenario.incidents.map(\.kind) == [.freeze, .flood])
        #expect(scenario.incidents[0].mode == .noack)
        #expect(scenario.consumers.first?.ackWait.value == 10)
        #expect(scenario.totalSeconds == 240)
        let short = scenario.scaled(toSeconds: 24)
        #expect(short.incidents[0].at.value == 9)
        #expect(short.incidents[1].duration.value == 3)
        #expect(short.totalSeconds == 24)
    }

    @Test(
        "mistakes are reported with the key and the reason",
        arguments: [
            ("name: x\npublishers:\n  - name: p\n    subject: a\n", "publishers[0].rate", "missing required key"),
            (
                "consumers:\n  - stream: NOPE\n    name: w\n    capacity: 1\n", "consumers[0].stream",
                "no stream named NOPE"
            ),
            (
                "publishers:\n  - {name: p, subject: a, rate: 1}\nincidents:\n  - {kind: flood, target: q, at: 1s, duration: 2s}\n",
                "incidents[0].target", "no publisher named q"
            ),
            ("incidents:\n  - {kind: melt, target: q, at: 1, duration: 2}\n", "incidents[0].kind", ""),
            (
                "publishers:\n  - {name: p, subject: a, rate: 1, period: soon}\n", "publishers[0].period",
                "not a duration"
            ),
            ("streams: [", "", ""),
        ]
    )
    func errors(yaml: String, key: String, fragment: String) {
        do {
            _ = try Scenario.parse(yaml: yaml, source: "s.yml")
            Issue.record("accepted")
        } catch {
            #expect(error.source == "s.yml")
            #expect(error.key == key, "\(error)")
            #expect(fragment.isEmpty || error.reason.contains(fragment), "\(error)")
        }
    }

    @Test("the same seed gives the same publishing schedule; another seed another")
    func deterministic() throws {
        let publisher = try #require(Scenario.builtIn.publishers.first)
        func run(_ seed: UInt64) -> [Int] {
            var schedule = PublishSchedule(publisher, seed: seed, index: 0, seconds: 60)
            return (1...6000).map { schedule.messages(inSlot: $0, multiplier: $0 > 3000 ? 50 : 1) }
        }
        #expect(run(42) == run(42))
        #expect(run(42) != run(43))
        let counts = run(42)
        let normal = counts[0..<3000].reduce(0, +)
        let flooded = counts[3000...].reduce(0, +)
        #expect(Double(normal) > 30 * 20 * 0.8 && Double(normal) < 30 * 20 * 1.2, "about 20/s for 30 s: \(normal)")
        // 50x the rate, give or take the sinusoid's phase over the two halves.
        #expect(flooded > 30 * normal, "50x during the flood: \(flooded) vs \(normal)")
    }
}

/// The generator against a real nats-server, watched through its monitoring endpoints.
@Suite("flatline loadgen against nats-server", .serialized, .timeLimit(.minutes(2)))
struct LoadgenServerTests {
    struct Sample: Sendable {
        var at: Date
        var lastSeq: Int
        var ackFloor: Int
        var producerInMsgs: Int
        var pendingBytes: Int
    }

    final class Samples: Sendable {
        let values = Mutex<[Sample]>([])
    }

    /// Samples /jsz and /connz every 250 ms while `body` runs.
    static func watch(
        _ server: NATSServerProcess,
        producer: String,
        subscriber: String,
        consumer: String,
        _ body: @escaping @Sendable () async throws -> GroundTruth
    ) async throws -> (GroundTruth, [Sample]) {
        let samples = Samples()
        let truth = try await withThrowingTaskGroup(of: GroundTruth?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                while !Task.isCancelled {
                    if let sample = try? Self.sample(
                        server,
                        producer: producer,
                        subscriber: subscriber,
                        consumer: consumer
                    ) {
                        samples.values.withLock { $0.append(sample) }
                    }
                    try? await Task.sleep(for: .milliseconds(250))
                }
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        return (try #require(truth), samples.values.withLock { $0 })
    }

    static func sample(_ server: NATSServerProcess, producer: String, subscriber: String, consumer: String) throws
        -> Sample
    {
        let jsz = try server.monitor("/jsz?consumers=1")
        var lastSeq = 0
        var ackFloor = 0
        for account in jsz["account_details"] as? [[String: Any]] ?? [] {
            for stream in account["stream_detail"] as? [[String: Any]] ?? [] {
                for c in stream["consumer_detail"] as? [[String: Any]] ?? [] where c["name"] as? String == consumer {
                    lastSeq = (stream["state"] as? [String: Any])?["last_seq"] as? Int ?? 0
                    ackFloor = (c["ack_floor"] as? [String: Any])?["stream_seq"] as? Int ?? 0
                }
            }
        }
        let connz = try server.monitor("/connz?limit=1024")
        let connections = connz["connections"] as? [[String: Any]] ?? []
        let inMsgs = connections.first { $0["name"] as? String == producer }?["in_msgs"] as? Int ?? 0
        let pending = connections.first { $0["name"] as? String == subscriber }?["pending_bytes"] as? Int ?? 0
        return Sample(at: Date(), lastSeq: lastSeq, ackFloor: ackFloor, producerInMsgs: inMsgs, pendingBytes: pending)
    }

    static let scenario = """
        name: test
        seed: 7
        duration: 14s
        streams: [{name: ORDERS, subjects: ["orders.>"]}]
        consumers: [{stream: ORDERS, name: worker, capacity: 400, max_ack_pending: 50, ack_wait: 2s, batch: 20}]
        publishers:
          - {name: orders-producer, subject: orders.new, rate: 40, amplitude: 0.1, period: 10s, noise: 0.05}
        subscribers: [{name: audit-sub, subject: "orders.>"}]
        incidents:
          - {kind: freeze, target: ORDERS/worker, mode: noack, at: 3s, duration: 4s}
          - {kind: flood, target: orders-producer, multiplier: 20, at: 9s, duration: 2s}
        """

    @Test("a freeze shows in /jsz (ack floor flat while the stream grows), a flood in /connz (in_msgs rate up)")
    func freezeAndFlood() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        let scenario = try Scenario.parse(yaml: Self.scenario)
        let connection = try NATSClientConfiguration(urls: [server.url])
        let generator = LoadGenerator(scenario: scenario, connection: connection, logger: TestSupport.quietLogger)
        let (truth, samples) = try await Self.watch(
            server,
            producer: "orders-producer",
            subscriber: "audit-sub",
            consumer: "worker"
        ) {
            try await generator.run()
        }
        #expect(truth.phases.map(\.phase) == ["baseline", "freeze", "recover1", "flood", "tail"])
        #expect(truth.phases[1].targets == ["ORDERS/worker"])
        #expect(truth.phases[3].targets == ["orders-producer"])

        // Times from the ground truth, so a slow machine cannot shift the windows.
        func date(_ text: String) throws -> Date {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return try #require(formatter.date(from: text))
        }
        let freeze = (try date(truth.phases[1].start), try date(truth.phases[1].end))
        let flood = (try date(truth.phases[3].start), try date(truth.phases[3].end))
        let baselineStart = try date(truth.phases[0].start)

        // The freeze: once the 50 allowed unacked are out (about 1.3 s at 40/s), the ack floor
        // stands still while the stream keeps growing (redeliveries after ack_wait are not
        // acked either).
        let frozen = samples.filter {
            $0.at > freeze.0.addingTimeInterval(1.6) && $0.at < freeze.1.addingTimeInterval(-0.1)
        }
        #expect(frozen.count >= 3)
        let floors = Set(frozen.map(\.ackFloor))
        #expect(floors.count == 1, "ack floor during the freeze: \(frozen.map(\.ackFloor))")
        #expect((frozen.last?.lastSeq ?? 0) > (frozen.first?.lastSeq ?? 0) + 20)
        // Afterwards the held messages are redelivered after ack_wait, acked, and it moves again.
        #expect((samples.last?.ackFloor ?? 0) > (floors.first ?? 0))

        // The flood (20x for 2 s): the producer's in_msgs grows far faster than before.
        func rate(_ from: Date, _ to: Date) -> Double {
            let window = samples.filter { $0.at >= from && $0.at <= to }
            guard let a = window.first, let b = window.last, b.at > a.at else { return 0 }
            return Double(b.producerInMsgs - a.producerInMsgs) / b.at.timeIntervalSince(a.at)
        }
        let baseline = rate(baselineStart.addingTimeInterval(0.5), freeze.0)
        let flooding = rate(flood.0.addingTimeInterval(0.3), flood.1)
        #expect(baseline > 20 && baseline < 70, "baseline \(baseline)/s")
        #expect(flooding > 8 * baseline, "flood \(flooding)/s vs baseline \(baseline)/s")
        #expect((truth.counts["audit-sub"]?["received"] ?? 0) == (truth.counts["orders-producer"]?["published"] ?? -1))
    }

    @Test("a slow subscriber makes the server queue bytes for it, then cut it off as a slow consumer")
    func slowSubscriber() async throws {
        let server = try NATSServerProcess(jetStream: true, configuration: "write_deadline: \"1s\"\nmax_pending: 2MB")
        defer { server.stop() }
        let scenario = try Scenario.parse(
            yaml: """
                name: slow
                duration: 9s
                publishers: [{name: telemetry-producer, subject: telemetry.host, rate: 400, payload: 4096, noise: 0}]
                subscribers: [{name: telemetry-slow-sub, subject: "telemetry.>"}]
                incidents: [{kind: slow_subscriber, target: telemetry-slow-sub, at: 2s, duration: 4s}]
                """
        )
        let connection = try NATSClientConfiguration(urls: [server.url])
        let generator = LoadGenerator(scenario: scenario, connection: connection, logger: TestSupport.quietLogger)
        let (truth, samples) = try await Self.watch(
            server,
            producer: "telemetry-producer",
            subscriber: "telemetry-slow-sub",
            consumer: "-"
        ) {
            try await generator.run()
        }
        #expect(truth.phases.map(\.kind) == ["baseline", "slow", "tail"])
        #expect(samples.contains { $0.pendingBytes > 100_000 }, "pending bytes: \(samples.map(\.pendingBytes))")
        let varz = try server.monitor("/varz")
        #expect((varz["slow_consumers"] as? Int ?? 0) >= 1)
        let closed = try server.monitor("/connz?state=closed")
        let reasons = (closed["connections"] as? [[String: Any]] ?? []).compactMap { $0["reason"] as? String }
        #expect(reasons.contains { $0.hasPrefix("Slow Consumer") }, "closed reasons: \(reasons)")
    }
}
