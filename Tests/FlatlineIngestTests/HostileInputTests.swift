import FlatlineCore
import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineIngest

/// Bodies from servers Flatline does not control: extreme numbers and times in every field of
/// every NATS endpoint, label names that collide with the target's, and bodies past the job's
/// limits. Each must give samples, a counted drop or an error naming the field; never a trap.
@Suite("Hostile input")
struct HostileInputTests {
    static let target = ["job": "nats", "instance": "127.0.0.1:8222"]
    static let scrapeTime = Timestamp(milliseconds: 1_700_000_000_000)

    /// The recorded bodies of a real nats-server, and bodies with the lists the fixtures leave
    /// empty (leaf nodes, gateways), as NATS documents them.
    static let bodies: [(NATSEndpoint, String)] = [
        (.varz, "varz"), (.connz, "connz"), (.connz, "connz-slow-consumer"), (.connzClosed, "connz-closed"),
        (.jsz, "jsz"), (.subsz, "subsz"), (.accstatz, "accstatz"), (.accountz, "accountz"), (.healthz, "healthz"),
        (.routez, "routez"),
    ]

    static let leafz = #"""
        {"server_id":"A","now":"2026-01-01T00:00:01Z","leafnodes":1,"leafs":[
          {"name":"edge-1","account":"APP","ip":"10.0.0.5","port":7422,"rtt":"3ms","in_msgs":7,"out_msgs":8,
           "in_bytes":70,"out_bytes":80,"subscriptions":4}]}
        """#

    static let gatewayz = #"""
        {"server_id":"A","now":"2026-01-01T00:00:01Z",
         "outbound_gateways":{"east":{"configured":true,"connection":{"cid":12,"in_msgs":1,"out_msgs":2,"rtt":"10ms"}},
                              "west":{"configured":true}},
         "inbound_gateways":{"east":[{"configured":false,"connection":{"cid":13,"in_msgs":5}}]}}
        """#

    static func documents() throws -> [(NATSEndpoint, String, Any)] {
        var out: [(NATSEndpoint, String, Any)] = []
        for (endpoint, name) in bodies {
            let data = try NATSExtractorTests.fixture(name)
            out.append((endpoint, name, try JSONSerialization.jsonObject(with: data)))
        }
        out.append((.leafz, "leafz (hand-written)", try JSONSerialization.jsonObject(with: Data(leafz.utf8))))
        out.append((.gatewayz, "gatewayz (hand-written)", try JSONSerialization.jsonObject(with: Data(gatewayz.utf8))))
        return out
    }

    /// Paths to every number and every string that reads as a time, depth first.
    enum Leaf { case number, time }

    static func leaves(_ value: Any, path: [AnyHashable] = []) -> [([AnyHashable], Leaf)] {
        if let object = value as? [String: Any] {
            return object.keys.sorted().flatMap { leaves(object[$0] as Any, path: path + [$0]) }
        }
        if let array = value as? [Any] {
            return array.indices.flatMap { leaves(array[$0], path: path + [$0]) }
        }
        if value is NSNumber, type(of: value) != Bool.self {
            return [(path, .number)]
        }
        if let text = value as? String, NumberText.parseTimestamp(text) != nil, text.count >= 10 {
            return [(path, .time)]
        }
        return []
    }

    static func replacing(_ value: Any, at path: ArraySlice<AnyHashable>, with new: Any) -> Any {
        guard let key = path.first else { return new }
        if var object = value as? [String: Any], let name = key as? String, let inner = object[name] {
            object[name] = replacing(inner, at: path.dropFirst(), with: new)
            return object
        }
        if var array = value as? [Any], let index = key as? Int, array.indices.contains(index) {
            array[index] = replacing(array[index], at: path.dropFirst(), with: new)
            return array
        }
        return value
    }

    /// Extracts `body` with a fresh extractor, primed with the unchanged body so that counters
    /// and closed connections have a previous round. Returns the samples or the error.
    static func extract(_ endpoint: NATSEndpoint, original: Any, body: Any) throws -> Result<
        [Sample], ExtractionError
    > {
        var extractor = NATSExtractor(targetLabels: target)
        let first = JSONPage(
            document: try JSONDocument(parsing: Array(try JSONSerialization.data(withJSONObject: original)))
        )
        _ = try? extractor.extract(endpoint, pages: [first], scrapeTime: scrapeTime)
        let page = JSONPage(
            document: try JSONDocument(parsing: Array(try JSONSerialization.data(withJSONObject: body)))
        )
        do {
            let samples = try extractor.extract(endpoint, pages: [page], scrapeTime: scrapeTime.advanced(bySeconds: 15))
            return .success(samples)
        } catch {
            return .failure(error)
        }
    }

    @Test(
        "every numeric and time field of every NATS endpoint, set to an extreme, gives samples or an error, never a trap",
        arguments: [1e20, -1e19, 1e308, -1e308, 9.3e18, 2.5, -0.0]
    )
    func extremeNumbers(_ extreme: Double) throws {
        for (endpoint, name, original) in try Self.documents() {
            for (path, leaf) in Self.leaves(original) where leaf == .number {
                let body = Self.replacing(original, at: path[...], with: extreme)
                switch try Self.extract(endpoint, original: original, body: body) {
                case .success(let samples):
                    #expect(samples.allSatisfy { !$0.value.isNaN }, "\(name) \(path)")
                case .failure(let error):
                    // An error must say which field it is about.
                    let field = path.last.map { "\($0)" } ?? ""
                    #expect(error.description.contains(field), "\(name) \(path): \(error)")
                }
            }
        }
    }

    @Test(
        "every time field of every NATS endpoint set to a time outside Int64 milliseconds: samples dropped and counted",
        arguments: ["1e19", "-1e19", "99999999999999999999", "1e400"]
    )
    func extremeTimes(_ text: String) throws {
        var checked = 0
        for (endpoint, name, original) in try Self.documents() {
            for (path, leaf) in Self.leaves(original) where leaf == .time {
                var extractor = NATSExtractor(targetLabels: Self.target)
                let good = try extractor.extract(
                    endpoint,
                    pages: [
                        JSONPage(
                            document: try JSONDocument(parsing: Array(JSONSerialization.data(withJSONObject: original)))
                        )
                    ],
                    scrapeTime: Self.scrapeTime
                )
                _ = extractor.takeDrops()
                let body = Self.replacing(original, at: path[...], with: text)
                var fresh = NATSExtractor(targetLabels: Self.target)
                let page = JSONPage(
                    document: try JSONDocument(parsing: Array(JSONSerialization.data(withJSONObject: body)))
                )
                let samples = try fresh.extract(endpoint, pages: [page], scrapeTime: Self.scrapeTime)
                let drops = fresh.takeDrops()
                let field = path.last.map { "\($0)" } ?? ""
                if path == ["now"] {
                    // The body's own clock is unusable: everything it would have given is dropped.
                    #expect(samples.isEmpty, "\(name)")
                    #expect(drops[.invalidTimestamp] >= good.count, "\(name)")
                    checked += 1
                } else if Self.timesRead.contains(field) && (field != "start" || path.count == 1) {
                    // A time the extractor reads: the samples made from it are dropped and counted.
                    #expect(drops[.invalidTimestamp] >= 1, "\(name) \(path)")
                    #expect(samples.count + drops[.invalidTimestamp] >= good.count, "\(name) \(path)")
                    checked += 1
                } else {
                    // A time nothing is made of changes nothing.
                    #expect(samples.count == good.count && drops.total == 0, "\(name) \(path)")
                }
            }
        }
        // now, start, JetStream last_ts, ts and last_active are all among them.
        #expect(checked >= 12)
    }

    /// The time fields the extractor makes samples of (`start` only at the top of `/varz`).
    static let timesRead: Set<String> = ["start", "last_ts", "ts", "last_active"]

    @Test("a /varz with \"now\": \"1e19\" is dropped and counted, and the next good body is read")
    func varzNowOutOfRange() throws {
        var object = try #require(
            try JSONSerialization.jsonObject(with: NATSExtractorTests.fixture("varz")) as? [String: Any]
        )
        object["now"] = "1e19"
        var extractor = NATSExtractor(targetLabels: Self.target)
        let page = JSONPage(
            document: try JSONDocument(parsing: Array(try JSONSerialization.data(withJSONObject: object)))
        )
        #expect(try extractor.extract(.varz, pages: [page], scrapeTime: Self.scrapeTime).isEmpty)
        #expect(extractor.takeDrops()[.invalidTimestamp] > 30)
        #expect(try NATSExtractorTests.extract(&extractor, .varz, "varz").count > 30)
        #expect(extractor.takeDrops().total == 0)
    }

    @Test(
        "counts and ids out of range are scrape errors naming the field",
        arguments: [
            (NATSEndpoint.connz, #"{"now":"2026-01-01T00:00:01Z","total":1e20,"connections":[]}"#, "total"),
            (NATSEndpoint.connz, #"{"now":"2026-01-01T00:00:01Z","total":1,"connections":[{"cid":-1e19}]}"#, "cid"),
            (NATSEndpoint.connzClosed, #"{"now":"2026-01-01T00:00:01Z","connections":[{"cid":1.5}]}"#, "cid"),
            (NATSEndpoint.leafz, #"{"now":"2026-01-01T00:00:01Z","leafs":[{"ip":"a","port":1e20}]}"#, "port"),
            (
                NATSEndpoint.gatewayz,
                #"{"now":"2026-01-01T00:00:01Z","inbound_gateways":{"e":[{"connection":{"cid":1e20}}]}}"#, "cid"
            ),
        ]
    )
    func wholeNumbers(_ endpoint: NATSEndpoint, _ body: String, _ field: String) throws {
        var extractor = NATSExtractor(targetLabels: Self.target)
        let page = JSONPage(document: try JSONDocument(parsing: Array(body.utf8)))
        let error = #expect(throws: ExtractionError.self) {
            try extractor.extract(endpoint, pages: [page], scrapeTime: Self.scrapeTime)
        }
        #expect(error?.description.contains("\"\(field)\"") == true)
        #expect(error?.description.contains(endpoint.rawValue) == true)
    }

    @Test("/jsz's account count out of range fails paging with the field's name")
    func pageTotal() throws {
        let page = JSONPage(document: try JSONDocument(parsing: Array(#"{"accounts":1e20,"account_details":[]}"#.utf8)))
        let error = #expect(throws: ExtractionError.self) { try NATSEndpoint.jsz.pageTotal(page) }
        #expect(error?.description.contains("\"accounts\"") == true)
    }

    @Test("times in text: outside Int64 milliseconds is no time, and time arithmetic saturates")
    func timestamps() {
        #expect(NumberText.parseTimestamp("1e19") == nil)
        #expect(NumberText.parseTimestamp("-1e19") == nil)
        #expect(NumberText.parseTimestamp("9223372036854775807") == nil)
        #expect(NumberText.parseTimestamp("1700000000123") == Timestamp(milliseconds: 1_700_000_000_123))
        #expect(Timestamp(exactMilliseconds: 9_223_372_036_854_775_807.0) == nil)  // rounds to 2⁶³
        #expect(Timestamp(exactMilliseconds: -9_223_372_036_854_775_808.0) == .min)
        #expect(Timestamp(exactMilliseconds: .infinity) == nil)
        let t = Timestamp(milliseconds: 1_700_000_000_000)
        #expect(t.advanced(bySeconds: 9.46e15) == .max)
        #expect(t.advanced(bySeconds: -1e300) == .min)
        #expect(t.advanced(bySeconds: .nan) == t)
        #expect(t.adding(seconds: 9.46e15) == nil)
        #expect(t.adding(seconds: 1.5) == Timestamp(milliseconds: 1_700_000_001_500))
        #expect(Timestamp.max.seconds(since: .min) > 1.8e16)
    }

    @Test(
        "scraped labels that collide with the target's are prefixed until free, as Prometheus does",
        arguments: [
            (
                #"m{job="a",exported_job="b"} 1"#,
                ["job": "x", "exported_job": "b", "exported_exported_job": "a"]
            ),
            (
                #"m{job="a",exported_job="b",exported_exported_job="c",instance="i"} 1"#,
                [
                    "job": "x", "exported_job": "b", "exported_exported_job": "c",
                    "exported_exported_exported_job": "a", "instance": "t:1", "exported_instance": "i",
                ]
            ),
            (#"m{exported_job="b"} 1"#, ["job": "x", "exported_job": "b"]),
        ]
    )
    func exportedLabels(_ line: String, _ expected: [String: String]) throws {
        var extractor = TargetExtractor(kind: .prometheus, targetLabels: ["job": "x", "instance": "t:1"])
        let samples = try extractor.samples(
            exposition: Array((line + "\n").utf8),
            contentType: nil,
            scrapeTime: Self.scrapeTime
        )
        let sample = try #require(samples.first)
        var want = expected
        want["__name__"] = "m"
        want["instance"] = want["instance"] ?? "t:1"
        #expect(sample.labels.dictionary == want)
        // The set is what a validated one would be: sorted, names unique.
        #expect(try LabelSet(validating: sample.labels.labels.map { ($0.name, $0.value) }) == sample.labels)
        // And it goes into a series store, out to a state file and back.
        var store = SeriesStore()
        _ = try store.slot(for: sample.labels, kind: .gauge, at: Self.scrapeTime)
        let restored = try JSONDecoder().decode(SeriesStore.self, from: try JSONEncoder().encode(store))
        #expect(restored.entry(at: 0)?.labels == sample.labels)
    }

    @Test("a line with 65,536 labels fails the scrape with label_limit, configured or not")
    func manyLabels() throws {
        var line = "m{"
        for k in 0..<65_536 { line += "l\(k)=\"v\"," }
        line += "} 1\n"
        var extractor = TargetExtractor(kind: .prometheus, targetLabels: ["job": "x", "instance": "t:1"])
        let error = #expect(throws: ExtractionError.self) {
            try extractor.samples(exposition: Array(line.utf8), contentType: nil, scrapeTime: Self.scrapeTime)
        }
        #expect(error?.reason.hasPrefix("label_limit exceeded: m has 65539 labels, the limit is 4096") == true)
    }

    @Test(
        "sample_limit, label_limit, label_name_length_limit and label_value_length_limit fail the body with the reason",
        arguments: [
            (ScrapeLimits(sampleLimit: 2), "sample_limit exceeded: 3 samples, the limit is 2"),
            (ScrapeLimits(labelLimit: 3), "label_limit exceeded: b has 4 labels, the limit is 3"),
            (
                ScrapeLimits(labelNameLengthLimit: 16),
                "label_name_length_limit exceeded: b has a label name of 17 bytes, the limit is 16"
            ),
            (
                ScrapeLimits(labelValueLengthLimit: 4),
                "label_value_length_limit exceeded: label le of c is 5 bytes, the limit is 4"
            ),
            (ScrapeLimits(sampleLimit: 3, labelLimit: 4, labelNameLengthLimit: 17, labelValueLengthLimit: 5), nil),
        ]
    )
    func limits(_ limits: ScrapeLimits, _ reason: String?) throws {
        let body = "a 1\nb{instance=\"i\"} 2\nc{le=\"12345\"} 3\n"
        var extractor = TargetExtractor(kind: .prometheus, targetLabels: ["job": "x", "instance": "t"], limits: limits)
        if let reason {
            let error = #expect(throws: ExtractionError.self) {
                try extractor.samples(exposition: Array(body.utf8), contentType: nil, scrapeTime: Self.scrapeTime)
            }
            #expect(error?.reason == reason)
        } else {
            #expect(
                try extractor.samples(exposition: Array(body.utf8), contentType: nil, scrapeTime: Self.scrapeTime).count
                    == 3
            )
        }
    }

    @Test("an error quoting a 5 MB token from a # TYPE line is cut to about 200 characters")
    func longReasons() throws {
        let body = "# TYPE " + String(repeating: "a", count: 5_000_000) + "- counter\n"
        var extractor = TargetExtractor(kind: .prometheus, targetLabels: ["job": "x", "instance": "t"])
        let error = #expect(throws: ExtractionError.self) {
            try extractor.samples(exposition: Array(body.utf8), contentType: nil, scrapeTime: Self.scrapeTime)
        }
        let reason = try #require(error?.reason)
        #expect(reason.count <= 201 && reason.hasSuffix("…"), "\(reason.count)")
        #expect(reason.contains("invalid metric name"))
        #expect("short".truncated() == "short")
        #expect(String(repeating: "é", count: 300).truncated(10) == String(repeating: "é", count: 10) + "…")
    }

    @Test("a JSON body of tiny values is capped in values, not only in bytes")
    func jsonValueCap() throws {
        let body = Array(("[" + String(repeating: "0,", count: 2_000) + "0]").utf8)
        let error = #expect(throws: JSONError.self) { try JSONDocument(parsing: body, maxValues: 1000) }
        #expect(error?.reason.contains("more than 1000 values") == true)
        #expect(try JSONDocument(parsing: body).count == 2_002)
        #expect(JSONDocument.defaultMaxValues == 4_194_304)
    }
}
