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

    mutating func extractConnz(_ pages: [JSONPage], restarted: Bool, into out: inout SampleBuilder)
        throws(ExtractionError)
    {
        var entries = 0
        var total = 0.0
        var gauges: [String: (connections: Double, pending: Double, maxPending: Double, subscriptions: Double)] = [:]
        var scratch: [Int] = []
        // What is remembered of a connection holds while the body's labels do; its counts count
        // only when it was in the previous `/connz` of the same server run.
        if connzMemory.base != out.base { connzMemory.relabel(base: out.base) }
        // (Bodies are numbered from 1; -1 is no body, so nothing was in it.)
        let previous = restarted ? -1 : connzMemory.scrape
        connzMemory.scrape += 1
        let current = connzMemory.scrape
        // About nine series a connection, as last time.
        out.reserve(connzMemory.connections.count * (options.perConnection ? 9 : 0) + 64)
        if restarted { groups.highestCid = 0 }
        var highest = groups.highestCid
        var guess = 0
        for page in pages {
            let d = page.document
            let list = d.member(page.node, "connections")
            guard let list, d.kind(list) == .array || d.kind(list) == .null else {
                throw ExtractionError(endpoint: "connz", reason: "no \"connections\" list")
            }
            total = max(total, Double(try Self.wholeNumber(d, page.node, "total", endpoint: .connz) ?? 0))
            for connection in d.elements(list) {
                // One pass over the connection's members for every field read below.
                d.members(connection, in: Self.connzKeys, into: &scratch)
                let fields = scratch
                func number(_ key: ConnzKey) -> Double? {
                    let node = fields[key.rawValue]
                    return node < 0 ? nil : d.number(node)
                }
                func string(_ key: ConnzKey) -> String? {
                    let node = fields[key.rawValue]
                    return node < 0 ? nil : d.string(node)
                }
                /// Whether `key` reads as `text` (absent or not a string reads as "").
                func reads(_ key: ConnzKey, as text: String) -> Bool {
                    let node = fields[key.rawValue]
                    guard node >= 0, d.kind(node) == .string else { return text.isEmpty }
                    return d.string(node, matches: text)
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
                let slot: Int
                // The server lists connections in the same order every time: the one after the
                // previous connection's place is most often this one, found without hashing.
                if guess < connzMemory.connections.count, connzMemory.connections[guess].cid == cid {
                    guard connzMemory.connections[guess].scrape != current else { continue }
                    slot = guess
                } else if let known = connzMemory.slots[cid] {
                    // A connection that moved between pages while we paged is counted once.
                    guard connzMemory.connections[known].scrape != current else { continue }
                    slot = known
                } else {
                    slot = connzMemory.connections.count
                    connzMemory.slots[cid] = slot
                    connzMemory.connections.append(ConnzMemory.Connection(cid: cid))
                }
                entries += 1
                guess = slot + 1
                // A known connection's cost is mostly the first touch of its label sets (each
                // sample retains one): ask now for those of the connection a few places on.
                if slot + 4 < connzMemory.connections.count {
                    let addresses = connzMemory.connections[slot + 4].addresses
                    for k in addresses.indices { LabelSet.prefetch(storageAt: addresses[k]) }
                }
                // Labels are built at a connection's first sight, or when its name or account
                // changed; otherwise its series keep their label sets.
                if !connzMemory.connections[slot].labelled || !reads(.name, as: connzMemory.connections[slot].name)
                    || !reads(.account, as: connzMemory.connections[slot].account)
                {
                    let name = string(.name) ?? ""
                    let account = string(.account) ?? ""
                    let group = Self.clientGroup(forName: name)
                    connzMemory.connections[slot].label(
                        name: name,
                        account: account,
                        group: group,
                        labels: out.labels([
                            ("cid", String(cid)), ("client_name", name), ("client_group", group), ("account", account),
                        ])
                    )
                }
                let group = connzMemory.connections[slot].group
                let pending = number(.pendingBytes) ?? 0
                let subscriptions = number(.subscriptions) ?? 0
                func count(_ g: inout (connections: Double, pending: Double, maxPending: Double, subscriptions: Double))
                {
                    g.connections += 1
                    g.pending += pending
                    g.maxPending = max(g.maxPending, pending)
                    g.subscriptions += subscriptions
                }
                count(&gauges[group, default: (0, 0, 0, 0)])
                let counts = SIMD4(
                    number(.inMsgs) ?? 0,
                    number(.outMsgs) ?? 0,
                    number(.inBytes) ?? 0,
                    number(.outBytes) ?? 0
                )
                // What the connection did since the previous scrape: a known one its increase, a
                // new one (a cid above the highest seen: the server numbers connections upwards)
                // all it did since it connected; one older than the last scrape but unseen (it
                // was on a page that shifted) has an unknown past and counts from now on.
                var increase = SIMD4<Double>(repeating: 0)
                if connzMemory.connections[slot].scrape == previous {
                    increase = pointwiseMax(increase, counts - connzMemory.connections[slot].counts)
                } else if cid > groups.highestCid {
                    increase = counts
                }
                groups.add(groups.primed ? increase : SIMD4(repeating: 0), to: group)
                highest = max(highest, cid)
                connzMemory.connections[slot].counts = counts
                connzMemory.connections[slot].pending = pending
                connzMemory.connections[slot].scrape = current
                guard options.perConnection else { continue }
                var sets = connzMemory.connections[slot].series
                var built = false
                /// Adds the sample of `series`, its label set built at the connection's first.
                func emit(_ series: ConnzMemory.Series, _ value: Double, _ kind: MetricKind) {
                    if let known = sets[series.rawValue] {
                        out.add(value, kind, series: known)
                        return
                    }
                    let made = SampleBuilder.series(series.metric, labels: connzMemory.connections[slot].labels)
                    sets[series.rawValue] = made
                    built = true
                    out.add(value, kind, series: made)
                }
                defer { if built { connzMemory.connections[slot].series = sets } }
                emit(.pendingBytes, pending, .gauge)
                emit(.subscriptions, subscriptions, .gauge)
                for series in ConnzMemory.Series.counters {
                    guard let value = number(series.member), !NATSExtractor.isUnlimited(value) else { continue }
                    emit(series, value, .counter)
                }
                if let rtt = duration(.rtt) { emit(.rtt, rtt, .gauge) }
                if let idle = duration(.idle) { emit(.idle, idle, .gauge) }
            }
        }
        groups.highestCid = highest
        groups.primed = true
        attributeSlowConsumers(previous: previous)
        // Connections gone from the server are forgotten.
        connzMemory.keep(scrape: current, count: entries)
        addSlowCutoffs(into: &out)
        out.add("gnatsd_connz_total", max(total, Double(entries)), .gauge)
        out.add("gnatsd_connz_num_connections", Double(entries), .gauge)

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
    /// last `/connz`, the connections that left `/connz` meanwhile (those remembered as in the
    /// `previous` one and not in this one) were cut off, those with the most bytes pending
    /// first, one per rise. A rise nobody left for (the connection came and went between two
    /// scrapes) counts as `unattributed`, so the cut-off is never lost.
    mutating func attributeSlowConsumers(previous: Int) {
        let leftSince = connzMemory.attributable ? previous : -1
        connzMemory.attributable = true
        defer { slowConsumersAtConnz = slowConsumers }
        guard !closedPrimed, let count = slowConsumers, let before = slowConsumersAtConnz, count > before else {
            return
        }
        // Rises a disconnect event already counted are not attributed again.
        let explained = min(count - before, eventCredit)
        eventCredit -= explained
        let rises = Int(saturating: min(count - before - explained, 1e6))
        guard rises > 0 else { return }
        let gone = connzMemory.connections.filter { $0.scrape == leftSince && !slowCutoffCids.contains($0.cid) }
            .sorted { ($0.pending, $0.cid) > ($1.pending, $1.cid) }
        for k in 0..<rises {
            var group = "unattributed"
            if k < gone.count, countSlowCutoff(gone[k].cid) { group = gone[k].group }
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
/// previous scrape (``NATSExtractor/extractConnz(_:restarted:into:)`` works it out).
struct ClientGroupTotals: Sendable {
    static let counterNames = [
        "flatline_nats_client_group_in_msgs", "flatline_nats_client_group_out_msgs",
        "flatline_nats_client_group_in_bytes", "flatline_nats_client_group_out_bytes",
    ]
    /// Groups kept at most; past it, new groups are not totalled (their gauges still are).
    static let maxGroups = 10_000

    /// `in_msgs`, `out_msgs`, `in_bytes`, `out_bytes` by group, in ``counterNames``' order.
    private(set) var totals: [String: SIMD4<Double>] = [:]
    /// The highest `cid` seen since the server started.
    var highestCid = 0
    /// A first `/connz` was read: connections seen after it are new.
    var primed = false

    /// Adds `increase` to `group`'s totals; a group not yet totalled starts if there is room.
    mutating func add(_ increase: SIMD4<Double>, to group: String) {
        if let index = totals.index(forKey: group) {
            totals.values[index] += increase
        } else if totals.count < Self.maxGroups {
            totals[group] = increase
        }
    }
}

/// What extraction remembers of the connections of a target's last `/connz`: each one's name,
/// account and client group as read, its labels, and the label set of each of its series, so a
/// connection seen at every scrape costs no label building after its first.
struct ConnzMemory: Sendable {
    /// The series of a connection.
    enum Series: Int, CaseIterable {
        case pendingBytes, subscriptions, inMsgs, outMsgs, inBytes, outBytes, stalls, rtt, idle

        /// The series read from a connection's counters.
        static let counters: [Series] = [.inMsgs, .outMsgs, .inBytes, .outBytes, .stalls]

        /// The member of a `/connz` connection the series is read from.
        var member: NATSExtractor.ConnzKey {
            switch self {
            case .pendingBytes: .pendingBytes
            case .subscriptions: .subscriptions
            case .inMsgs: .inMsgs
            case .outMsgs: .outMsgs
            case .inBytes: .inBytes
            case .outBytes: .outBytes
            case .stalls: .stalls
            case .rtt: .rtt
            case .idle: .idle
            }
        }

        var metric: String {
            switch self {
            case .pendingBytes: "gnatsd_connz_pending_bytes"
            case .subscriptions: "gnatsd_connz_subscriptions"
            case .inMsgs: "gnatsd_connz_in_msgs"
            case .outMsgs: "gnatsd_connz_out_msgs"
            case .inBytes: "gnatsd_connz_in_bytes"
            case .outBytes: "gnatsd_connz_out_bytes"
            case .stalls: "gnatsd_connz_stalls"
            case .rtt: "flatline_nats_connection_rtt_seconds"
            case .idle: "flatline_nats_connection_idle_seconds"
            }
        }
    }

    struct Connection: Sendable {
        let cid: Int
        /// Its name, account and client group as last read, and its labels from them.
        private(set) var name = ""
        private(set) var account = ""
        private(set) var group = ""
        private(set) var labels: [Label] = []
        private(set) var labelled = false
        /// The label set of each series, by ``Series``, once it has had a sample.
        var series = [LabelSet?](repeating: nil, count: Series.allCases.count) {
            didSet { addresses = Self.addresses(of: series) }
        }
        /// Where each of those label sets lives (``LabelSet/storageAddress``; 0 for none), kept
        /// inline (one per ``Series`` case) so a scrape can prefetch a later connection's label sets
        /// without touching them.
        private(set) var addresses = InlineArray<9, UInt>(repeating: 0)
        /// `in_msgs`, `out_msgs`, `in_bytes`, `out_bytes` and `pending_bytes` as last read.
        var counts = SIMD4<Double>(repeating: 0)
        var pending = 0.0
        /// The last `/connz` it was in (``ConnzMemory/scrape``); `Int.min` before its first.
        var scrape = Int.min

        init(cid: Int) { self.cid = cid }

        /// Takes the name, account, group and labels read now; the series' label sets are
        /// built again.
        mutating func label(name: String, account: String, group: String, labels: [Label]) {
            self.name = name
            self.account = account
            self.group = group
            self.labels = labels
            labelled = true
            series = [LabelSet?](repeating: nil, count: Series.allCases.count)
        }

        mutating func unlabel() { labelled = false }

        private static func addresses(of series: [LabelSet?]) -> InlineArray<9, UInt> {
            var out = InlineArray<9, UInt>(repeating: 0)
            for k in series.indices where k < out.count { out[k] = series[k]?.storageAddress ?? 0 }
            return out
        }
    }

    /// The body labels the remembered label sets were built with.
    var base: [Label] = []
    /// The connections of the last `/connz`, and where each `cid` is among them.
    var connections: [Connection] = []
    var slots: [Int: Int] = [:]
    /// `/connz` bodies read; a connection's `scrape` is the last one it was in.
    var scrape = 0
    /// Whether the connections of the previous `/connz` may be blamed for a slow-consumer
    /// cut-off (not when the server restarted since).
    var attributable = true

    /// The body's labels changed (the server's name, say): every connection is labelled again.
    mutating func relabel(base: [Label]) {
        self.base = base
        for slot in connections.indices { connections[slot].unlabel() }
    }

    /// Forgets the connections not in `/connz` number `scrape`; `count` were in it.
    mutating func keep(scrape: Int, count: Int) {
        guard connections.count > count else { return }
        connections.removeAll { $0.scrape != scrape }
        slots.removeAll(keepingCapacity: true)
        for (slot, connection) in connections.enumerated() { slots[connection.cid] = slot }
    }
}
