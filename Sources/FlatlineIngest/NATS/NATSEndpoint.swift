/// A NATS monitoring endpoint Flatline reads, and how.
public enum NATSEndpoint: String, Sendable, Hashable, CaseIterable, Codable {
    case varz, connz, routez, gatewayz, leafz, subsz, jsz, accstatz, accountz, healthz
    /// `/connz?state=closed`: the last closed connections and why they closed.
    case connzClosed = "connz_closed"

    /// The endpoints a NATS target scrapes when its configuration names none: all but `/subsz`
    /// and `/accountz`. `connz_closed` is among them because connection churn and the reason a
    /// client was cut off (a slow consumer) are only there.
    public static let defaults: [NATSEndpoint] = [
        .varz, .connz, .jsz, .accstatz, .healthz, .routez, .leafz, .gatewayz, .connzClosed,
    ]

    /// The HTTP path.
    public var path: String {
        switch self {
        case .connzClosed: "/connz"
        default: "/" + rawValue
        }
    }

    /// Whether Flatline pages through the endpoint with `offset` and `limit`: connections, closed
    /// connections, and for `/jsz` accounts. (`/subsz` pages only its subscription list, which
    /// Flatline does not read; its statistics cover every subscription.)
    public var isPaged: Bool {
        switch self {
        case .connz, .connzClosed, .jsz: true
        default: false
        }
    }

    /// The number of items on a page: connections, or `/jsz` accounts.
    public func pageCount(_ page: JSONPage) -> Int? {
        let d = page.document
        switch self {
        case .connz, .connzClosed: return d.member(page.node, "connections").map { d.childCount($0) }
        case .jsz: return d.member(page.node, "account_details").map { d.childCount($0) }
        default: return nil
        }
    }

    /// The number of items across all pages, as the server reports it.
    /// - Throws: ``ExtractionError`` naming the field when it is no whole number in range.
    public func pageTotal(_ page: JSONPage) throws(ExtractionError) -> Int? {
        let d = page.document
        switch self {
        case .connz, .connzClosed: return try NATSExtractor.wholeNumber(d, page.node, "total", endpoint: self)
        case .jsz: return try NATSExtractor.wholeNumber(d, page.node, "accounts", endpoint: self)
        default: return nil
        }
    }
}
