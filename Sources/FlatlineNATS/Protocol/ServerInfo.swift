/// The server's `INFO`: who it is and what it allows.
public struct ServerInfo: Hashable, Sendable, Codable {
    public var serverID: String
    public var serverName: String?
    public var version: String
    public var host: String?
    public var port: Int?
    public var headers: Bool
    public var maxPayload: Int
    public var proto: Int?
    public var clientID: UInt64?
    public var authRequired: Bool
    public var tlsRequired: Bool
    public var tlsAvailable: Bool
    public var connectURLs: [String]
    public var nonce: String?
    public var cluster: String?
    public var jetStream: Bool
    public var clientIP: String?

    private enum CodingKeys: String, CodingKey {
        case serverID = "server_id", serverName = "server_name", version, host, port, headers
        case maxPayload = "max_payload", proto, clientID = "client_id", authRequired = "auth_required"
        case tlsRequired = "tls_required", tlsAvailable = "tls_available", connectURLs = "connect_urls", nonce
        case cluster, jetStream = "jetstream", clientIP = "client_ip"
    }

    public init(serverID: String, version: String, maxPayload: Int, headers: Bool = true) {
        self.serverID = serverID
        self.version = version
        self.maxPayload = maxPayload
        self.headers = headers
        authRequired = false
        tlsRequired = false
        tlsAvailable = false
        connectURLs = []
        jetStream = false
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        serverID = try c.decode(String.self, forKey: .serverID)
        serverName = try c.decodeIfPresent(String.self, forKey: .serverName)
        version = try c.decodeIfPresent(String.self, forKey: .version) ?? ""
        host = try c.decodeIfPresent(String.self, forKey: .host)
        port = try c.decodeIfPresent(Int.self, forKey: .port)
        headers = try c.decodeIfPresent(Bool.self, forKey: .headers) ?? false
        maxPayload = try c.decodeIfPresent(Int.self, forKey: .maxPayload) ?? 1_048_576
        proto = try c.decodeIfPresent(Int.self, forKey: .proto)
        clientID = try c.decodeIfPresent(UInt64.self, forKey: .clientID)
        authRequired = try c.decodeIfPresent(Bool.self, forKey: .authRequired) ?? false
        tlsRequired = try c.decodeIfPresent(Bool.self, forKey: .tlsRequired) ?? false
        tlsAvailable = try c.decodeIfPresent(Bool.self, forKey: .tlsAvailable) ?? false
        connectURLs = try c.decodeIfPresent([String].self, forKey: .connectURLs) ?? []
        nonce = try c.decodeIfPresent(String.self, forKey: .nonce)
        cluster = try c.decodeIfPresent(String.self, forKey: .cluster)
        jetStream = try c.decodeIfPresent(Bool.self, forKey: .jetStream) ?? false
        clientIP = try c.decodeIfPresent(String.self, forKey: .clientIP)
    }
}

/// The client's `CONNECT`.
struct ConnectOptions: Encodable, Sendable {
    var verbose = false
    var pedantic = false
    var tlsRequired = false
    var name: String?
    var lang = "swift"
    var version = NATSClient.libraryVersion
    var proto = 1
    var echo = true
    var headers = true
    var noResponders = true
    var user: String?
    var pass: String?
    var authToken: String?
    var jwt: String?
    var nkey: String?
    var sig: String?

    private enum CodingKeys: String, CodingKey {
        case verbose, pedantic, tlsRequired = "tls_required", name, lang, version, proto = "protocol", echo
        case headers, noResponders = "no_responders", user, pass, authToken = "auth_token", jwt, nkey, sig
    }
}
