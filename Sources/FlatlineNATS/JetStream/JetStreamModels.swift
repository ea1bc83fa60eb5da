import Foundation

/// A stream's configuration (the subset Flatline and its traffic generator use; unknown fields
/// the server adds are ignored).
public struct StreamConfiguration: Codable, Hashable, Sendable {
    public enum Retention: String, Codable, Sendable { case limits, interest, workqueue }
    public enum Storage: String, Codable, Sendable { case file, memory }
    public enum Discard: String, Codable, Sendable { case old, new }

    public var name: String
    public var subjects: [String]
    public var retention: Retention = .limits
    public var storage: Storage = .file
    public var replicas: Int = 1
    /// -1 for no limit.
    public var maxMessages: Int = -1
    public var maxBytes: Int = -1
    /// Nanoseconds; 0 for no limit.
    public var maxAge: Int64 = 0
    public var discard: Discard = .old
    /// Messages kept per subject (a key-value bucket's history); -1 for no limit.
    public var maxMessagesPerSubject: Int = -1
    /// Nanoseconds within which a repeated `Nats-Msg-Id` is dropped as a duplicate; `nil`: the
    /// server's default (2 minutes).
    public var duplicateWindow: Int64?
    /// `Nats-Rollup` headers may purge a subject (key-value buckets).
    public var allowRollup = false
    /// Messages cannot be deleted one by one (key-value buckets).
    public var denyDelete = false
    /// Any server with the stream answers direct gets (key-value reads).
    public var allowDirect = false

    public init(name: String, subjects: [String]) {
        self.name = name
        self.subjects = subjects
    }

    private enum CodingKeys: String, CodingKey {
        case name, subjects, retention, storage, replicas = "num_replicas", maxMessages = "max_msgs"
        case maxBytes = "max_bytes", maxAge = "max_age", discard, maxMessagesPerSubject = "max_msgs_per_subject"
        case duplicateWindow = "duplicate_window", allowRollup = "allow_rollup_hdrs", denyDelete = "deny_delete"
        case allowDirect = "allow_direct"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        subjects = try c.decodeIfPresent([String].self, forKey: .subjects) ?? []
        retention = try c.decodeIfPresent(Retention.self, forKey: .retention) ?? .limits
        storage = try c.decodeIfPresent(Storage.self, forKey: .storage) ?? .file
        replicas = try c.decodeIfPresent(Int.self, forKey: .replicas) ?? 1
        maxMessages = try c.decodeIfPresent(Int.self, forKey: .maxMessages) ?? -1
        maxBytes = try c.decodeIfPresent(Int.self, forKey: .maxBytes) ?? -1
        maxAge = try c.decodeIfPresent(Int64.self, forKey: .maxAge) ?? 0
        discard = try c.decodeIfPresent(Discard.self, forKey: .discard) ?? .old
        maxMessagesPerSubject = try c.decodeIfPresent(Int.self, forKey: .maxMessagesPerSubject) ?? -1
        duplicateWindow = try c.decodeIfPresent(Int64.self, forKey: .duplicateWindow)
        allowRollup = try c.decodeIfPresent(Bool.self, forKey: .allowRollup) ?? false
        denyDelete = try c.decodeIfPresent(Bool.self, forKey: .denyDelete) ?? false
        allowDirect = try c.decodeIfPresent(Bool.self, forKey: .allowDirect) ?? false
    }
}

/// What the server says of a stream.
public struct StreamInfo: Decodable, Hashable, Sendable {
    public struct State: Decodable, Hashable, Sendable {
        public var messages: Int
        public var bytes: Int
        public var firstSequence: UInt64
        public var lastSequence: UInt64
        public var consumerCount: Int

        private enum CodingKeys: String, CodingKey {
            case messages, bytes, firstSequence = "first_seq", lastSequence = "last_seq", consumerCount =
                "consumer_count"
        }
    }

    public var config: StreamConfiguration
    public var state: State
}

/// A consumer's configuration.
public struct ConsumerConfiguration: Codable, Hashable, Sendable {
    public enum DeliverPolicy: String, Codable, Sendable {
        case all, last, new
        case lastPerSubject = "last_per_subject"
    }
    public enum AckPolicy: String, Codable, Sendable { case explicit, none, all }

    /// The durable name; `nil` for an ephemeral consumer.
    public var durableName: String?
    public var deliverPolicy: DeliverPolicy = .all
    public var ackPolicy: AckPolicy = .explicit
    /// Nanoseconds before an unacknowledged message is redelivered.
    public var ackWait: Int64 = 30_000_000_000
    /// -1 for no limit.
    public var maxDeliver: Int = -1
    public var filterSubject: String?
    public var maxAckPending: Int = 1000
    /// For push consumers: where messages are delivered.
    public var deliverSubject: String?
    public var deliverGroup: String?

    public init(durableName: String?) {
        self.durableName = durableName
    }

    private enum CodingKeys: String, CodingKey {
        case durableName = "durable_name", deliverPolicy = "deliver_policy", ackPolicy = "ack_policy"
        case ackWait = "ack_wait", maxDeliver = "max_deliver", filterSubject = "filter_subject"
        case maxAckPending = "max_ack_pending", deliverSubject = "deliver_subject", deliverGroup = "deliver_group"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        durableName = try c.decodeIfPresent(String.self, forKey: .durableName)
        deliverPolicy = try c.decodeIfPresent(DeliverPolicy.self, forKey: .deliverPolicy) ?? .all
        ackPolicy = try c.decodeIfPresent(AckPolicy.self, forKey: .ackPolicy) ?? .explicit
        ackWait = try c.decodeIfPresent(Int64.self, forKey: .ackWait) ?? 30_000_000_000
        maxDeliver = try c.decodeIfPresent(Int.self, forKey: .maxDeliver) ?? -1
        filterSubject = try c.decodeIfPresent(String.self, forKey: .filterSubject)
        maxAckPending = try c.decodeIfPresent(Int.self, forKey: .maxAckPending) ?? 1000
        deliverSubject = try c.decodeIfPresent(String.self, forKey: .deliverSubject)
        deliverGroup = try c.decodeIfPresent(String.self, forKey: .deliverGroup)
    }
}

/// What the server says of a consumer.
public struct ConsumerInfo: Decodable, Hashable, Sendable {
    public struct SequenceInfo: Decodable, Hashable, Sendable {
        public var consumerSequence: UInt64
        public var streamSequence: UInt64

        private enum CodingKeys: String, CodingKey {
            case consumerSequence = "consumer_seq", streamSequence = "stream_seq"
        }
    }

    public var streamName: String
    public var name: String
    public var config: ConsumerConfiguration
    public var delivered: SequenceInfo
    public var ackFloor: SequenceInfo
    public var numAckPending: Int
    public var numRedelivered: Int
    public var numWaiting: Int
    public var numPending: UInt64

    private enum CodingKeys: String, CodingKey {
        case streamName = "stream_name", name, config, delivered, ackFloor = "ack_floor", numAckPending =
            "num_ack_pending"
        case numRedelivered = "num_redelivered", numWaiting = "num_waiting", numPending = "num_pending"
    }
}

/// The acknowledgement of a message published to a stream.
public struct PublishAck: Decodable, Hashable, Sendable {
    public var stream: String
    public var sequence: UInt64
    public var duplicate: Bool

    private enum CodingKeys: String, CodingKey { case stream, sequence = "seq", duplicate }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        stream = try c.decode(String.self, forKey: .stream)
        sequence = try c.decode(UInt64.self, forKey: .sequence)
        duplicate = try c.decodeIfPresent(Bool.self, forKey: .duplicate) ?? false
    }
}

/// The error object of a JetStream API response.
struct APIErrorBody: Decodable {
    struct Detail: Decodable {
        var code: Int
        var errCode: Int?
        var description: String?

        private enum CodingKeys: String, CodingKey { case code, errCode = "err_code", description }
    }
    var error: Detail?
}

/// Which stored message `STREAM.MSG.GET` returns.
public struct MessageQuery: Encodable, Hashable, Sendable {
    public var sequence: UInt64?
    public var lastBySubject: String?
    public var nextBySubject: String?

    /// The message with this sequence.
    public static func sequence(_ sequence: UInt64) -> MessageQuery {
        MessageQuery(sequence: sequence)
    }

    /// The last message on `subject`.
    public static func last(on subject: String) -> MessageQuery {
        MessageQuery(lastBySubject: subject)
    }

    /// The first message at or after `sequence` on `subject` (wildcards allowed).
    public static func next(on subject: String, from sequence: UInt64) -> MessageQuery {
        MessageQuery(sequence: sequence, nextBySubject: subject)
    }

    private enum CodingKeys: String, CodingKey {
        case sequence = "seq", lastBySubject = "last_by_subj", nextBySubject = "next_by_subj"
    }
}

/// A message as the stream stores it.
public struct StoredMessage: Decodable, Hashable, Sendable {
    public var subject: String
    public var sequence: UInt64
    public var headers: NATSHeaders?
    public var data: [UInt8]
    /// When the stream stored it, as the server wrote it (RFC 3339 with nanoseconds).
    public var time: String

    private enum CodingKeys: String, CodingKey { case subject, sequence = "seq", headers = "hdrs", data, time }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        subject = try c.decode(String.self, forKey: .subject)
        sequence = try c.decode(UInt64.self, forKey: .sequence)
        time = try c.decodeIfPresent(String.self, forKey: .time) ?? ""
        let data = try c.decodeIfPresent(String.self, forKey: .data) ?? ""
        guard let bytes = Data(base64Encoded: data) else {
            throw DecodingError.dataCorruptedError(forKey: .data, in: c, debugDescription: "not base64")
        }
        self.data = [UInt8](bytes)
        if let text = try c.decodeIfPresent(String.self, forKey: .headers), !text.isEmpty {
            guard let bytes = Data(base64Encoded: text), let parsed = NATSHeaders.parse(bytes) else {
                throw DecodingError.dataCorruptedError(forKey: .headers, in: c, debugDescription: "not NATS headers")
            }
            headers = parsed
        }
    }
}
