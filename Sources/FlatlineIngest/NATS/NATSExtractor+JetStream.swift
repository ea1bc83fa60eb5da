import FlatlineCore

/// `/jsz?accounts=1&streams=1&consumers=1&config=1`: the server, its accounts, streams and
/// consumers. Sequences are counters, so the detectors see their rates: a consumer's ack-floor
/// rate is how fast it finishes work, a stream's last-sequence rate how fast producers publish.
extension NATSExtractor {
    func extractJsz(_ pages: [JSONPage], time: Timestamp, into out: inout SampleBuilder) {
        guard let first = pages.first else { return }
        let d = first.document
        let top = first.node
        out.field(d, top, "streams", "jetstream_server_total_streams", .gauge)
        out.field(d, top, "consumers", "jetstream_server_total_consumers", .gauge)
        out.field(d, top, "messages", "jetstream_server_total_messages", .gauge)
        out.field(d, top, "bytes", "jetstream_server_total_message_bytes", .gauge)
        out.field(d, top, "memory", "jetstream_server_memory_bytes", .gauge)
        out.field(d, top, "storage", "jetstream_server_storage_bytes", .gauge)
        out.field(d, top, "accounts", "jetstream_server_accounts", .gauge)
        out.field(d, top, "ha_assets", "jetstream_server_ha_assets", .gauge)
        if let config = d.member(top, "config") {
            out.field(d, config, "max_memory", "jetstream_server_max_memory", .gauge)
            out.field(d, config, "max_storage", "jetstream_server_max_storage", .gauge)
        }
        if let api = d.member(top, "api") {
            out.field(d, api, "total", "jetstream_server_api_total", .counter)
            out.field(d, api, "errors", "jetstream_server_api_errors", .counter)
            out.field(d, api, "inflight", "jetstream_server_api_inflight", .gauge)
        }
        var seenAccounts = Set<String>()
        for page in pages {
            let d = page.document
            guard let accounts = d.member(page.node, "account_details") else { continue }
            for account in d.elements(accounts) {
                guard let name = d.string(account, "name") ?? d.string(account, "id") else { continue }
                // Accounts are the pages' items: one that moved between pages is read once.
                guard seenAccounts.insert(name).inserted else { continue }
                extractAccount(d, account, name: name, time: time, into: &out)
            }
        }
    }

    private func extractAccount(
        _ d: JSONDocument,
        _ account: Int,
        name: String,
        time: Timestamp,
        into out: inout SampleBuilder
    ) {
        let labels = out.labels([("account", name)])
        out.field(d, account, "memory", "jetstream_account_memory_used", .gauge, labels: labels)
        out.field(d, account, "storage", "jetstream_account_storage_used", .gauge, labels: labels)
        out.field(d, account, "reserved_memory", "jetstream_account_max_memory", .gauge, labels: labels)
        out.field(d, account, "reserved_storage", "jetstream_account_max_storage", .gauge, labels: labels)
        if let api = d.member(account, "api") {
            out.field(d, api, "total", "jetstream_account_api_total", .counter, labels: labels)
            out.field(d, api, "errors", "jetstream_account_api_errors", .counter, labels: labels)
        }
        guard let streams = d.member(account, "stream_detail") else { return }
        for stream in d.elements(streams) {
            guard let streamName = d.string(stream, "name"), leads(d, stream) else { continue }
            extractStream(d, stream, account: name, name: streamName, time: time, into: &out)
        }
    }

    private func extractStream(
        _ d: JSONDocument,
        _ stream: Int,
        account: String,
        name: String,
        time: Timestamp,
        into out: inout SampleBuilder
    ) {
        let labels = out.labels([("account", account), ("stream", name)])
        if let state = d.member(stream, "state") {
            out.field(d, state, "messages", "jetstream_stream_total_messages", .gauge, labels: labels)
            out.field(d, state, "bytes", "jetstream_stream_total_bytes", .gauge, labels: labels)
            out.field(d, state, "first_seq", "jetstream_stream_first_seq", .counter, labels: labels)
            out.field(d, state, "last_seq", "jetstream_stream_last_seq", .counter, labels: labels)
            out.field(d, state, "consumer_count", "jetstream_stream_consumer_count", .gauge, labels: labels)
            out.field(d, state, "num_subjects", "jetstream_stream_subject_count", .gauge, labels: labels)
            out.field(d, state, "num_deleted", "jetstream_stream_num_deleted", .gauge, labels: labels)
            if (d.number(state, "messages") ?? 0) > 0, let age = out.age(d, d.member(state, "last_ts"), since: time) {
                out.add("flatline_nats_stream_last_message_age_seconds", age, .gauge, labels: labels)
            }
        }
        if let config = d.member(stream, "config") {
            out.field(d, config, "max_bytes", "jetstream_stream_limit_bytes", .gauge, labels: labels)
            out.field(d, config, "max_msgs", "jetstream_stream_limit_messages", .gauge, labels: labels)
        }
        if let replicas = d.member(stream, "cluster", "replicas") {
            for replica in d.elements(replicas) {
                guard let peer = d.string(replica, "name") else { continue }
                let replicaLabels = out.labels([("account", account), ("stream", name), ("replica", peer)])
                out.field(d, replica, "lag", "flatline_nats_stream_replica_lag", .gauge, labels: replicaLabels)
                if let current = d.member(replica, "current").flatMap({ d.bool($0) }) {
                    out.add("flatline_nats_stream_replica_current", current ? 1 : 0, .gauge, labels: replicaLabels)
                }
            }
        }
        guard let consumers = d.member(stream, "consumer_detail") else { return }
        for consumer in d.elements(consumers) {
            guard let consumerName = d.string(consumer, "name"), leads(d, consumer) else { continue }
            extractConsumer(
                d,
                consumer,
                account: account,
                stream: name,
                name: consumerName,
                lastSeq: d.member(stream, "state").flatMap { d.number($0, "last_seq") },
                time: time,
                into: &out
            )
        }
    }

    private func extractConsumer(
        _ d: JSONDocument,
        _ consumer: Int,
        account: String,
        stream: String,
        name: String,
        lastSeq: Double?,
        time: Timestamp,
        into out: inout SampleBuilder
    ) {
        let labels = out.labels([("account", account), ("stream", stream), ("consumer", name)])
        if let delivered = d.member(consumer, "delivered") {
            // Lag: messages in the stream past the last one delivered to this consumer (for a
            // filtered consumer an upper bound: other subjects count too).
            if let lastSeq, let seq = d.number(delivered, "stream_seq"), lastSeq.isFinite, seq.isFinite {
                out.add("flatline_nats_consumer_lag", max(0, lastSeq - seq), .gauge, labels: labels)
            }
            out.field(
                d,
                delivered,
                "consumer_seq",
                "jetstream_consumer_delivered_consumer_seq",
                .counter,
                labels: labels
            )
            out.field(d, delivered, "stream_seq", "jetstream_consumer_delivered_stream_seq", .counter, labels: labels)
        }
        if let floor = d.member(consumer, "ack_floor") {
            out.field(d, floor, "consumer_seq", "jetstream_consumer_ack_floor_consumer_seq", .counter, labels: labels)
            out.field(d, floor, "stream_seq", "jetstream_consumer_ack_floor_stream_seq", .counter, labels: labels)
        }
        out.field(d, consumer, "num_ack_pending", "jetstream_consumer_num_ack_pending", .gauge, labels: labels)
        out.field(d, consumer, "num_redelivered", "jetstream_consumer_num_redelivered", .gauge, labels: labels)
        out.field(d, consumer, "num_waiting", "jetstream_consumer_num_waiting", .gauge, labels: labels)
        out.field(d, consumer, "num_pending", "jetstream_consumer_num_pending", .gauge, labels: labels)
        if let config = d.member(consumer, "config") {
            out.field(d, config, "max_ack_pending", "flatline_nats_consumer_max_ack_pending", .gauge, labels: labels)
        }
        // Ages on the server's clock: the consumer's own `ts` (2.10+), else the body's `now`.
        let now: Timestamp
        switch Self.time(d, d.member(consumer, "ts")) {
        case .absent: now = time
        case .time(let ts): now = ts
        case .invalid:
            // No clock to measure the ages against: both are dropped and counted.
            out.dropped.add(.invalidTimestamp, count: 2)
            return
        }
        if let age = out.age(d, d.member(consumer, "delivered", "last_active"), since: now) {
            out.add("jetstream_consumer_last_delivery_seconds", age, .gauge, labels: labels)
        }
        if let age = out.age(d, d.member(consumer, "ack_floor", "last_active"), since: now) {
            out.add("jetstream_consumer_last_ack_seconds", age, .gauge, labels: labels)
        }
    }
}
