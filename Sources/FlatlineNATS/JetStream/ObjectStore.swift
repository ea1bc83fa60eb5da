import Crypto
import Foundation

/// A JetStream object store bucket: the stream `OBJ_<bucket>`, an object's chunks on
/// `$O.<bucket>.C.<nuid>` and its description on `$O.<bucket>.M.<name in base64url>`, as the
/// NATS clients and the `nats object` command lay it out.
///
/// ``put(_:bytes:)`` writes the chunks, then the description (rolling up the previous one, and
/// only if the previous one is still the last: two writers of one object cannot both win and
/// leave the loser's chunks behind), then purges the previous version's chunks;
/// ``get(_:maxBytes:)`` reads the description and the chunks and checks their size and SHA-256
/// digest. Chunks no description names (a writer that died between its chunks and its
/// description) are found by ``orphanedChunks()`` and removed by ``purgeChunks(_:)``.
public struct ObjectStore: Sendable {
    /// What the store says of an object.
    public struct Info: Codable, Hashable, Sendable {
        public var name: String
        public var bucket: String
        public var nuid: String
        public var size: Int
        public var chunks: Int
        /// `SHA-256=` and the digest in base64url.
        public var digest: String
        /// RFC 3339.
        public var mtime: String?
        public var deleted: Bool?
    }

    public let jetStream: JetStream
    public let bucket: String
    /// Bytes per chunk.
    public var chunkSize = 128 * 1024

    public var stream: String { "OBJ_" + bucket }

    /// The API error of a ``put(_:bytes:)`` that lost to another writer of the same object.
    public static let conflict = KeyValue.wrongRevision

    /// A bucket that exists (see ``create(bucket:replicas:in:)``).
    public init(bucket: String, jetStream: JetStream) throws(NATSError) {
        guard KeyValue.isValidBucket(bucket) else {
            throw NATSError(.invalidArgument, "\"\(bucket)\" is not a bucket name (letters, digits, - and _)")
        }
        self.bucket = bucket
        self.jetStream = jetStream
    }

    /// Makes the bucket (file storage, `replicas` copies), or binds to the existing one.
    public static func create(bucket: String, replicas: Int = 1, in jetStream: JetStream) async throws -> ObjectStore {
        let store = try ObjectStore(bucket: bucket, jetStream: jetStream)
        var stream = StreamConfiguration(name: store.stream, subjects: ["$O.\(bucket).C.>", "$O.\(bucket).M.>"])
        stream.storage = .file
        stream.replicas = replicas
        stream.allowRollup = true
        stream.allowDirect = true
        do {
            try await jetStream.createStream(stream)
        } catch let error as NATSError where error.apiErrorCode == 10058 {
            // It exists with other settings: used as it is.
            _ = try await jetStream.streamInfo(store.stream)
        }
        return store
    }

    /// Stores `bytes` as `name`, replacing what was there.
    /// - Throws: ``NATSError`` with `apiErrorCode` ``conflict`` when another writer replaced the
    ///   object while this one wrote its chunks (its version stays; this one's chunks are purged).
    @discardableResult
    public func put(_ name: String, bytes: [UInt8]) async throws -> Info {
        guard !name.isEmpty, name.utf8.count <= 1024 else {
            throw NATSError(.invalidArgument, "an object name is 1 to 1024 bytes")
        }
        let last = try await described(name)
        let previous = last?.info
        let nuid = NATSClient.randomToken(22)
        let chunkSubject = "$O.\(bucket).C.\(nuid)"
        var chunks = 0
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + max(1, chunkSize))
            try await jetStream.publish(bytes[offset..<end], to: chunkSubject)
            chunks += 1
            offset = end
        }
        let info = Info(
            name: name,
            bucket: bucket,
            nuid: nuid,
            size: bytes.count,
            chunks: chunks,
            digest: Self.digest(bytes),
            mtime: Date().formatted(.iso8601),
            deleted: nil
        )
        var headers = NATSHeaders()
        headers.set("sub", for: "Nats-Rollup")
        headers.set(String(last?.sequence ?? 0), for: "Nats-Expected-Last-Subject-Sequence")
        do {
            try await jetStream.publish(Array(try JSONEncoder().encode(info)), to: metaSubject(name), headers: headers)
        } catch {
            // The description never landed (or another writer's did first): the new chunks are
            // garbage.
            _ = try? await jetStream.purge(stream: stream, subject: chunkSubject)
            throw error
        }
        if let previous, previous.nuid != nuid {
            try await jetStream.purge(stream: stream, subject: "$O.\(bucket).C.\(previous.nuid)")
        }
        return info
    }

    /// The object's description; `nil` when there is none (or it was deleted).
    public func info(_ name: String) async throws -> Info? {
        try await described(name)?.info
    }

    /// The last description message of `name`: its sequence, and what it describes unless that
    /// was deleted.
    private func described(_ name: String) async throws -> (info: Info?, sequence: UInt64)? {
        guard let message = try await jetStream.message(stream: stream, .last(on: metaSubject(name))) else {
            return nil
        }
        let info: Info
        do {
            info = try JSONDecoder().decode(Info.self, from: Data(message.data))
        } catch {
            throw NATSError(.protocolViolation, "object \(name) in \(bucket): unreadable description: \(error)")
        }
        return (info.deleted == true ? nil : info, message.sequence)
    }

    /// The chunk subjects (`$O.<bucket>.C.<nuid>`) that no description names: left by writers
    /// that died between their chunks and their description, or still being written (a caller
    /// purges only what stays orphaned for a while). At most `limit` chunk subjects are looked at.
    public func orphanedChunks(limit: Int = 100_000) async throws -> Set<String> {
        let chunks = try await jetStream.subjects(stream: stream, filter: "$O.\(bucket).C.>", limit: limit)
        let named = Set(try await list().map { "$O.\(bucket).C.\($0.nuid)" })
        return Set(chunks.keys).subtracting(named)
    }

    /// Removes the messages of these chunk subjects.
    /// - Returns: how many messages were removed.
    @discardableResult
    public func purgeChunks(_ subjects: some Sequence<String>) async throws -> Int {
        var purged = 0
        for subject in subjects where subject.hasPrefix("$O.\(bucket).C.") {
            purged += try await jetStream.purge(stream: stream, subject: subject)
        }
        return purged
    }

    /// The object's bytes; `nil` when there is none.
    /// - Throws: ``NATSError`` when it is larger than `maxBytes`, or its chunks do not add up to
    ///   its size and digest.
    public func get(_ name: String, maxBytes: Int = 1 << 30) async throws -> (info: Info, bytes: [UInt8])? {
        guard let info = try await info(name) else { return nil }
        guard info.size >= 0, info.size <= maxBytes, info.chunks >= 0 else {
            throw NATSError(.invalidArgument, "object \(name) in \(bucket): \(info.size) bytes, more than \(maxBytes)")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(info.size)
        let subject = "$O.\(bucket).C.\(info.nuid)"
        var sequence: UInt64 = 1
        for _ in 0..<info.chunks {
            guard let chunk = try await jetStream.message(stream: stream, .next(on: subject, from: sequence)) else {
                break
            }
            bytes += chunk.data
            guard bytes.count <= info.size else { break }
            guard chunk.sequence < UInt64.max else { break }
            sequence = chunk.sequence + 1
        }
        guard bytes.count == info.size, Self.digest(bytes) == info.digest else {
            throw NATSError(
                .protocolViolation,
                "object \(name) in \(bucket): its chunks (\(bytes.count) bytes) do not match its size (\(info.size)) and digest"
            )
        }
        return (info, bytes)
    }

    /// The descriptions of every object, at most `limit`.
    public func list(limit: Int = 1_000_000) async throws -> [Info] {
        var out: [String: Info] = [:]
        var sequence: UInt64 = 1
        var read = 0
        while let message = try await jetStream.message(stream: stream, .next(on: "$O.\(bucket).M.>", from: sequence)) {
            read += 1
            guard read <= limit else {
                throw NATSError(.invalidArgument, "object store \(bucket): more than \(limit) objects to read")
            }
            if let info = try? JSONDecoder().decode(Info.self, from: Data(message.data)) { out[info.name] = info }
            guard message.sequence < UInt64.max else { break }
            sequence = message.sequence + 1
        }
        return out.values.filter { $0.deleted != true }.sorted { $0.name < $1.name }
    }

    /// Deletes an object: a description that says so replaces its own, and its chunks are purged.
    public func delete(_ name: String) async throws {
        guard var info = try await info(name) else { return }
        let chunks = info.nuid
        info.deleted = true
        info.size = 0
        info.chunks = 0
        info.digest = Self.digest([])
        info.mtime = Date().formatted(.iso8601)
        var headers = NATSHeaders()
        headers.set("sub", for: "Nats-Rollup")
        try await jetStream.publish(Array(try JSONEncoder().encode(info)), to: metaSubject(name), headers: headers)
        try await jetStream.purge(stream: stream, subject: "$O.\(bucket).C.\(chunks)")
    }

    private func metaSubject(_ name: String) -> String {
        let encoded = Data(name.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
        return "$O.\(bucket).M.\(encoded)"
    }

    static func digest(_ bytes: [UInt8]) -> String {
        let hash = Data(SHA256.hash(data: bytes)).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
        return "SHA-256=" + hash
    }
}
