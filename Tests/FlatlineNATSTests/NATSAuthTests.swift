import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineNATS

/// Credentials and TLS, against servers configured to demand them.
@Suite("NATS authentication and TLS", .timeLimit(.minutes(1)))
struct NATSAuthTests {
    /// Connects with `authentication` and publishes one message to itself.
    static func roundTrip(_ url: String, _ configure: @escaping (inout NATSClientConfiguration) -> Void) async throws {
        try await TestSupport.withNATSClient(url, configure: configure) { client in
            let subscription = try client.subscribe(to: "auth.check")
            try await client.flush()
            try await client.publish("ok", to: "auth.check")
            var iterator = subscription.makeAsyncIterator()
            #expect(await iterator.next()?.string == "ok")
        }
    }

    /// Connects and expects the server to refuse.
    static func refused(_ url: String, _ configure: @escaping (inout NATSClientConfiguration) -> Void) async throws {
        var configuration = try NATSClientConfiguration(urls: [url])
        configure(&configuration)
        let client = NATSClient(configuration: configuration, logger: TestSupport.quietLogger)
        do {
            try await client.run()
            Issue.record("the server accepted bad credentials")
        } catch let error as NATSError {
            #expect(error.code == .authorization, "\(error)")
            #expect(error.server != nil)
        }
    }

    @Test("user and password; a wrong password is an authorization error naming the server")
    func userPassword() async throws {
        let server = try NATSServerProcess(
            jetStream: false,
            configuration: "authorization { user: scraper, password: s3cret }"
        )
        defer { server.stop() }
        try await Self.roundTrip(server.url) { $0.authentication = .userPassword(user: "scraper", password: "s3cret") }
        try await Self.roundTrip("nats://scraper:s3cret@127.0.0.1:\(server.port)") { _ in }
        try await Self.refused(server.url) { $0.authentication = .userPassword(user: "scraper", password: "wrong") }
    }

    @Test("token")
    func token() async throws {
        let server = try NATSServerProcess(jetStream: false, configuration: "authorization { token: \"t0k3n\" }")
        defer { server.stop() }
        try await Self.roundTrip(server.url) { $0.authentication = .token("t0k3n") }
        try await Self.refused(server.url) { $0.authentication = .token("nope") }
    }

    @Test("NKey: the client signs the server's nonce with an Ed25519 seed")
    func nkey() async throws {
        let user = NKeyPair(random: .user)
        #expect(user.publicKey.hasPrefix("U"))
        #expect(user.seed.hasPrefix("SU"))
        let server = try NATSServerProcess(
            jetStream: false,
            configuration: "authorization { users = [ { nkey: \(user.publicKey) } ] }"
        )
        defer { server.stop() }
        try await Self.roundTrip(server.url) { $0.authentication = .nkey(seed: user.seed) }
        let stranger = NKeyPair(random: .user)
        try await Self.refused(server.url) { $0.authentication = .nkey(seed: stranger.seed) }
    }

    @Test("TLS with a test CA, and a client certificate the server verifies")
    func tls() async throws {
        let temporary = try TestSupport.TemporaryDirectory()
        defer { temporary.remove() }
        let certificates = try TestCertificates(in: temporary.file("certs"))
        let server = try NATSServerProcess(
            jetStream: false,
            configuration: """
                tls {
                  cert_file: "\(certificates.serverCertificate)"
                  key_file: "\(certificates.serverKey)"
                  ca_file: "\(certificates.caFile)"
                  verify: true
                }
                """
        )
        defer { server.stop() }
        try await Self.roundTrip("tls://127.0.0.1:\(server.port)") {
            $0.tls = NATSTLSOptions(
                caFile: certificates.caFile,
                certificateFile: certificates.clientCertificate,
                keyFile: certificates.clientKey
            )
        }
        // Without the client certificate the server refuses the handshake.
        var configuration = try NATSClientConfiguration(urls: ["tls://127.0.0.1:\(server.port)"])
        configuration.tls = NATSTLSOptions(caFile: certificates.caFile)
        configuration.maxReconnectAttempts = 0
        let client = NATSClient(configuration: configuration, logger: TestSupport.quietLogger)
        await #expect(throws: NATSError.self) { try await client.run() }
    }
}

/// Minimal NATS JWTs (v2), signed with NKeys, for an operator-mode test server.
enum TestJWT {
    static func encode(_ claims: [String: Any], issuer: NKeyPair) throws -> String {
        let header = try JSONSerialization.data(
            withJSONObject: ["typ": "JWT", "alg": "ed25519-nkey"],
            options: [.sortedKeys]
        )
        var body = claims
        body["iat"] = Int(Date().timeIntervalSince1970)
        body["iss"] = issuer.publicKey
        body["jti"] = NATSClient.randomToken(26).uppercased()
        let payload = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        let signingInput = [UInt8](header).base64URLEncoded + "." + [UInt8](payload).base64URLEncoded
        let signature = try issuer.sign(Array(signingInput.utf8))
        return signingInput + "." + signature.base64URLEncoded
    }
}

extension NATSAuthTests {
    @Test("a .creds file: the user JWT and the seed that signs the nonce, in operator mode")
    func credentialsFile() async throws {
        let operatorKey = NKeyPair(random: .operator)
        let account = NKeyPair(random: .account)
        let user = NKeyPair(random: .user)
        let operatorJWT = try TestJWT.encode(
            ["name": "test-operator", "sub": operatorKey.publicKey, "nats": ["type": "operator", "version": 2]],
            issuer: operatorKey
        )
        let limits: [String: Any] = [
            "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": true, "conn": -1,
            "leaf": -1,
        ]
        let accountJWT = try TestJWT.encode(
            ["name": "A", "sub": account.publicKey, "nats": ["type": "account", "version": 2, "limits": limits]],
            issuer: operatorKey
        )
        let userJWT = try TestJWT.encode(
            [
                "name": "scraper", "sub": user.publicKey,
                "nats": ["type": "user", "version": 2, "pub": [:], "sub": [:], "subs": -1, "data": -1, "payload": -1],
            ],
            issuer: account
        )
        let temporary = try TestSupport.TemporaryDirectory()
        defer { temporary.remove() }
        let creds = try temporary.write(
            "user.creds",
            """
            -----BEGIN NATS USER JWT-----
            \(userJWT)
            ------END NATS USER JWT------

            ************************* IMPORTANT *************************
            NKEY Seed printed below can be used to sign and prove identity.

            -----BEGIN USER NKEY SEED-----
            \(user.seed)
            ------END USER NKEY SEED------

            """
        )
        let server = try NATSServerProcess(
            jetStream: false,
            configuration: """
                operator: \(operatorJWT)
                resolver: MEMORY
                resolver_preload: {
                  \(account.publicKey): \(accountJWT)
                }
                """
        )
        defer { server.stop() }
        try await Self.roundTrip(server.url) { $0.authentication = .credentials(path: creds.path) }
        let parsed = try UserCredentials(contentsOf: creds.path)
        #expect(parsed.jwt == userJWT)
        #expect(parsed.keyPair.publicKey == user.publicKey)
        // A user signed by an account the server does not know is refused.
        let strangerJWT = try TestJWT.encode(
            ["name": "x", "sub": user.publicKey, "nats": ["type": "user", "version": 2]],
            issuer: NKeyPair(random: .account)
        )
        let stranger = try temporary.write(
            "stranger.creds",
            "-----BEGIN NATS USER JWT-----\n\(strangerJWT)\n------END NATS USER JWT------\n"
                + "-----BEGIN USER NKEY SEED-----\n\(user.seed)\n------END USER NKEY SEED------\n"
        )
        try await Self.refused(server.url) { $0.authentication = .credentials(path: stranger.path) }
    }

    @Test("NKey seeds round-trip, and malformed ones are refused with a reason")
    func nkeyEncoding() throws {
        for type in NKeyPair.KeyType.allCases {
            let pair = NKeyPair(random: type)
            let again = try NKeyPair(seed: pair.seed)
            #expect(again.publicKey == pair.publicKey)
            #expect(again.type == type)
            let signature = try pair.sign(Array("nonce".utf8))
            #expect(NKeyPair.verify(signature, of: Array("nonce".utf8), publicKey: pair.publicKey))
            #expect(!NKeyPair.verify(signature, of: Array("other".utf8), publicKey: pair.publicKey))
        }
        // The seed from the nkeys README, and its public key.
        let known = try NKeyPair(seed: "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU")
        #expect(known.publicKey == "UCK5N7N66OBOINFXAYC2ACJQYFSOD4VYNU6APEJTAVFZB2SVHLKGEW7L")
        var corrupted = Array(NKeyPair(random: .user).seed)
        corrupted[10] = corrupted[10] == "A" ? "B" : "A"
        #expect(throws: NATSError.self) { try NKeyPair(seed: String(corrupted)) }
        #expect(throws: NATSError.self) { try NKeyPair(seed: NKeyPair(random: .user).publicKey) }
        #expect(throws: NATSError.self) { try UserCredentials(text: "no armour here") }
    }
}
