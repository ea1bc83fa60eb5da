import AsyncHTTPClient
import FlatlineTestSupport
import Foundation
import Hummingbird
import NIOCore
import Synchronization
import Testing

@testable import FlatlineConfig
@testable import FlatlineScrape

/// An OAuth2 token endpoint that states absurd lifetimes: the token is kept for at most a day
/// and at least a second, and nothing traps.
@Suite("OAuth2 token lifetimes")
struct OAuth2LifetimeTests {
    @Test(
        "expires_in of 1e20, -5 or a string: clamped, the token used, nothing traps",
        arguments: [("1e20", 1), ("-5", 2), ("\"soon\"", 1)]
    )
    func lifetime(_ expiresIn: String, _ fetchesAfterTwoSeconds: Int) async throws {
        let issued = Atomic<Int>(0)
        let router = Router()
        router.post("/token") { _, _ -> Response in
            let n = issued.add(1, ordering: .relaxed).newValue
            return Response(
                status: .ok,
                headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"access_token":"t\#(n)","expires_in":\#(expiresIn)}"#))
            )
        }
        try await TestHTTPServer.run(router) { port in
            let source = OAuth2TokenSource(
                settings: OAuth2Settings(clientID: "c", clientSecret: "s", tokenURL: "http://127.0.0.1:\(port)/token")
            )
            let first = try await source.accessToken(client: HTTPClient.shared, timeout: .seconds(5))
            #expect(first == "t1")
            try await Task.sleep(for: .milliseconds(1500))
            // A lifetime clamped to a day keeps the token; one clamped to a second was refreshed.
            _ = try await source.accessToken(client: HTTPClient.shared, timeout: .seconds(5))
            #expect(source.fetches.load(ordering: .relaxed) == fetchesAfterTwoSeconds)
        }
    }

    @Test("a token endpoint that sends its headers and stalls the body fails within the timeout")
    func stalledTokenBody() async throws {
        let router = Router()
        router.post("/token") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [.contentType: "application/json"],
                body: ResponseBody { writer in
                    try await writer.write(ByteBuffer(string: #"{"access_token":"#))
                    try await Task.sleep(for: .seconds(30))
                    try await writer.finish(nil)
                }
            )
        }
        try await TestHTTPServer.run(router) { port in
            let source = OAuth2TokenSource(
                settings: OAuth2Settings(clientID: "c", clientSecret: "s", tokenURL: "http://127.0.0.1:\(port)/token")
            )
            let started = ContinuousClock.now
            let error = await #expect(throws: CredentialsError.self) {
                try await source.accessToken(client: HTTPClient.shared, timeout: .seconds(1))
            }
            #expect(error?.reason.contains("timed out") == true, "\(error?.reason ?? "")")
            #expect(ContinuousClock.now - started < .seconds(5))
        }
    }
}
