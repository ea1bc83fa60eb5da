import FlatlineCore

/// One page of a NATS monitoring body: the parsed document and the body's node in it (the root
/// for a scrape, the `"body"` member for a recorded line).
public struct JSONPage: Sendable {
    public var document: JSONDocument
    public var node: Int

    public init(document: JSONDocument, node: Int? = nil) {
        self.document = document
        self.node = node ?? document.root
    }
}

/// How the NATS extractor shapes series.
public struct NATSExtractionOptions: Sendable, Hashable {
    /// Per-connection series (labels `cid`, `client_name`, `client_group`) besides the per-group
    /// ones. Off for servers with very many short-lived connections.
    public var perConnection = true
    /// Streams and consumers only from the server that leads them (replicated assets report stale
    /// numbers on followers).
    public var leaderOnly = true

    public init(perConnection: Bool = true, leaderOnly: Bool = true) {
        self.perConnection = perConnection
        self.leaderOnly = leaderOnly
    }
}

/// A body the extractor cannot read: JSON of the wrong shape.
public struct ExtractionError: Error, Hashable, Sendable, CustomStringConvertible {
    public var endpoint: String
    public var reason: String

    public init(endpoint: String, reason: String) {
        self.endpoint = endpoint.truncated(64)
        self.reason = reason.truncated()
    }

    public var description: String { "/\(endpoint): \(reason)" }
}

/// Turns NATS monitoring bodies of one target into samples.
///
/// Names follow the prometheus-nats-exporter (`gnatsd_varz_in_msgs`,
/// `jetstream_consumer_num_pending`...), so rules and dashboards carry over; what the exporter
/// lacks is named `flatline_nats_*`. Series carry the target's labels (`job`, `instance` and the
/// configured ones), `server_name` and `cluster` when the server has them, and the labels of what
/// they describe (`account`, `stream`, `consumer`, `cid`, `client_name`, `client_group`, `route`,
/// `leaf`, `gateway`). The server id is on `flatline_nats_server_info` only: it changes at every
/// restart, and a series that changed its name at every restart would lose its history.
///
/// The extractor remembers what it needs from one body to the next, one instance per target:
/// the server's id and start time per endpoint (a change means counters restarted), the
/// connections of the last `/connz` (to carry group counters across connections that come and
/// go), and the closed connections already counted.
public struct NATSExtractor: Sendable {
    /// The target's own labels (`job`, `instance`, static labels).
    public let targetLabels: [Label]
    public var options: NATSExtractionOptions

    private(set) var serverName: String?
    private(set) var cluster: String?
    private var serverStart: Timestamp?
    private var lastServerID: [NATSEndpoint: String] = [:]
    private var lastBodyTime: [NATSEndpoint: Timestamp] = [:]
    private(set) var base: [Label]
    var groups = ClientGroupTotals()
    var closedSeen: Set<Int> = []
    var closedTotals: [String: Double] = [:]
    /// Closed connections by client group, then by reason ("" for all reasons).
    var closedByGroup: [String: [String: Double]] = [:]
    var closedPrimed = false
    /// Connections the server cut off as slow consumers, by client group: from the closed
    /// connections' reasons when `/connz?state=closed` is read, else from `/varz`
    /// `slow_consumers` rises attributed to the connections that left `/connz` meanwhile.
    var slowCutoffs: [String: Double] = [:]
    /// `/varz` `slow_consumers` as last read, and as it was at the last `/connz`.
    var slowConsumers: Double?
    var slowConsumersAtConnz: Double?
    /// Connections already counted in ``slowCutoffs`` (by a disconnect event or a scrape), so
    /// the other path does not count them again.
    var slowCutoffCids: Set<Int> = []
    /// Cut-offs counted from disconnect events whose `/varz` `slow_consumers` rise has not been
    /// seen yet: a rise they explain is not attributed again.
    var eventCredit: Double = 0
    /// The connections of the last `/connz`: their labels, counts and the bytes pending for them.
    var connzMemory = ConnzMemory()
    /// Samples not given since the last ``takeDrops()``, by reason.
    private var drops = DropCounts()

    /// - Parameter targetLabels: labels every series of the target carries; names must be valid.
    public init(targetLabels: [String: String], options: NATSExtractionOptions = NATSExtractionOptions()) {
        self.targetLabels = targetLabels.map { Label(name: $0.key, value: $0.value) }
            .sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        self.options = options
        base = self.targetLabels
    }

    /// The samples of one scrape of `endpoint`: a body, or for paged endpoints every page.
    ///
    /// - Parameters:
    ///   - endpoint: what was scraped.
    ///   - pages: the body, or the pages in order.
    ///   - scrapeTime: when the scrape was sent; used when the body has no `now`.
    /// - Throws: ``ExtractionError`` when a body is not the JSON object the endpoint returns.
    public mutating func extract(
        _ endpoint: NATSEndpoint,
        pages: [JSONPage],
        scrapeTime: Timestamp
    ) throws(ExtractionError) -> [Sample] {
        guard let first = pages.first else { return [] }
        for page in pages where page.document.kind(page.node) != .object {
            throw ExtractionError(
                endpoint: endpoint.rawValue,
                reason: "expected a JSON object, got \(page.document.kind(page.node))"
            )
        }
        let d = first.document
        let body = first.node
        // The body's own time; one that is no representable time drops the body's samples.
        var time = scrapeTime
        var timeIsValid = true
        switch Self.time(d, d.member(body, "now")) {
        case .absent: break
        case .invalid: timeIsValid = false
        case .time(let now): time = now
        }
        learnServer(endpoint, first)

        var reset = false
        if let id = d.string(body, "server_id") {
            if let previous = lastServerID[endpoint], previous != id { reset = true }
            lastServerID[endpoint] = id
        }
        if endpoint == .varz, case .time(let start) = Self.time(d, d.member(body, "start")) {
            if let serverStart, serverStart != start { reset = true }
            serverStart = start
        }
        // A body of an endpoint last read before the server's current start counts from zero,
        // even one (like `/subsz`) that carries no server id.
        if let previous = lastBodyTime[endpoint], let serverStart, previous < serverStart { reset = true }
        if timeIsValid { lastBodyTime[endpoint] = time }

        if reset {
            slowConsumers = nil
            slowConsumersAtConnz = nil
            connzMemory.attributable = false
            slowCutoffCids = []
            eventCredit = 0
        }
        if endpoint == .varz, let count = d.number(body, "slow_consumers"), count.isFinite { slowConsumers = count }
        var out = SampleBuilder(time: time, base: base, counterReset: reset)
        switch endpoint {
        case .varz: extractVarz(first, into: &out)
        case .connz: try extractConnz(pages, restarted: reset, into: &out)
        case .connzClosed: try extractClosed(pages, restarted: reset, into: &out)
        case .jsz: extractJsz(pages, time: time, into: &out)
        case .subsz: extractSubsz(first, into: &out)
        case .accstatz: extractAccstatz(first, into: &out)
        case .accountz: extractAccountz(first, into: &out)
        case .healthz: extractHealthz(first, into: &out)
        case .routez: extractRoutez(first, into: &out)
        case .leafz: try extractLeafz(first, into: &out)
        case .gatewayz: try extractGatewayz(first, into: &out)
        }
        guard timeIsValid else {
            drops.add(.invalidTimestamp, count: out.samples.count + out.dropped.total)
            return []
        }
        drops.add(out.dropped)
        return out.samples
    }

    /// Samples the extractor could not give since the last call, by reason; resets the count.
    public mutating func takeDrops() -> DropCounts {
        defer { drops = DropCounts() }
        return drops
    }

    /// Samples for a scrape that failed: none from the body; the scraper's own `up` says it.
    /// Server name and cluster come from whichever body has them (`/varz` always does).
    private mutating func learnServer(_ endpoint: NATSEndpoint, _ page: JSONPage) {
        let d = page.document
        var name = serverName
        var clusterName = cluster
        let id = d.string(page.node, "server_id")
        if let n = d.string(page.node, "server_name"), !n.isEmpty {
            // A server without a configured name reports its id as its name: that is no name.
            name = n == id ? nil : n
        }
        if endpoint == .varz {
            clusterName = d.member(page.node, "cluster", "name").flatMap { d.string($0) }
            if clusterName?.isEmpty == true { clusterName = nil }
        }
        guard name != serverName || clusterName != cluster else { return }
        serverName = name
        cluster = clusterName
        var extra: [Label] = []
        if let clusterName { extra.append(Label(name: "cluster", value: clusterName)) }
        if let name { extra.append(Label(name: "server_name", value: name)) }
        let own = extra.filter { label in !targetLabels.contains { $0.name == label.name } }
        base = SampleBuilder.merge(targetLabels, own)
    }

    /// Labels of a consumer or stream, or `nil` when this server does not lead it.
    func leads(_ d: JSONDocument, _ node: Int) -> Bool {
        guard options.leaderOnly, let leader = d.member(node, "cluster", "leader").flatMap({ d.string($0) }),
            !leader.isEmpty
        else { return true }
        guard let serverName else { return true }
        return leader == serverName
    }
}

extension SampleBuilder {
    /// Adds member `key` of `node` when it is a number and not a "no limit" sentinel.
    mutating func field(
        _ d: JSONDocument,
        _ node: Int,
        _ key: StaticString,
        _ name: String,
        _ kind: MetricKind,
        labels: [Label]? = nil
    ) {
        guard let value = d.number(node, key), !NATSExtractor.isUnlimited(value) else { return }
        add(name, value, kind, labels: labels ?? base)
    }
}

extension NATSExtractor {
    /// NATS writes "no limit" as a negative number or as 2⁶⁴−1.
    static func isUnlimited(_ value: Double) -> Bool { value < 0 || value >= 1.8e19 }

    /// What a time field of a body holds.
    enum TimeField {
        /// No such member, or not a string.
        case absent
        /// A string that is no representable time: RFC 3339 out of range, `"1e19"`.
        case invalid
        case time(Timestamp)
    }

    /// The time in string node `node` (RFC 3339, or Unix seconds as NATS test servers write).
    static func time(_ d: JSONDocument, _ node: Int?) -> TimeField {
        guard let node, let text = d.string(node) else { return .absent }
        guard let time = NumberText.parseTimestamp(text) else { return .invalid }
        return .time(time)
    }

    /// Member `key` of `node` as a whole number: `nil` when absent or not a number.
    /// - Throws: ``ExtractionError`` naming the field when the number is no whole number within
    ///   range (`1e20`, `-1e19`, `1.5`): counts and ids from outside are checked, never trapped on.
    static func wholeNumber(
        _ d: JSONDocument,
        _ node: Int,
        _ key: StaticString,
        endpoint: NATSEndpoint
    ) throws(ExtractionError) -> Int? {
        guard let value = d.number(node, key) else { return nil }
        guard let whole = Int(exactly: value) else {
            throw ExtractionError(
                endpoint: endpoint.rawValue,
                reason: "\"\(key)\" is \(value), not a whole number in range"
            )
        }
        return whole
    }
}
