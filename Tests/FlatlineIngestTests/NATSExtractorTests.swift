import FlatlineCore
import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineIngest

/// NATS bodies into samples: names, kinds and labels on the bodies a real nats-server 2.9.10
/// returned (fixtures), restarts, connection churn, leaders, and bodies of the wrong shape.
/// Expected values are read from the fixtures with Foundation's JSON and date parsers, not
/// through the code under test.
@Suite("NATS extraction")
struct NATSExtractorTests {
    static let target = ["job": "nats", "instance": "127.0.0.1:8222"]
    static let scrapeTime = Timestamp(milliseconds: 1_700_000_000_000)

    static func fixture(_ name: String) throws -> Data {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/nats/\(name)", withExtension: "json"))
        return try Data(contentsOf: url)
    }

    static func reference(_ name: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: fixture(name)) as? [String: Any])
    }

    static func page(_ text: String) throws -> JSONPage {
        JSONPage(document: try JSONDocument(parsing: Array(text.utf8)))
    }

    static func extract(
        _ extractor: inout NATSExtractor,
        _ endpoint: NATSEndpoint,
        _ fixtureName: String
    ) throws -> [Sample] {
        let page = JSONPage(document: try JSONDocument(parsing: Array(try fixture(fixtureName))))
        return try extractor.extract(endpoint, pages: [page], scrapeTime: scrapeTime)
    }

    /// The one sample named `name` whose labels include `labels`.
    static func sample(_ samples: [Sample], _ name: String, _ labels: [String: String] = [:]) -> Sample? {
        let matching = samples.filter { s in
            s.labels.metricName == name && labels.allSatisfy { s.labels[$0.key] == $0.value }
        }
        return matching.count == 1 ? matching[0] : nil
    }

    static func seconds(_ rfc3339: String) throws -> Double {
        // Foundation's parser takes no nanoseconds: cut to milliseconds, as Timestamp keeps them.
        let trimmed = rfc3339.replacingOccurrences(
            of: #"(\.\d{3})\d*Z"#,
            with: "$1Z",
            options: .regularExpression
        )
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return try #require(formatter.date(from: trimmed)).timeIntervalSince1970
    }

    @Test("/varz: exporter names, counters and gauges, the server's name and clock, no server id on data")
    func varz() throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        let samples = try Self.extract(&extractor, .varz, "varz")
        let body = try Self.reference("varz")
        let inMsgs = try #require(Self.sample(samples, "gnatsd_varz_in_msgs"))
        #expect(inMsgs.value == body["in_msgs"] as? Double)
        #expect(inMsgs.kind == .counter)
        #expect(
            inMsgs.labels.dictionary == [
                "__name__": "gnatsd_varz_in_msgs", "job": "nats", "instance": "127.0.0.1:8222",
                "server_name": "scenario-srv",
            ]
        )
        #expect(try inMsgs.timestamp.seconds == Self.seconds(try #require(body["now"] as? String)))
        #expect(Self.sample(samples, "gnatsd_varz_connections")?.kind == .gauge)
        #expect(Self.sample(samples, "gnatsd_varz_mem")?.value == body["mem"] as? Double)
        #expect(Self.sample(samples, "gnatsd_varz_total_connections")?.kind == .counter)
        #expect(Self.sample(samples, "gnatsd_varz_slow_consumers")?.kind == .counter)
        let jetstream = try #require(body["jetstream"] as? [String: Any])
        let stats = try #require(jetstream["stats"] as? [String: Any])
        #expect(Self.sample(samples, "gnatsd_varz_jetstream_stats_storage")?.value == stats["storage"] as? Double)
        let requests = try #require(body["http_req_stats"] as? [String: Double])
        #expect(Self.sample(samples, "gnatsd_varz_http_req_stats_varz")?.value == requests["/varz"])
        #expect(Self.sample(samples, "gnatsd_varz_http_req_stats_varz")?.kind == .counter)
        // Configuration ports are not series; the server id is only on the info series.
        #expect(Self.sample(samples, "gnatsd_varz_port") == nil)
        #expect(Self.sample(samples, "gnatsd_varz_http_port") == nil)
        #expect(
            samples.filter { $0.labels["server_id"] != nil }.map(\.labels.metricName) == ["flatline_nats_server_info"]
        )
        let info = try #require(Self.sample(samples, "flatline_nats_server_info"))
        #expect(info.labels["server_id"] == body["server_id"] as? String)
        #expect(info.labels["version"] == "2.9.10")
        // Every label set is valid and sorted (they are built without validation).
        for s in samples { #expect(try LabelSet(validating: s.labels.dictionary) == s.labels) }
    }

    @Test("/connz: per connection and per client group, across pages, each connection once")
    func connz() throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        _ = try Self.extract(&extractor, .varz, "varz")
        let body = try Self.reference("connz")
        let connections = try #require(body["connections"] as? [[String: Any]])
        // Split the fixture into pages of 3 (overlapping by one, as when a connection closes
        // while paging) and extract them as one scrape.
        var pages: [JSONPage] = []
        var offset = 0
        while offset < connections.count {
            var page = body
            let end = min(connections.count, offset + 4)
            page["connections"] = Array(connections[offset..<end])
            page["offset"] = offset
            pages.append(
                JSONPage(document: try JSONDocument(parsing: Array(try JSONSerialization.data(withJSONObject: page))))
            )
            offset += 3
        }
        #expect(pages.count > 2)
        let samples = try extractor.extract(.connz, pages: pages, scrapeTime: Self.scrapeTime)
        #expect(Self.sample(samples, "gnatsd_connz_num_connections")?.value == Double(connections.count))
        #expect(Self.sample(samples, "gnatsd_connz_total")?.value == body["total"] as? Double)
        #expect(samples.filter { $0.labels.metricName == "gnatsd_connz_in_msgs" }.count == connections.count)
        for connection in connections {
            let cid = try #require(connection["cid"] as? Int)
            let name = connection["name"] as? String ?? ""
            let s = try #require(Self.sample(samples, "gnatsd_connz_in_msgs", ["cid": String(cid)]))
            #expect(s.value == connection["in_msgs"] as? Double)
            #expect(s.kind == .counter)
            #expect(s.labels["client_name"] == (name.isEmpty ? nil : name))
            #expect(s.labels["client_group"] == NATSExtractor.clientGroup(forName: name))
            #expect(s.labels["server_name"] == "scenario-srv")
            // Every numeric member becomes its own series, with its own value and kind.
            let members: [(metric: String, member: String, kind: MetricKind)] = [
                ("gnatsd_connz_pending_bytes", "pending_bytes", .gauge),
                ("gnatsd_connz_subscriptions", "subscriptions", .gauge),
                ("gnatsd_connz_in_msgs", "in_msgs", .counter), ("gnatsd_connz_out_msgs", "out_msgs", .counter),
                ("gnatsd_connz_in_bytes", "in_bytes", .counter), ("gnatsd_connz_out_bytes", "out_bytes", .counter),
                ("gnatsd_connz_stalls", "stalls", .counter),
            ]
            for (metric, member, kind) in members {
                let sample = Self.sample(samples, metric, ["cid": String(cid)])
                #expect((sample == nil) == (connection[member] == nil), "\(metric) of cid \(cid)")
                #expect(sample?.value == connection[member] as? Double, "\(metric) of cid \(cid)")
                if sample != nil { #expect(sample?.kind == kind, "\(metric)") }
            }
        }
        // The fixture tells the counters apart (a swapped pair would go unseen otherwise).
        #expect(connections.contains { ($0["in_bytes"] as? Double) != ($0["out_bytes"] as? Double) })
        #expect(connections.contains { ($0["in_msgs"] as? Double) != ($0["out_msgs"] as? Double) })
        // Groups: connection counts add up to all connections.
        let groups = samples.filter { $0.labels.metricName == "flatline_nats_client_group_connections" }
        #expect(groups.map(\.value).reduce(0, +) == Double(connections.count))
    }

    @Test("a remembered connection knows where each of its series' label sets lives, for prefetching")
    func connectionPrefetchAddresses() throws {
        var connection = ConnzMemory.Connection(cid: 7)
        #expect((0..<connection.addresses.count).allSatisfy { connection.addresses[$0] == 0 })
        // Every series a connection has fits (an added series must grow the inline list).
        #expect(ConnzMemory.Series.allCases.count == connection.addresses.count)
        var sets = connection.series
        for series in ConnzMemory.Series.allCases {
            sets[series.rawValue] = try LabelSet(validating: [("__name__", series.metric), ("cid", "7")])
        }
        connection.series = sets
        for series in ConnzMemory.Series.allCases {
            let set = try #require(connection.series[series.rawValue])
            #expect(connection.addresses[series.rawValue] == set.storageAddress && set.storageAddress != 0)
        }
        // Labelled again (a rename): the label sets are gone, and so are their addresses.
        connection.label(name: "renamed", account: "A", group: "renamed", labels: [])
        #expect((0..<connection.addresses.count).allSatisfy { connection.addresses[$0] == 0 })
    }

    @Test("/connz during the slow-consumer phase: the stuck subscriber's queued bytes")
    func slowConsumer() throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        let samples = try Self.extract(&extractor, .connz, "connz-slow-consumer")
        let body = try Self.reference("connz-slow-consumer")
        let connections = try #require(body["connections"] as? [[String: Any]])
        let slow = try #require(connections.first { $0["name"] as? String == "telemetry-slow-sub" })
        let pending = try #require(slow["pending_bytes"] as? Double)
        #expect(pending > 1_000_000)
        let s = try #require(
            Self.sample(samples, "gnatsd_connz_pending_bytes", ["client_name": "telemetry-slow-sub"])
        )
        #expect(s.value == pending)
        let group = try #require(
            Self.sample(samples, "flatline_nats_client_group_max_pending_bytes", ["client_group": "telemetry-slow-sub"])
        )
        #expect(group.value == pending)
    }

    @Test("/jsz: streams and consumers with the freeze's signals; unlimited sentinels are not samples")
    func jsz() throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        _ = try Self.extract(&extractor, .varz, "varz")
        let samples = try Self.extract(&extractor, .jsz, "jsz")
        let body = try Self.reference("jsz")
        let account = try #require((body["account_details"] as? [[String: Any]])?.first)
        let stream = try #require(
            (account["stream_detail"] as? [[String: Any]])?.first { $0["name"] as? String == "ORDERS" }
        )
        let consumer = try #require(
            (stream["consumer_detail"] as? [[String: Any]])?.first { $0["name"] as? String == "worker" }
        )
        let labels = ["account": "$G", "stream": "ORDERS", "consumer": "worker"]
        let floor = try #require(consumer["ack_floor"] as? [String: Any])
        let delivered = try #require(consumer["delivered"] as? [String: Any])
        let ackFloor = try #require(Self.sample(samples, "jetstream_consumer_ack_floor_stream_seq", labels))
        #expect(ackFloor.value == floor["stream_seq"] as? Double)
        #expect(ackFloor.kind == .counter)
        #expect(
            Self.sample(samples, "jetstream_consumer_num_pending", labels)?.value == consumer["num_pending"] as? Double
        )
        #expect(Self.sample(samples, "jetstream_consumer_num_pending", labels)?.kind == .gauge)
        #expect(
            Self.sample(samples, "jetstream_consumer_num_ack_pending", labels)?.value
                == consumer["num_ack_pending"] as? Double
        )
        // Seconds since the last ack, on the server's clock: the freeze is a minute old here.
        let now = try Self.seconds(try #require(body["now"] as? String))
        let lastAck = try Self.seconds(try #require(floor["last_active"] as? String))
        let lastDelivery = try Self.seconds(try #require(delivered["last_active"] as? String))
        let ackAge = try #require(Self.sample(samples, "jetstream_consumer_last_ack_seconds", labels)?.value)
        #expect(abs(ackAge - (now - lastAck)) < 0.002)
        #expect(ackAge > 59 && ackAge < 61)
        let deliveryAge = try #require(Self.sample(samples, "jetstream_consumer_last_delivery_seconds", labels)?.value)
        #expect(abs(deliveryAge - (now - lastDelivery)) < 0.002)

        let state = try #require(stream["state"] as? [String: Any])
        let streamLabels = ["account": "$G", "stream": "ORDERS"]
        let lastSeq = try #require(Self.sample(samples, "jetstream_stream_last_seq", streamLabels))
        #expect(lastSeq.value == state["last_seq"] as? Double)
        #expect(lastSeq.kind == .counter)
        #expect(Self.sample(samples, "jetstream_server_total_messages")?.value == body["messages"] as? Double)
        // reserved_memory is 2^64-1 (no limit) in the fixture: no series.
        #expect((account["reserved_memory"] as? NSNumber)?.doubleValue ?? 0 > 1e19)
        #expect(Self.sample(samples, "jetstream_account_max_memory", ["account": "$G"]) == nil)
        #expect(
            Self.sample(samples, "jetstream_account_storage_used", ["account": "$G"])?.value == account["storage"]
                as? Double
        )
    }

    @Test(
        "the other endpoints of the fixture set",
        arguments: [
            (NATSEndpoint.accstatz, "accstatz", "gnatsd_accstatz_received_messages"),
            (.subsz, "subsz", "gnatsd_subsz_num_matches"),
            (.subsz, "subsz-detail", "gnatsd_subsz_num_subscriptions"),
            (.routez, "routez", "gnatsd_routez_num_routes"),
            (.leafz, "leafz", "gnatsd_leafz_conn_nodes_total"),
            (.healthz, "healthz", "gnatsd_healthz_status"),
            (.accountz, "accountz", "gnatsd_accountz_accounts"),
            (.accountz, "accountz-global", "gnatsd_accountz_client_connections"),
        ]
    )
    func otherEndpoints(endpoint: NATSEndpoint, fixture: String, expected: String) throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        let samples = try Self.extract(&extractor, endpoint, fixture)
        #expect(samples.contains { $0.labels.metricName == expected }, "\(samples.map(\.labels.metricName))")
    }

    @Test("/accstatz and /subsz values and kinds")
    func accstatzValues() throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        let samples = try Self.extract(&extractor, .accstatz, "accstatz")
        let account = try #require((try Self.reference("accstatz")["account_statz"] as? [[String: Any]])?.first)
        let received = try #require(account["received"] as? [String: Any])
        let s = try #require(Self.sample(samples, "gnatsd_accstatz_received_messages", ["account": "$G"]))
        #expect(s.value == received["msgs"] as? Double)
        #expect(s.kind == .counter)
        #expect(Self.sample(samples, "gnatsd_accstatz_total_connections", ["account": "$G"])?.kind == .gauge)

        let subsz = try Self.extract(&extractor, .subsz, "subsz")
        let reference = try Self.reference("subsz")
        #expect(Self.sample(subsz, "gnatsd_subsz_num_matches")?.value == reference["num_matches"] as? Double)
        #expect(Self.sample(subsz, "gnatsd_subsz_num_matches")?.kind == .counter)
        // /subsz has no `now`: the scrape time stands in.
        #expect(subsz.allSatisfy { $0.timestamp == Self.scrapeTime })
    }

    @Test("/healthz: 0 when ok, 1 otherwise, as the exporter has it")
    func healthz() throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        let ok = try extractor.extract(.healthz, pages: [Self.page(#"{"status":"ok"}"#)], scrapeTime: Self.scrapeTime)
        #expect(Self.sample(ok, "gnatsd_healthz_status")?.value == 0)
        let bad = try extractor.extract(
            .healthz,
            pages: [Self.page(#"{"status":"unavailable","error":"JetStream has not processed all assets"}"#)],
            scrapeTime: Self.scrapeTime
        )
        #expect(Self.sample(bad, "gnatsd_healthz_status")?.value == 1)
        #expect(Self.sample(bad, "gnatsd_healthz_status_value", ["value": "unavailable"])?.value == 1)
    }

    static func varzBody(id: String, start: String, now: String, inMsgs: Int) -> String {
        #"{"server_id":"\#(id)","server_name":"n1","start":"\#(start)","now":"\#(now)","in_msgs":\#(inMsgs),"connections":3}"#
    }

    @Test("a restart (new server id, new start) marks the counters of every endpoint as reset")
    func restart() throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        let start1 = "2026-01-01T00:00:00Z"
        let start2 = "2026-01-01T00:05:00Z"
        func varz(_ id: String, _ start: String, _ now: String, _ n: Int) throws -> [Sample] {
            try extractor.extract(
                .varz,
                pages: [Self.page(Self.varzBody(id: id, start: start, now: now, inMsgs: n))],
                scrapeTime: Self.scrapeTime
            )
        }
        func subsz(_ matches: Int, at seconds: Int64) throws -> [Sample] {
            try extractor.extract(
                .subsz,
                pages: [Self.page(#"{"num_subscriptions":1,"num_matches":\#(matches)}"#)],
                scrapeTime: Timestamp(milliseconds: 1_767_225_600_000 + seconds * 1000)
            )
        }
        let a = try varz("A", start1, "2026-01-01T00:01:00Z", 1000)
        #expect(a.allSatisfy { !$0.counterReset })
        #expect(try subsz(50, at: 60).allSatisfy { !$0.counterReset })
        let b = try varz("A", start1, "2026-01-01T00:02:00Z", 2000)
        #expect(b.allSatisfy { !$0.counterReset })
        // The server restarted: new id, new start. Its counters are lower *or higher*; either way
        // they count from zero now.
        let c = try varz("B", start2, "2026-01-01T00:06:00Z", 5000)
        #expect(Self.sample(c, "gnatsd_varz_in_msgs")?.counterReset == true)
        #expect(Self.sample(c, "gnatsd_varz_connections")?.counterReset == false)
        // /subsz carries no id: its first body since the new start counts from zero too.
        let s = try subsz(60, at: 360)
        #expect(Self.sample(s, "gnatsd_subsz_num_matches")?.counterReset == true)
        #expect(try subsz(70, at: 361).allSatisfy { !$0.counterReset })
        let d = try varz("B", start2, "2026-01-01T00:07:00Z", 5100)
        #expect(d.allSatisfy { !$0.counterReset })
        // Series keep their names across the restart.
        let data = { (samples: [Sample]) in Set(samples.filter { $0.labels["server_id"] == nil }.map(\.labels)) }
        #expect(data(a) == data(d))
        #expect(data(a).count == 3)
    }

    static func connzBody(now: String, _ connections: [(cid: Int, name: String, inMsgs: Int)]) -> String {
        let list = connections.map {
            #"{"cid":\#($0.cid),"name":"\#($0.name)","in_msgs":\#($0.inMsgs),"pending_bytes":0}"#
        }
        return
            #"{"server_id":"A","now":"\#(now)","num_connections":\#(connections.count),"total":\#(connections.count),"offset":0,"limit":1024,"connections":[\#(list.joined(separator: ","))]}"#
    }

    @Test("a client that reconnects gets a new cid; its group's totals carry on")
    func reconnect() throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        func scrape(_ now: String, _ connections: [(cid: Int, name: String, inMsgs: Int)]) throws -> [Sample] {
            try extractor.extract(
                .connz,
                pages: [Self.page(Self.connzBody(now: now, connections))],
                scrapeTime: Self.scrapeTime
            )
        }
        func groupTotal(_ samples: [Sample]) -> Double? {
            Self.sample(samples, "flatline_nats_client_group_in_msgs", ["client_group": "worker"])?.value
        }
        let first = try scrape("2026-01-01T00:00:01Z", [(5, "worker-1", 100), (6, "worker-2", 10)])
        #expect(groupTotal(first) == 0)
        let second = try scrape("2026-01-01T00:00:02Z", [(5, "worker-1", 130), (6, "worker-2", 15)])
        #expect(groupTotal(second) == 35)
        // worker-1 reconnected as cid 9 and has published 7 since; worker-2 left.
        let third = try scrape("2026-01-01T00:00:03Z", [(9, "worker-1", 7)])
        #expect(groupTotal(third) == 42)
        #expect(Self.sample(third, "gnatsd_connz_in_msgs", ["cid": "9"])?.labels["client_name"] == "worker-1")
        #expect(Self.sample(third, "gnatsd_connz_in_msgs", ["cid": "5"]) == nil)
        #expect(Self.sample(third, "flatline_nats_client_group_connections", ["client_group": "worker"])?.value == 1)
        let fourth = try scrape("2026-01-01T00:00:04Z", [(9, "worker-1", 20)])
        #expect(groupTotal(fourth) == 55)
        #expect(Self.sample(fourth, "flatline_nats_client_group_in_msgs")?.counterReset == false)
    }

    @Test("a connection's series keep their label sets across scrapes, and take new ones when it changes")
    func rememberedConnections() throws {
        // Raw JSON members of a connection (name and account as written, escapes included).
        typealias Raw = (cid: Int, name: String?, account: String?, inMsgs: Int)
        func body(_ server: String, _ second: Int, _ connections: [Raw]) -> [UInt8] {
            let list = connections.map { c in
                var members = [#""cid":\#(c.cid)"#, #""in_msgs":\#(c.inMsgs)"#, #""pending_bytes":\#(c.cid * 10)"#]
                if let name = c.name { members.append(#""name":"\#(name)""#) }
                if let account = c.account { members.append(#""account":"\#(account)""#) }
                members.append(#""rtt":"1.5ms","idle":"2s","subscriptions":1"#)
                return "{" + members.joined(separator: ",") + "}"
            }
            let text =
                #"{"server_id":"\#(server)","now":"2026-01-01T00:00:0\#(second)Z","total":\#(connections.count),"connections":[\#(list.joined(separator: ","))]}"#
            var bytes = Array(text.utf8)
            // "\u{FFFD}" in a name below stands for an invalid byte in the body.
            while let k = bytes.firstIndex(of: UInt8(ascii: "~")) { bytes[k] = 0xFF }
            return bytes
        }
        /// Text with every byte outside printable ASCII as `\xHH`: two texts Swift holds equal
        /// (`é` and `e` + U+0301) stay apart.
        func bytes(_ text: String) -> String {
            text.utf8.map { $0 >= 0x20 && $0 < 0x7F ? String(UnicodeScalar($0)) : "\\x" + String($0, radix: 16) }
                .joined()
        }
        /// The per-connection series of `samples` by their exact bytes: labels, name included, and value.
        func perConnection(_ samples: [Sample]) -> [String] {
            samples.filter { $0.labels["cid"] != nil }.map { sample in
                sample.labels.labels.map { "\($0.name)=\(bytes($0.value))" }.joined(separator: ",") + " \(sample.value)"
            }.sorted()
        }
        let scrapes: [(server: String, connections: [Raw])] = [
            ("A", [(1, "api-1", "$G", 10), (2, "worker-7", nil, 5), (3, nil, nil, 1), (4, #"caf\u00e9"#, "X", 0)]),
            // cid 1 renamed, cid 2's account appears, cid 3 stays unnamed, cid 4 unchanged.
            ("A", [(1, "api-2", "$G", 12), (2, "worker-7", "B", 6), (3, nil, nil, 2), (4, #"caf\u00e9"#, "X", 1)]),
            // The same text written another way (precomposed, then decomposed), an invalid
            // byte, a connection listed twice, one gone and one new.
            ("A", [(4, "caf\u{E9}", "X", 2), (2, "worker-7", "B", 7), (2, "worker-7", "B", 7), (5, "n~x", nil, 3)]),
            ("A", [(4, "cafe\u{301}", "X", 3), (5, "n~x", nil, 4), (1, "", "$G", 13)]),
            // The server restarted under another name: every label set is built again.
            ("B", [(4, "cafe\u{301}", "X", 1), (5, "n~x", nil, 1)]),
        ]
        var remembering = NATSExtractor(targetLabels: Self.target)
        for (k, scrape) in scrapes.enumerated() {
            let varz =
                #"{"server_id":"\#(scrape.server)","server_name":"n-\#(scrape.server)","now":"2026-01-01T00:00:0\#(k)Z"}"#
            _ = try remembering.extract(.varz, pages: [Self.page(varz)], scrapeTime: Self.scrapeTime)
            let pages = [JSONPage(document: try JSONDocument(parsing: body(scrape.server, k, scrape.connections)))]
            let kept = try remembering.extract(.connz, pages: pages, scrapeTime: Self.scrapeTime)
            var fresh = NATSExtractor(targetLabels: Self.target)
            _ = try fresh.extract(.varz, pages: [Self.page(varz)], scrapeTime: Self.scrapeTime)
            let built = try fresh.extract(.connz, pages: pages, scrapeTime: Self.scrapeTime)
            #expect(perConnection(kept) == perConnection(built), "scrape \(k)")
            #expect(!perConnection(kept).isEmpty)
        }
        // Only the connections of the last /connz are remembered.
        #expect(remembering.connzMemory.connections.map(\.cid).sorted() == [4, 5])
    }

    @Test("closed connections are counted once each, by reason")
    func closedConnections() throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        func scrape(_ closed: [(Int, String)]) throws -> [Sample] {
            let list = closed.map { #"{"cid":\#($0.0),"name":"x","reason":"\#($0.1)"}"# }
            let body =
                #"{"server_id":"A","now":"2026-01-01T00:00:01Z","total":\#(closed.count),"connections":[\#(list.joined(separator: ","))]}"#
            return try extractor.extract(.connzClosed, pages: [Self.page(body)], scrapeTime: Self.scrapeTime)
        }
        let total = "flatline_nats_closed_connections_total"
        // The first body primes: what closed before Flatline looked is not counted.
        let first = try scrape([(3, "Client Closed")])
        #expect(Self.sample(first, total, [:].merging(["reason": ""]) { a, _ in a })?.value == nil)
        #expect(first.first { $0.labels.metricName == total && $0.labels["reason"] == nil }?.value == 0)
        let second = try scrape([(3, "Client Closed"), (26, "Slow Consumer (Write Deadline)")])
        #expect(second.first { $0.labels.metricName == total && $0.labels["reason"] == nil }?.value == 1)
        #expect(Self.sample(second, total, ["reason": "Slow Consumer (Write Deadline)"])?.value == 1)
        let third = try scrape([(26, "Slow Consumer (Write Deadline)"), (30, "Slow Consumer (Write Deadline)")])
        #expect(Self.sample(third, total, ["reason": "Slow Consumer (Write Deadline)"])?.value == 2)
        #expect(third.first { $0.labels.metricName == total && $0.labels["reason"] == nil }?.value == 2)
    }

    @Test("replicated streams and consumers are read from their leader only")
    func leaderView() throws {
        let body = #"""
            {"server_id":"A","server_name":"n1","now":"2026-01-01T00:00:01Z","streams":2,
             "account_details":[{"name":"APP","stream_detail":[
               {"name":"LED","cluster":{"leader":"n1"},"state":{"messages":5,"last_seq":5},
                "consumer_detail":[{"name":"c1","cluster":{"leader":"n1"},"num_pending":1},
                                   {"name":"c2","cluster":{"leader":"n2"},"num_pending":9}]},
               {"name":"FOLLOWED","cluster":{"leader":"n3"},"state":{"messages":7,"last_seq":7}}]}]}
            """#
        var leaderOnly = NATSExtractor(targetLabels: Self.target)
        let samples = try leaderOnly.extract(.jsz, pages: [Self.page(body)], scrapeTime: Self.scrapeTime)
        #expect(Self.sample(samples, "jetstream_stream_last_seq", ["stream": "LED"])?.value == 5)
        #expect(Self.sample(samples, "jetstream_stream_last_seq", ["stream": "FOLLOWED"]) == nil)
        #expect(Self.sample(samples, "jetstream_consumer_num_pending", ["consumer": "c1"])?.value == 1)
        #expect(Self.sample(samples, "jetstream_consumer_num_pending", ["consumer": "c2"]) == nil)
        // Which server reported is in the labels.
        #expect(Self.sample(samples, "jetstream_stream_last_seq", ["stream": "LED"])?.labels["server_name"] == "n1")

        var everyView = NATSExtractor(targetLabels: Self.target, options: NATSExtractionOptions(leaderOnly: false))
        let all = try everyView.extract(.jsz, pages: [Self.page(body)], scrapeTime: Self.scrapeTime)
        #expect(Self.sample(all, "jetstream_stream_last_seq", ["stream": "FOLLOWED"])?.value == 7)
        #expect(Self.sample(all, "jetstream_consumer_num_pending", ["consumer": "c2"])?.value == 9)
    }

    @Test("routes, leaf nodes and gateways, by the server at the other end")
    func links() throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        let routez = #"""
            {"server_id":"A","now":"2026-01-01T00:00:01Z","num_routes":3,"routes":[
              {"rid":1,"remote_id":"B","remote_name":"n2","in_msgs":10,"out_msgs":20,"pending_size":5,"rtt":"1.5ms"},
              {"rid":2,"remote_id":"B","remote_name":"n2","in_msgs":1,"out_msgs":2,"pending_size":0,"rtt":"2ms"},
              {"rid":3,"remote_id":"C","in_msgs":4,"out_msgs":4,"pending_size":0,"rtt":"0s"}]}
            """#
        let r = try extractor.extract(.routez, pages: [Self.page(routez)], scrapeTime: Self.scrapeTime)
        #expect(Self.sample(r, "gnatsd_routez_num_routes")?.value == 3)
        #expect(Self.sample(r, "gnatsd_routez_in_msgs", ["route": "n2"])?.value == 11)
        #expect(Self.sample(r, "gnatsd_routez_pending_bytes", ["route": "n2"])?.value == 5)
        #expect(Self.sample(r, "gnatsd_routez_rtt_seconds", ["route": "n2"])?.value == 0.002)
        #expect(Self.sample(r, "gnatsd_routez_in_msgs", ["route": "C"])?.value == 4)

        let leafz = #"""
            {"server_id":"A","now":"2026-01-01T00:00:01Z","leafnodes":1,"leafs":[
              {"name":"edge-1","account":"APP","ip":"10.0.0.5","port":7422,"rtt":"3ms","in_msgs":7,"out_msgs":8,
               "in_bytes":70,"out_bytes":80,"subscriptions":4}]}
            """#
        let l = try extractor.extract(.leafz, pages: [Self.page(leafz)], scrapeTime: Self.scrapeTime)
        #expect(Self.sample(l, "gnatsd_leafz_conn_in_msgs", ["leaf": "edge-1", "account": "APP"])?.value == 7)
        #expect(Self.sample(l, "gnatsd_leafz_conn_rtt", ["leaf": "edge-1"])?.value == 0.003)

        let gatewayz = #"""
            {"server_id":"A","now":"2026-01-01T00:00:01Z",
             "outbound_gateways":{"east":{"configured":true,"connection":{"cid":12,"in_msgs":1,"out_msgs":2,"rtt":"10ms"}},
                                  "west":{"configured":true}},
             "inbound_gateways":{"east":[{"configured":false,"connection":{"cid":13,"in_msgs":5}}]}}
            """#
        let g = try extractor.extract(.gatewayz, pages: [Self.page(gatewayz)], scrapeTime: Self.scrapeTime)
        #expect(Self.sample(g, "gnatsd_gatewayz_outbound_gateway_conn_out_msgs", ["gateway": "east"])?.value == 2)
        #expect(Self.sample(g, "gnatsd_gatewayz_outbound_gateway_connected", ["gateway": "west"])?.value == 0)
        #expect(
            Self.sample(g, "gnatsd_gatewayz_inbound_gateway_conn_in_msgs", ["gateway": "east", "cid": "13"])?.value == 5
        )
    }

    @Test(
        "bodies of the wrong shape are errors naming the endpoint",
        arguments: [
            (NATSEndpoint.connz, "[1,2,3]", "expected a JSON object"),
            (.connz, #"{"server_id":"A","now":"2026-01-01T00:00:01Z"}"#, "no \"connections\" list"),
            (.connz, #"{"connections":{"cid":1}}"#, "no \"connections\" list"),
            (.varz, "\"ok\"", "expected a JSON object"),
            (.connzClosed, #"{"total":1}"#, "no \"connections\" list"),
        ]
    )
    func wrongShape(endpoint: NATSEndpoint, body: String, reason: String) throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        #expect {
            _ = try extractor.extract(endpoint, pages: [Self.page(body)], scrapeTime: Self.scrapeTime)
        } throws: { error in
            guard let error = error as? ExtractionError else { return false }
            return error.endpoint == endpoint.rawValue && error.reason.contains(reason)
        }
    }

    @Test("a body missing fields (another server version) gives the fields it has, and no error")
    func sparseBodies() throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        for endpoint in NATSEndpoint.allCases where endpoint != .connz && endpoint != .connzClosed {
            let samples = try extractor.extract(endpoint, pages: [Self.page("{}")], scrapeTime: Self.scrapeTime)
            #expect(samples.allSatisfy { $0.value.isFinite })
        }
    }

    @Test(
        "client groups from connection names",
        arguments: [
            ("orders-worker-3", "orders-worker"), ("orders-worker", "orders-worker"), ("api.7f3a9c21", "api"),
            ("svc-7f3a9c21-2", "svc"), ("worker3", "worker3"), ("telemetry-slow-sub", "telemetry-slow-sub"),
            ("", "unnamed"), ("42", "42"), ("cache-deadbeef", "cache-deadbeef"), ("app_v2", "app_v2"),
            ("job-abcdef", "job-abcdef"), ("orders-7d9f8b6c5d-x2k4p", "orders"), ("-7", "-7"),
            ("zähler-12", "zähler"), ("日本-3", "日本"), ("svc-é1234", "svc-é1234"), ("a/b:c.d_9", "a/b:c.d"),
        ]
    )
    func clientGroups(name: String, group: String) {
        #expect(NATSExtractor.clientGroup(forName: name) == group)
    }

    @Test("a /varz slow_consumers rise is put on the connection that left /connz, most bytes pending first")
    func slowConsumerAttribution() throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        func round(_ second: Int, slow: Int, connections: String) throws -> [Sample] {
            let now = "2026-01-01T00:00:\(second < 10 ? "0" : "")\(second)Z"
            let time = Timestamp(milliseconds: 1_767_225_600_000 + Int64(second) * 1000)
            _ = try extractor.extract(
                .varz,
                pages: [Self.page(#"{"server_id":"A","now":"\#(now)","slow_consumers":\#(slow)}"#)],
                scrapeTime: time
            )
            return try extractor.extract(
                .connz,
                pages: [Self.page(#"{"server_id":"A","now":"\#(now)","total":3,"connections":[\#(connections)]}"#)],
                scrapeTime: time
            )
        }
        let three = #"""
            {"cid":5,"name":"telemetry-sub","pending_bytes":300000},{"cid":6,"name":"api-1","pending_bytes":0},
            {"cid":7,"name":"batch-2","pending_bytes":10}
            """#
        #expect(
            try round(0, slow: 4, connections: three).allSatisfy { !$0.labels.metricName.contains("slow_consumers") }
        )
        #expect(
            try round(1, slow: 4, connections: three).allSatisfy { !$0.labels.metricName.contains("slow_consumers") }
        )
        // One cut-off while two connections left: the one with bytes queued for it was it.
        let after = try round(2, slow: 5, connections: #"{"cid":6,"name":"api-1","pending_bytes":0}"#)
        let cut = after.filter { $0.labels.metricName == "flatline_nats_client_group_slow_consumers_total" }
        #expect(cut.map { $0.labels["client_group"] ?? "" } == ["telemetry-sub"])
        #expect(cut.first?.value == 1 && cut.first?.kind == .counter)
        // A rise nobody left for still counts, as unattributed.
        let later = try round(3, slow: 6, connections: #"{"cid":6,"name":"api-1","pending_bytes":0}"#)
        let counts = Dictionary(
            later.filter { $0.labels.metricName == "flatline_nats_client_group_slow_consumers_total" }
                .map { ($0.labels["client_group"] ?? "", $0.value) },
            uniquingKeysWith: { a, _ in a }
        )
        #expect(counts == ["telemetry-sub": 1, "unattributed": 1])
    }

    @Test("with /connz?state=closed read, slow-consumer cut-offs come from the closed connections' reasons")
    func slowConsumerFromClosed() throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        let closed =
            #"{"server_id":"A","now":"2026-01-01T00:00:01Z","connections":[{"cid":1,"name":"x","reason":"Client Closed"}]}"#
        _ = try extractor.extract(.connzClosed, pages: [Self.page(closed)], scrapeTime: Self.scrapeTime)
        let next = #"""
            {"server_id":"A","now":"2026-01-01T00:00:02Z","connections":[{"cid":1,"name":"x","reason":"Client Closed"},
             {"cid":9,"name":"telemetry-sub","reason":"Slow Consumer (Write Deadline)"}]}
            """#
        let samples = try extractor.extract(.connzClosed, pages: [Self.page(next)], scrapeTime: Self.scrapeTime)
        let cut = samples.filter { $0.labels.metricName == "flatline_nats_client_group_slow_consumers_total" }
        #expect(cut.map { $0.labels["client_group"] ?? "" } == ["telemetry-sub"] && cut.first?.value == 1)
    }

    @Test("closed connections with ever new reasons and client names: series stay bounded, totals stay right")
    func closedCaps() throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        _ = try extractor.extract(.connzClosed, pages: [Self.page(#"{"connections":[]}"#)], scrapeTime: Self.scrapeTime)
        var connections: [String] = []
        for k in 0..<12_000 {
            connections.append(#"{"cid":\#(k + 1),"name":"c\#(k)-svc","reason":"reason \#(k % 100)"}"#)
        }
        let body = #"{"connections":[\#(connections.joined(separator: ","))]}"#
        let samples = try extractor.extract(.connzClosed, pages: [Self.page(body)], scrapeTime: Self.scrapeTime)
        let byReason = samples.filter {
            $0.labels.metricName == "flatline_nats_closed_connections_total" && $0.labels["reason"] != nil
        }
        #expect(byReason.count <= NATSExtractor.maxClosedReasons + 1)
        #expect(byReason.reduce(0) { $0 + $1.value } == 12_000)
        let groups = Set(
            samples.filter { $0.labels.metricName == "flatline_nats_client_group_closed_total" }
                .compactMap { $0.labels["client_group"] }
        )
        #expect(groups.count <= ClientGroupTotals.maxGroups + 1 && groups.contains("other"))
    }
}
