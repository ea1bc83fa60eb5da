import FlatlineCore
import FlatlineIngest
import FlatlineTestSupport
import Foundation
import Hummingbird
import Testing

@testable import FlatlineScrape

/// `flatline replay --prometheus`: series read back from a real Prometheus, whose TSDB holds a
/// known history (`promtool tsdb create-blocks-from openmetrics`), and hostile answers from a
/// server that only pretends to be one.
@Suite("Reading a range from Prometheus")
struct PrometheusRangeTests {
    /// Two gauges of one family and a counter, every 15 s from `start`, `points` each.
    static func history(start: Int, points: Int) -> (text: String, values: [String: [(Int, Double)]]) {
        var text = "# TYPE app_latency_seconds gauge\n"
        var values: [String: [(Int, Double)]] = [:]
        for instance in ["a", "b"] {
            let name = "app_latency_seconds{instance=\"\(instance)\"}"
            for k in 0..<points {
                let time = start + 15 * k
                // Exactly representable in decimal and binary: read back bit for bit.
                let value = Double((k * 37 + (instance == "a" ? 0 : 11)) % 100) / 4 + (instance == "a" ? 0.5 : 100)
                text += "\(name) \(value) \(time)\n"
                values[name, default: []].append((time, value))
            }
        }
        text += "# TYPE app_requests counter\n"
        for k in 0..<points {
            text += "app_requests_total{instance=\"a\"} \(k * 3) \(start + 15 * k)\n"
        }
        text += "# EOF\n"
        return (text, values)
    }

    /// A start well in the past, on a 15 s boundary.
    static let start = 1_767_225_600

    @Test("a range read in many requests is the history as written, series by series, each in time order")
    func readsBackTheHistory() async throws {
        let points = 2_000
        let (text, values) = Self.history(start: Self.start, points: points)
        let prometheus = try PrometheusProcess(history: text)
        defer { prometheus.stop() }
        var range = PrometheusRange(
            url: prometheus.url,
            queries: ["app_latency_seconds", "rate(app_requests_total[1m])"],
            start: Timestamp(milliseconds: Int64(Self.start) * 1000),
            end: Timestamp(milliseconds: Int64(Self.start + 15 * (points - 1)) * 1000),
            step: 15
        )
        range.pointsPerRequest = 300
        #expect(range.chunks().count == 7)
        var calls: [Int] = []
        let file = try await range.load { done, total in
            calls.append(done)
            #expect(total == 14)
        }
        #expect(calls == Array(1...14))
        #expect(
            file.series.map(\.description) == [
                "app_latency_seconds{instance=\"a\"}", "app_latency_seconds{instance=\"b\"}", "{instance=\"a\"}",
            ]
        )
        for (id, labels) in file.series.prefix(2).enumerated() {
            let rows = file.rows.filter { $0.series == id }
            let expected = try #require(values[labels.description])
            #expect(rows.count == points, "every step once, none repeated at a chunk's edge")
            #expect(rows.map(\.timestamp.milliseconds) == expected.map { Int64($0.0) * 1000 })
            #expect(rows.map(\.value) == expected.map(\.1))
            #expect(rows.allSatisfy { $0.kind == .gauge })
            #expect(file.timestampText(rows[0]) == String(Self.start))
        }
        // The counter's rate: 3 per 15 s, 0.2 per second once a whole minute of samples is in
        // the window (the first steps are Prometheus's extrapolation over fewer).
        let rates = file.rows.filter { $0.series == 2 }
        #expect(rates.count == points - 1)
        #expect(rates.dropFirst(4).allSatisfy { abs(($0.value ?? 0) - 0.2) < 1e-9 })

        // One request for the whole range reads the same.
        range.pointsPerRequest = 10_000
        #expect(range.chunks().count == 1)
        let whole = try await range.load()
        #expect(whole.rows == file.rows && whole.series == file.series)
    }

    @Test("Prometheus's own error for a bad query is said, with the query")
    func badQuery() async throws {
        let prometheus = try PrometheusProcess(history: Self.history(start: Self.start, points: 10).text)
        defer { prometheus.stop() }
        let range = PrometheusRange(
            url: prometheus.url,
            queries: ["rate(app_requests_total[1m]"],
            start: Timestamp(milliseconds: Int64(Self.start) * 1000),
            end: Timestamp(milliseconds: Int64(Self.start + 150) * 1000),
            step: 15
        )
        let error = await #expect(throws: PrometheusRangeError.self) { try await range.load() }
        let reason = error?.reason ?? ""
        #expect(reason.contains("rate(app_requests_total[1m]"), "\(reason)")
        #expect(reason.contains("Prometheus said bad_data (HTTP 400)"), "\(reason)")
    }

    @Test("hostile answers: not JSON, not a matrix, bad labels, bad values, too large, too many series, too slow")
    func hostileAnswers() async throws {
        let router = Router()
        let bodies: [String: String] = [
            "html": "<html>not found</html>",
            "vector": #"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
            "label":
                #"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"0bad":"x"},"values":[[1,"1"]]}]}}"#,
            "value":
                #"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"0x1p3"]]}]}}"#,
            "time":
                #"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1e300,"1"]]}]}}"#,
            "many":
                #"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"1"]]},{"metric":{"a":"2"},"values":[[1,"1"]]}]}}"#,
            "future":
                #"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[4102444800,"1"]]}]}}"#,
            "native":
                #"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"h"},"histograms":[[15,{"count":"1"}]]},{"metric":{"a":"f"},"values":[[15,"2"]]}]}}"#,
        ]
        for (name, body) in bodies {
            router.get("/\(name)/api/v1/query_range") { _, _ in body }
        }
        router.get("/large/api/v1/query_range") { _, _ in String(repeating: " ", count: 5_000) }
        // One series with a point at every step asked for: the body grows with the range.
        router.get("/sized/api/v1/query_range") { request, _ -> String in
            let start = Int(request.uri.queryParameters.get("start") ?? "") ?? 0
            let end = Int(request.uri.queryParameters.get("end") ?? "") ?? 0
            let points = stride(from: start, through: end, by: 1).map { "[\($0),\"\($0 * 2)\"]" }
            return #"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":["#
                + points.joined(separator: ",") + "]}]}}"
        }
        router.get("/slow/api/v1/query_range") { _, _ in
            try await Task.sleep(for: .seconds(30))
            return "{}"
        }
        try await TestHTTPServer.run(router) { port in
            func reason(_ path: String, _ change: (inout PrometheusRange) -> Void = { _ in }) async -> String {
                var range = PrometheusRange(
                    url: "http://127.0.0.1:\(port)/\(path)",
                    queries: ["up"],
                    start: Timestamp(milliseconds: 0),
                    end: Timestamp(milliseconds: 60_000),
                    step: 15
                )
                change(&range)
                do {
                    _ = try await range.load()
                    return "no error"
                } catch {
                    return error.reason
                }
            }
            #expect(await reason("html").contains("not a Prometheus API answer: <html>not found</html>"))
            #expect(await reason("vector").contains("the answer is a vector, not a range of series (matrix)"))
            #expect(await reason("label").contains("a series has a bad label"))
            #expect(await reason("value").contains("a sample's value \"0x1p3\" is not a number"))
            #expect(await reason("time").contains("a sample's time 1e+300 is out of range"))
            #expect(await reason("many") { $0.maxSeries = 1 }.contains("more than 1 series: narrow the query"))
            #expect(
                await reason("future").contains(
                    "a sample's time 2100-01-01T00:00:00.000Z is outside the range asked for"
                )
            )
            #expect(await reason("native") == "no error", "a native histogram is left out, not an error")
            #expect(
                await reason("many") { $0.queries = ["a", "b"] }.contains(
                    "queries \"a\" and \"b\" both return {a=\"1\"}"
                )
            )
            #expect(await reason("many") { $0.maxSamples = 1 }.contains("more than 1 samples: narrow the query"))
            #expect(
                await reason("large") { $0.bodySizeLimit = 1_000 }.contains(
                    "body larger than body_size_limit (1000 bytes)"
                )
            )
            // Too large at 61 steps for a 600-byte limit: asked again in halves, every step read once.
            var sized = PrometheusRange(
                url: "http://127.0.0.1:\(port)/sized",
                queries: ["up"],
                start: Timestamp(milliseconds: 0),
                end: Timestamp(milliseconds: 60_000),
                step: 1
            )
            sized.bodySizeLimit = 600
            let file = try await sized.load()
            #expect(file.rows.map(\.timestamp.milliseconds) == Array(stride(from: 0, through: 60_000, by: 1_000)))
            #expect(file.rows.map(\.value) == (0...60).map { Double($0 * 2) })
            #expect(
                await reason("sized") { $0.bodySizeLimit = 20 }.contains("body larger than body_size_limit (20 bytes)")
            )

            let slow = await reason("slow") { $0.timeout = 0.5 }
            #expect(slow.contains("timed out"), "\(slow)")
        }
    }

    @Test("settings are checked before anything is requested; a range is cut into steps that neither overlap nor skip")
    func settings() throws {
        func range(_ url: String = "http://127.0.0.1:9090", start: Int64 = 0, end: Int64 = 60_000, step: Double = 15)
            -> PrometheusRange
        {
            PrometheusRange(
                url: url,
                queries: ["up"],
                start: Timestamp(milliseconds: start),
                end: Timestamp(milliseconds: end),
                step: step
            )
        }
        #expect(throws: PrometheusRangeError.self) { try range("ftp://host").validate() }
        #expect(throws: PrometheusRangeError.self) { try range(start: 10, end: 0).validate() }
        #expect(throws: PrometheusRangeError.self) { try range(step: 0).validate() }
        #expect(throws: PrometheusRangeError.self) { try range(step: .infinity).validate() }
        #expect(throws: PrometheusRangeError.self) { try range(end: 1_000_000_000_000, step: 1).validate() }
        #expect(throws: PrometheusRangeError.self) { try range("http://u:secret@127.0.0.1:9090").validate() }
        var huge = range()
        huge.pointsPerRequest = .max
        #expect(huge.chunks().count == 1, "no overflow, Prometheus's own limit at most")
        var cut = range(start: 1_000, end: 1_000 + 15_000 * 24)
        cut.pointsPerRequest = 10
        let chunks = cut.chunks().map { ($0.start.milliseconds, $0.end.milliseconds) }
        #expect(chunks.count == 3)
        #expect(chunks.map(\.0) == [1_000, 151_000, 301_000])
        #expect(chunks.map(\.1) == [136_000, 286_000, 361_000])
        #expect(PrometheusRange.seconds(Timestamp(milliseconds: 1_500)) == "1.500")
        #expect(PrometheusRange.seconds(Timestamp(milliseconds: -1_050)) == "-1.050")
        #expect(PrometheusRange.formEncoded([("query", "a + b{x=\"1\"}")]) == "query=a%20%2B%20b%7Bx%3D%221%22%7D")
        #expect(PrometheusRange.formEncoded([("q", "é")]) == "q=%C3%A9")
    }
}
