/// Everything that can go wrong talking to NATS, with the server and the reason.
public struct NATSError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure; extensible without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case protocolViolation, serverError, connectionFailed, connectionClosed, authorization
            case payloadTooLarge, timeout, noResponders, invalidArgument, tls, credentials, jetStream
            case slowConsumer, disconnected
        }
        private var base: Base
        /// The server sent something the protocol does not allow.
        public static let protocolViolation = Code(base: .protocolViolation)
        /// The server sent `-ERR`.
        public static let serverError = Code(base: .serverError)
        /// The TCP (or TLS) connection could not be made.
        public static let connectionFailed = Code(base: .connectionFailed)
        /// The connection is closed, by the client or for good.
        public static let connectionClosed = Code(base: .connectionClosed)
        /// The server refused the credentials.
        public static let authorization = Code(base: .authorization)
        /// A payload larger than the server's `max_payload`.
        public static let payloadTooLarge = Code(base: .payloadTooLarge)
        /// No answer in time.
        public static let timeout = Code(base: .timeout)
        /// A request went to a subject nobody listens on.
        public static let noResponders = Code(base: .noResponders)
        /// A subject, queue group or option the protocol does not allow.
        public static let invalidArgument = Code(base: .invalidArgument)
        /// TLS could not be set up.
        public static let tls = Code(base: .tls)
        /// An NKey seed, a `.creds` file or a signature is unusable.
        public static let credentials = Code(base: .credentials)
        /// The JetStream API answered with an error.
        public static let jetStream = Code(base: .jetStream)
        /// Messages were dropped because a subscriber did not keep up.
        public static let slowConsumer = Code(base: .slowConsumer)
        /// The client is between connections and the publish buffer is full.
        public static let disconnected = Code(base: .disconnected)

        public var description: String {
            switch base {
            case .protocolViolation: "protocol violation"
            case .serverError: "server error"
            case .connectionFailed: "connection failed"
            case .connectionClosed: "connection closed"
            case .authorization: "authorization failed"
            case .payloadTooLarge: "payload too large"
            case .timeout: "timeout"
            case .noResponders: "no responders"
            case .invalidArgument: "invalid argument"
            case .tls: "TLS error"
            case .credentials: "bad credentials"
            case .jetStream: "JetStream API error"
            case .slowConsumer: "slow consumer"
            case .disconnected: "disconnected"
            }
        }
    }

    /// What went wrong.
    public var code: Code
    /// Details an operator can act on.
    public var message: String
    /// The server involved (`host:port`), when there is one.
    public var server: String?
    /// For JetStream API errors: the server's error code and its `err_code`.
    public var apiCode: Int?
    public var apiErrorCode: Int?

    public init(_ code: Code, _ message: String, server: String? = nil, apiCode: Int? = nil, apiErrorCode: Int? = nil) {
        self.code = code
        self.message = message
        self.server = server
        self.apiCode = apiCode
        self.apiErrorCode = apiErrorCode
    }

    public var description: String {
        var text = "\(code): \(message)"
        if let apiCode { text += " (code \(apiCode)\(apiErrorCode.map { ", err_code \($0)" } ?? ""))" }
        if let server { text += " [\(server)]" }
        return text
    }
}
