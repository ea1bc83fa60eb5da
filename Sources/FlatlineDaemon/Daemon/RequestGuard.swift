import Foundation
import Hummingbird

/// What a browser tricked into calling the API must not get through, with or without a token:
/// requests for another host name (DNS rebinding), changes from another origin (cross-site
/// requests), and changes sent as a form (a "simple" request no preflight stops).
///
/// - `Host` must name the daemon: its listen address, `localhost`/`127.0.0.1`/`[::1]` with its
///   port, or the external URL's host. A daemon listening on every interface (`0.0.0.0`, `::`)
///   cannot list its names and skips this check unless an external URL is set.
/// - `POST` and `DELETE` with an `Origin` header must come from the daemon's own origin.
/// - `POST` and `DELETE` with a body must send it as `Content-Type: application/json`.
struct RequestGuard: RouterMiddleware {
    typealias Context = BasicRequestContext
    let daemon: Daemon

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let options = daemon.options
        let port = daemon.port ?? options.port
        if let refusal = Self.check(
            method: request.method,
            host: request.head.authority,
            origin: request.headers[.origin],
            contentType: request.headers[.contentType],
            contentLength: request.headers[.contentLength].flatMap { Int($0) },
            listenHost: options.host,
            port: port,
            externalURL: options.externalURL
        ) {
            return HTTPAPI.json(HTTPAPI.Failure(error: refusal.reason), status: refusal.status)
        }
        return try await next(request, context)
    }

    struct Refusal: Equatable {
        var status: HTTPResponse.Status
        var reason: String
    }

    /// The refusal of a request, or `nil` when it may go on (pure, for tests).
    static func check(
        method: HTTPRequest.Method,
        host: String?,
        origin: String?,
        contentType: String?,
        contentLength: Int?,
        listenHost: String,
        port: Int,
        externalURL: String?
    ) -> Refusal? {
        let external = externalURL.flatMap { URL(string: $0) }
        let wildcard = ["0.0.0.0", "::", "[::]", ""].contains(listenHost)
        if !wildcard || external != nil {
            var allowed: Set<String> = []
            for name in [listenHost, "localhost", "127.0.0.1", "[::1]"] where !name.isEmpty && !wildcard {
                allowed.insert("\(name):\(port)".lowercased())
                // Some clients leave the port out; the name is still this machine's.
                allowed.insert(name.lowercased())
            }
            if let external, let name = external.host {
                let bracketed = name.contains(":") && !name.hasPrefix("[") ? "[\(name)]" : name
                let defaultPort = external.scheme == "https" ? 443 : 80
                allowed.insert("\(bracketed):\(external.port ?? defaultPort)".lowercased())
                if external.port == nil || external.port == defaultPort { allowed.insert(bracketed.lowercased()) }
            }
            guard let host, allowed.contains(host.lowercased()) else {
                return Refusal(
                    status: .misdirectedRequest,
                    reason:
                        "Host \"\((host ?? "").prefix(100))\" is not this daemon (set --external-url to the name people use)"
                )
            }
        }
        guard method == .post || method == .delete else { return nil }
        if let origin, origin != "null" {
            let own: Set<String> = Set(
                ([listenHost, "localhost", "127.0.0.1", "[::1]"].map { "http://\($0):\(port)" }
                    + ["https://\(listenHost):\(port)", "https://localhost:\(port)", "https://127.0.0.1:\(port)"]
                    + [external.flatMap(Self.origin)].compactMap { $0 }).map { $0.lowercased() }
            )
            guard
                own.contains(origin.lowercased())
                    || (host.map { origin.lowercased().hasSuffix("://" + $0.lowercased()) } ?? false)
            else {
                return Refusal(
                    status: .forbidden,
                    reason: "cross-origin request from \"\(origin.prefix(100))\" refused"
                )
            }
        } else if origin == "null" {
            return Refusal(status: .forbidden, reason: "request from an opaque origin refused")
        }
        let hasBody = (contentLength ?? 0) > 0 || contentType != nil
        if hasBody {
            let type = (contentType ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) }
            guard type?.lowercased() == "application/json" else {
                return Refusal(
                    status: .unsupportedMediaType,
                    reason:
                        "send the body as Content-Type: application/json (got \"\((contentType ?? "").prefix(100))\")"
                )
            }
        }
        return nil
    }

    static func origin(_ url: URL) -> String? {
        guard let scheme = url.scheme, let host = url.host else { return nil }
        let defaultPort = scheme == "https" ? 443 : 80
        return url.port.map { $0 == defaultPort ? "\(scheme)://\(host)" : "\(scheme)://\(host):\($0)" }
            ?? "\(scheme)://\(host)"
    }
}
