import NIOCore

/// A message delivered to a subscription.
public struct NATSMessage: Sendable, Hashable {
    /// The subject it was published to.
    public var subject: String
    /// The subscription it arrived on.
    public var sid: UInt64
    /// Where a reply goes, if the publisher wants one.
    public var replyTo: String?
    /// Headers (`HMSG`), if any.
    public var headers: NATSHeaders?
    /// The payload.
    public var payload: ByteBuffer

    public init(subject: String, sid: UInt64, replyTo: String? = nil, headers: NATSHeaders? = nil, payload: ByteBuffer)
    {
        self.subject = subject
        self.sid = sid
        self.replyTo = replyTo
        self.headers = headers
        self.payload = payload
    }

    /// The payload as bytes.
    public var bytes: [UInt8] { Array(payload.readableBytesView) }

    /// The payload as UTF-8 text.
    public var string: String { String(buffer: payload) }
}

/// What the server sends.
public enum ServerOperation: Sendable, Hashable {
    case info(ServerInfo)
    case message(NATSMessage)
    case ping
    case pong
    case ok
    case error(String)
}
