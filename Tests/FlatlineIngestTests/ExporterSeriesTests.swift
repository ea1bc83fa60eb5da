import FlatlineCore
import FlatlineIngest
import Testing

/// prometheus-nats-exporter's series (names and labels as its collectors write them) as
/// Flatline's, for a NATS target's backfill.
@Suite("prometheus-nats-exporter series")
struct ExporterSeriesTests {
    static func labels(_ pairs: [String: String]) throws -> LabelSet { try LabelSet(validating: pairs) }

    static func mapped(_ pairs: [String: String]) throws -> (labels: [String: String], kind: MetricKind)? {
        guard let (out, kind) = ExporterSeries.flatline(try labels(pairs)) else { return nil }
        return (Dictionary(out.filter { !$0.1.isEmpty }, uniquingKeysWith: { _, last in last }), kind)
    }

    @Test("a detailed /connz series becomes the connection's: cid, client_name, client_group; a counter")
    func connection() throws {
        let exporter = [
            "__name__": "gnatsd_connz_in_msgs", "server_id": "http://10.0.0.1:8222", "cid": "42",
            "name": "orders-worker-3", "kind": "Client", "type": "nats", "ip": "10.1.0.7", "port": "51234",
            "lang": "go", "version": "1.37.0", "job": "nats-exporter", "instance": "exporter:7777",
        ]
        let (labels, kind) = try #require(try Self.mapped(exporter))
        #expect(
            labels == [
                "__name__": "gnatsd_connz_in_msgs", "cid": "42", "client_name": "orders-worker-3",
                "client_group": "orders-worker",
            ]
        )
        #expect(kind == .counter)
        var pending = exporter
        pending["__name__"] = "gnatsd_connz_pending_bytes"
        #expect(try Self.mapped(pending)?.kind == .gauge)
        // Without a cid, the exporter's sums over the first page: no such series in Flatline.
        #expect(try Self.mapped(["__name__": "gnatsd_connz_in_msgs", "server_id": "http://10.0.0.1:8222"]) == nil)
    }

    @Test(
        "a JetStream consumer series: stream, consumer and account named as Flatline does; leaders and metadata dropped"
    )
    func consumer() throws {
        let exporter = [
            "__name__": "jetstream_consumer_ack_floor_stream_seq", "server_id": "http://10.0.0.1:8222",
            "server_name": "n1", "cluster": "east", "domain": "", "meta_leader": "n2", "is_meta_leader": "false",
            "account": "ORDERS_ACC", "account_name": "ORDERS_ACC", "account_id": "AAB",
            "stream_name": "ORDERS", "stream_leader": "n1", "is_stream_leader": "true", "stream_raft_group": "S-R3",
            "stream_meta_owner": "team-a", "consumer_name": "worker", "consumer_leader": "n1",
            "is_consumer_leader": "true", "consumer_desc": "the worker", "consumer_meta_tier": "gold",
        ]
        let (labels, kind) = try #require(try Self.mapped(exporter))
        #expect(
            labels == [
                "__name__": "jetstream_consumer_ack_floor_stream_seq", "account": "ORDERS_ACC", "stream": "ORDERS",
                "consumer": "worker",
            ]
        )
        #expect(kind == .counter)
        #expect(ExporterSeries.serverLabels(try Self.labels(exporter)) == ["server_name": "n1", "cluster": "east"])
        // A server without a name of its own reports its id as its name: no `server_name`.
        let unnamed = try Self.labels([
            "__name__": "jetstream_server_total_streams",
            "server_name": "NBHRISZYFXECQXA7AVQO6NCZRTQVZGHOE2ZUIF2FRI26Z6XOHJACBTDR",
        ])
        #expect(ExporterSeries.serverLabels(unnamed).isEmpty)
        var pending = exporter
        pending["__name__"] = "jetstream_consumer_num_pending"
        #expect(try Self.mapped(pending)?.kind == .gauge)
    }

    @Test("kinds are Flatline's: /varz totals are counters, levels gauges, whatever the exporter says")
    func kinds() {
        #expect(ExporterSeries.kind(of: "gnatsd_varz_in_msgs") == .counter)
        #expect(ExporterSeries.kind(of: "gnatsd_varz_slow_consumers") == .counter)
        #expect(ExporterSeries.kind(of: "gnatsd_varz_slow_consumer_stats_clients") == .counter)
        #expect(ExporterSeries.kind(of: "gnatsd_varz_connections") == .gauge)
        #expect(ExporterSeries.kind(of: "gnatsd_varz_mem") == .gauge)
        #expect(ExporterSeries.kind(of: "jetstream_stream_last_seq") == .counter)
        #expect(ExporterSeries.kind(of: "jetstream_stream_total_messages") == .gauge)
        #expect(ExporterSeries.kind(of: "jetstream_server_api_errors") == .counter)
        #expect(ExporterSeries.kind(of: "gnatsd_routez_in_msgs") == .counter)
        #expect(ExporterSeries.kind(of: "gnatsd_healthz_status") == .gauge)
    }

    @Test(
        "an exporter run with -prefix: its names map back to the default ones; names outside the prefix are not the server's"
    )
    func prefixed() throws {
        let consumer = try #require(
            ExporterSeries.flatline(
                try Self.labels([
                    "__name__": "nats_consumer_num_pending", "server_id": "NDAXV", "stream_name": "ORDERS",
                    "consumer_name": "worker",
                ]),
                prefix: "nats"
            )
        )
        #expect(consumer.labels.first { $0.0 == "__name__" }?.1 == "jetstream_consumer_num_pending")
        #expect(consumer.kind == .gauge)
        let messages = try #require(
            ExporterSeries.flatline(
                try Self.labels(["__name__": "nats_varz_in_msgs", "server_id": "NDAXV"]),
                prefix: "nats"
            )
        )
        #expect(messages.labels.first { $0.0 == "__name__" }?.1 == "gnatsd_varz_in_msgs")
        #expect(messages.kind == .counter)
        // Not under the prefix, or no subsystem the exporter has: left out.
        #expect(ExporterSeries.flatline(try Self.labels(["__name__": "gnatsd_varz_in_msgs"]), prefix: "nats") == nil)
        #expect(ExporterSeries.flatline(try Self.labels(["__name__": "nats_up"]), prefix: "nats") == nil)
    }

    @Test("a selector template takes the target's address and host")
    func template() {
        #expect(
            ExporterSeries.selector(address: "10.0.0.1:8222", template: #"{instance="$host:7777",job="nats"}"#)
                == #"{instance="10.0.0.1:7777",job="nats"}"#
        )
        #expect(
            ExporterSeries.selector(address: "nats-0.nats:8222", template: #"{server_id="http://$address"}"#)
                == #"{server_id="http://nats-0.nats:8222"}"#
        )
    }

    @Test("the selector finds the server's series by its monitoring URL, http or https, with or without a slash")
    func selector() throws {
        let selector = ExporterSeries.selector(address: "10.0.0.1:8222")
        #expect(selector == #"{server_id=~"https?://10\\.0\\.0\\.1:8222/?"}"#)
        // The pattern as Prometheus reads it (the string literal unescaped), anchored as it
        // anchors label matchers.
        let literal = String(selector.dropFirst(#"{server_id=~""#.count).dropLast(2))
        let pattern = try Regex("^" + literal.replacing(#"\\"#, with: #"\"#) + "$")
        for url in ["http://10.0.0.1:8222", "https://10.0.0.1:8222/"] { #expect(url.wholeMatch(of: pattern) != nil) }
        #expect("http://10.0.0.12:8222".wholeMatch(of: pattern) == nil)
        #expect("http://10x0x0x1:8222".wholeMatch(of: pattern) == nil)
    }
}
