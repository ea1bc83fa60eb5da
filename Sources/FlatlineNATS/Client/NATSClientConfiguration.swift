import Foundation

/// A server to connect to.
public struct NATSServerAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// Whether the URL asked for TLS (`tls://`).
    public var tls: Bool
    /// Credentials in the URL (`nats://user:pass@host`, `nats://token@host`).
    public var user: String?
    public var password: String?

    public init(host: String, port: Int = 4222, tls: Bool = false) {
        self.host = host
        self.port = port
        self.tls = tls
    }

    /// Parses `nats://host:port`, `tls://host`, `host:port` or `host`, with optional
    /// `user:password@` or `token@`.
    /// - Throws: ``NATSError`` with code ``NATSError/Code/invalidArgument`` for a malformed URL.
    public init(url: String) throws(NATSError) {
        var rest = Substring(url.trimmingCharacters(in: " "))
        var tls = false
        if let range = rest.range(of: "://") {
            let scheme = rest[..<range.lowerBound].lowercased()
            switch scheme {
            case "nats": break
            case "tls": tls = true
            default:
                throw NATSError(.invalidArgument, "unsupported scheme \"\(scheme)\" in \(url); use nats:// or tls://")
            }
            rest = rest[range.upperBound...]
        }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                user = String(credentials[..<colon]).removingPercentEncodingIfPossible
                password = String(credentials[credentials.index(after: colon)...]).removingPercentEncodingIfPossible
            } else {
                user = String(credentials).removingPercentEncodingIfPossible
            }
        }
        var host = String(rest)
        var port = 4222
        if host.hasPrefix("[") {  // [::1]:4222
            guard let close = host.firstIndex(of: "]") else {
                throw NATSError(.invalidArgument, "malformed IPv6 address in \(url)")
            }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()) else {
                    throw NATSError(.invalidArgument, "malformed port in \(url)")
                }
                port = p
            }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]) else {
                throw NATSError(.invalidArgument, "malformed port in \(url)")
            }
            port = p
            host = String(host[..<colon])
        }
        guard !host.isEmpty, (1...65535).contains(port) else {
            throw NATSError(.invalidArgument, "\(url) needs a host and a port between 1 and 65535")
        }
        self.host = host
        self.port = port
        self.tls = tls
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// How the client proves who it is.
public enum NATSAuthentication: Sendable {
    /// No credentials (or those in the server URL).
    case none
    /// A user name and password.
    case userPassword(user: String, password: String)
    /// A token.
    case token(String)
    /// An NKey seed: the client signs the server's nonce.
    case nkey(seed: String)
    /// A `.creds` file: a user JWT and its NKey seed.
    case credentials(path: String)
}

/// TLS for the client connection.
public struct NATSTLSOptions: Sendable, Hashable {
    /// A PEM file of certificate authorities to trust, instead of the system's.
    public var caFile: String?
    /// A PEM client certificate, for servers that verify clients.
    public var certificateFile: String?
    /// The client certificate's PEM private key.
    public var keyFile: String?
    /// The name the server's certificate must carry, when it is not the host dialled.
    public var serverName: String?
    /// Accept any server certificate. For tests only.
    public var insecureSkipVerify = false

    public init(
        caFile: String? = nil,
        certificateFile: String? = nil,
        keyFile: String? = nil,
        serverName: String? = nil,
        insecureSkipVerify: Bool = false
    ) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
        self.insecureSkipVerify = insecureSkipVerify
    }
}

/// Everything a ``NATSClient`` needs to know.
public struct NATSClientConfiguration: Sendable {
    /// Servers to try, in order, then round again.
    public var servers: [NATSServerAddress]
    /// The connection name the server shows in `/connz`.
    public var name: String?
    public var authentication: NATSAuthentication = .none
    /// TLS; required when a server URL says `tls://` or the server requires it.
    public var tls: NATSTLSOptions?
    /// How long to wait for TCP, TLS and the server's `INFO`.
    public var connectTimeout: Duration = .seconds(5)
    /// How often to ping the server while idle.
    public var pingInterval: Duration = .seconds(30)
    /// Unanswered pings after which the connection counts as stale and is replaced.
    public var maxPingsOutstanding = 2
    /// Reconnect attempts after a connection is lost (`nil` for no limit).
    public var maxReconnectAttempts: Int? = nil
    /// The first pause between reconnect attempts; it doubles up to ``reconnectDelayMax``.
    public var reconnectDelay: Duration = .milliseconds(100)
    public var reconnectDelayMax: Duration = .seconds(4)
    /// Random spread added to each pause, as a fraction of it, so clients do not reconnect in step.
    public var reconnectJitter = 0.5
    /// Bytes of publishes buffered while disconnected; beyond it publishes are refused and counted.
    public var reconnectBufferBytes = 8 * 1024 * 1024
    /// Bytes buffered towards the server before `publish` waits for the socket (back-pressure).
    public var writeBufferHighWater = 4 * 1024 * 1024
    /// Messages a subscription buffers before it drops (and counts) the newest.
    public var subscriptionBufferMessages = 65_536
    /// The default timeout of ``NATSClient/request(_:to:headers:timeout:)`` and ``NATSClient/flush(timeout:)``.
    public var requestTimeout: Duration = .seconds(5)
    /// Whether this client receives its own publishes on its subscriptions.
    public var echo = true
    /// Whether the client may give up on a server after an authorization error (else it retries).
    public var retryOnAuthorizationError = false

    public init(servers: [NATSServerAddress], name: String? = nil) {
        self.servers = servers
        self.name = name
    }

    /// A configuration from `nats://` URLs.
    public init(urls: [String], name: String? = nil) throws(NATSError) {
        var servers: [NATSServerAddress] = []
        for url in urls { servers.append(try NATSServerAddress(url: url)) }
        guard !servers.isEmpty else { throw NATSError(.invalidArgument, "no server URL given") }
        self.init(servers: servers, name: name)
        if let first = servers.first, let user = first.user {
            authentication = first.password.map { .userPassword(user: user, password: $0) } ?? .token(user)
        }
    }
}

extension String {
    fileprivate func trimmingCharacters(in character: Character) -> String {
        var s = Substring(self)
        while s.first == character { s = s.dropFirst() }
        while s.last == character { s = s.dropLast() }
        return String(s)
    }

    fileprivate var removingPercentEncodingIfPossible: String {
        guard contains("%") else { return self }
        var bytes: [UInt8] = []
        var iterator = utf8.makeIterator()
        while let b = iterator.next() {
            if b == UInt8(ascii: "%"), let h = iterator.next(), let l = iterator.next(),
                let value = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(b)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
