import FlatlineCore

/// Server-wide endpoints: `/varz`, `/subsz`, `/accstatz`, `/accountz`, `/healthz`, and the links
/// to other servers (`/routez`, `/leafz`, `/gatewayz`).
extension NATSExtractor {
    /// `/varz` the exporter's way: every numeric leaf is `gnatsd_varz_<path joined by _>`.
    /// Ports and protocol numbers are configuration, not signals, and are left out; so are
    /// strings, booleans and arrays.
    func extractVarz(_ page: JSONPage, into out: inout SampleBuilder) {
        let d = page.document
        if let id = d.string(page.node, "server_id") {
            var info = [("server_id", id)]
            if let version = d.string(page.node, "version") { info.append(("version", version)) }
            out.add("flatline_nats_server_info", 1, .gauge, labels: out.labels(info))
        }
        if let age = out.age(d, d.member(page.node, "start"), since: out.time) {
            out.add("gnatsd_varz_uptime_seconds", age, .gauge)
        }
        walkVarz(d, page.node, path: "gnatsd_varz", depth: 0, into: &out)
    }

    private func walkVarz(_ d: JSONDocument, _ node: Int, path: String, depth: Int, into out: inout SampleBuilder) {
        for (key, value) in d.members(node) {
            guard let raw = d.string(key) else { continue }
            let part = Self.metricNamePart(raw)
            guard !part.isEmpty, !Self.varzSkipped(part) else { continue }
            let name = path + "_" + part
            switch d.kind(value) {
            case .number:
                guard let number = d.number(value), !Self.isUnlimited(number) else { continue }
                out.add(name, number, Self.varzKind(String(name.dropFirst("gnatsd_varz_".count))))
            case .object where depth < 4:
                walkVarz(d, value, path: name, depth: depth + 1, into: &out)
            default:
                continue
            }
        }
    }

    /// Configuration numbers that are not worth a series.
    static func varzSkipped(_ part: String) -> Bool {
        part == "port" || part.hasSuffix("_port") || part == "proto" || part.hasSuffix("_timeout")
    }

    /// The cumulative `/varz` fields (nats.md §2); everything else is a level.
    static func varzKind(_ path: String) -> MetricKind {
        switch path {
        case "in_msgs", "out_msgs", "in_bytes", "out_bytes", "in_client_msgs", "in_client_bytes",
            "out_client_msgs", "out_client_bytes", "total_connections", "slow_consumers",
            "stale_connections", "stalled_clients", "pinned_account_fails",
            "jetstream_stats_api_total", "jetstream_stats_api_errors":
            return .counter
        default:
            let cumulative = ["slow_consumer_stats_", "stale_connection_stats_", "http_req_stats_"]
            return cumulative.contains { path.hasPrefix($0) } ? .counter : .gauge
        }
    }

    /// A JSON key as part of a metric name: `[a-zA-Z0-9_]` only, other characters become `_`,
    /// without leading, trailing or repeated underscores (`/varz` → `varz`).
    static func metricNamePart(_ key: String) -> String {
        var out = ""
        out.reserveCapacity(key.utf8.count)
        var pendingUnderscore = false
        for scalar in key.unicodeScalars {
            let ok =
                (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z") || (scalar >= "0" && scalar <= "9")
            if ok {
                if pendingUnderscore && !out.isEmpty { out.append("_") }
                pendingUnderscore = false
                out.unicodeScalars.append(scalar)
            } else {
                pendingUnderscore = true
            }
        }
        return out
    }

    /// `/subsz`: the sublist's statistics (the subscription list itself is not needed).
    func extractSubsz(_ page: JSONPage, into out: inout SampleBuilder) {
        let d = page.document
        // With `subs=1` newer servers nest the statistics; without, they are at the top.
        let node = d.member(page.node, "sublist_stats") ?? page.node
        let fields: [(StaticString, String, MetricKind)] = [
            ("num_subscriptions", "gnatsd_subsz_num_subscriptions", .gauge),
            ("num_cache", "gnatsd_subsz_num_cache", .gauge),
            ("num_inserts", "gnatsd_subsz_num_inserts", .counter),
            ("num_removes", "gnatsd_subsz_num_removes", .counter),
            ("num_matches", "gnatsd_subsz_num_matches", .counter),
            ("cache_hit_rate", "gnatsd_subsz_cache_hit_rate", .gauge),
            ("max_fanout", "gnatsd_subsz_max_fanout", .gauge),
            ("avg_fanout", "gnatsd_subsz_avg_fanout", .gauge),
        ]
        for (key, name, kind) in fields { out.field(d, node, key, name, kind) }
    }

    /// `/accstatz`: per account traffic, connections and slow consumers.
    func extractAccstatz(_ page: JSONPage, into out: inout SampleBuilder) {
        let d = page.document
        guard let list = d.member(page.node, "account_statz") else { return }
        for account in d.elements(list) {
            guard let name = d.string(account, "acc") ?? d.string(account, "account") else { continue }
            let labels = out.labels([("account", name)])
            out.field(d, account, "conns", "gnatsd_accstatz_current_connections", .gauge, labels: labels)
            // `total_conns` is clients plus leaf nodes now connected: a level, despite the name.
            out.field(d, account, "total_conns", "gnatsd_accstatz_total_connections", .gauge, labels: labels)
            out.field(d, account, "leafnodes", "gnatsd_accstatz_leaf_nodes", .gauge, labels: labels)
            out.field(d, account, "num_subscriptions", "gnatsd_accstatz_subscriptions", .gauge, labels: labels)
            out.field(d, account, "slow_consumers", "gnatsd_accstatz_slow_consumers", .counter, labels: labels)
            if let sent = d.member(account, "sent") {
                out.field(d, sent, "msgs", "gnatsd_accstatz_sent_messages", .counter, labels: labels)
                out.field(d, sent, "bytes", "gnatsd_accstatz_sent_bytes", .counter, labels: labels)
            }
            if let received = d.member(account, "received") {
                out.field(d, received, "msgs", "gnatsd_accstatz_received_messages", .counter, labels: labels)
                out.field(d, received, "bytes", "gnatsd_accstatz_received_bytes", .counter, labels: labels)
            }
        }
    }

    /// `/accountz`: the number of accounts, or with `?acc=` one account's connections.
    func extractAccountz(_ page: JSONPage, into out: inout SampleBuilder) {
        let d = page.document
        if let list = d.member(page.node, "accounts"), d.kind(list) == .array {
            out.add("gnatsd_accountz_accounts", Double(d.childCount(list)), .gauge)
        }
        if let detail = d.member(page.node, "account_detail"), let name = d.string(detail, "account_name") {
            let labels = out.labels([("account", name)])
            out.field(d, detail, "client_connections", "gnatsd_accountz_client_connections", .gauge, labels: labels)
            out.field(d, detail, "leafnode_connections", "gnatsd_accountz_leafnode_connections", .gauge, labels: labels)
            out.field(d, detail, "subscriptions", "gnatsd_accountz_subscriptions", .gauge, labels: labels)
        }
    }

    /// `/healthz`: `gnatsd_healthz_status` is 0 when the server says "ok", 1 otherwise (the
    /// exporter's convention), and `gnatsd_healthz_status_value{value}` is 1 for the reported one.
    func extractHealthz(_ page: JSONPage, into out: inout SampleBuilder) {
        let status = page.document.string(page.node, "status") ?? "unknown"
        out.add("gnatsd_healthz_status", status == "ok" ? 0 : 1, .gauge)
        out.add("gnatsd_healthz_status_value", 1, .gauge, labels: out.labels([("value", status)]))
    }

    /// `/routez`: the number of routes and, per route (by the remote server's name, or its id on
    /// servers that do not send names), its traffic and queue.
    func extractRoutez(_ page: JSONPage, into out: inout SampleBuilder) {
        let d = page.document
        out.field(d, page.node, "num_routes", "gnatsd_routez_num_routes", .gauge)
        guard let routes = d.member(page.node, "routes") else { return }
        // Pooled routes (2.10+) open several connections to one server: sum them per remote.
        var totals: [String: [Double]] = [:]
        var order: [String] = []
        let keys: [StaticString] = ["in_msgs", "out_msgs", "in_bytes", "out_bytes", "pending_size", "subscriptions"]
        for route in d.elements(routes) {
            let remoteName = d.string(route, "remote_name") ?? ""
            guard let remote = remoteName.isEmpty ? d.string(route, "remote_id") : remoteName else { continue }
            var values = totals[remote] ?? [Double](repeating: 0, count: keys.count + 1)
            if totals[remote] == nil { order.append(remote) }
            for (k, key) in keys.enumerated() { values[k] += d.number(route, key) ?? 0 }
            let rtt = d.string(route, "rtt").flatMap { GoDuration.seconds($0) } ?? 0
            values[keys.count] = max(values[keys.count], rtt)
            totals[remote] = values
        }
        let names: [(String, MetricKind)] = [
            ("gnatsd_routez_in_msgs", .counter), ("gnatsd_routez_out_msgs", .counter),
            ("gnatsd_routez_in_bytes", .counter), ("gnatsd_routez_out_bytes", .counter),
            ("gnatsd_routez_pending_bytes", .gauge), ("gnatsd_routez_subscriptions", .gauge),
            ("gnatsd_routez_rtt_seconds", .gauge),
        ]
        for remote in order {
            guard let values = totals[remote] else { continue }
            let labels = out.labels([("route", remote)])
            for (k, (name, kind)) in names.enumerated() { out.add(name, values[k], kind, labels: labels) }
        }
    }

    /// `/leafz`: the number of leaf nodes and, per leaf (its name, else `ip:port`), its traffic.
    func extractLeafz(_ page: JSONPage, into out: inout SampleBuilder) throws(ExtractionError) {
        let d = page.document
        out.field(d, page.node, "leafnodes", "gnatsd_leafz_conn_nodes_total", .gauge)
        guard let leafs = d.member(page.node, "leafs") else { return }
        for leaf in d.elements(leafs) {
            let name = d.string(leaf, "name") ?? ""
            let port = try Self.wholeNumber(d, leaf, "port", endpoint: .leafz) ?? 0
            let address = "\(d.string(leaf, "ip") ?? ""):\(port)"
            let labels = out.labels([
                ("leaf", name.isEmpty ? address : name), ("account", d.string(leaf, "account") ?? ""),
            ])
            out.field(d, leaf, "in_msgs", "gnatsd_leafz_conn_in_msgs", .counter, labels: labels)
            out.field(d, leaf, "out_msgs", "gnatsd_leafz_conn_out_msgs", .counter, labels: labels)
            out.field(d, leaf, "in_bytes", "gnatsd_leafz_conn_in_bytes", .counter, labels: labels)
            out.field(d, leaf, "out_bytes", "gnatsd_leafz_conn_out_bytes", .counter, labels: labels)
            out.field(d, leaf, "subscriptions", "gnatsd_leafz_conn_subscriptions_total", .gauge, labels: labels)
            if let rtt = d.string(leaf, "rtt").flatMap({ GoDuration.seconds($0) }) {
                out.add("gnatsd_leafz_conn_rtt", rtt, .gauge, labels: labels)
            }
        }
    }

    /// `/gatewayz`: per remote gateway, whether it is configured and the traffic of its
    /// connections (outbound one per gateway, inbound possibly several).
    func extractGatewayz(_ page: JSONPage, into out: inout SampleBuilder) throws(ExtractionError) {
        let d = page.document
        // How many gateways are connected, so a lost one shows (configured ones stay listed).
        var outboundConnected = 0
        if let outbound = d.member(page.node, "outbound_gateways") {
            for (_, gateway) in d.members(outbound) where d.member(gateway, "connection") != nil {
                outboundConnected += 1
            }
            out.add("gnatsd_gatewayz_outbound_gateways", Double(outboundConnected), .gauge)
        }
        if let inbound = d.member(page.node, "inbound_gateways") {
            out.add("gnatsd_gatewayz_inbound_gateways", Double(d.childCount(inbound)), .gauge)
        }
        if let outbound = d.member(page.node, "outbound_gateways") {
            for (key, gateway) in d.members(outbound) {
                guard let name = d.string(key) else { continue }
                try gatewayConnection(d, gateway, name: name, direction: "outbound", into: &out)
            }
        }
        if let inbound = d.member(page.node, "inbound_gateways") {
            for (key, list) in d.members(inbound) {
                guard let name = d.string(key) else { continue }
                for gateway in d.elements(list) {
                    try gatewayConnection(d, gateway, name: name, direction: "inbound", into: &out)
                }
            }
        }
    }

    private func gatewayConnection(
        _ d: JSONDocument,
        _ gateway: Int,
        name: String,
        direction: String,
        into out: inout SampleBuilder
    ) throws(ExtractionError) {
        let prefix = "gnatsd_gatewayz_\(direction)_gateway_"
        var own = [("gateway", name)]
        let connection = d.member(gateway, "connection")
        if direction == "inbound", let connection,
            let cid = try Self.wholeNumber(d, connection, "cid", endpoint: .gatewayz)
        {
            own.append(("cid", String(cid)))
        }
        let labels = out.labels(own)
        if let configured = d.member(gateway, "configured").flatMap({ d.bool($0) }) {
            out.add(prefix + "configured", configured ? 1 : 0, .gauge, labels: labels)
        }
        out.add(prefix + "connected", connection == nil ? 0 : 1, .gauge, labels: labels)
        guard let connection else { return }
        out.field(d, connection, "in_msgs", prefix + "conn_in_msgs", .counter, labels: labels)
        out.field(d, connection, "out_msgs", prefix + "conn_out_msgs", .counter, labels: labels)
        out.field(d, connection, "in_bytes", prefix + "conn_in_bytes", .counter, labels: labels)
        out.field(d, connection, "out_bytes", prefix + "conn_out_bytes", .counter, labels: labels)
        out.field(d, connection, "pending_bytes", prefix + "conn_pending_bytes", .gauge, labels: labels)
        out.field(d, connection, "subscriptions", prefix + "conn_subscriptions", .gauge, labels: labels)
        if let rtt = d.string(connection, "rtt").flatMap({ GoDuration.seconds($0) }) {
            out.add(prefix + "conn_rtt", rtt, .gauge, labels: labels)
        }
    }
}
