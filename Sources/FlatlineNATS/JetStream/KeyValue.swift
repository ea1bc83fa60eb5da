import Foundation

/// A JetStream key-value bucket: the stream `KV_<bucket>` on the subjects `$KV.<bucket>.<key>`,
/// as the NATS clients and the `nats kv` command lay it out, so either can read what the other
/// wrote.
///
/// Every write returns the key's new revision (its stream sequence). ``create(_:value:)`` and
/// ``update(_:value:revision:)`` are compare-and-swap: the server refuses them when someone else
/// wrote the key first, so a lease taken with them is held by one writer at a time. With
/// ``Configuration/ttl`` every key lapses that long after its last write (the bucket's `max_age`).
public struct KeyValue: Sendable {
    /// How a bucket is made.
    public struct Configuration: Hashable, Sendable {
        public var bucket: String
        /// Values kept per key.
        public var history = 1
        /// A key lapses this long after its last write; `nil`: never.
        public var ttl: Duration?
        public var storage: StreamConfiguration.Storage = .file
        /// Copies in a JetStream cluster.
        public var replicas = 1

        public init(bucket: String) {
            self.bucket = bucket
        }
    }

    /// One key's value.
    public struct Entry: Hashable, Sendable {
        public enum Operation: String, Hashable, Sendable { case put = "PUT", delete = "DEL", purge = "PURGE" }
        public var key: String
        public var value: [UInt8]
        /// The stream sequence of the write: what ``update(_:value:revision:)`` expects.
        public var revision: UInt64
        public var operation: Operation
    }

    /// The server's error code for an expected revision that is not the key's last.
    public static let wrongRevision = 10071

    public let jetStream: JetStream
    public let bucket: String

    public var stream: String { "KV_" + bucket }
    private var prefix: String { "$KV." + bucket + "." }

    /// A bucket that exists (see ``create(_:in:)``).
    public init(bucket: String, jetStream: JetStream) throws(NATSError) {
        try Self.validate(bucket: bucket)
        self.bucket = bucket
        self.jetStream = jetStream
    }

    /// Makes the bucket, or brings an existing one's limits to `configuration`.
    public static func create(_ configuration: Configuration, in jetStream: JetStream) async throws -> KeyValue {
        let kv = try KeyValue(bucket: configuration.bucket, jetStream: jetStream)
        guard (1...64).contains(configuration.history) else {
            throw NATSError(.invalidArgument, "bucket \(configuration.bucket): history must be 1 to 64")
        }
        var stream = StreamConfiguration(name: kv.stream, subjects: ["$KV.\(configuration.bucket).>"])
        stream.maxMessagesPerSubject = configuration.history
        stream.storage = configuration.storage
        stream.replicas = configuration.replicas
        stream.discard = .new
        stream.allowRollup = true
        stream.denyDelete = true
        stream.allowDirect = true
        if let ttl = configuration.ttl {
            stream.maxAge = ttl.wholeNanoseconds
            // The duplicate window may not be longer than the age limit.
            stream.duplicateWindow = min(ttl.wholeNanoseconds, 120_000_000_000)
        }
        do {
            try await jetStream.createStream(stream)
        } catch let error as NATSError where error.apiErrorCode == 10058 {
            // "stream name already in use with a different configuration"
            try await jetStream.updateStream(stream)
        }
        return kv
    }

    /// The key's value; `nil` when it was never written, was deleted or lapsed.
    public func get(_ key: String) async throws -> Entry? {
        guard let entry = try await last(key), entry.operation == .put else { return nil }
        return entry
    }

    /// Writes the key whatever it holds.
    @discardableResult
    public func put(_ key: String, value: [UInt8]) async throws -> UInt64 {
        try await write(key, value: value, headers: nil)
    }

    /// Writes the key only if it holds nothing (never written, deleted or lapsed).
    /// - Throws: ``NATSError`` with `apiErrorCode` ``wrongRevision`` when it holds a value.
    @discardableResult
    public func create(_ key: String, value: [UInt8]) async throws -> UInt64 {
        do {
            return try await update(key, value: value, revision: 0)
        } catch let error as NATSError where error.apiErrorCode == Self.wrongRevision {
            // A deleted key still has its tombstone as the last message: write over that.
            guard let last = try await last(key), last.operation != .put else { throw error }
            return try await update(key, value: value, revision: last.revision)
        }
    }

    /// Writes the key only if `revision` is still its last write.
    /// - Throws: ``NATSError`` with `apiErrorCode` ``wrongRevision`` when another write came
    ///   between (or the key lapsed).
    @discardableResult
    public func update(_ key: String, value: [UInt8], revision: UInt64) async throws -> UInt64 {
        var headers = NATSHeaders()
        headers.set(String(revision), for: "Nats-Expected-Last-Subject-Sequence")
        return try await write(key, value: value, headers: headers)
    }

    /// Deletes the key (a tombstone; with `revision`, only if that is still its last write).
    public func delete(_ key: String, revision: UInt64? = nil) async throws {
        var headers = NATSHeaders()
        headers.set(Entry.Operation.delete.rawValue, for: "KV-Operation")
        if let revision { headers.set(String(revision), for: "Nats-Expected-Last-Subject-Sequence") }
        _ = try await write(key, value: [], headers: headers)
    }

    /// Every key that holds a value, in the order of their last writes, at most `limit`.
    /// - Throws: ``NATSError`` when the bucket holds more than `limit` messages to read through.
    public func entries(limit: Int = 100_000) async throws -> [Entry] {
        var out: [String: Entry] = [:]
        var sequence: UInt64 = 1
        var read = 0
        while let message = try await jetStream.message(stream: stream, .next(on: prefix + ">", from: sequence)) {
            read += 1
            guard read <= limit else {
                throw NATSError(.invalidArgument, "bucket \(bucket): more than \(limit) entries to read")
            }
            if let entry = entry(message) { out[entry.key] = entry }
            guard message.sequence < UInt64.max else { break }
            sequence = message.sequence + 1
        }
        return out.values.filter { $0.operation == .put }.sorted { $0.revision < $1.revision }
    }

    /// Whether a text can be a key: `[-/_=.a-zA-Z0-9]`, not starting or ending with a dot.
    public static func isValidKey(_ key: String) -> Bool {
        guard !key.isEmpty, key.utf8.count <= 1024, !key.hasPrefix("."), !key.hasSuffix(".") else { return false }
        return key.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "/"), UInt8(ascii: "_"),
                UInt8(ascii: "="), UInt8(ascii: "."):
                true
            default: false
            }
        }
    }

    /// Whether a text can name a bucket: `[-_a-zA-Z0-9]`, 1 to 64 characters.
    public static func isValidBucket(_ bucket: String) -> Bool {
        (1...64).contains(bucket.utf8.count) && !bucket.contains(".") && isValidKey(bucket) && !bucket.contains("/")
            && !bucket.contains("=")
    }

    // MARK: Plumbing

    private static func validate(bucket: String) throws(NATSError) {
        guard isValidBucket(bucket) else {
            throw NATSError(.invalidArgument, "\"\(bucket)\" is not a bucket name (letters, digits, - and _)")
        }
    }

    private func last(_ key: String) async throws -> Entry? {
        try check(key)
        return try await jetStream.message(stream: stream, .last(on: prefix + key)).flatMap(entry)
    }

    private func write(_ key: String, value: [UInt8], headers: NATSHeaders?) async throws -> UInt64 {
        try check(key)
        return try await jetStream.publish(value, to: prefix + key, headers: headers).sequence
    }

    private func check(_ key: String) throws(NATSError) {
        guard Self.isValidKey(key) else {
            throw NATSError(.invalidArgument, "\"\(key)\" is not a key (letters, digits, -/_=. inside)")
        }
    }

    private func entry(_ message: StoredMessage) -> Entry? {
        guard message.subject.hasPrefix(prefix) else { return nil }
        let key = String(message.subject.dropFirst(prefix.count))
        let operation = message.headers?.values(for: "KV-Operation").first.flatMap(Entry.Operation.init) ?? .put
        return Entry(key: key, value: message.data, revision: message.sequence, operation: operation)
    }
}

extension Duration {
    /// Whole nanoseconds, saturating.
    public var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? .max : sum
    }
}
