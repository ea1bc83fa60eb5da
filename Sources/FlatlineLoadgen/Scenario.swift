import FlatlineCore
import Foundation
import Yams

/// A traffic scenario: JetStream streams and pull consumers, publishers, core subscribers, and
/// a timeline of incidents to inject. Written in YAML; see ``Scenario/builtIn`` for an example
/// with every key.
public struct Scenario: Codable, Sendable, Hashable {
    /// A JetStream stream to create.
    public struct Stream: Codable, Sendable, Hashable {
        public var name: String
        public var subjects: [String]
        /// `file` or `memory`.
        public var storage: String = "file"
        public var maxMessages: Int?
        public var maxBytes: Int?

        private enum CodingKeys: String, CodingKey {
            case name, subjects, storage, maxMessages = "max_msgs", maxBytes = "max_bytes"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            subjects = try c.decode([String].self, forKey: .subjects)
            storage = try c.decodeIfPresent(String.self, forKey: .storage) ?? "file"
            maxMessages = try c.decodeIfPresent(Int.self, forKey: .maxMessages)
            maxBytes = try c.decodeIfPresent(Int.self, forKey: .maxBytes)
        }
    }

    /// A durable pull consumer and the worker that drains it.
    public struct Consumer: Codable, Sendable, Hashable {
        public var stream: String
        public var name: String
        /// Messages per second the worker can process.
        public var capacity: Double
        public var maxAckPending: Int = 1000
        public var ackWait: Seconds = Seconds(30)
        /// Messages asked for per pull.
        public var batch: Int = 100
        public var filterSubject: String?

        /// `STREAM/consumer`, as incidents and ground truth name it.
        public var path: String { "\(stream)/\(name)" }

        private enum CodingKeys: String, CodingKey {
            case stream, name, capacity, maxAckPending = "max_ack_pending", ackWait = "ack_wait", batch
            case filterSubject = "filter_subject"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            stream = try c.decode(String.self, forKey: .stream)
            name = try c.decode(String.self, forKey: .name)
            capacity = try c.decode(Double.self, forKey: .capacity)
            maxAckPending = try c.decodeIfPresent(Int.self, forKey: .maxAckPending) ?? 1000
            ackWait = try c.decodeIfPresent(Seconds.self, forKey: .ackWait) ?? Seconds(30)
            batch = try c.decodeIfPresent(Int.self, forKey: .batch) ?? 100
            filterSubject = try c.decodeIfPresent(String.self, forKey: .filterSubject)
        }
    }

    /// A publisher on its own connection (named, so `/connz` shows who floods).
    public struct Publisher: Codable, Sendable, Hashable {
        public var name: String
        public var subject: String
        /// Messages per second, on average.
        public var rate: Double
        /// The rate swings by this fraction along a sinusoid, like a daily cycle.
        public var amplitude: Double = 0.25
        /// The sinusoid's period.
        public var period: Seconds = Seconds(60)
        /// Standard deviation of a per-second multiplicative noise.
        public var noise: Double = 0.1
        /// Payload bytes.
        public var payload: Int = 256

        private enum CodingKeys: String, CodingKey { case name, subject, rate, amplitude, period, noise, payload }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            subject = try c.decode(String.self, forKey: .subject)
            rate = try c.decode(Double.self, forKey: .rate)
            amplitude = try c.decodeIfPresent(Double.self, forKey: .amplitude) ?? 0.25
            period = try c.decodeIfPresent(Seconds.self, forKey: .period) ?? Seconds(60)
            noise = try c.decodeIfPresent(Double.self, forKey: .noise) ?? 0.1
            payload = try c.decodeIfPresent(Int.self, forKey: .payload) ?? 256
        }
    }

    /// A core subscriber on its own connection.
    public struct Subscriber: Codable, Sendable, Hashable {
        public var name: String
        public var subject: String
        public var queue: String?
    }

    /// Something that goes wrong, and when.
    public struct Incident: Codable, Sendable, Hashable {
        public enum Kind: String, Codable, Sendable, CaseIterable {
            /// A consumer stops making progress (`target`: `STREAM/consumer`).
            case freeze
            /// A publisher publishes `multiplier` times its rate (`target`: the publisher).
            case flood
            /// A core subscriber stops reading its socket (`target`: the subscriber).
            case slowSubscriber = "slow_subscriber"
        }

        /// How a consumer freezes.
        public enum FreezeMode: String, Codable, Sendable {
            /// It keeps pulling but never acknowledges: ack-pending climbs to max_ack_pending,
            /// redeliveries follow ack_wait.
            case noack
            /// It stops pulling: nothing is delivered.
            case nofetch
        }

        public var kind: Kind
        public var target: String
        /// Seconds after the start.
        public var at: Seconds
        public var duration: Seconds
        public var mode: FreezeMode?
        public var multiplier: Double?
    }

    public var name: String
    public var seed: UInt64 = 42
    /// The total length; by default the end of the last incident plus 20 s.
    public var duration: Seconds?
    public var streams: [Stream] = []
    public var consumers: [Consumer] = []
    public var publishers: [Publisher] = []
    public var subscribers: [Subscriber] = []
    public var incidents: [Incident] = []

    private enum CodingKeys: String, CodingKey {
        case name, seed, duration, streams, consumers, publishers, subscribers, incidents
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? "scenario"
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 42
        duration = try c.decodeIfPresent(Seconds.self, forKey: .duration)
        streams = try c.decodeIfPresent([Stream].self, forKey: .streams) ?? []
        consumers = try c.decodeIfPresent([Consumer].self, forKey: .consumers) ?? []
        publishers = try c.decodeIfPresent([Publisher].self, forKey: .publishers) ?? []
        subscribers = try c.decodeIfPresent([Subscriber].self, forKey: .subscribers) ?? []
        incidents = try c.decodeIfPresent([Incident].self, forKey: .incidents) ?? []
    }

    /// The total length in seconds.
    public var totalSeconds: Double {
        duration?.value ?? ((incidents.map { $0.at.value + $0.duration.value }.max() ?? 60) + 20)
    }

    /// The same scenario with every time (incidents, duration, periods and ack waits) scaled so
    /// the whole lasts `seconds`.
    public func scaled(toSeconds seconds: Double) -> Scenario {
        let factor = seconds / totalSeconds
        var copy = self
        copy.duration = Seconds(seconds)
        for i in copy.incidents.indices {
            copy.incidents[i].at = Seconds(copy.incidents[i].at.value * factor)
            copy.incidents[i].duration = Seconds(copy.incidents[i].duration.value * factor)
        }
        for i in copy.publishers.indices {
            copy.publishers[i].period = Seconds(copy.publishers[i].period.value * factor)
        }
        for i in copy.consumers.indices {
            copy.consumers[i].ackWait = Seconds(Swift.max(1, copy.consumers[i].ackWait.value * factor))
        }
        return copy
    }

    /// Reads a scenario from YAML text.
    /// - Throws: ``ScenarioError`` naming the source, the key and the reason.
    public static func parse(yaml text: String, source: String = "scenario") throws(ScenarioError) -> Scenario {
        let scenario: Scenario
        do {
            scenario = try YAMLDecoder().decode(Scenario.self, from: text)
        } catch let error as DecodingError {
            throw ScenarioError(source: source, key: error.keyPath, reason: error.reason)
        } catch {
            throw ScenarioError(source: source, key: "", reason: "\(error)")
        }
        try scenario.validate(source: source)
        return scenario
    }

    /// Reads a scenario file.
    public static func load(path: String) throws(ScenarioError) -> Scenario {
        // A scenario is text a person wrote: 1 MiB is far past any.
        let bytes: [UInt8]
        switch BoundedFile.read(path, limit: 1 << 20) {
        case .success(let read): bytes = read
        case .failure(let error): throw ScenarioError(source: path, key: "", reason: error.reason)
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ScenarioError(source: path, key: "", reason: "not UTF-8 text")
        }
        return try parse(yaml: text, source: path)
    }

    /// Checks names, references and ranges.
    public func validate(source: String = "scenario") throws(ScenarioError) {
        func fail(_ key: String, _ reason: String) -> ScenarioError {
            ScenarioError(source: source, key: key, reason: reason)
        }
        let streamNames = Set(streams.map(\.name))
        guard streamNames.count == streams.count else { throw fail("streams", "stream names must be unique") }
        for (i, c) in consumers.enumerated() {
            guard streamNames.contains(c.stream) else {
                throw fail("consumers[\(i)].stream", "no stream named \(c.stream)")
            }
            guard c.capacity > 0 else { throw fail("consumers[\(i)].capacity", "must be positive") }
            guard c.batch >= 1, c.maxAckPending >= 1 else {
                throw fail("consumers[\(i)]", "batch and max_ack_pending must be at least 1")
            }
        }
        guard Set(consumers.map(\.path)).count == consumers.count else {
            throw fail("consumers", "consumer names must be unique per stream")
        }
        for (i, p) in publishers.enumerated() {
            guard p.rate >= 0, p.rate <= 1_000_000 else {
                throw fail("publishers[\(i)].rate", "must be between 0 and 1000000")
            }
            guard p.amplitude >= 0, p.amplitude < 1 else {
                throw fail("publishers[\(i)].amplitude", "must be in [0, 1)")
            }
            guard p.period.value > 0 else { throw fail("publishers[\(i)].period", "must be positive") }
            guard p.noise >= 0 else { throw fail("publishers[\(i)].noise", "must not be negative") }
            guard p.payload >= 0 else { throw fail("publishers[\(i)].payload", "must not be negative") }
        }
        let names = publishers.map(\.name) + subscribers.map(\.name) + consumers.map(\.path)
        guard Set(names).count == names.count else {
            throw fail("", "publisher, subscriber and consumer names must be unique")
        }
        for (i, incident) in incidents.enumerated() {
            let key = "incidents[\(i)]"
            guard incident.at.value >= 0, incident.duration.value > 0 else {
                throw fail(key, "at must be >= 0 and duration > 0")
            }
            switch incident.kind {
            case .freeze:
                guard consumers.contains(where: { $0.path == incident.target }) else {
                    throw fail("\(key).target", "no consumer \(incident.target) (write STREAM/consumer)")
                }
            case .flood:
                guard publishers.contains(where: { $0.name == incident.target }) else {
                    throw fail("\(key).target", "no publisher named \(incident.target)")
                }
                guard (incident.multiplier ?? 10) > 0 else { throw fail("\(key).multiplier", "must be positive") }
            case .slowSubscriber:
                guard subscribers.contains(where: { $0.name == incident.target }) else {
                    throw fail("\(key).target", "no subscriber named \(incident.target)")
                }
            }
        }
        guard totalSeconds > 0 else { throw fail("duration", "must be positive") }
    }
}

/// A number of seconds, written as a number or a duration (`90s`, `1m30s`, `500ms`).
public struct Seconds: Codable, Sendable, Hashable, CustomStringConvertible {
    public var value: Double

    public init(_ value: Double) { self.value = value }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let number = try? c.decode(Double.self) {
            value = number
            return
        }
        let text = try c.decode(String.self)
        guard let seconds = Self.parse(text) else {
            throw DecodingError.dataCorruptedError(
                in: c,
                debugDescription: "\"\(text)\" is not a duration such as 90s or 1m30s"
            )
        }
        value = seconds
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    public var description: String { value == value.rounded() ? "\(Int(value))s" : "\(value)s" }

    static func parse(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        var total = 0.0
        var any = false
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isNumber || $0 == "." }
            guard !digits.isEmpty, let number = Double(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let unitText = rest.prefix { $0.isLetter }
            guard let unit = units.first(where: { $0.0 == String(unitText) }) else { return nil }
            rest = rest.dropFirst(unitText.count)
            total += number * unit.1
            any = true
        }
        return any ? total : nil
    }
}

/// A scenario that cannot be used, with where and why.
public struct ScenarioError: Error, Hashable, Sendable, CustomStringConvertible {
    public var source: String
    /// The key, in `incidents[2].target` notation; empty for the file as a whole.
    public var key: String
    public var reason: String

    public var description: String { key.isEmpty ? "\(source): \(reason)" : "\(source): \(key): \(reason)" }
}

extension DecodingError {
    var keyPath: String {
        let path: [any CodingKey]
        switch self {
        case .keyNotFound(let key, let context): path = context.codingPath + [key]
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            path = context.codingPath
        @unknown default: path = []
        }
        var text = ""
        for key in path {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return text
    }

    var reason: String {
        switch self {
        case .keyNotFound(let key, _): "missing required key \"\(key.stringValue)\""
        case .typeMismatch(let type, let context): "expected \(type): \(context.debugDescription)"
        case .valueNotFound(let type, _): "missing value of type \(type)"
        case .dataCorrupted(let context): context.debugDescription
        @unknown default: "\(self)"
        }
    }
}
