import Foundation
import NIOCore

/// The JetStream API over a ``NATSClient``: JSON requests on `$JS.API.*`.
///
/// API errors become ``NATSError`` with code ``NATSError/Code/jetStream``, carrying the server's
/// `code`, `err_code` and description.
public struct JetStream: Sendable {
    public let client: NATSClient
    /// The API prefix (`$JS.API`; a domain or account export changes it).
    public let prefix: String
    /// The timeout of each API request.
    public var timeout: Duration

    public init(client: NATSClient, prefix: String = "$JS.API", timeout: Duration = .seconds(5)) {
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
    }

    // MARK: Streams

    /// Creates a stream (or returns the existing one when its configuration matches).
    @discardableResult
    public func createStream(_ configuration: StreamConfiguration) async throws -> StreamInfo {
        try await call("STREAM.CREATE.\(configuration.name)", body: configuration)
    }

    /// Changes a stream's configuration (limits, ages; not its name or storage).
    @discardableResult
    public func updateStream(_ configuration: StreamConfiguration) async throws -> StreamInfo {
        try await call("STREAM.UPDATE.\(configuration.name)", body: configuration)
    }

    /// One stored message: by sequence, the last on a subject, or the first at or after a
    /// sequence on a subject (wildcards allowed); `nil` when there is none.
    public func message(stream: String, _ query: MessageQuery) async throws -> StoredMessage? {
        struct Response: Decodable { var message: StoredMessage }
        do {
            let response: Response = try await call("STREAM.MSG.GET.\(stream)", body: query)
            return response.message
        } catch let error as NATSError where error.apiErrorCode == 10037 {
            // "no message found"
            return nil
        }
    }

    /// Removes a stream's messages on `subject` (wildcards allowed).
    /// - Returns: how many were removed.
    @discardableResult
    public func purge(stream: String, subject: String) async throws -> Int {
        struct Request: Encodable { var filter: String }
        struct Response: Decodable { var success: Bool; var purged: Int? }
        let response: Response = try await call("STREAM.PURGE.\(stream)", body: Request(filter: subject))
        return response.purged ?? 0
    }

    /// A stream's configuration and state.
    public func streamInfo(_ name: String) async throws -> StreamInfo {
        try await call("STREAM.INFO.\(name)", body: Empty?.none)
    }

    /// The subjects of a stream's messages matching `filter` (wildcards allowed) and how many
    /// messages each has, at most `limit` subjects.
    /// - Throws: ``NATSError`` when more than `limit` match.
    public func subjects(stream: String, filter: String, limit: Int = 100_000) async throws -> [String: Int] {
        struct Request: Encodable {
            var subjectsFilter: String
            var offset: Int
            enum CodingKeys: String, CodingKey { case subjectsFilter = "subjects_filter", offset }
        }
        struct Response: Decodable {
            struct State: Decodable {
                var subjects: [String: Int]?
                var numSubjects: Int?
                enum CodingKeys: String, CodingKey { case subjects, numSubjects = "num_subjects" }
            }
            var state: State
            var total: Int?
        }
        var out: [String: Int] = [:]
        // The server answers in pages (of up to 100,000 subjects).
        for _ in 0..<1000 {
            let response: Response = try await call(
                "STREAM.INFO.\(stream)",
                body: Request(subjectsFilter: filter, offset: out.count)
            )
            let page = response.state.subjects ?? [:]
            out.merge(page) { _, new in new }
            guard out.count <= limit else {
                throw NATSError(.invalidArgument, "stream \(stream): more than \(limit) subjects match \(filter)")
            }
            let total = response.total ?? out.count
            if page.isEmpty || out.count >= total { break }
        }
        return out
    }

    /// Deletes a stream and its messages.
    public func deleteStream(_ name: String) async throws {
        let _: Success = try await call("STREAM.DELETE.\(name)", body: Empty?.none)
    }

    // MARK: Consumers

    /// Creates a consumer on `stream` (durable when the configuration names one).
    @discardableResult
    public func createConsumer(stream: String, _ configuration: ConsumerConfiguration) async throws -> ConsumerInfo {
        struct Request: Encodable {
            var streamName: String
            var config: ConsumerConfiguration
            private enum CodingKeys: String, CodingKey { case streamName = "stream_name", config }
        }
        let subject =
            configuration.durableName.map { "CONSUMER.CREATE.\(stream).\($0)" } ?? "CONSUMER.CREATE.\(stream)"
        return try await call(subject, body: Request(streamName: stream, config: configuration))
    }

    /// A consumer's configuration and progress.
    public func consumerInfo(stream: String, consumer: String) async throws -> ConsumerInfo {
        try await call("CONSUMER.INFO.\(stream).\(consumer)", body: Empty?.none)
    }

    /// Deletes a consumer.
    public func deleteConsumer(stream: String, consumer: String) async throws {
        let _: Success = try await call("CONSUMER.DELETE.\(stream).\(consumer)", body: Empty?.none)
    }

    // MARK: Publishing and pulling

    /// Publishes to a stream's subject and waits for the stream's acknowledgement.
    @discardableResult
    public func publish(_ payload: some Collection<UInt8> & Sendable, to subject: String, headers: NATSHeaders? = nil)
        async throws -> PublishAck
    {
        let reply = try await client.request(payload, to: subject, headers: headers, timeout: timeout)
        return try decode(PublishAck.self, from: reply, api: subject)
    }

    /// Pulls up to `batch` messages from a durable pull consumer, waiting at most `expires` for
    /// them; returns what arrived (possibly none).
    public func fetch(stream: String, consumer: String, batch: Int, expires: Duration = .seconds(1)) async throws
        -> [JetStreamMessage]
    {
        struct PullRequest: Encodable {
            var batch: Int
            var expires: Int64
        }
        let inbox = "_INBOX." + NATSClient.randomToken(22)
        let subscription = try client.subscribe(to: inbox)
        defer { try? subscription.unsubscribe() }
        let body = try JSONEncoder().encode(PullRequest(batch: batch, expires: expires.wholeNanoseconds))
        try await client.publish([UInt8](body), to: "\(prefix).CONSUMER.MSG.NEXT.\(stream).\(consumer)", replyTo: inbox)
        // The timer ends the subscription, which ends the collector with what it has: messages
        // received are never dropped (they would come back only after the ack wait).
        return try await withThrowingTaskGroup(of: [JetStreamMessage]?.self) { group in
            group.addTask {
                var messages: [JetStreamMessage] = []
                for await message in subscription {
                    if let status = message.headers?.status {
                        // 404 no messages, 408 request expired, 409 consumer changed: the pull is over.
                        if status == 404 || status == 408 || status == 409 { break }
                        continue
                    }
                    messages.append(JetStreamMessage(message: message, client: client))
                    if messages.count >= batch { break }
                }
                return messages
            }
            group.addTask {
                try? await Task.sleep(for: expires + .milliseconds(500))
                try? subscription.unsubscribe()
                return nil
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let messages = result { return messages }
            }
            return []
        }
    }

    // MARK: Plumbing

    private struct Empty: Encodable {}
    private struct Success: Decodable { var success: Bool }

    func call<Body: Encodable, Response: Decodable>(_ api: String, body: Body?) async throws -> Response {
        let payload: [UInt8]
        if let body {
            payload = [UInt8](try JSONEncoder().encode(body))
        } else {
            payload = []
        }
        let subject = "\(prefix).\(api)"
        let reply: NATSMessage
        do {
            reply = try await client.request(payload, to: subject, timeout: timeout)
        } catch let error as NATSError where error.code == .noResponders {
            throw NATSError(
                .jetStream,
                "JetStream is not enabled for this account (no responders on \(subject))",
                server: error.server
            )
        }
        return try decode(Response.self, from: reply, api: subject)
    }

    private func decode<Response: Decodable>(_ type: Response.Type, from reply: NATSMessage, api: String) throws
        -> Response
    {
        let data = Data(reply.payload.readableBytesView)
        if let failure = try? JSONDecoder().decode(APIErrorBody.self, from: data), let detail = failure.error {
            throw NATSError(
                .jetStream,
                "\(api): \(detail.description ?? "error")",
                apiCode: detail.code,
                apiErrorCode: detail.errCode
            )
        }
        do {
            return try JSONDecoder().decode(Response.self, from: data)
        } catch {
            throw NATSError(.protocolViolation, "\(api): unexpected response: \(error)")
        }
    }
}

/// A message delivered by a JetStream consumer, with its acknowledgements.
public struct JetStreamMessage: Sendable {
    public let message: NATSMessage
    let client: NATSClient

    /// The stream and consumer sequence numbers and the delivery count, from the reply subject
    /// (`$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>`).
    public var metadata:
        (stream: String, consumer: String, delivered: Int, streamSequence: UInt64, consumerSequence: UInt64)?
    {
        guard let reply = message.replyTo else { return nil }
        let parts = reply.split(separator: ".")
        // With a domain the subject has two more tokens; the last seven are always these.
        guard parts.count >= 9, parts[0] == "$JS", parts[1] == "ACK" else { return nil }
        let tail = parts.suffix(7)
        let fields = Array(tail)
        guard let delivered = Int(fields[2]), let sseq = UInt64(fields[3]), let cseq = UInt64(fields[4]) else {
            return nil
        }
        return (String(fields[0]), String(fields[1]), delivered, sseq, cseq)
    }

    /// Acknowledges the message.
    public func ack() async throws { try await reply("+ACK") }
    /// Asks for redelivery now.
    public func nak() async throws { try await reply("-NAK") }
    /// Asks for redelivery after `delay`.
    public func nak(delay: Duration) async throws {
        try await reply("-NAK {\"delay\": \(max(0, delay.wholeNanoseconds))}")
    }
    /// Stops redelivery for good.
    public func term() async throws { try await reply("+TERM") }
    /// Says the message is still being worked on, resetting its ack timer.
    public func inProgress() async throws { try await reply("+WPI") }

    private func reply(_ text: String) async throws {
        guard let subject = message.replyTo else {
            throw NATSError(.invalidArgument, "the message on \(message.subject) has no reply subject to acknowledge")
        }
        try await client.publish(Array(text.utf8), to: subject)
    }
}
