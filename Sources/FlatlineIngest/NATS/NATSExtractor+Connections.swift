import FlatlineCore

/// `/connz`: per connection and per client group; `/connz?state=closed`: why connections closed.
extension NATSExtractor {
    /// The group a client belongs to, from its connection name: the name without up to two
    /// trailing instance parts: a number (`orders-worker-3` → `orders-worker`) or an id of five
    /// or more lowercase letters and digits with a digit in it (`api.7f3a9c21` → `api`, the
    /// pod name `orders-7d9f8b6c5d-x2k4p` → `orders`). Replicas of one service, and a client that
    /// reconnects under a new `cid`, share a group. Unnamed connections are the group `unnamed`.
    /// `relabel_configs` can derive groups any other way.
    public static func clientGroup(forName name: String) -> String {
        guard !name.isEmpty else { return "unnamed" }
        // On the UTF-8 bytes: separators, digits and lowercase letters are ASCII, which never
        // occur inside a multi-byte character, so this cuts where the scalars would.
        func isSeparator(_ b: UInt8) -> Bool {
            b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".") || b == UInt8(ascii: ":")
                || b == UInt8(ascii: "/")
        }
        func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
        func isLowerAlnum(_ b: UInt8) -> Bool { isDigit(b) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) }
        var text = name
        let cut: String? = text.withUTF8 { bytes in
            var end = bytes.count
            for _ in 0..<2 {
                var cut = end - 1
                while cut >= 0 && !isSeparator(bytes[cut]) { cut -= 1 }
                guard cut > 0 else { break }
                let tail = bytes[(cut + 1)..<end]
                let numeric = !tail.isEmpty && tail.allSatisfy(isDigit)
                let id = tail.count >= 5 && tail.allSatisfy(isLowerAlnum) && tail.contains(where: isDigit)
                guard numeric || id else { break }
                end = cut
            }
            return end == bytes.count
                ? nil : String(decoding: UnsafeBufferPointer(rebasing: bytes[..<end]), as: UTF8.self)
        }
        return cut ?? name
    }

    /// The members of a `/connz` connection that extraction reads, in ``connzKeys``'s order.
    enum ConnzKey: Int {
        case cid, name, account, pendingBytes, subscriptions, inMsgs, outMsgs, inBytes, outBytes, stalls, rtt, idle
    }

    static let connzKeys = JSONKeyTable([
        "cid", "name", "account", "pending_bytes", "subscriptions", "in_msgs", "out_msgs", "in_bytes", "out_bytes",
        "stalls", "rtt", "idle",
    ])

    /// A connection's counters and the series they become.
    static let connzCounters: [(ConnzKey, String)] = [
        (.inMsgs, "gnatsd_connz_in_msgs"), (.outMsgs, "gnatsd_connz_out_msgs"), (.inBytes, "gnatsd_connz_in_bytes"),
        (.outBytes, "gnatsd_connz_out_bytes"), (.stalls, "gnatsd_connz_stalls"),
    ]

    mutating func extractConnz(_ pages: [JSONPage], restarted: Bool, into out: inout SampleBuilder)
        throws(ExtractionError)
    {
        var seen = Set<Int>()
        var entries = 0
        var total = 0.0
        var now: [Int: ClientGroupTotals.Connection] = [:]
        var connections: [Int: (group: String, pending: Double)] = [:]
        var gauges: [String: (connections: Double, pending: Double, maxPending: Double, subscriptions: Double)] = [:]
        var fields: [Int] = []
        for page in pages {
            let d = page.document
            let list = d.member(page.node, "connections")
            guard let list, d.kind(list) == .array || d.kind(list) == .null else {
                throw ExtractionError(endpoint: "connz", reason: "no \"connections\" list")
            }
            total = max(total, Double(try Self.wholeNumber(d, page.node, "total", endpoint: .connz) ?? 0))
            for connection in d.elements(list) {
                // One pass over the connection's members for every field read below.
                d.members(connection, in: Self.connzKeys, into: &fields)
                func number(_ key: ConnzKey) -> Double? {
                    let node = fields[key.rawValue]
                    return node < 0 ? nil : d.number(node)
                }
                func string(_ key: ConnzKey) -> String? {
                    let node = fields[key.rawValue]
                    return node < 0 ? nil : d.string(node)
                }
                func duration(_ key: ConnzKey) -> Double? {
                    let node = fields[key.rawValue]
                    guard node >= 0 else { return nil }
                    return d.withUnescapedString(node) { GoDuration.seconds(utf8: $0) }
                        ?? d.string(node).flatMap { GoDuration.seconds($0) }
                }
                guard let cidValue = number(.cid) else { continue }
                guard let cid = Int(exactly: cidValue) else {
                    throw ExtractionError(
                        endpoint: "connz",
                        reason: "\"cid\" is \(cidValue), not a whole number in range"
                    )
                }
                // A connection that moved between pages while we paged is counted once.
                guard seen.insert(cid).inserted else { continue }
                entries += 1
                let name = string(.name) ?? ""
                let group = Self.clientGroup(forName: name)
                let pending = number(.pendingBytes) ?? 0
                let subscriptions = number(.subscriptions) ?? 0
                var g = gauges[group] ?? (0, 0, 0, 0)
                g.connections += 1
                g.pending += pending
                g.maxPending = max(g.maxPending, pending)
                g.subscriptions += subscriptions
                gauges[group] = g
                connections[cid] = (group, pending)
                now[cid] = ClientGroupTotals.Connection(
                    group: group,
                    counts: [
                        number(.inMsgs) ?? 0, number(.outMsgs) ?? 0, number(.inBytes) ?? 0, number(.outBytes) ?? 0,
                    ]
                )
                guard options.perConnection else { continue }
                let labels = out.labels([
                    ("cid", String(cid)), ("client_name", name), ("client_group", group),
                    ("account", string(.account) ?? ""),
                ])
                out.add("gnatsd_connz_pending_bytes", pending, .gauge, labels: labels)
                out.add("gnatsd_connz_subscriptions", subscriptions, .gauge, labels: labels)
                for (key, metric) in Self.connzCounters {
                    guard let value = number(key), !NATSExtractor.isUnlimited(value) else { continue }
                    out.add(metric, value, .counter, labels: labels)
                }
                if let rtt = duration(.rtt) {
                    out.add("flatline_nats_connection_rtt_seconds", rtt, .gauge, labels: labels)
                }
                if let idle = duration(.idle) {
                    out.add("flatline_nats_connection_idle_seconds", idle, .gauge, labels: labels)
                }
            }
        }
        attributeSlowConsumers(connections)
        addSlowCutoffs(into: &out)
        out.add("gnatsd_connz_total", max(total, Double(entries)), .gauge)
        out.add("gnatsd_connz_num_connections", Double(entries), .gauge)

        groups.observe(now, restarted: restarted)
        for group in gauges.keys.sorted() {
            guard let g = gauges[group] else { continue }
            let labels = out.labels([("client_group", group)])
            out.add("flatline_nats_client_group_connections", g.connections, .gauge, labels: labels)
            out.add("flatline_nats_client_group_pending_bytes", g.pending, .gauge, labels: labels)
            out.add("flatline_nats_client_group_max_pending_bytes", g.maxPending, .gauge, labels: labels)
            out.add("flatline_nats_client_group_subscriptions", g.subscriptions, .gauge, labels: labels)
            guard let totals = groups.totals[group] else { continue }
            for (k, name) in ClientGroupTotals.counterNames.enumerated() {
                // Running totals kept here: they never restart, whatever the connections do.
                out.add(name, totals[k], .counter, labels: labels, counterReset: false)
            }
        }
    }

    /// Closed connections: `flatline_nats_closed_connections_total`, all and by `reason`,
    /// counting each closed `cid` once as it appears in the server's ring of recent closes.
    mutating func extractClosed(_ pages: [JSONPage], restarted: Bool, into out: inout SampleBuilder)
        throws(ExtractionError)
    {
        var current = Set<Int>()
        var fresh: [String: Double] = [:]
        var freshByGroup: [String: [String: Double]] = [:]
        if restarted { closedSeen = [] }
        for page in pages {
            let d = page.document
            guard let list = d.member(page.node, "connections") else {
                throw ExtractionError(endpoint: "connz_closed", reason: "no \"connections\" list")
            }
            for connection in d.elements(list) {
                guard let cid = try Self.wholeNumber(d, connection, "cid", endpoint: .connzClosed),
                    current.insert(cid).inserted
                else { continue }
                guard closedPrimed, !closedSeen.contains(cid) else { continue }
                // Reasons and client names come from the server (and its clients): beyond the
                // caps they count as "other", so totals stay right and series stay bounded.
                var reason = (d.string(connection, "reason") ?? "unknown").truncated(100)
                if closedTotals[reason] == nil, fresh[reason] == nil,
                    closedTotals.count + fresh.count >= Self.maxClosedReasons
                {
                    reason = "other"
                }
                fresh[reason, default: 0] += 1
                var group = Self.clientGroup(forName: (d.string(connection, "name") ?? "").truncated(200))
                if closedByGroup[group] == nil, freshByGroup[group] == nil,
                    closedByGroup.count + freshByGroup.count >= ClientGroupTotals.maxGroups
                {
                    group = "other"
                }
                freshByGroup[group, default: [:]][reason, default: 0] += 1
                if reason.hasPrefix("Slow Consumer"), countSlowCutoff(cid) { slowCutoffs[group, default: 0] += 1 }
            }
        }
        closedPrimed = true
        addSlowCutoffs(into: &out)
        closedSeen = current
        for (reason, count) in fresh {
            closedTotals[reason, default: 0] += count
            closedTotals["", default: 0] += count
        }
        out.add(
            "flatline_nats_closed_connections_total",
            closedTotals["", default: 0],
            .counter,
            labels: out.base,
            counterReset: false
        )
        for (group, reasons) in freshByGroup {
            for (reason, count) in reasons {
                closedByGroup[group, default: [:]][reason, default: 0] += count
                closedByGroup[group, default: [:]]["", default: 0] += count
            }
        }
        // Which clients were disconnected, and why (a slow consumer, a reconnect loop).
        for group in closedByGroup.keys.sorted() {
            guard let reasons = closedByGroup[group] else { continue }
            for reason in reasons.keys.sorted() {
                let labels = reason.isEmpty ? [("client_group", group)] : [("client_group", group), ("reason", reason)]
                out.add(
                    "flatline_nats_client_group_closed_total",
                    reasons[reason, default: 0],
                    .counter,
                    labels: out.labels(labels),
                    counterReset: false
                )
            }
        }
        for reason in closedTotals.keys.sorted() where !reason.isEmpty {
            out.add(
                "flatline_nats_closed_connections_total",
                closedTotals[reason, default: 0],
                .counter,
                labels: out.labels([("reason", reason)]),
                counterReset: false
            )
        }
    }
}

extension NATSExtractor {
    /// Distinct close reasons counted at most (NATS has about twenty); past it, `other`.
    static let maxClosedReasons = 64

    /// Groups whose slow-consumer cut-offs are counted at most; past it, `unattributed`.
    static let maxSlowCutoffGroups = 1000

    /// Without the closed connections' reasons: when `/varz` `slow_consumers` rose since the
    /// last `/connz`, the connections that left `/connz` meanwhile were cut off, those with the
    /// most bytes pending first, one per rise. A rise nobody left for (the connection came and
    /// went between two scrapes) counts as `unattributed`, so the cut-off is never lost.
    mutating func attributeSlowConsumers(_ connections: [Int: (group: String, pending: Double)]) {
        defer {
            lastConnections = connections
            slowConsumersAtConnz = slowConsumers
        }
        guard !closedPrimed, let count = slowConsumers, let before = slowConsumersAtConnz, count > before else {
            return
        }
        // Rises a disconnect event already counted are not attributed again.
        let explained = min(count - before, eventCredit)
        eventCredit -= explained
        let rises = Int(saturating: min(count - before - explained, 1e6))
        guard rises > 0 else { return }
        let gone = lastConnections.filter { connections[$0.key] == nil && !slowCutoffCids.contains($0.key) }
            .sorted { ($0.value.pending, $0.key) > ($1.value.pending, $1.key) }
        for k in 0..<rises {
            var group = "unattributed"
            if k < gone.count, countSlowCutoff(gone[k].key) { group = gone[k].value.group }
            if slowCutoffs[group] == nil, slowCutoffs.count >= Self.maxSlowCutoffGroups { group = "unattributed" }
            slowCutoffs[group, default: 0] += 1
        }
    }

    /// Connections remembered as counted at most (cids only grow, so the oldest are long gone).
    static let maxCountedCutoffs = 10_000

    /// Marks connection `cid` as counted; `false` when it already was.
    mutating func countSlowCutoff(_ cid: Int) -> Bool {
        if slowCutoffCids.count >= Self.maxCountedCutoffs, let oldest = slowCutoffCids.min() {
            slowCutoffCids.remove(oldest)
        }
        return slowCutoffCids.insert(cid).inserted
    }

    /// A connection the server just cut off as a slow consumer, told by its disconnect event
    /// (`$SYS.ACCOUNT.<account>.DISCONNECT` with a `Slow Consumer` reason): counted at once, so
    /// the cut-off is known within a second whatever the scrape interval. Returns the client
    /// group's `flatline_nats_client_group_slow_consumers_total` at `time`, or nothing when a
    /// scrape counted the connection already. Scrapes later do not count it again.
    public mutating func slowConsumerDisconnected(cid: Int, clientName: String, at time: Timestamp) -> [Sample] {
        guard countSlowCutoff(cid) else { return [] }
        var group = Self.clientGroup(forName: clientName.truncated(200))
        if slowCutoffs[group] == nil, slowCutoffs.count >= Self.maxSlowCutoffGroups { group = "unattributed" }
        let total = slowCutoffs[group, default: 0] + 1
        slowCutoffs[group] = total
        eventCredit = min(eventCredit + 1, 1e6)
        var out = SampleBuilder(time: time, base: base, counterReset: false)
        out.add(
            "flatline_nats_client_group_slow_consumers_total",
            total,
            .counter,
            labels: out.labels([("client_group", group)]),
            // A group's first cut-off: its counter starts here, from zero.
            counterReset: total == 1
        )
        return out.samples
    }

    /// `flatline_nats_client_group_slow_consumers_total{client_group}`: connections the server
    /// cut off as slow consumers, counted from zero when a group has its first.
    func addSlowCutoffs(into out: inout SampleBuilder) {
        for group in slowCutoffs.keys.sorted() {
            out.add(
                "flatline_nats_client_group_slow_consumers_total",
                slowCutoffs[group, default: 0],
                .counter,
                labels: out.labels([("client_group", group)]),
                counterReset: false
            )
        }
    }
}

/// Per client group running totals of the connections' counters.
///
/// A group's connections come and go (and reconnect under new `cid`s), so the sum of their
/// counters goes down whenever one leaves. Instead each connection adds what it did since the
/// previous scrape: a known `cid` its increase, a new one (a `cid` above the highest seen, the
/// server numbers connections upwards) all it did since it connected.
struct ClientGroupTotals: Sendable {
    struct Connection: Sendable {
        var group: String
        var counts: [Double]
    }

    static let counterNames = [
        "flatline_nats_client_group_in_msgs", "flatline_nats_client_group_out_msgs",
        "flatline_nats_client_group_in_bytes", "flatline_nats_client_group_out_bytes",
    ]
    /// Groups kept at most; past it, new groups are not totalled (their gauges still are).
    static let maxGroups = 10_000

    private(set) var totals: [String: [Double]] = [:]
    private var previous: [Int: Connection] = [:]
    private var highestCid = 0
    private var primed = false

    mutating func observe(_ connections: [Int: Connection], restarted: Bool) {
        if restarted {
            previous = [:]
            highestCid = 0
        }
        var highest = highestCid
        for (cid, connection) in connections {
            highest = max(highest, cid)
            if totals[connection.group] == nil {
                guard totals.count < Self.maxGroups else { continue }
                totals[connection.group] = [Double](repeating: 0, count: Self.counterNames.count)
            }
            guard primed else { continue }
            let before: [Double]
            if let known = previous[cid] {
                before = known.counts
            } else if cid > highestCid {
                before = [Double](repeating: 0, count: connection.counts.count)
            } else {
                // Older than the last scrape but unseen (it was on a page that shifted): its past
                // is unknown; count from now on.
                continue
            }
            for k in connection.counts.indices {
                totals[connection.group]?[k] += max(0, connection.counts[k] - before[k])
            }
        }
        previous = connections
        highestCid = highest
        primed = true
    }
}
