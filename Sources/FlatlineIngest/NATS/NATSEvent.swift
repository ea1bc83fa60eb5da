import FlatlineCore

/// An event a NATS server publishes the moment something happens, between scrapes: a client
/// disconnect (to the system account) or a JetStream consumer advisory (to the stream's account).
/// Parsed from its JSON body; everything in it comes from outside and is checked.
public enum NATSEvent: Sendable, Hashable {
    /// `io.nats.server.advisory.v1.client_disconnect`, on `$SYS.ACCOUNT.<account>.DISCONNECT`.
    case clientDisconnect(ClientDisconnect)
    /// A JetStream consumer advisory on `$JS.EVENT.ADVISORY.CONSUMER.<KIND>.<stream>.<consumer>`.
    case consumerAdvisory(ConsumerAdvisory)

    public struct ClientDisconnect: Sendable, Hashable {
        /// The server that closed the connection: its name (its id when it has none) and id.
        public var serverName: String
        public var serverID: String
        /// The connection's id on that server.
        public var cid: Int
        public var clientName: String
        public var account: String
        /// Why it was closed: `Slow Consumer (Write Deadline)`, `Client Closed`...
        public var reason: String
        public var time: Timestamp

        /// Whether the server cut the client off as a slow consumer.
        public var isSlowConsumer: Bool { reason.hasPrefix("Slow Consumer") }
    }

    public struct ConsumerAdvisory: Sendable, Hashable {
        public enum Kind: String, Sendable, CaseIterable {
            /// `io.nats.jetstream.advisory.v1.max_deliver`: a message reached `max_deliver` and
            /// is no longer redelivered.
            case maxDeliveries = "max_deliver"
            /// `io.nats.jetstream.advisory.v1.terminated`: a client gave up on a message (`+TERM`).
            case terminated
            /// `io.nats.jetstream.advisory.v1.nak`: a client refused a message (`-NAK`; servers
            /// from 2.10 publish it).
            case nak

            /// The counter series of this kind.
            public var metricName: String {
                switch self {
                case .maxDeliveries: "flatline_jetstream_consumer_max_deliveries_total"
                case .terminated: "flatline_jetstream_consumer_terminated_total"
                case .nak: "flatline_jetstream_consumer_naks_total"
                }
            }
        }

        public var kind: Kind
        public var stream: String
        public var consumer: String
        public var time: Timestamp
    }

    /// The longest name, reason or id kept from an event; longer ones are cut.
    static let maxText = 200

    /// Parses an event body.
    ///
    /// - Returns: `nil` for a well-formed event of a type Flatline does not use (stream created,
    ///   API audit...).
    /// - Throws: ``ExtractionError`` naming what is wrong with a body that is not such an event.
    public static func parse(_ body: [UInt8]) throws(ExtractionError) -> NATSEvent? {
        let d: JSONDocument
        do {
            d = try JSONDocument(parsing: body, maxDepth: 16, maxValues: 4096)
        } catch {
            throw ExtractionError(endpoint: "event", reason: "\(error)")
        }
        return try parse(d, root: d.root)
    }

    /// The endpoint name of an event in a recording (`flatline run --record`).
    public static let recordingEndpoint = "event"

    /// Parses an event that is node `root` of a document (a recording's body).
    public static func parse(_ d: JSONDocument, root: Int) throws(ExtractionError) -> NATSEvent? {
        guard d.kind(root) == .object else {
            throw ExtractionError(endpoint: "event", reason: "expected a JSON object, got \(d.kind(root))")
        }
        guard let type = d.member(root, "type").flatMap({ d.string($0) }) else {
            throw ExtractionError(endpoint: "event", reason: "no \"type\"")
        }
        func text(_ node: Int?) -> String { (node.flatMap { d.string($0) } ?? "").truncated(maxText) }
        func time() throws(ExtractionError) -> Timestamp {
            guard case .time(let time) = NATSExtractor.time(d, d.member(root, "timestamp")) else {
                throw ExtractionError(endpoint: "event", reason: "\(type) has no valid \"timestamp\"")
            }
            return time
        }
        switch type {
        case "io.nats.server.advisory.v1.client_disconnect":
            guard let client = d.member(root, "client"), d.kind(client) == .object else {
                throw ExtractionError(endpoint: "event", reason: "client_disconnect has no \"client\" object")
            }
            guard let id = d.number(client, "id"), let cid = Int(exactly: id), cid >= 0 else {
                throw ExtractionError(endpoint: "event", reason: "client_disconnect has no whole client \"id\"")
            }
            let serverID = text(d.member(root, "server", "id"))
            var serverName = text(d.member(root, "server", "name"))
            if serverName.isEmpty { serverName = serverID }
            guard !serverName.isEmpty else {
                throw ExtractionError(endpoint: "event", reason: "client_disconnect has no server name or id")
            }
            return .clientDisconnect(
                ClientDisconnect(
                    serverName: serverName,
                    serverID: serverID,
                    cid: cid,
                    clientName: text(d.member(client, "name")),
                    account: text(d.member(client, "acc")),
                    reason: text(d.member(root, "reason")),
                    time: try time()
                )
            )
        default:
            let prefix = "io.nats.jetstream.advisory.v1."
            guard type.hasPrefix(prefix),
                let kind = ConsumerAdvisory.Kind(rawValue: String(type.dropFirst(prefix.count)))
            else { return nil }
            let stream = text(d.member(root, "stream"))
            let consumer = text(d.member(root, "consumer"))
            guard !stream.isEmpty, !consumer.isEmpty else {
                throw ExtractionError(endpoint: "event", reason: "\(type) has no \"stream\" or \"consumer\"")
            }
            return .consumerAdvisory(ConsumerAdvisory(kind: kind, stream: stream, consumer: consumer, time: try time()))
        }
    }
}

/// Counts JetStream consumer advisories into series, per stream and consumer, from zero when a
/// consumer has its first: `flatline_jetstream_consumer_max_deliveries_total`,
/// `flatline_jetstream_consumer_terminated_total`, `flatline_jetstream_consumer_naks_total`.
public struct ConsumerAdvisoryCounter: Sendable {
    /// Consumers counted at most per kind; advisories of more count under `consumer="other"`.
    public static let maxConsumers = 10_000

    private var totals: [NATSEvent.ConsumerAdvisory.Kind: [ConsumerKey: Double]] = [:]
    private let base: [Label]

    struct ConsumerKey: Hashable, Sendable {
        var stream: String
        var consumer: String
    }

    /// - Parameter targetLabels: labels every series carries (`job`, `instance`).
    public init(targetLabels: [String: String]) {
        base = targetLabels.map { Label(name: $0.key, value: $0.value) }
            .sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
    }

    /// The advisory counted: its consumer's counter at the advisory's time.
    public mutating func count(_ advisory: NATSEvent.ConsumerAdvisory) -> [Sample] {
        var key = ConsumerKey(stream: advisory.stream, consumer: advisory.consumer)
        var counts = totals[advisory.kind] ?? [:]
        if counts[key] == nil, counts.count >= Self.maxConsumers {
            key = ConsumerKey(stream: "other", consumer: "other")
        }
        let total = counts[key, default: 0] + 1
        counts[key] = total
        totals[advisory.kind] = counts
        var out = SampleBuilder(time: advisory.time, base: base, counterReset: false)
        out.add(
            advisory.kind.metricName,
            total,
            .counter,
            labels: out.labels([("consumer", key.consumer), ("stream", key.stream)]),
            // The first value of a counter that starts at zero with its first advisory.
            counterReset: total == 1
        )
        return out.samples
    }
}
