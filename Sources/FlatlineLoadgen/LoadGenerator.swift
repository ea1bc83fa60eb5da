import FlatlineNATS
import Foundation
import Logging
import Synchronization

/// Drives a ``Scenario`` against a NATS server: creates its streams and consumers, runs every
/// publisher, worker and subscriber on a connection of its own (named as in the scenario, so
/// `/connz` tells them apart), injects the incidents on the timeline, and returns what happened
/// when as ``GroundTruth``.
///
/// The traffic pattern is deterministic given the scenario's seed: rates, sinusoids and
/// per-second noise are the same on every run; only the wall-clock times differ.
public struct LoadGenerator: Sendable {
    public var scenario: Scenario
    /// Servers, credentials and TLS for every connection; each gets its own name.
    public var connection: NATSClientConfiguration
    public var logger: Logger

    public init(scenario: Scenario, connection: NATSClientConfiguration, logger: Logger) {
        self.scenario = scenario
        self.connection = connection
        self.logger = logger
    }

    /// Runs the scenario to its end, or until `stop` fires: then incidents in progress end at
    /// once and the ground truth covers what ran, marked ``GroundTruth/interrupted``.
    /// - Parameters:
    ///   - stop: ends the run early.
    ///   - progress: called with one line per phase change.
    /// - Throws: ``NATSError`` when a connection or the JetStream setup fails.
    public func run(
        stop: StopSignal = StopSignal(),
        progress: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> GroundTruth {
        let admin = client(named: "flatline-loadgen")
        let publishers = scenario.publishers.map { (spec: $0, client: client(named: $0.name)) }
        let workers = scenario.consumers.map { (spec: $0, client: client(named: $0.path)) }
        let subscribers = scenario.subscribers.map { (spec: $0, client: client(named: $0.name)) }
        let clients = [admin] + publishers.map(\.client) + workers.map(\.client) + subscribers.map(\.client)
        let controls = Controls()
        let counts = Counts()
        let server = connection.servers.map { "nats://\($0)" }.joined(separator: ",")

        return try await withThrowingTaskGroup(of: Void.self) { group in
            for client in clients { group.addTask { try await client.run() } }
            do {
                for client in clients { try await client.waitUntilConnected(timeout: .seconds(10)) }
                try await setUpJetStream(admin)
                let start = ContinuousClock.now
                let startDate = Date()
                var ran = Timeline(times: [:], end: startDate, interrupted: false)
                let subscriptions = try subscribers.map {
                    try $0.client.subscribe(to: $0.spec.subject, queue: $0.spec.queue)
                }
                for subscriber in subscribers { try await subscriber.client.flush() }
                // Receivers run apart from the other actors: at the end they drain what reached
                // their client before the counts are read, instead of being cancelled mid-stream.
                let receivers = zip(subscribers, subscriptions).map { subscriber, subscription in
                    let name = subscriber.spec.name
                    return Task { for await _ in subscription { counts.add(name, "received") } }
                }
                try await withThrowingTaskGroup(of: Void.self) { actors in
                    for (index, publisher) in publishers.enumerated() {
                        actors.addTask {
                            try await self.publish(
                                publisher.spec,
                                index: index,
                                client: publisher.client,
                                start: start,
                                controls: controls,
                                counts: counts
                            )
                        }
                    }
                    for worker in workers {
                        actors.addTask {
                            try await self.work(worker.spec, client: worker.client, controls: controls, counts: counts)
                        }
                    }
                    ran = try await timeline(
                        start: start,
                        startDate: startDate,
                        controls: controls,
                        subscribers: subscribers.map { ($0.spec.name, $0.client) },
                        stop: stop,
                        progress: progress
                    )
                    actors.cancelAll()
                }
                // Everything published has reached the server once the publishers' flushes
                // return, and has been delivered once the subscribers' do; then the streams end.
                for publisher in publishers { try? await publisher.client.flush() }
                for subscriber in subscribers { try? await subscriber.client.flush() }
                for subscription in subscriptions { try? subscription.unsubscribe() }
                for receiver in receivers { await receiver.value }
                for client in clients { client.close() }
                try await group.waitForAll()
                return GroundTruth(
                    scenario: scenario.name,
                    seed: scenario.seed,
                    server: server,
                    phases: phases(times: ran.times, startDate: startDate, end: ran.end),
                    counts: counts.snapshot,
                    interrupted: ran.interrupted
                )
            } catch {
                for client in clients { client.close() }
                group.cancelAll()
                try? await group.waitForAll()
                throw error
            }
        }
    }

    private func client(named name: String) -> NATSClient {
        var configuration = connection
        configuration.name = name
        configuration.subscriptionBufferMessages = 1 << 20
        return NATSClient(configuration: configuration, logger: logger)
    }

    private func setUpJetStream(_ admin: NATSClient) async throws {
        let js = JetStream(client: admin)
        for stream in scenario.streams {
            var configuration = StreamConfiguration(name: stream.name, subjects: stream.subjects)
            configuration.storage = stream.storage == "memory" ? .memory : .file
            if let max = stream.maxMessages { configuration.maxMessages = max }
            if let max = stream.maxBytes { configuration.maxBytes = max }
            try await js.createStream(configuration)
        }
        for consumer in scenario.consumers {
            var configuration = ConsumerConfiguration(durableName: consumer.name)
            configuration.maxAckPending = consumer.maxAckPending
            configuration.ackWait = Int64(consumer.ackWait.value * 1e9)
            configuration.filterSubject = consumer.filterSubject
            try await js.createConsumer(stream: consumer.stream, configuration)
        }
    }

    // MARK: Actors

    private func publish(
        _ spec: Scenario.Publisher,
        index: Int,
        client: NATSClient,
        start: ContinuousClock.Instant,
        controls: Controls,
        counts: Counts
    ) async throws {
        var schedule = PublishSchedule(spec, seed: scenario.seed, index: index, seconds: scenario.totalSeconds)
        let payload = (0..<spec.payload).map { UInt8(truncatingIfNeeded: 97 + $0 % 26) }
        var k = 0
        while !Task.isCancelled {
            k += 1
            let n = schedule.messages(inSlot: k, multiplier: controls.multiplier(spec.name))
            for _ in 0..<n { try await client.publish(payload, to: spec.subject) }
            if n > 0 { counts.add(spec.name, "published", n) }
            try await Task.sleep(until: start + PublishSchedule.slot * k, clock: .continuous)
        }
    }

    private func work(_ spec: Scenario.Consumer, client: NATSClient, controls: Controls, counts: Counts) async throws {
        let js = JetStream(client: client)
        while !Task.isCancelled {
            switch controls.freeze(spec.path) {
            case .nofetch:
                try await Task.sleep(for: .milliseconds(100))
            case .noack:
                // Pulls and holds the messages without acknowledging them.
                let messages = try await js.fetch(
                    stream: spec.stream,
                    consumer: spec.name,
                    batch: spec.batch,
                    expires: .seconds(1)
                )
                counts.add(spec.path, "fetched", messages.count)
                if messages.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
            case nil:
                let started = ContinuousClock.now
                let messages = try await js.fetch(
                    stream: spec.stream,
                    consumer: spec.name,
                    batch: spec.batch,
                    expires: .seconds(1)
                )
                for message in messages { try await message.ack() }
                counts.add(spec.path, "fetched", messages.count)
                counts.add(spec.path, "acked", messages.count)
                // Never faster than the worker's capacity.
                let budget = Duration.milliseconds(Int64(Double(messages.count) / spec.capacity * 1000))
                let spent = ContinuousClock.now - started
                if budget > spent { try await Task.sleep(for: budget - spent) }
            }
        }
    }

    // MARK: Timeline

    /// Sleeps to each incident's start and end, flips its switch, and records when that really
    /// happened; returns the real begin and end of every incident, by its index.
    /// What the timeline did: each incident's real begin and end, and when the run ended.
    struct Timeline {
        var times: [Int: (begin: Date, end: Date)]
        var end: Date
        var interrupted: Bool
    }

    private func timeline(
        start: ContinuousClock.Instant,
        startDate: Date,
        controls: Controls,
        subscribers: [(String, NATSClient)],
        stop: StopSignal,
        progress: @Sendable (String) -> Void
    ) async throws -> Timeline {
        var events: [(seconds: Double, incident: Int, begins: Bool)] = []
        for (i, incident) in scenario.incidents.enumerated() {
            events.append((incident.at.value, i, true))
            events.append((incident.at.value + incident.duration.value, i, false))
        }
        // Ends before begins at the same instant, so back-to-back incidents do not overlap.
        events.sort { ($0.seconds, $0.begins ? 1 : 0) < ($1.seconds, $1.begins ? 1 : 0) }
        var begins: [Int: Date] = [:]
        var times: [Int: (begin: Date, end: Date)] = [:]
        func apply(_ index: Int, begins: Bool) {
            let incident = scenario.incidents[index]
            switch incident.kind {
            case .freeze: controls.setFreeze(incident.target, begins ? (incident.mode ?? .noack) : nil)
            case .flood: controls.setMultiplier(incident.target, begins ? (incident.multiplier ?? 10) : 1)
            case .slowSubscriber:
                if let client = subscribers.first(where: { $0.0 == incident.target })?.1 {
                    if begins { client.pauseReading() } else { client.resumeReading() }
                }
            }
        }
        func stopped() -> Timeline {
            let now = Date()
            for (index, begin) in begins.sorted(by: { $0.key < $1.key }) where times[index] == nil {
                apply(index, begins: false)
                times[index] = (begin, now)
            }
            progress("\(Self.clock(now.timeIntervalSince(startDate))) stopped early")
            return Timeline(times: times, end: now, interrupted: true)
        }
        for event in events {
            guard try await stop.sleep(until: start + .milliseconds(Int64(event.seconds * 1000))) else {
                return stopped()
            }
            let incident = scenario.incidents[event.incident]
            apply(event.incident, begins: event.begins)
            let now = Date()
            if event.begins {
                begins[event.incident] = now
            } else {
                times[event.incident] = (begins[event.incident] ?? now, now)
            }
            progress(
                "\(Self.clock(now.timeIntervalSince(startDate))) \(event.begins ? "begin" : "end")"
                    + " \(incident.kind.rawValue) \(incident.target)"
            )
        }
        guard try await stop.sleep(until: start + .milliseconds(Int64(scenario.totalSeconds * 1000))) else {
            return stopped()
        }
        progress("\(Self.clock(scenario.totalSeconds)) end of scenario")
        return Timeline(times: times, end: startDate.addingTimeInterval(scenario.totalSeconds), interrupted: false)
    }

    private func phases(times: [Int: (begin: Date, end: Date)], startDate: Date, end: Date) -> [GroundTruth.Phase] {
        let incidents = times.map { (index: $0.key, begin: $0.value.begin, end: $0.value.end) }.sorted {
            $0.begin < $1.begin
        }
        var phases: [GroundTruth.Phase] = []
        var cursor = startDate
        var seen: [String: Int] = [:]
        var recoveries = 0
        for (index, begin, finish) in incidents {
            if begin > cursor {
                let first = phases.isEmpty
                if !first { recoveries += 1 }
                phases.append(
                    GroundTruth.Phase(
                        phase: first ? "baseline" : "recover\(recoveries)",
                        kind: first ? "baseline" : "recover",
                        start: RFC3339.string(cursor),
                        end: RFC3339.string(begin),
                        targets: [],
                        what: first ? "normal traffic" : "traffic returns to normal"
                    )
                )
            }
            let incident = scenario.incidents[index]
            let kind = incident.kind == .slowSubscriber ? "slow" : incident.kind.rawValue
            seen[kind, default: 0] += 1
            let count = seen[kind, default: 1]
            phases.append(
                GroundTruth.Phase(
                    phase: count == 1 ? kind : "\(kind)\(count)",
                    kind: kind,
                    start: RFC3339.string(begin),
                    end: RFC3339.string(finish),
                    targets: [incident.target],
                    what: Self.describe(incident)
                )
            )
            cursor = Swift.max(cursor, finish)
        }
        if end > cursor {
            let first = phases.isEmpty
            phases.append(
                GroundTruth.Phase(
                    phase: first ? "baseline" : "tail",
                    kind: first ? "baseline" : "tail",
                    start: RFC3339.string(cursor),
                    end: RFC3339.string(end),
                    targets: [],
                    what: "normal traffic"
                )
            )
        }
        return phases
    }

    static func describe(_ incident: Scenario.Incident) -> String {
        switch incident.kind {
        case .freeze:
            switch incident.mode ?? .noack {
            case .noack: "\(incident.target) keeps pulling but stops acknowledging"
            case .nofetch: "\(incident.target) stops pulling"
            }
        case .flood: "\(incident.target) publishes at \(incident.multiplier ?? 10)x its rate"
        case .slowSubscriber: "\(incident.target) stops reading its socket"
        }
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return String(format: "%02d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
    }
}

/// How many messages a publisher sends in each 10 ms slot: its rate along the sinusoid, times a
/// per-second noise drawn from the scenario's seed, times the flood multiplier; fractions carry
/// over to the next slot. The same seed gives the same schedule.
public struct PublishSchedule: Sendable {
    public static let slot = Duration.milliseconds(10)
    let spec: Scenario.Publisher
    let noise: [Double]
    var owed = 0.0

    public init(_ spec: Scenario.Publisher, seed: UInt64, index: Int, seconds: Double) {
        self.spec = spec
        var rng = SeededGenerator(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        noise = (0..<(Int(seconds.rounded(.up)) + 2)).map { _ in Swift.max(0, 1 + spec.noise * rng.normal()) }
    }

    /// Messages to send in slot `k` (1-based; slot k ends `k × 10 ms` after the start).
    public mutating func messages(inSlot k: Int, multiplier: Double = 1) -> Int {
        let elapsed = Double(k) * 0.01
        let rate =
            spec.rate * (1 + spec.amplitude * sin(2 * .pi * elapsed / spec.period.value))
            * noise[Swift.min(Int(elapsed), noise.count - 1)] * multiplier
        owed += rate * 0.01
        let n = Int(owed)
        owed -= Double(n)
        return n
    }
}

/// Incident switches the actors read.
final class Controls: Sendable {
    private let state = Mutex<(freezes: [String: Scenario.Incident.FreezeMode], multipliers: [String: Double])>(
        ([:], [:])
    )

    func freeze(_ consumer: String) -> Scenario.Incident.FreezeMode? { state.withLock { $0.freezes[consumer] } }
    func setFreeze(_ consumer: String, _ mode: Scenario.Incident.FreezeMode?) {
        state.withLock { $0.freezes[consumer] = mode }
    }
    func multiplier(_ publisher: String) -> Double { state.withLock { $0.multipliers[publisher] ?? 1 } }
    func setMultiplier(_ publisher: String, _ value: Double) { state.withLock { $0.multipliers[publisher] = value } }
}

/// Message counts per actor.
final class Counts: Sendable {
    private let state = Mutex<[String: [String: Int]]>([:])

    func add(_ actor: String, _ what: String, _ n: Int = 1) {
        state.withLock { $0[actor, default: [:]][what, default: 0] += n }
    }
    var snapshot: [String: [String: Int]] { state.withLock { $0 } }
}

/// SplitMix64 with Box–Muller normals: the scenario's noise.
struct SeededGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }

    mutating func normal() -> Double {
        (-2 * log(Swift.max(uniform(), 0x1p-53))).squareRoot() * cos(2 * .pi * uniform())
    }
}
