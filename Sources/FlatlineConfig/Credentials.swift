import AsyncHTTPClient
import FlatlineCore
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// A secret kept in a file (a bearer token, a password), read at every use as Prometheus does,
/// so rotated credentials work without a restart. Surrounding whitespace is trimmed.
package final class FileSecret: Sendable {
    package let path: String

    package init(path: String) {
        self.path = path
    }

    /// The largest secret file read (it is read at every use).
    package static let maxBytes = 64 << 10

    /// The current secret.
    /// - Throws: ``CredentialsError`` when the file cannot be read or is empty.
    package func value() throws(CredentialsError) -> String {
        let data: [UInt8]
        switch BoundedFile.read(path, limit: Self.maxBytes) {
        case .success(let read): data = read
        case .failure(let error): throw CredentialsError(reason: "cannot read \(path): \(error.reason)")
        }
        let value = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !value.isEmpty else { throw CredentialsError(reason: "\(path) is empty") }
        return value
    }
}

/// OAuth 2.0 client credentials (RFC 6749 §4.4): a token from the token endpoint, cached until
/// shortly before it expires, fetched again when a target refuses it.
final class OAuth2TokenSource: Sendable {
    let settings: OAuth2Settings
    private let secretFile: FileSecret?
    private struct Token {
        var value: String
        var refreshAt: ContinuousClock.Instant
    }

    private let token = Mutex<Token?>(nil)
    /// The longest a token is kept, whatever `expires_in` says: one day.
    static let longestTokenLifetime: Double = 86_400
    /// Tokens fetched so far.
    let fetches = Atomic<Int>(0)

    init(settings: OAuth2Settings) {
        self.settings = settings
        secretFile = settings.clientSecretFile.map(FileSecret.init)
    }

    /// Forgets the cached token (the target answered 401).
    func invalidate() { token.withLock { $0 = nil } }

    /// A valid access token.
    /// - Throws: ``CredentialsError`` naming the token endpoint and what went wrong.
    func accessToken(client: HTTPClient, timeout: Duration) async throws(CredentialsError) -> String {
        let now = ContinuousClock.now
        if let cached = token.withLock({ $0 }), cached.refreshAt > now { return cached.value }
        let secret = try secretFile?.value() ?? settings.clientSecret ?? ""
        var request = HTTPClientRequest(url: settings.tokenURL)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        let credentials = Self.formEncode(settings.clientID) + ":" + Self.formEncode(secret)
        request.headers.add(name: "Authorization", value: "Basic " + Data(credentials.utf8).base64EncodedString())
        var form = [("grant_type", "client_credentials")]
        if !settings.scopes.isEmpty { form.append(("scope", settings.scopes.joined(separator: " "))) }
        for (key, value) in settings.endpointParams.sorted(by: { $0.key < $1.key }) { form.append((key, value)) }
        let body = form.map { Self.formEncode($0.0) + "=" + Self.formEncode($0.1) }.joined(separator: "&")
        request.body = .bytes(ByteBuffer(string: body))
        let data: ByteBuffer
        let status: UInt
        do {
            // One deadline over the request and the token's body, which may trickle or stall.
            let sent = request
            (status, data) = try await withDeadline(.now + timeout + .milliseconds(250)) {
                let response = try await client.execute(sent, timeout: .nanoseconds(timeout.nanoseconds))
                return (response.status.code, try await response.body.collect(upTo: 1 << 20))
            }
        } catch is DeadlineExceeded {
            throw CredentialsError(
                reason: "OAuth2 token request to \(settings.tokenURL) timed out (the body did not arrive in time)"
            )
        } catch {
            throw CredentialsError(reason: "OAuth2 token request to \(settings.tokenURL) failed: \(error)")
        }
        let text = String(buffer: data)
        guard status == 200 else {
            throw CredentialsError(
                reason: "OAuth2 token endpoint \(settings.tokenURL) answered \(status): \(text.prefix(200))"
            )
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let access = object["access_token"] as? String, !access.isEmpty
        else {
            throw CredentialsError(reason: "OAuth2 token endpoint \(settings.tokenURL) sent no access_token")
        }
        // Refresh ten seconds (or a tenth of the lifetime, if longer) before it expires, but
        // keep a short-lived token for at least half its life; without expires_in, a minute.
        // A lifetime from the endpoint is clamped to [1 s, 1 day]: `1e20` or NaN never traps or
        // keeps a token for ever.
        let stated = (object["expires_in"] as? NSNumber)?.doubleValue ?? 60
        let lifetime = stated.isNaN ? 60 : min(max(stated, 1), Self.longestTokenLifetime)
        let early = min(lifetime / 2, max(10, lifetime * 0.1))
        let keep = max(0, lifetime - early)
        token.withLock { $0 = Token(value: access, refreshAt: now + Duration.clamped(seconds: keep)) }
        fetches.add(1, ordering: .relaxed)
        return access
    }

    /// `application/x-www-form-urlencoded` encoding of one name or value.
    static func formEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return (text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text)
    }
}

extension Duration {
    package var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    package var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// Adds a job's or a receiver's credentials to requests: a bearer token or a password read from
/// its file at every request, or an OAuth2 token cached for its life.
package final class RequestAuthorizer: Sendable {
    let authorization: Authorization
    private let bearer: FileSecret?
    private let password: FileSecret?
    private let oauth2: OAuth2TokenSource?

    package init(_ authorization: Authorization) {
        self.authorization = authorization
        switch authorization {
        case .bearerTokenFile(let path):
            (bearer, password, oauth2) = (FileSecret(path: path), nil, nil)
        case .basic(_, _, let passwordFile):
            (bearer, password, oauth2) = (nil, passwordFile.map(FileSecret.init), nil)
        case .oauth2(let settings):
            (bearer, password, oauth2) = (nil, nil, OAuth2TokenSource(settings: settings))
        case .none:
            (bearer, password, oauth2) = (nil, nil, nil)
        }
    }

    /// Whether a 401 may be cured by fetching a new token.
    package var usesOAuth2: Bool { oauth2 != nil }

    /// Forgets the cached OAuth2 token (after a 401).
    package func invalidate() { oauth2?.invalidate() }

    /// Adds the `Authorization` header.
    /// - Throws: ``CredentialsError`` when a secret file cannot be read or no token can be had.
    package func authorize(_ request: inout HTTPClientRequest, client: HTTPClient, timeout: Duration)
        async throws(CredentialsError)
    {
        switch authorization {
        case .none:
            return
        case .bearerTokenFile:
            guard let bearer else { return }
            request.headers.add(name: "Authorization", value: "Bearer " + (try bearer.value()))
        case .basic(let username, let inline, _):
            let secret = try password?.value() ?? inline ?? ""
            let encoded = Data("\(username):\(secret)".utf8).base64EncodedString()
            request.headers.add(name: "Authorization", value: "Basic " + encoded)
        case .oauth2:
            guard let oauth2 else { return }
            request.headers.add(
                name: "Authorization",
                value: "Bearer " + (try await oauth2.accessToken(client: client, timeout: timeout))
            )
        }
    }
}

/// A credential that could not be had: a secret file unreadable or empty, a token endpoint that
/// failed. Reasons are kept short and stripped of any user:password in a URL.
public struct CredentialsError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String

    public init(reason: String) {
        self.reason = Redaction.redactingUserinfo(reason.truncated())
    }

    public var description: String { reason }
}
