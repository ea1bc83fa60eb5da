import AsyncHTTPClient
import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import FlatlineScrape
import FlatlineTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import Testing

@testable import FlatlineDaemon

/// The daemon against targets that send what no well-behaved server would: a scraped label that
/// collides with an `exported_*` one, a NATS body whose clock is out of range, a line with more
/// labels than anything may have. It keeps scraping, counts what it drops, saves its state,
/// and answers its API and status page; the silences API refuses a duration past the end of time.
@Suite("Daemon under hostile input", .serialized)
struct HostileDaemonTests {
    static let exposition = """
        # TYPE m gauge
        m{job="a",exported_job="b"} 1
        m{instance="x",exported_instance="y",exported_exported_instance="z"} 2
        m2{metric="x",target="y",source_job="z"} 3

        """

    static let varz = """
        {"server_id":"NABC","server_name":"hostile","now":"1e19","start":"2026-01-01T00:00:00Z",
         "in_msgs":5,"out_msgs":7,"connections":1}
        """

    static func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: exposition))
            )
        }
        router.get("/varz") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: varz))
            )
        }
        return router
    }

    @Test(
        "colliding labels and an out-of-range clock: counted, saved, served; the daemon keeps running",
        .timeLimit(.minutes(2))
    )
    func hostileTargets() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let data = directory.file("data").path
        try await TestHTTPServer.run(Self.router()) { target in
            let yaml = """
                global: {scrape_interval: 1s}
                scrape_configs:
                  - job_name: prom
                    static_configs: [{targets: ["127.0.0.1:\(target)"]}]
                  - job_name: nats
                    kind: nats
                    static_configs: [{targets: ["127.0.0.1:\(target)"]}]
                    nats: {endpoints: [varz]}
                """
            try await DaemonAPITests.withDaemon(data: data, yaml: yaml) { port in
                let base = "http://127.0.0.1:\(port)"
                // Wait for a few rounds of both targets.
                let deadline = ContinuousClock.now + .seconds(30)
                var metrics = ""
                // (The counter is there from the start, at 0.)
                func droppedCount() -> Double? {
                    let line = metrics.split(separator: "\n").first {
                        $0.hasPrefix("flatline_samples_dropped_total") && $0.contains(#"reason="invalid_timestamp""#)
                    }
                    return line.flatMap { Double($0.split(separator: " ").last ?? "") }
                }
                while ContinuousClock.now < deadline {
                    metrics = try await DaemonAPITests.request(.GET, base + "/metrics").1
                    if droppedCount() ?? 0 >= 3, metrics.contains("flatline_series ") {
                        let (_, series) = try await DaemonAPITests.request(
                            .GET,
                            base + "/api/v1/series?match=__name__%3D%22m%22"
                        )
                        let (_, nats) = try await DaemonAPITests.request(
                            .GET,
                            base + "/api/v1/series?match=job%3D%22nats%22"
                        )
                        if series.contains("exported_exported_job"), nats.contains(#""job":"nats""#) { break }
                    }
                    try await Task.sleep(for: .milliseconds(200))
                }
                let count = try #require(droppedCount())
                #expect(count >= 3, "\(count)")
                let (seriesStatus, series) = try await DaemonAPITests.request(
                    .GET,
                    base + "/api/v1/series?match=__name__%3D%22m%22"
                )
                #expect(seriesStatus == 200)
                #expect(series.contains(#""exported_exported_job":"a""#), "\(series)")
                #expect(series.contains(#""exported_exported_exported_instance":"x""#), "\(series)")
                // Prometheus's selectors: braces, a metric name, several match[] as alternatives.
                func select(_ selectors: String...) async throws -> (Int, String) {
                    let query = selectors.map {
                        "match%5B%5D=" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
                    }
                    return try await DaemonAPITests.request(
                        .GET,
                        base + "/api/v1/series?" + query.joined(separator: "&")
                    )
                }
                let (natsStatus, nats) = try await select(#"{job="nats"}"#)
                #expect(natsStatus == 200)
                #expect(nats.contains(#""job":"nats""#) && !nats.contains(#""job":"prom""#), "\(nats)")
                let (_, either) = try await select("m2", #"{job="nats",__name__=~"scrape_dur.*"}"#)
                #expect(either.contains(#""__name__":"m2""#), "\(either)")
                #expect(either.contains(#""__name__":"scrape_duration_seconds","instance""#), "\(either)")
                #expect(!either.contains(#""__name__":"m""#) && !either.contains(#""__name__":"up""#), "\(either)")
                // As curl --data-urlencode sends it (spaces as +), and in PromQL's single quotes.
                let (spacedStatus, spaced) = try await DaemonAPITests.request(
                    .GET,
                    base + "/api/v1/series?match%5B%5D=%7B+job+%3D+%27nats%27+%7D"
                )
                #expect(spacedStatus == 200 && spaced.contains(#""job":"nats""#), "\(spaced)")
                #expect(!spaced.contains(#""job":"prom""#), "\(spaced)")
                let (badStatus, bad) = try await select(#"{job="nats""#)
                #expect(badStatus == 400 && bad.contains("no closing }"), "\(bad)")
                // The series' own metric/target/source_job labels do not collide with the ones
                // /metrics gives every exported series: promtool and a strict parser accept it.
                var exported = ""
                while ContinuousClock.now < deadline, !exported.contains(#"metric="m2""#) {
                    exported = try await DaemonAPITests.request(.GET, base + "/metrics").1
                    try await Task.sleep(for: .milliseconds(200))
                }
                let line = exported.split(separator: "\n").first { $0.contains(#"metric="m2""#) } ?? ""
                #expect(line.contains(#"exported_metric="x""#) && line.contains(#"exported_target="y""#), "\(line)")
                #expect(line.contains(#"exported_source_job="z""#), "\(line)")
                var parsed = 0
                try ExpositionParser(format: .text).parse(Array(exported.utf8)) { _ in parsed += 1 }
                #expect(parsed > 10)
                let file = directory.file("metrics.txt")
                try Data(exported.utf8).write(to: file)
                let check = try TestSupport.run(
                    URL(fileURLWithPath: "/bin/sh"),
                    ["-c", "promtool check metrics < \(file.path)"]
                )
                #expect(check.status == 0, "\(check.standardOutput)\(check.standardError)")
                let (pageStatus, page) = try await DaemonAPITests.request(.GET, base + "/")
                #expect(pageStatus == 200 && page.contains("</html>"))
                let (targetsStatus, targets) = try await DaemonAPITests.request(.GET, base + "/api/v1/targets")
                #expect(targetsStatus == 200 && targets.contains("prom"))
            }
        }
        // The shutdown saved every state file, and they load again.
        let state = try StateDirectory(path: data)
        let files = try FileManager.default.contentsOfDirectory(atPath: data)
        #expect(files.contains { $0.hasPrefix("detection-prom") }, "\(files)")
        let captured = StateDirectoryTests.Captured()
        let source = try #require(files.first { $0.hasPrefix("detection-prom") })
        #expect(
            state.restoreDetection(
                source: String(source.dropFirst("detection-".count).dropLast(".json".count)),
                logger: StateDirectoryTests.logger(captured)
            ) != nil,
            "\(captured.all)"
        )
    }

    @Test("a silence whose duration ends after the last representable time is a 400 with the reason")
    func silenceDuration() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        try await DaemonAPITests.withDaemon(data: directory.file("data").path) { port in
            let (status, body) = try await DaemonAPITests.request(
                .POST,
                "http://127.0.0.1:\(port)/api/v1/silences",
                #"{"matchers": ["stream=\"ORDERS\""], "duration": "300000000y"}"#
            )
            #expect(status == 400 && body.contains("300000000y"), "\(body)")
            let (listed, silences) = try await DaemonAPITests.request(.GET, "http://127.0.0.1:\(port)/api/v1/silences")
            #expect(listed == 200 && !silences.contains("ORDERS"))
        }
    }

    @Test("an API connection that sends nothing is closed after the idle timeout", .timeLimit(.minutes(1)))
    func idleConnection() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        var options = DaemonOptions()
        options.dataDirectory = directory.file("data").path
        options.port = 0
        options.idleTimeout = 1
        options.modelsDirectory = TestSupport.repositoryFile("models").path
        let configuration = try Configuration.parse("scrape_configs: []\n", file: "flatline.yml")
        let daemon = try Daemon(configuration: configuration, options: options, logger: TestSupport.quietLogger)
        let running = Task { try await daemon.run(signals: []) }
        let deadline = ContinuousClock.now + .seconds(10)
        while daemon.port == nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let port = try #require(daemon.port)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(connected == 0)
        // Nothing sent: after the idle timeout the server closes its end (read gives 0, EOF).
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let started = ContinuousClock.now
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, 0)
        #expect(n == 0, "the server did not close the idle connection (recv gave \(n))")
        #expect(ContinuousClock.now - started < .seconds(5))
        await daemon.shutdown()
        try await running.value
    }

    @Test(
        "the API refuses other hosts, other origins and forms; a silence must not mute everything",
        .timeLimit(.minutes(1))
    )
    func apiAbuse() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        try await DaemonAPITests.withDaemon(data: directory.file("data").path) { port in
            let url = "http://127.0.0.1:\(port)/api/v1/silences"
            let good = #"{"matchers": ["stream=\"ORDERS\""], "duration": "1h"}"#
            func send(_ method: NIOHTTP1.HTTPMethod, _ url: String, _ body: String?, _ headers: [(String, String)])
                async throws -> (Int, String)
            {
                var request = HTTPClientRequest(url: url)
                request.method = method
                for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
                if let body { request.body = .bytes(ByteBuffer(string: body)) }
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
            }
            // A form post, as a cross-site page could send without a preflight.
            let (form, formBody) = try await send(.POST, url, good, [("Content-Type", "text/plain")])
            #expect(form == 415 && formBody.contains("application/json"), "\(formBody)")
            // Another origin.
            let (cross, _) = try await send(
                .POST,
                url,
                good,
                [("Content-Type", "application/json"), ("Origin", "http://evil.example")]
            )
            #expect(cross == 403)
            let (crossDelete, _) = try await send(.DELETE, url + "/x", nil, [("Origin", "http://evil.example")])
            #expect(crossDelete == 403)
            // DNS rebinding: another host name pointing at 127.0.0.1.
            let (rebound, _) = try await send(
                .GET,
                "http://127.0.0.1:\(port)/api/v1/alerts",
                nil,
                [("Host", "evil.example")]
            )
            #expect(rebound == 421)
            // The same origin is fine.
            let (same, sameBody) = try await send(
                .POST,
                url,
                good,
                [("Content-Type", "application/json"), ("Origin", "http://127.0.0.1:\(port)")]
            )
            #expect(same == 200, "\(sameBody)")
            // Matchers that all match the empty string would mute everything.
            for matchers in [#"["stream=~\".*\""]"#, #"["stream=\"\""]"#, #"["a!=\"x\"", "b=~\"y?\""]"#] {
                let (status, body) = try await DaemonAPITests.request(
                    .POST,
                    url,
                    #"{"matchers": \#(matchers), "duration": "1h"}"#
                )
                #expect(status == 400 && body.contains("empty string"), "\(matchers): \(body)")
            }
        }
    }

    @Test("request guard: the rules, one by one")
    func requestGuardRules() {
        func check(
            _ method: HTTPRequest.Method = .get,
            host: String? = "127.0.0.1:9464",
            origin: String? = nil,
            type: String? = nil,
            length: Int? = nil,
            listen: String = "127.0.0.1",
            external: String? = nil
        ) -> HTTPResponse.Status? {
            RequestGuard.check(
                method: method,
                host: host,
                origin: origin,
                contentType: type,
                contentLength: length,
                listenHost: listen,
                port: 9464,
                externalURL: external
            )?.status
        }
        #expect(check() == nil)
        #expect(check(host: "localhost:9464") == nil)
        #expect(check(host: "LOCALHOST:9464") == nil)
        #expect(check(host: "evil:9464") == .misdirectedRequest)
        #expect(check(host: nil) == .misdirectedRequest)
        #expect(check(host: "flatline.example.com", external: "https://flatline.example.com/") == nil)
        #expect(check(host: "anything:9464", listen: "0.0.0.0") == nil)
        #expect(
            check(host: "anything:9464", listen: "0.0.0.0", external: "http://f.example:9464") == .misdirectedRequest
        )
        #expect(check(.post) == nil)
        #expect(check(.post, type: "application/json", length: 10) == nil)
        #expect(check(.post, type: "application/json; charset=utf-8", length: 10) == nil)
        #expect(check(.post, type: "application/x-www-form-urlencoded", length: 10) == .unsupportedMediaType)
        #expect(check(.post, length: 10) == .unsupportedMediaType)
        #expect(check(.post, origin: "http://127.0.0.1:9464") == nil)
        #expect(check(.post, origin: "https://flatline.example.com", external: "https://flatline.example.com") == nil)
        #expect(check(.delete, origin: "http://evil.example") == .forbidden)
        #expect(check(.delete, origin: "null") == .forbidden)
        #expect(check(.get, origin: "http://evil.example") == nil)
    }
}
