/// A NATS monitoring endpoint Flatline reads, and how.
public enum NATSEndpoint: String, Sendable, Hashable, CaseIterable, Codable {
    case varz, connz, routez, gatewayz, leafz, subsz, jsz, accstatz, accountz, healthz
    /// `/connz?state=closed`: the last closed connections and why they closed.
    case connzClosed = "connz_closed"

    /// The endpoints a NATS target scrapes when its configuration names none.
    public static let defaults: [NATSEndpoint] = [.varz, .connz, .jsz, .accstatz, .healthz, .routez, .leafz, .gatewayz]

    /// The HTTP path.
    public var path: String {
        switch self {
        case .connzClosed: "/connz"
        default: "/" + rawValue
        }
    }

    /// Whether the endpoint pages with `offset` and `limit` (over connections, subscriptions, or
    /// for `/jsz` over accounts).
    public var isPaged: Bool {
        switch self {
        case .connz, .connzClosed, .subsz, .jsz: true
        default: false
        }
    }

    /// The member that holds a page's items, for counting them.
    var pageItems: StaticString? {
        switch self {
        case .connz, .connzClosed: "connections"
        case .subsz: "subscriptions_list"
        case .jsz: "account_details"
        default: nil
        }
    }
}
