import FlatlineCore

/// prometheus-nats-exporter's series as Flatline's own extraction names them, for a NATS target's
/// history (`backfill:`). Flatline's names follow the exporter's (`gnatsd_varz_in_msgs`,
/// `gnatsd_connz_in_msgs` with `-connz_detailed`, `jetstream_consumer_num_pending`...); the labels
/// differ: the exporter marks the server with `server_id` (its monitoring URL by default) and
/// names things `stream_name`, `consumer_name`, `name`; Flatline uses `stream`, `consumer`,
/// `client_name` and `client_group`, and the target's `job` and `instance`. The exporter exports
/// every number as a gauge; Flatline's kinds are its own.
public enum ExporterSeries {
    /// Labels of the exporter's that say nothing Flatline's series say (leaders, descriptions,
    /// connection details, the exporter's own target).
    static let dropped: Set<String> = [
        "server_id", "job", "instance", "domain", "meta_leader", "is_meta_leader", "account_id",
        "stream_leader", "is_stream_leader", "stream_raft_group", "consumer_leader", "is_consumer_leader",
        "consumer_desc", "kind", "type", "ip", "port", "name_tag", "lang", "version", "tls_version",
        "tls_cipher_suite", "start", "last_activity", "rtt", "uptime", "idle", "server_name", "cluster",
    ]

    /// The per-connection `/connz` series (with `-connz_detailed`); without a `cid` the exporter's
    /// series of the same names are sums over the first page, which Flatline does not have.
    static let perConnection: Set<String> = [
        "gnatsd_connz_pending_bytes", "gnatsd_connz_subscriptions", "gnatsd_connz_in_msgs",
        "gnatsd_connz_out_msgs", "gnatsd_connz_in_bytes", "gnatsd_connz_out_bytes", "gnatsd_connz_stalls",
    ]

    /// An exporter series' name and labels as Flatline's (without the target's and the server's
    /// labels, which its caller adds), and its kind; `nil` for a series Flatline has no
    /// counterpart of.
    public static func flatline(_ labels: LabelSet, prefix: String? = nil) -> (
        labels: [(String, String)], kind: MetricKind
    )? {
        guard let name = name(labels.metricName, prefix: prefix) else { return nil }
        var out: [(String, String)] = [(LabelSet.metricNameLabel, name)]
        if perConnection.contains(name) {
            guard let cid = labels["cid"] else { return nil }
            let client = labels["name"] ?? ""
            out += [
                ("cid", cid), ("client_name", client),
                ("client_group", NATSExtractor.clientGroup(forName: client)),
                ("account", labels["account"] ?? ""),
            ]
            return (out, kind(of: name))
        }
        for label in labels.labels where label.name != LabelSet.metricNameLabel {
            if dropped.contains(label.name) || label.name.hasPrefix("stream_meta_")
                || label.name.hasPrefix("consumer_meta_")
            {
                continue
            }
            switch label.name {
            case "stream_name": out.append(("stream", label.value))
            case "consumer_name": out.append(("consumer", label.value))
            case "account_name": out.append(("account", label.value))
            // `account_name` is the account where both are set.
            case "account" where labels["account_name"] != nil: continue
            default: out.append((label.name, label.value))
            }
        }
        return (out, kind(of: name))
    }

    /// The exporter's subsystems under its core namespace (`gnatsd`) and its JetStream one
    /// (`jetstream`), which a `-prefix` replaces alike.
    static let coreSubsystems = [
        "varz_", "connz_", "routez_", "subsz_", "healthz_", "accstatz_", "leafz_", "gatewayz_", "accountz_",
    ]
    static let jetStreamSubsystems = ["server_", "account_", "stream_", "consumer_"]

    /// A metric name of an exporter run with `-prefix` as the default names go
    /// (`nats_varz_in_msgs` → `gnatsd_varz_in_msgs`, `nats_consumer_num_pending` →
    /// `jetstream_consumer_num_pending`); `nil` for a name not under the prefix or of no known
    /// subsystem. Without a prefix, the name as it is.
    static func name(_ name: String, prefix: String?) -> String? {
        guard let prefix else { return name }
        guard name.hasPrefix(prefix + "_") else { return nil }
        let rest = name.dropFirst(prefix.utf8.count + 1)
        if coreSubsystems.contains(where: rest.hasPrefix) { return "gnatsd_" + rest }
        if jetStreamSubsystems.contains(where: rest.hasPrefix) { return "jetstream_" + rest }
        return nil
    }

    /// The server's own labels as Flatline sets them on all its series, from an exporter series
    /// that has them (the JetStream ones): `server_name` when the server has a name of its own
    /// (not its id), `cluster` when it is clustered.
    public static func serverLabels(_ labels: LabelSet) -> [String: String] {
        var out: [String: String] = [:]
        if let name = labels["server_name"], !name.isEmpty, name != labels["server_id"], !looksLikeServerID(name) {
            out["server_name"] = name
        }
        if let cluster = labels["cluster"], !cluster.isEmpty { out["cluster"] = cluster }
        return out
    }

    /// A server id: 56 characters of upper-case base32 starting with `N`, what a server without a
    /// `server_name` reports as its name.
    static func looksLikeServerID(_ text: String) -> Bool {
        text.utf8.count == 56 && text.utf8.first == UInt8(ascii: "N")
            && text.utf8.allSatisfy { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x32 && $0 <= 0x37) }
    }

    /// Flatline's kind of a series of this name (the exporter calls them all gauges).
    public static func kind(of name: String) -> MetricKind {
        if name.hasPrefix("gnatsd_varz_") {
            return NATSExtractor.varzKind(String(name.dropFirst("gnatsd_varz_".count)))
        }
        let counterSuffixes = ["_in_msgs", "_out_msgs", "_in_bytes", "_out_bytes", "_api_total", "_api_errors"]
        if counterSuffixes.contains(where: name.hasSuffix) { return .counter }
        switch name {
        case "gnatsd_connz_stalls", "jetstream_stream_first_seq", "jetstream_stream_last_seq",
            "jetstream_consumer_delivered_consumer_seq", "jetstream_consumer_delivered_stream_seq",
            "jetstream_consumer_ack_floor_consumer_seq", "jetstream_consumer_ack_floor_stream_seq",
            "gnatsd_accstatz_sent_messages", "gnatsd_accstatz_sent_bytes", "gnatsd_accstatz_received_messages",
            "gnatsd_accstatz_received_bytes", "gnatsd_accstatz_slow_consumers", "gnatsd_subsz_num_inserts",
            "gnatsd_subsz_num_removes", "gnatsd_subsz_num_matches":
            return .counter
        default:
            return .gauge
        }
    }

    /// The PromQL selector of the exporter's series of the server at `address` (`host:port`).
    /// By default by its `server_id`, the monitoring URL the exporter was started with
    /// (`http://host:8222`); a `template` replaces `$address` and `$host` with the target's
    /// (`{instance="$host:7777"}` for an exporter beside each server).
    public static func selector(address: String, template: String? = nil) -> String {
        if let template {
            let host = address.split(separator: ":").dropLast().joined(separator: ":")
            return template.replacing("$address", with: address).replacing(
                "$host",
                with: host.isEmpty ? address : host
            )
        }
        var pattern = "https?://"
        for character in address {
            if "\\.+*?()|[]{}^$".contains(character) { pattern.append("\\") }
            pattern.append(character)
        }
        pattern += "/?"
        return "{server_id=~\"\(LabelSet.escape(pattern))\"}"
    }
}
