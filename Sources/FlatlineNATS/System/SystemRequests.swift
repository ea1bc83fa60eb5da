import Foundation
import NIOCore

/// Requests to every server of a cluster through the system account, the way NATS Surveyor
/// scrapes: one `$SYS.REQ.SERVER.PING.<ENDPOINT>` request, one reply per server.
public enum SystemRequests {
    /// The monitoring endpoints servers answer on the system account.
    public enum Endpoint: String, Sendable, CaseIterable {
        case varz = "VARZ", connz = "CONNZ", jsz = "JSZ", statsz = "STATSZ", healthz = "HEALTHZ", subsz = "SUBSZ"
        case routez = "ROUTEZ", leafz = "LEAFZ", gatewayz = "GATEWAYZ", accountz = "ACCOUNTZ"

        /// The request subject.
        public var subject: String { "$SYS.REQ.SERVER.PING.\(rawValue)" }
    }

    /// Which server answered.
    public struct Server: Decodable, Hashable, Sendable {
        public var name: String
        public var id: String
        public var host: String?
        public var cluster: String?
        public var version: String?
        public var time: String?

        private enum CodingKeys: String, CodingKey { case name, id, host, cluster, version = "ver", time }
    }

    /// One server's reply: its identity and the endpoint's JSON (what HTTP monitoring returns).
    public struct Reply: Sendable {
        public var server: Server
        /// The endpoint's body as JSON bytes, `nil` when the server answered with an error.
        public var data: Data?
        /// The server's error, when it answered with one.
        public var error: String?
    }

    /// Asks every server for `endpoint` and collects the replies that arrive within `timeout`.
    ///
    /// - Parameters:
    ///   - client: a client connected as a system-account user.
    ///   - endpoint: the endpoint.
    ///   - options: the endpoint's options as a JSON object (`{"subscriptions": true}` for
    ///     connz, `{"accounts": true, "streams": true, "consumers": true}` for jsz...).
    ///   - timeout: how long to collect replies.
    ///   - expectedServers: stop early once this many have answered.
    /// - Throws: ``NATSError`` when the request cannot be sent; a malformed reply is reported
    ///   in ``Reply/error`` rather than thrown, so one bad server does not hide the others.
    public static func ping(
        _ client: NATSClient,
        _ endpoint: Endpoint,
        options: [String: any Sendable] = [:],
        timeout: Duration = .seconds(2),
        expectedServers: Int? = nil
    ) async throws -> [Reply] {
        let body = options.isEmpty ? Data() : try JSONSerialization.data(withJSONObject: options)
        let messages = try await client.requestMany(
            [UInt8](body),
            to: endpoint.subject,
            timeout: timeout,
            max: expectedServers
        )
        return messages.map(parse)
    }

    /// A server's reply to a system request (a ping, or one server's `$SYS.REQ.SERVER.<id>.<ENDPOINT>`).
    public static func parse(_ message: NATSMessage) -> Reply {
        let bytes = Data(message.payload.readableBytesView)
        guard let object = try? JSONSerialization.jsonObject(with: bytes) as? [String: Any],
            let serverObject = object["server"],
            let serverData = try? JSONSerialization.data(withJSONObject: serverObject),
            let server = try? JSONDecoder().decode(Server.self, from: serverData)
        else {
            return Reply(server: Server(name: "?", id: "?"), data: nil, error: "malformed reply on \(message.subject)")
        }
        if let error = object["error"] as? [String: Any] {
            return Reply(server: server, data: nil, error: (error["description"] as? String) ?? "\(error)")
        }
        // STATSZ replies carry the body under "statsz", the others under "data".
        let body = object["data"] ?? object["statsz"]
        let data = body.flatMap { try? JSONSerialization.data(withJSONObject: $0) }
        return Reply(server: server, data: data, error: data == nil ? "reply without data" : nil)
    }
}
