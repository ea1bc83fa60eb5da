import AsyncHTTPClient
import FlatlineCore
import FlatlineIngest
import FlatlineTestSupport
import Foundation
import Hummingbird
import NIOCore
import NIOSSL
import Synchronization
import Testing

@testable import FlatlineConfig
@testable import FlatlineScrape

/// A NATS monitoring port behind a reverse proxy that serves TLS (a CA made for the test) and
/// wants a bearer token, basic auth, or an OAuth2 token from a token endpoint it runs itself:
/// what an identity-aware proxy in front of a monitoring endpoint looks like.
@Suite("Scraping through an authenticating TLS proxy", .serialized)
struct AuthProxyTests {
    final class ProxyState: Sendable {
        let bearer = Mutex("token-one")
        let issued = Mutex<[String]>([])
        let requests = Mutex<[String: Int]>([:])
    }

    static func router(upstream: Int, state: ProxyState) -> Router<BasicRequestContext> {
        let router = Router()
        // OAuth2 client credentials: client "flatline" with secret "s3cret" gets a token that
        // lives a minute.
        router.post("/token") { request, _ -> Response in
            let auth = request.headers[.authorization] ?? ""
            let body = String(buffer: try await request.body.collect(upTo: 1 << 16))
            let expected = "Basic " + Data("flatline:s3cret".utf8).base64EncodedString()
            guard auth == expected, body.contains("grant_type=client_credentials"),
                body.contains("scope=monitoring.read")
            else { return Response(status: .unauthorized) }
            let token = "oauth-\(UUID().uuidString)"
            state.issued.withLock { $0.append(token) }
            let json = #"{"access_token":"\#(token)","token_type":"Bearer","expires_in":60}"#
            return Response(
                status: .ok,
                headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: json))
            )
        }
        router.get("/**") { request, _ -> Response in
            let auth = request.headers[.authorization] ?? ""
            let path = request.uri.path
            let basic = "Basic " + Data("scraper:pa55".utf8).base64EncodedString()
            let oauthTokens = state.issued.withLock { $0 }
            let allowed: Bool
            switch path.split(separator: "/").first {
            case "bearer": allowed = auth == "Bearer " + state.bearer.withLock { $0 }
            case "basic": allowed = auth == basic
            case "oauth": allowed = oauthTokens.last.map { auth == "Bearer " + $0 } ?? false
            default: allowed = false
            }
            state.requests.withLock { $0[String(path.split(separator: "/").first ?? ""), default: 0] += 1 }
            guard allowed else { return Response(status: .unauthorized) }
            let rest = "/" + path.split(separator: "/").dropFirst().joined(separator: "/")
            let query = request.uri.query.map { "?" + $0 } ?? ""
            let upstreamResponse = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(upstream)\(rest)\(query)"),
                timeout: .seconds(5)
            )
            let body = try await upstreamResponse.body.collect(upTo: 64 << 20)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
        }
        return router
    }

    @Test("bearer token (rotated on disk), basic auth, OAuth2 client credentials, all over TLS with a test CA")
    func authenticatedTLS() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let certificates = try TestCertificates(in: directory.file("tls"))
        let tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificates.serverCertificate).map {
                .certificate($0)
            },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: certificates.serverKey, format: .pem))
        )
        let tokenFile = try directory.write("token", "token-one\n")
        _ = try directory.write("password", "pa55")
        _ = try directory.write("secret", "s3cret")
        let state = ProxyState()
        let batches = try await TestHTTPServer.run(Self.router(upstream: server.monitoringPort, state: state), tls: tls)
        { port in
            let common = """
                    scheme: https
                    scrape_interval: 10s
                    static_configs: [{targets: ["127.0.0.1:\(port)"]}]
                    nats: {endpoints: [varz, connz]}
                    tls_config: {ca_file: \(certificates.caFile), server_name: localhost}
                """
            let yaml = """
                scrape_configs:
                  - job_name: bearer
                    kind: nats
                    metrics_path: /bearer
                    bearer_token_file: \(tokenFile.path)
                \(common)
                  - job_name: basic
                    kind: nats
                    metrics_path: /basic
                    basic_auth: {username: scraper, password_file: password}
                \(common)
                  - job_name: oauth
                    kind: nats
                    metrics_path: /oauth
                    oauth2:
                      client_id: flatline
                      client_secret_file: secret
                      token_url: https://localhost:\(port)/token
                      scopes: [monitoring.read]
                \(common)
                  - job_name: wrong
                    kind: nats
                    metrics_path: /basic
                    basic_auth: {username: scraper, password: nope}
                \(common)
                  - job_name: untrusted
                    kind: nats
                    scheme: https
                    metrics_path: /basic
                    scrape_interval: 10s
                    scrape_timeout: 2s
                    basic_auth: {username: scraper, password_file: password}
                    static_configs: [{targets: ["127.0.0.1:\(port)"]}]
                    nats: {endpoints: [varz]}
                """
            let configuration = try Configuration.parse(
                yaml,
                file: directory.file("flatline.yml").path,
                directory: directory.url.path
            )
            let rotated = Mutex(0)
            let collector = ScrapeSupport.Collector()
            let scraper = Scraper(configuration: configuration, logger: TestSupport.quietLogger)
            try await scraper.run(rounds: 2, immediately: true) { batch in
                await collector.add(batch)
                // After the bearer job's first round, the token rotates: the proxy only takes the
                // new one, and the file on disk says so.
                if batch.labels["job"] == "bearer", rotated.withLock({ $0 }) == 0 {
                    rotated.withLock { $0 = 1 }
                    state.bearer.withLock { $0 = "token-two" }
                    try? Data("token-two\n".utf8).write(to: tokenFile)
                }
            }
            return await collector.batches
        }
        func rounds(_ job: String) -> [ScrapeBatch] { batches.filter { $0.labels["job"] == job } }
        for job in ["bearer", "basic", "oauth"] {
            #expect(rounds(job).count == 2)
            for batch in rounds(job) {
                #expect(batch.health.up, "\(job): \(batch.errors)")
                #expect(ScrapeSupport.sample(batch.samples, "gnatsd_varz_in_msgs") != nil)
            }
        }
        for batch in rounds("wrong") { #expect(batch.errors["varz"] == "HTTP 401") }
        // Without the test CA, the proxy's certificate is not trusted.
        for batch in rounds("untrusted") {
            #expect(batch.errors["varz"]?.contains("TLS") == true, "\(batch.errors)")
            #expect(batch.errors["varz"]?.contains("not trusted") == true)
        }
        // The token is cached for its lifetime: one token for every request of both rounds.
        #expect(state.issued.withLock { $0.count } == 1)
        #expect(state.requests.withLock { $0["oauth"] } == 4)
    }
}
