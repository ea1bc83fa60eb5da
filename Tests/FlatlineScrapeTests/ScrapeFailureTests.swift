import AsyncHTTPClient
import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import FlatlineTestSupport
import Foundation
import Hummingbird
import NIOCore
import Testing

@testable import FlatlineScrape

/// Bodies and answers that are not what a NATS server sends: each is a scrape error with the
/// reason, `up` 0, and nothing crashes. Served by a real HTTP server on 127.0.0.1.
@Suite("Scrape failures")
struct ScrapeFailureTests {
    static func router() -> Router<BasicRequestContext> {
        let router = Router()
        let varz = #"{"server_id":"A","server_name":"n1","now":"2026-01-01T00:00:00Z","in_msgs":5}"#
        router.get("/ok/varz") { _, _ in Self.json(varz) }
        router.get("/notjson/varz") { _, _ in
            Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "<html>oops</html>")))
        }
        router.get("/truncated/varz") { _, _ in Self.json(String(varz.prefix(30))) }
        router.get("/huge/varz") { _, _ in Self.json("{\"pad\":\"" + String(repeating: "x", count: 2_000_000) + "\"}") }
        router.get("/error/varz") { _, _ in
            Response(status: .internalServerError, body: .init(byteBuffer: ByteBuffer(string: "boom")))
        }
        router.get("/shape/connz") { _, _ in Self.json("[1,2,3]") }
        router.get("/slow/varz") { _, _ -> Response in
            try await Task.sleep(for: .seconds(8))
            return Self.json(varz)
        }
        // Headers at once, then the body a byte every 300 ms (a trickle), or nothing (a stall).
        router.get("/trickle/varz") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [.contentType: "application/json"],
                body: ResponseBody { writer in
                    for byte in varz.utf8 {
                        try await writer.write(ByteBuffer(bytes: [byte]))
                        try await Task.sleep(for: .milliseconds(300))
                    }
                    try await writer.finish(nil)
                }
            )
        }
        router.get("/stall/varz") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [.contentType: "application/json"],
                body: ResponseBody { writer in
                    try await writer.write(ByteBuffer(string: "{\"server_id\":"))
                    try await Task.sleep(for: .seconds(20))
                    try await writer.finish(nil)
                }
            )
        }
        // Redirects: within the target (followed), and to another host (not followed).
        router.get("/redirect/varz") { _, _ in Response(status: .found, headers: [.location: "/ok/varz"]) }
        router.get("/away/varz") { request, _ in
            let port = request.head.authority?.split(separator: ":").last ?? "80"
            return Response(status: .temporaryRedirect, headers: [.location: "http://127.0.0.2:\(port)/ok/varz"])
        }
        router.get("/unhealthy/healthz") { _, _ in
            Response(
                status: .serviceUnavailable,
                headers: [.contentType: "application/json"],
                body: .init(
                    byteBuffer: ByteBuffer(string: #"{"status":"unavailable","error":"JetStream not current"}"#)
                )
            )
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: "# TYPE a_total counter\na_total{job=\"x\"} 3\nb NaN\n"))
            )
        }
        router.get("/badmetrics") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain"],
                body: .init(byteBuffer: ByteBuffer(string: "a{ 1\n"))
            )
        }
        return router
    }

    static func json(_ text: String) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: text))
        )
    }

    static func job(_ name: String, port: Int, base: String, endpoints: String = "varz", extra: String = "") -> String {
        """
          - job_name: \(name)
            kind: nats
            metrics_path: \(base)
            body_size_limit: 1MB
            scrape_interval: 10s
            scrape_timeout: 4s
            static_configs: [{targets: ["127.0.0.1:\(port)"]}]
            nats: {endpoints: [\(endpoints)]}
        \(extra)
        """
    }

    @Test("a scrape cut short by stopping says so (a recording's last round read `CancellationError()`)")
    func cutShort() {
        #expect(HTTPClientSupport.describe(CancellationError()) == "cut short: stopping")
        #expect(HTTPClientSupport.describe(HTTPClientError.cancelled) == "cut short: stopping")
        #expect(!HTTPClientSupport.isUnreachable(CancellationError()))
    }

    @Test("each bad answer is an error naming the reason, with up = 0; good ones still scrape")
    func badAnswers() async throws {
        let refused = try NATSServerProcess.freePort()
        let batches = try await TestHTTPServer.run(Self.router()) { port in
            let yaml =
                "scrape_configs:\n"
                + [
                    Self.job("ok", port: port, base: "/ok"),
                    Self.job("notjson", port: port, base: "/notjson"),
                    Self.job("truncated", port: port, base: "/truncated"),
                    Self.job("huge", port: port, base: "/huge"),
                    Self.job("error", port: port, base: "/error"),
                    Self.job("shape", port: port, base: "/shape", endpoints: "connz"),
                    Self.job("slow", port: port, base: "/slow"),
                    Self.job("trickle", port: port, base: "/trickle"),
                    Self.job("redirect", port: port, base: "/redirect"),
                    Self.job("away", port: port, base: "/away"),
                    Self.job("stall", port: port, base: "/stall"),
                    Self.job("unhealthy", port: port, base: "/unhealthy", endpoints: "healthz"),
                    Self.job("refused", port: refused, base: "/ok", endpoints: "varz, connz, jsz"),
                ].joined(separator: "\n")
                    + """

                      - job_name: app
                        scrape_interval: 10s
                        scrape_timeout: 4s
                        static_configs: [{targets: ["127.0.0.1:\(port)"]}]
                      - job_name: badapp
                        metrics_path: /badmetrics
                        scrape_interval: 10s
                        scrape_timeout: 4s
                        static_configs: [{targets: ["127.0.0.1:\(port)"]}]
                    """
            return try await ScrapeSupport.scrape(yaml, rounds: 1)
        }
        let byJob = Dictionary(uniqueKeysWithValues: batches.map { ($0.labels["job"] ?? "", $0) })
        func failure(_ job: String, _ endpoint: String = "varz") -> String { byJob[job]?.errors[endpoint] ?? "" }
        #expect(byJob.count == 15)
        #expect(byJob["ok"]?.health.up == true)
        #expect(ScrapeSupport.sample(byJob["ok"]?.samples ?? [], "gnatsd_varz_in_msgs")?.value == 5)
        #expect(failure("notjson").contains("not JSON"))
        #expect(failure("truncated").contains("not JSON"))
        #expect(failure("huge").contains("body_size_limit"))
        #expect(failure("error") == "HTTP 500: boom")
        #expect(failure("shape", "connz").contains("expected a JSON object"))
        #expect(failure("slow").contains("timed out"))
        // Headers sent, then the body trickles or stalls: the same deadline, over the body too.
        #expect(failure("trickle").contains("timed out"), "\(failure("trickle"))")
        #expect(failure("stall").contains("timed out"), "\(failure("stall"))")
        #expect(byJob["redirect"]?.health.up == true)
        #expect(ScrapeSupport.sample(byJob["redirect"]?.samples ?? [], "gnatsd_varz_in_msgs")?.value == 5)
        #expect(failure("away").contains("redirected to another host (http://127.0.0.2)"), "\(failure("away"))")
        #expect(failure("refused").contains("refused"), "\(failure("refused"))")
        // An unreachable target's other endpoints are not tried in the same round: each says why,
        // instead of waiting out the timeout and reporting one.
        for endpoint in ["connz", "jsz"] {
            #expect(
                failure("refused", endpoint) == "not tried: varz found the target unreachable (connection refused)",
                "\(endpoint): \(failure("refused", endpoint))"
            )
        }
        for job in ["notjson", "truncated", "huge", "error", "shape", "slow", "trickle", "stall", "refused"] {
            let batch = try #require(byJob[job])
            #expect(!batch.health.up)
            #expect(ScrapeSupport.sample(batch.samples, "up")?.value == 0)
            #expect(ScrapeSupport.sample(batch.samples, "up")?.labels["instance"] != nil)
            #expect(
                batch.samples.allSatisfy {
                    [
                        "up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_dropped",
                        "flatline_samples_dropped_total",
                    ].contains(
                        $0.labels.metricName
                    )
                }
            )
        }
        // A refused connection is the answer at once, not retried until the 4 s timeout.
        #expect((byJob["refused"]?.health.durationSeconds ?? 99) < 2, "\(String(describing: byJob["refused"]?.health))")
        // The timeout bounds the scrape.
        #expect((byJob["slow"]?.health.durationSeconds ?? 99) < 7)
        #expect((byJob["trickle"]?.health.durationSeconds ?? 99) < 7)
        #expect((byJob["stall"]?.health.durationSeconds ?? 99) < 7)
        // /healthz answers 503 with a body: that is a reading, not a failure.
        #expect(byJob["unhealthy"]?.health.up == true)
        #expect(ScrapeSupport.sample(byJob["unhealthy"]?.samples ?? [], "gnatsd_healthz_status")?.value == 1)

        // Prometheus targets: labels the target also sets become exported_*, NaN is dropped
        // and counted, a bad exposition fails the scrape with its line.
        let app = try #require(byJob["app"])
        #expect(app.errors.isEmpty, "APPERR \(app.errors)")
        #expect(app.health.up)
        let a = try #require(ScrapeSupport.sample(app.samples, "a_total"))
        #expect(a.labels["job"] == "app")
        #expect(a.labels["exported_job"] == "x")
        #expect(a.kind == .counter)
        #expect(app.drops[.nonFinite] == 1)
        #expect(ScrapeSupport.sample(app.samples, "scrape_samples_dropped")?.value == 1)
        let dropped = app.samples.filter { $0.labels.metricName == "flatline_samples_dropped_total" }
        #expect(dropped.count == DropReason.allCases.count)
        #expect(dropped.allSatisfy { $0.kind == .counter })
        #expect(ScrapeSupport.sample(dropped, "flatline_samples_dropped_total", ["reason": "non_finite"])?.value == 1)
        #expect(ScrapeSupport.sample(dropped, "flatline_samples_dropped_total", ["reason": "series_limit"])?.value == 0)
        #expect(byJob["badapp"]?.errors["metrics"]?.contains("line 1") == true)
    }
}
