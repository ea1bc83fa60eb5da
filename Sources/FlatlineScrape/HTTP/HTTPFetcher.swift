import AsyncHTTPClient
import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTPCompression
import NIOSSL

/// A scrape that failed: the target, the endpoint, and why.
public struct ScrapeError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    /// The target could not be reached at all (its connection refused or never made).
    public var unreachable: Bool

    public init(reason: String, unreachable: Bool = false) {
        // Reasons quote what targets sent: kept short before they reach logs, the API and the page.
        self.reason = Redaction.redactingUserinfo(reason.truncated())
        self.unreachable = unreachable
    }

    public var description: String { reason }
}

/// One body as the target returned it.
struct FetchedBody: Sendable {
    var bytes: [UInt8]
    var contentType: String?
    var status: UInt
}

/// HTTP GETs for one job: its TLS settings, its credentials, its body size limit.
package final class HTTPFetcher: Sendable {
    let client: HTTPClient
    let job: ScrapeConfiguration
    private let authorizer: RequestAuthorizer
    private let userAgent: String

    /// - Parameter userAgent: what the requests say they come from.
    /// - Throws: ``ConfigError`` when a certificate or key cannot be loaded.
    init(job: ScrapeConfiguration, userAgent: String = "flatline") throws(ScrapeError) {
        self.job = job
        self.userAgent = userAgent
        var configuration = HTTPClient.Configuration()
        // Redirects are followed by `get` itself, and only within the target (scheme, host and
        // port unchanged): credentials never go to another host.
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .enabled(limit: .size(job.bodySizeLimit))
        configuration.connectionPool.idleTimeout = .seconds(Int64(saturating: max(30, job.scrapeInterval * 2)))
        // A scrape is one attempt: a refused connection is the round's answer at once (as in
        // Prometheus), not retried with backoff until `scrape_timeout`, which held the round.
        configuration.connectionPool.retryConnectionEstablishment = false
        if let tls = job.tls {
            do {
                configuration.tlsConfiguration = try HTTPClientSupport.tlsConfiguration(tls)
            } catch {
                throw ScrapeError(reason: error.description)
            }
        }
        // `server_name`: the name the target's certificate is checked against (and sent as SNI),
        // while connecting to the configured address.
        if let serverName = job.tls?.serverName {
            for target in job.targets {
                configuration.dnsOverride[serverName] = Self.host(of: target.address)
            }
        }
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        authorizer = RequestAuthorizer(job.authorization)
    }

    func shutdown() async {
        try? await client.shutdown()
    }

    static func host(of address: String) -> String {
        guard let colon = address.lastIndex(of: ":") else { return address }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host
    }

    /// The URL for `path` (with its query) on `address`.
    func url(_ address: String, _ pathAndQuery: String) -> String {
        let host = job.tls?.serverName.map { name in
            name + address[(address.lastIndex(of: ":") ?? address.endIndex)...]
        }
        return "\(job.scheme)://\(host ?? address)\(pathAndQuery)"
    }

    /// GETs `url`, with the job's credentials, until `deadline`.
    /// - Parameter acceptErrorStatus: hand back non-2xx bodies (`/healthz` reports in a 503).
    /// - Throws: ``ScrapeError`` for a connection failure, a timeout, an HTTP error, or a body
    ///   larger than `body_size_limit`.
    func get(
        _ url: String,
        accept: String,
        deadline: ContinuousClock.Instant,
        acceptErrorStatus: Bool = false
    ) async throws(ScrapeError) -> FetchedBody {
        var retriedToken = false
        var current = url
        var redirects = 0
        while true {
            var request = HTTPClientRequest(url: current)
            request.headers.add(name: "Accept", value: accept)
            request.headers.add(name: "User-Agent", value: userAgent)
            request.headers.add(name: "X-Prometheus-Scrape-Timeout-Seconds", value: String(job.scrapeTimeout))
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { throw ScrapeError(reason: "timed out after \(job.scrapeTimeout) s") }
            do {
                try await authorizer.authorize(&request, client: client, timeout: remaining)
            } catch {
                throw ScrapeError(reason: error.reason)
            }
            let response: HTTPClientResponse
            var body: ByteBuffer
            do {
                // One deadline over the request and its body: a target that sends its headers
                // and then trickles or stalls the body ends the round at scrape_timeout too.
                let client = client
                let limit = job.bodySizeLimit
                let request = request
                // (A quarter second after the client's own deadline, so that its errors, such as
                // a refused connection it kept retrying, are the ones reported.)
                (response, body) = try await withDeadline(deadline + .milliseconds(250)) {
                    let response = try await client.execute(request, timeout: .nanoseconds(remaining.nanoseconds))
                    return (response, try await response.body.collect(upTo: limit))
                }
            } catch is NIOTooManyBytesError {
                throw ScrapeError(reason: "body larger than body_size_limit (\(job.bodySizeLimit) bytes)")
            } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
                throw ScrapeError(reason: "timed out after \(job.scrapeTimeout) s")
            } catch is DeadlineExceeded {
                throw ScrapeError(reason: "timed out after \(job.scrapeTimeout) s (the body did not arrive in time)")
            } catch {
                throw ScrapeError(
                    reason: HTTPClientSupport.describe(error),
                    unreachable: HTTPClientSupport.isUnreachable(error)
                )
            }
            if response.status.code == 401, authorizer.usesOAuth2, !retriedToken {
                // The token may have been revoked before its expiry: fetch a new one, once.
                authorizer.invalidate()
                retriedToken = true
                continue
            }
            let status = response.status.code
            if [301, 302, 303, 307, 308].contains(status), let location = response.headers.first(name: "Location") {
                current = try Self.redirect(from: current, to: location)
                redirects += 1
                guard redirects <= 5 else { throw ScrapeError(reason: "more than 5 redirects") }
                continue
            }
            guard (200..<300).contains(status) || acceptErrorStatus else {
                let text = body.readString(length: min(body.readableBytes, 200)) ?? ""
                let detail = text.trimmingCharacters(in: .whitespacesAndNewlines)
                throw ScrapeError(reason: "HTTP \(status)\(detail.isEmpty ? "" : ": " + detail)")
            }
            let bytes = body.readBytes(length: body.readableBytes) ?? []
            return FetchedBody(bytes: bytes, contentType: response.headers.first(name: "Content-Type"), status: status)
        }
    }

    /// Where a redirect from `url` to `location` leads, when it stays on the same scheme, host
    /// and port.
    /// - Throws: ``ScrapeError`` for a redirect to another host (not followed) or a bad location.
    static func redirect(from url: String, to location: String) throws(ScrapeError) -> String {
        guard let base = URL(string: url), let target = URL(string: location, relativeTo: base)?.absoluteURL,
            let host = target.host
        else {
            throw ScrapeError(reason: "redirected to \"\(location.prefix(100))\", which is not a URL")
        }
        func port(_ u: URL) -> Int? { u.port ?? (u.scheme == "https" ? 443 : u.scheme == "http" ? 80 : nil) }
        guard target.scheme == base.scheme, host == base.host, port(target) == port(base) else {
            throw ScrapeError(
                reason: "redirected to another host (\(target.scheme ?? "?")://\(host.prefix(100))): not followed, "
                    + "so credentials stay with the target"
            )
        }
        return target.absoluteString
    }
}
