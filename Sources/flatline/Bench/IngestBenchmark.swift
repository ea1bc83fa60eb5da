import FlatlineCore
import FlatlineIngest
import Foundation

/// Extraction throughput: NATS bodies (a 10,000-connection `/connz` page set, a `/jsz` with
/// 1,000 streams × 10 consumers) into samples, and Prometheus exposition text into samples, each
/// next to a plain reference on the same bytes in the same run: Foundation's JSONSerialization
/// with the same fields read from its dictionaries, Python's `json.loads` (parse only), and for
/// exposition a naive split-and-convert parser.
struct IngestBenchmark {
    struct Row {
        var name: String
        var milliseconds: Double
        var samples: Int
        var foundationMilliseconds: Double?
        var pythonMilliseconds: Double?
    }

    let python: String
    let quick: Bool

    /// A `/connz` page set: `count` connections in pages of `pageSize`, as nats-server 2.9 writes them.
    static func connzPages(
        count: Int,
        pageSize: Int,
        round: Int = 0,
        now: String = "2026-11-24T15:25:51.316818855Z"
    ) -> [[UInt8]] {
        var pages: [[UInt8]] = []
        var offset = 0
        while offset < count {
            let end = min(count, offset + pageSize)
            var text =
                #"{"server_id":"NBHRISZYFXECQXA7AVQO6NCZRTQVZGHOE2ZUIF2FRI26Z6XOHJACBTDR","now":"\#(now)","#
            text +=
                #""num_connections":\#(end - offset),"total":\#(count),"offset":\#(offset),"limit":\#(pageSize),"connections":["#
            for cid in offset..<end {
                if cid > offset { text += "," }
                text +=
                    #"{"cid":\#(cid + 1),"kind":"Client","type":"nats","ip":"10.1.\#(cid / 250).\#(cid % 250)","port":\#(30000 + cid),"#
                text += #""start":"2026-11-24T15:23:21.175659966Z","last_activity":"2026-11-24T15:25:51.200103893Z","#
                text += #""rtt":"277µs","uptime":"2m30s","idle":"0s","pending_bytes":\#(cid % 7 == 0 ? 4096 : 0),"#
                text +=
                    #""in_msgs":\#(cid * 13 + round * 15 * (1 + cid % 5)),"out_msgs":\#(cid * 17 + round * 15),"#
                text +=
                    #""in_bytes":\#(cid * 1301 + round * 1500 * (1 + cid % 5)),"out_bytes":\#(cid * 1709 + round * 1500),"#
                text +=
                    #""subscriptions":\#(1 + cid % 4),"name":"service-\#(cid % 40)-\#(cid)","lang":"go","version":"1.37.0"}"#
            }
            text += "]}"
            pages.append(Array(text.utf8))
            offset = end
        }
        return pages
    }

    /// A `/jsz?accounts=true&streams=true&consumers=true&config=true` body.
    static func jsz(
        streams: Int,
        consumers: Int,
        round: Int = 0,
        now: String = "2026-11-24T15:25:51.317131825Z"
    ) -> [UInt8] {
        var text =
            #"{"server_id":"N1","now":"\#(now)","config":{"max_memory":18957376512,"max_storage":62173151232},"#
        text +=
            #""memory":0,"storage":1396502,"accounts":1,"ha_assets":0,"api":{"total":8,"errors":0},"streams":\#(streams),"#
        text +=
            #""consumers":\#(streams * consumers),"messages":4614,"bytes":1396502,"account_details":[{"name":"$G","id":"$G","#
        text +=
            #""memory":0,"storage":1396502,"reserved_memory":18446744073709551615,"reserved_storage":18446744073709551615,"#
        text += #""api":{"total":8,"errors":0},"stream_detail":["#
        for s in 0..<streams {
            if s > 0 { text += "," }
            text += #"{"name":"S\#(s)","created":"2026-11-24T15:23:21.177426989Z","cluster":{"leader":"n1"},"#
            text +=
                #""config":{"name":"S\#(s)","subjects":["s\#(s).>"],"max_msgs":-1,"max_bytes":-1,"num_replicas":1},"#
            text +=
                #""state":{"messages":\#(s * 31),"bytes":\#(s * 9000),"first_seq":1,"last_seq":\#(s * 31 + round * 30),"#
            text +=
                #""first_ts":"2026-11-24T15:23:21.374581928Z","last_ts":"2026-11-24T15:25:51.275533379Z","num_subjects":8,"consumer_count":\#(consumers)},"#
            text += #""consumer_detail":["#
            for c in 0..<consumers {
                if c > 0 { text += "," }
                text += #"{"stream_name":"S\#(s)","name":"c\#(c)","created":"2026-11-24T15:23:21.191734171Z","#
                text +=
                    #""config":{"durable_name":"c\#(c)","ack_policy":"explicit","ack_wait":10000000000,"max_deliver":-1,"max_ack_pending":200},"#
                text +=
                    #""delivered":{"consumer_seq":\#(s + c * 7 + round * 30),"stream_seq":\#(s + c * 5 + round * 30),"last_active":"2026-11-24T15:25:51.303681449Z"},"#
                text +=
                    #""ack_floor":{"consumer_seq":\#(s + c * 3 + round * 30),"stream_seq":\#(s + c * 3 + round * 30),"last_active":"2026-11-24T15:24:51.256186138Z"},"#
                text += #""num_ack_pending":\#(c * 2),"num_redelivered":0,"num_waiting":1,"num_pending":\#(s % 50)}"#
            }
            text += "]}"
        }
        text += "]}]}"
        return Array(text.utf8)
    }

    /// An exposition of `count` samples in families of 100 series.
    static func exposition(count: Int) -> [UInt8] {
        var text = ""
        for family in 0..<(count / 100) {
            text += "# HELP app_requests_\(family)_total Requests.\n# TYPE app_requests_\(family)_total counter\n"
            for k in 0..<100 {
                text +=
                    "app_requests_\(family)_total{method=\"GET\",path=\"/api/v\(k % 3)/item\",code=\"\(200 + k % 5)\",pod=\"web-\(k)\"} \(family * 1000 + k).5\n"
            }
        }
        return Array(text.utf8)
    }

    /// The best of `repeats` runs of `body`, in milliseconds.
    static func time(repeats: Int, _ body: () throws -> Void) rethrows -> Double {
        var best = Double.infinity
        let clock = ContinuousClock()
        for _ in 0..<repeats {
            let started = clock.now
            try body()
            let elapsed = clock.now - started
            best = min(best, Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
        }
        return best
    }

    func run() throws -> [Row] {
        let repeats = quick ? 2 : 5
        var rows: [Row] = []

        let connections = quick ? 2000 : 10_000
        let pages = Self.connzPages(count: connections, pageSize: 1024)
        var samples = 0
        let connzTime = try Self.time(repeats: repeats) {
            var extractor = NATSExtractor(targetLabels: ["job": "nats", "instance": "127.0.0.1:8222"])
            let parsed = try pages.map { JSONPage(document: try JSONDocument(parsing: $0)) }
            samples = try extractor.extract(.connz, pages: parsed, scrapeTime: Timestamp(milliseconds: 0)).count
        }
        let connzFoundation = try Self.time(repeats: repeats) {
            var fields = 0
            for page in pages {
                let object = try JSONSerialization.jsonObject(with: Data(page)) as? [String: Any]
                for connection in object?["connections"] as? [[String: Any]] ?? [] {
                    for key in [
                        "cid", "pending_bytes", "in_msgs", "out_msgs", "in_bytes", "out_bytes", "subscriptions",
                    ] {
                        if connection[key] is NSNumber { fields += 1 }
                    }
                    if connection["name"] is String { fields += 1 }
                    if connection["rtt"] is String { fields += 1 }
                }
            }
            precondition(fields > 0)
        }
        let connzPython = try pythonParse(pages)
        rows.append(
            Row(
                name: "/connz, \(connections.formatted) connections (\(pages.count) pages)",
                milliseconds: connzTime,
                samples: samples,
                foundationMilliseconds: connzFoundation,
                pythonMilliseconds: connzPython
            )
        )
        // A target's next scrape: its connections' label sets are remembered.
        var connzExtractor = NATSExtractor(targetLabels: ["job": "nats", "instance": "127.0.0.1:8222"])
        _ = try connzExtractor.extract(
            .connz,
            pages: try pages.map { JSONPage(document: try JSONDocument(parsing: $0)) },
            scrapeTime: Timestamp(milliseconds: 0)
        )
        let connzNext = try Self.time(repeats: repeats) {
            let parsed = try pages.map { JSONPage(document: try JSONDocument(parsing: $0)) }
            samples = try connzExtractor.extract(.connz, pages: parsed, scrapeTime: Timestamp(milliseconds: 15_000))
                .count
        }
        rows.append(
            Row(
                name: "/connz, the same target's next scrape",
                milliseconds: connzNext,
                samples: samples,
                foundationMilliseconds: connzFoundation,
                pythonMilliseconds: connzPython
            )
        )
        var values = 0
        let connzParse = try Self.time(repeats: repeats) {
            values = try pages.reduce(0) { $0 + (try JSONDocument(parsing: $1)).count }
        }
        rows.append(
            Row(
                name: "/connz, parsing alone (values)",
                milliseconds: connzParse,
                samples: values,
                foundationMilliseconds: nil,
                pythonMilliseconds: connzPython
            )
        )

        let streams = quick ? 200 : 1000
        let body = Self.jsz(streams: streams, consumers: 10)
        let jszTime = try Self.time(repeats: repeats) {
            var extractor = NATSExtractor(targetLabels: ["job": "nats", "instance": "127.0.0.1:8222"])
            let page = JSONPage(document: try JSONDocument(parsing: body))
            samples = try extractor.extract(.jsz, pages: [page], scrapeTime: Timestamp(milliseconds: 0)).count
        }
        let jszFoundation = try Self.time(repeats: repeats) {
            var fields = 0
            let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
            for account in object?["account_details"] as? [[String: Any]] ?? [] {
                for stream in account["stream_detail"] as? [[String: Any]] ?? [] {
                    if let state = stream["state"] as? [String: Any], state["last_seq"] is NSNumber { fields += 1 }
                    for consumer in stream["consumer_detail"] as? [[String: Any]] ?? [] {
                        for key in ["num_pending", "num_ack_pending", "num_redelivered", "num_waiting"] {
                            if consumer[key] is NSNumber { fields += 1 }
                        }
                        if let floor = consumer["ack_floor"] as? [String: Any], floor["stream_seq"] is NSNumber {
                            fields += 1
                        }
                    }
                }
            }
            precondition(fields > 0)
        }
        rows.append(
            Row(
                name: "/jsz, \(streams.formatted) streams × 10 consumers",
                milliseconds: jszTime,
                samples: samples,
                foundationMilliseconds: jszFoundation,
                pythonMilliseconds: try pythonParse([body])
            )
        )

        let count = quick ? 20_000 : 200_000
        let text = Self.exposition(count: count)
        let expositionTime = try Self.time(repeats: repeats) {
            samples = try ExpositionParser(format: .text).parse(text).count
        }
        let naive = Self.time(repeats: repeats) {
            var parsed = 0
            for line in String(decoding: text, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
                let parts = line.split(separator: " ")
                if parts.count >= 2, Double(parts[parts.count - 1]) != nil { parsed += 1 }
            }
            precondition(parsed > 0)
        }
        rows.append(
            Row(
                name: "exposition, \(count.formatted) samples",
                milliseconds: expositionTime,
                samples: samples,
                foundationMilliseconds: naive,
                pythonMilliseconds: nil
            )
        )
        // A target's next scrape: the series of the last one are remembered by their bytes.
        var extractor = TargetExtractor(kind: .prometheus, targetLabels: ["job": "bench", "instance": "bench:9100"])
        _ = try extractor.samples(exposition: text, contentType: nil, scrapeTime: Timestamp(milliseconds: 0))
        let nextTime = try Self.time(repeats: repeats) {
            samples = try extractor.samples(exposition: text, contentType: nil, scrapeTime: Timestamp(milliseconds: 0))
                .count
        }
        rows.append(
            Row(
                name: "exposition, a target's next scrape",
                milliseconds: nextTime,
                samples: samples,
                foundationMilliseconds: naive,
                pythonMilliseconds: nil
            )
        )
        return rows
    }

    /// Python's `json.loads` over the same bodies: the best of three, in milliseconds.
    private func pythonParse(_ bodies: [[UInt8]]) throws -> Double? {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "flatline-bench-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var files: [String] = []
        for (k, body) in bodies.enumerated() {
            let file = directory.appendingPathComponent("\(k).json")
            try Data(body).write(to: file)
            files.append(file.path)
        }
        let script = """
            import json, sys, time
            data = [open(f, 'rb').read() for f in sys.argv[1:]]
            best = float('inf')
            for _ in range(3):
                t0 = time.perf_counter()
                for d in data:
                    json.loads(d)
                best = min(best, time.perf_counter() - t0)
            print(best * 1000)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, "-c", script] + files
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return Double(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
