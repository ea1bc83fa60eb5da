import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineNotify
import FlatlineScrape
import Foundation
import Hummingbird
import NIOCore

/// The daemon's HTTP endpoints: `/metrics`, `/healthz`, `/readyz`, and the JSON API under
/// `/api/v1` (`alerts`, `targets`, `series`).
enum HTTPAPI {
    struct AlertView: Encodable {
        var fingerprint: String
        var state: String
        var labels: [String: String]
        var annotations: [String: String]
        var activeSince: String
        var startsAt: String?
        var endsAt: String?
        /// The ids of the silences that mute it now (Alertmanager's `status.silencedBy`).
        var silencedBy: [String]
    }

    /// The `key=value` fields of a raw query string, decoded as HTML forms encode them (what
    /// `curl --data-urlencode` and Prometheus's clients send): `+` is a space, then `%XX`.
    static func formFields(_ query: String?) -> [(key: String, value: String)] {
        guard let query else { return [] }
        func decode(_ text: Substring) -> String {
            let spaced = text.replacingOccurrences(of: "+", with: " ")
            return spaced.removingPercentEncoding ?? spaced
        }
        return query.split(separator: "&").map { field in
            let parts = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }

    struct SeriesView: Encodable {
        var labels: [String: String]
        var time: String
        var value: Double
        var expected: Double?
        var lower: Double?
        var upper: Double?
        var score: Double
        var anomalous: Bool
    }

    struct SilenceRequest: Decodable {
        /// `name="value"` texts, or Alertmanager's objects (`{"name", "value", "isRegex",
        /// "isEqual"}`), read as the same texts.
        var matchers: [String]
        var startsAt: String?
        var endsAt: String?
        /// Instead of endsAt: how long from the start (`2h`).
        var duration: String?
        var createdBy: String?
        var comment: String?

        private enum CodingKeys: String, CodingKey {
            case matchers, startsAt, endsAt, duration, createdBy, comment
        }

        /// One matcher as Alertmanager's API gives it.
        private struct MatcherObject: Decodable {
            var name: String
            var value: String
            var isRegex: Bool?
            var isEqual: Bool?

            var text: String {
                let equal = isEqual ?? true
                let op = isRegex == true ? (equal ? "=~" : "!~") : (equal ? "=" : "!=")
                return name + op + "\"" + LabelSet.escape(value) + "\""
            }
        }

        private enum Matcher: Decodable {
            case text(String)
            case object(MatcherObject)

            init(from decoder: any Decoder) throws {
                let single = try decoder.singleValueContainer()
                if let text = try? single.decode(String.self) {
                    self = .text(text)
                } else {
                    self = .object(try single.decode(MatcherObject.self))
                }
            }

            var text: String {
                switch self {
                case .text(let text): text
                case .object(let object): object.text
                }
            }
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            matchers = try c.decode([Matcher].self, forKey: .matchers).map(\.text)
            startsAt = try c.decodeIfPresent(String.self, forKey: .startsAt)
            endsAt = try c.decodeIfPresent(String.self, forKey: .endsAt)
            duration = try c.decodeIfPresent(String.self, forKey: .duration)
            createdBy = try c.decodeIfPresent(String.self, forKey: .createdBy)
            comment = try c.decodeIfPresent(String.self, forKey: .comment)
        }
    }

    struct SilenceView: Encodable {
        var id: String
        var status: String
        var matchers: [String]
        var startsAt: String
        var endsAt: String
        var createdBy: String
        var comment: String

        init(_ silence: Silence, now: Timestamp) {
            id = silence.id
            status = now < silence.startsAt ? "pending" : now < silence.endsAt ? "active" : "expired"
            matchers = silence.matchers
            startsAt = silence.startsAt.description
            endsAt = silence.endsAt.description
            createdBy = silence.createdBy
            comment = silence.comment
        }
    }

    struct Envelope<T: Encodable>: Encodable {
        var status = "success"
        var data: T
    }

    struct Failure: Encodable {
        var status = "error"
        var error: String
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }

    static func text(_ text: String, status: HTTPResponse.Status = .ok, type: String = "text/plain; charset=utf-8")
        -> Response
    {
        Response(
            status: status,
            headers: [.contentType: type],
            body: .init(byteBuffer: ByteBuffer(string: text))
        )
    }

    /// Asks for `Authorization: Bearer <token>` on every path but the open ones, when the running
    /// configuration names a token file (read at each request: rotate it in place).
    struct BearerAuth: RouterMiddleware {
        typealias Context = BasicRequestContext
        let daemon: Daemon

        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
            async throws -> Response
        {
            let web = daemon.configuration.web
            guard let file = web.bearerTokenFile, !web.openPaths.contains(request.uri.path) else {
                return try await next(request, context)
            }
            let expected: String
            do {
                expected = try FileSecret(path: file).value()
            } catch {
                // Fail closed: a token that cannot be read lets nobody in.
                return json(Failure(error: "the API token file cannot be read"), status: .internalServerError)
            }
            let given = request.headers[.authorization] ?? ""
            guard Self.equal(Array(given.utf8), Array(("Bearer " + expected).utf8)) else {
                return Response(
                    status: .unauthorized,
                    headers: [.wwwAuthenticate: "Bearer", .contentType: "application/json"],
                    body: .init(
                        byteBuffer: ByteBuffer(
                            string: #"{"status":"error","error":"a valid bearer token is required"}"#
                        )
                    )
                )
            }
            return try await next(request, context)
        }

        /// Compares in time independent of where the first difference is.
        static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
            var difference = UInt8(a.count == b.count ? 0 : 1)
            for i in 0..<min(a.count, b.count) { difference |= a[i] ^ b[i] }
            return difference == 0
        }
    }

    /// Under `/api/`, a request no route takes (an unknown path, a method the path does not
    /// take) or a body over its limit is answered in the API's JSON error shape, as Prometheus's
    /// and Alertmanager's APIs answer, with the status Hummingbird gave it.
    struct JSONErrors: RouterMiddleware {
        typealias Context = BasicRequestContext

        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
            async throws -> Response
        {
            do {
                return try await next(request, context)
            } catch let error as any HTTPResponseError where request.uri.path.hasPrefix("/api/") {
                let path = String(request.uri.path.prefix(200))
                let reason =
                    switch error.status {
                    case .notFound: "no endpoint \(request.method) \(path) (see deploy/openapi.yaml)"
                    case .contentTooLarge: "the body of \(request.method) \(path) is too large"
                    default: (error as? HTTPError)?.body ?? error.status.reasonPhrase
                    }
                return json(Failure(error: reason), status: error.status)
            }
        }
    }

    static func router(_ daemon: Daemon) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: RequestGuard(daemon: daemon))
        router.add(middleware: BearerAuth(daemon: daemon))
        router.add(middleware: JSONErrors())
        let pipeline = daemon.pipeline
        router.get("/") { _, _ -> Response in
            var snapshot = await pipeline.statusSnapshot(version: daemon.options.version)
            snapshot.cluster = daemon.cluster?.status
            return text(StatusPage.render(snapshot), type: "text/html; charset=utf-8")
        }
        // `/-/healthy` and `/-/ready` are Prometheus's and Alertmanager's names for the same probes.
        for path in ["/healthz", "/-/healthy"] {
            router.get(RouterPath(path)) { _, _ in text("ok\n") }
        }
        for path in ["/readyz", "/-/ready"] {
            router.get(RouterPath(path)) { _, _ -> Response in
                // Ready: configuration loaded (we run), a first scrape done, the outbox writable.
                let scraped = await pipeline.firstScrapeDone
                let outbox = (try? daemon.notifier.outbox.pendingCount()) != nil
                guard scraped, outbox else {
                    return text(
                        "not ready: " + (scraped ? "" : "no scrape done yet ") + (outbox ? "" : "outbox unreadable")
                            + "\n",
                        status: .serviceUnavailable
                    )
                }
                return text("ready\n")
            }
        }
        router.get("/metrics") { _, _ -> Response in
            daemon.notifier.courier.updateOutboxGauges()
            let verdicts = await pipeline.seriesStatuses
            return text(
                daemon.metrics.exposition(verdicts),
                type: "text/plain; version=0.0.4; charset=utf-8"
            )
        }
        router.get("/api/v1/alerts") { _, _ -> Response in
            let now = Pipeline.now()
            let silences = await pipeline.silences
            let alerts = await pipeline.alerts().map { alert in
                AlertView(
                    fingerprint: alert.fingerprint.description,
                    state: alert.state.rawValue,
                    labels: alert.labels,
                    annotations: alert.annotations,
                    activeSince: alert.activeSince.description,
                    startsAt: alert.firedAt?.description,
                    endsAt: alert.resolvedAt?.description,
                    silencedBy: silences.filter { $0.mutes(alert.labels, at: now) }.map(\.id)
                )
            }
            return json(Envelope(data: alerts))
        }
        router.get("/api/v1/targets") { _, _ -> Response in
            json(Envelope(data: await pipeline.targetStatuses))
        }
        router.get("/api/v1/cluster") { _, _ -> Response in
            json(Envelope(data: daemon.cluster?.status ?? .alone))
        }
        router.get("/api/v1/series") { request, _ -> Response in
            // `match`: every one holds; `match[]` (Prometheus's): any one selector holds.
            var matchers: [LabelMatcher] = []
            var selectors: [[LabelMatcher]] = []
            do {
                // (Keys as sent: `match[]` from curl -g, `match%5B%5D` from most HTTP libraries.)
                for (key, text) in Self.formFields(request.uri.query) {
                    switch key {
                    case "match": matchers += try LabelMatcher.selector(text)
                    case "match[]": selectors.append(try LabelMatcher.selector(text))
                    default: continue
                    }
                }
            } catch {
                return json(Failure(error: "match: \(error)"), status: .badRequest)
            }
            let series = await pipeline.seriesStatuses.filter { status in
                matchers.allSatisfy { $0.matches(status.labels) }
                    && (selectors.isEmpty || selectors.contains { $0.allSatisfy { $0.matches(status.labels) } })
            }
            func finite(_ x: Double) -> Double? { x.isFinite ? x : nil }
            return json(
                Envelope(
                    data: series.map {
                        SeriesView(
                            labels: $0.labels.dictionary,
                            time: $0.time.description,
                            value: $0.value,
                            expected: finite($0.expected),
                            lower: finite($0.lower),
                            upper: finite($0.upper),
                            score: $0.score,
                            anomalous: $0.anomaly
                        )
                    }
                )
            )
        }
        // POST or PUT, as Prometheus takes it; a GET is told so.
        let reload: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, _ in
            do {
                return text(try await daemon.reload() + "\n")
            } catch {
                return text("reload refused, the running configuration stays: \(error)\n", status: .badRequest)
            }
        }
        router.post("/-/reload", use: reload)
        router.put("/-/reload", use: reload)
        router.get("/-/reload") { _, _ -> Response in
            var response = text("only POST (or PUT) reloads the configuration\n", status: .methodNotAllowed)
            response.headers[.allow] = "POST, PUT"
            return response
        }
        router.get("/api/v1/silences") { _, _ -> Response in
            let now = Pipeline.now()
            return json(Envelope(data: await pipeline.silences.map { SilenceView($0, now: now) }))
        }
        router.post("/api/v1/silences") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 16)
            let input: SilenceRequest
            do {
                input = try JSONDecoder().decode(SilenceRequest.self, from: Data(body.readableBytesView))
            } catch {
                return json(
                    Failure(
                        error:
                            "the body must be JSON with matchers and endsAt or duration: \(DecodingError.describe(error))"
                    ),
                    status: .badRequest
                )
            }
            let now = Pipeline.now()
            guard let start = input.startsAt.map({ Timestamp(rfc3339: $0) }) ?? now else {
                return json(Failure(error: "startsAt is not an RFC 3339 time"), status: .badRequest)
            }
            let end: Timestamp
            if input.endsAt != nil && input.duration != nil {
                return json(Failure(error: "give endsAt or duration, not both"), status: .badRequest)
            }
            if let text = input.endsAt {
                guard let parsed = Timestamp(rfc3339: text) else {
                    return json(Failure(error: "endsAt is not an RFC 3339 time"), status: .badRequest)
                }
                end = parsed
            } else if let text = input.duration, let seconds = DurationText.parse(text), seconds > 0 {
                guard let later = start.adding(seconds: seconds) else {
                    return json(
                        Failure(error: "duration \"\(text.prefix(40))\" ends after the last representable time"),
                        status: .badRequest
                    )
                }
                end = later
            } else if let text = input.duration {
                return json(
                    Failure(error: "duration \"\(text.prefix(40))\" is not a positive duration (e.g. 30m, 2h, 1d)"),
                    status: .badRequest
                )
            } else {
                return json(Failure(error: "give endsAt or a duration (e.g. 2h)"), status: .badRequest)
            }
            let silence = Silence(
                id: UUID().uuidString.lowercased(),
                matchers: input.matchers,
                startsAt: start,
                endsAt: end,
                createdBy: input.createdBy ?? "",
                comment: input.comment ?? ""
            )
            do {
                let added = try await pipeline.addSilence(silence)
                return json(Envelope(data: SilenceView(added, now: now)))
            } catch {
                return json(Failure(error: "\(error)"), status: .badRequest)
            }
        }
        router.delete("/api/v1/silences/:id") { _, context -> Response in
            let id = context.parameters.get("id") ?? ""
            guard await pipeline.expireSilence(id: id) else {
                return json(Failure(error: "no silence \(id)"), status: .notFound)
            }
            return json(Envelope(data: id))
        }
        return router
    }
}
