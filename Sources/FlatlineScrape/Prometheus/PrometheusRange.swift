import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import Foundation

/// Series read from a Prometheus server's HTTP API (`GET /api/v1/query_range`), so a model can
/// be backtested on what Prometheus already holds without a recording.
///
/// A long range is read in chunks of at most ``pointsPerRequest`` steps (Prometheus refuses more
/// than 11,000 points per series in one answer), each within its own deadline and body limit.
/// The result is a ``SeriesFile`` like an OpenMetrics file's: the series in the order Prometheus
/// first returned them, each series' samples in time order, series after series.
public struct PrometheusRange: Sendable {
    /// The server, e.g. `http://127.0.0.1:9090` (a path prefix such as `/prometheus` is kept).
    public var url: String
    /// PromQL expressions; each must return an instant vector (`rate(x[5m])`, a selector, ...).
    public var queries: [String]
    /// The first and last evaluation times.
    public var start: Timestamp
    public var end: Timestamp
    /// Seconds between evaluation times.
    public var step: Double
    /// Seconds each request may take, body included.
    public var timeout: Double = 120
    /// The largest answer read, in bytes.
    public var bodySizeLimit = 256 << 20
    /// The most series all queries together may return, and the most samples ``load(kind:progress:)``
    /// gathers (about 64 bytes each in memory).
    public var maxSeries = 1_000_000
    public var maxSamples = 100_000_000
    /// Steps per request (Prometheus's own limit is 11,000 points per series; more is taken as that).
    public var pointsPerRequest = 10_000
    /// `Authorization: Bearer` with the token read from this file.
    public var bearerTokenFile: String?

    public init(url: String, queries: [String], start: Timestamp, end: Timestamp, step: Double) {
        self.url = url
        self.queries = queries
        self.start = start
        self.end = end
        self.step = step
    }

    /// The step in milliseconds (at least 1), or nil for a step that is not a finite positive
    /// number of at most 1e12 seconds.
    var stepMilliseconds: Int64? {
        guard step.isFinite, step > 0, step < 1e12 else { return nil }
        return Swift.max(1, Int64(exactly: (step * 1000).rounded()) ?? 1)
    }

    /// The requests' time ranges: `[start, end]` cut into pieces of at most
    /// ``pointsPerRequest`` steps that neither overlap nor leave a step out.
    public func chunks() -> [(start: Timestamp, end: Timestamp)] {
        guard let stepMilliseconds, end >= start else { return [] }
        let steps = Int64(Swift.min(Swift.max(1, pointsPerRequest), 11_000))
        let (perChunk, overflow) = steps.multipliedReportingOverflow(by: stepMilliseconds)
        guard !overflow else { return [(start, end)] }
        var out: [(Timestamp, Timestamp)] = []
        var from = start.milliseconds
        while from <= end.milliseconds {
            let (last, overflow) = from.addingReportingOverflow(perChunk - stepMilliseconds)
            let to = overflow ? end.milliseconds : Swift.min(last, end.milliseconds)
            out.append((Timestamp(milliseconds: from), Timestamp(milliseconds: to)))
            let (next, nextOverflow) = to.addingReportingOverflow(stepMilliseconds)
            if nextOverflow { break }
            from = next
        }
        return out
    }

    /// Checks the settings before anything is requested.
    /// - Throws: ``PrometheusRangeError`` naming the setting.
    public func validate() throws(PrometheusRangeError) {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(),
            ["http", "https"].contains(scheme),
            parsed.host != nil
        else {
            throw PrometheusRangeError(
                "Prometheus URL \"\(Redaction.redactingUserinfo(url))\" is not an http:// or https:// URL"
            )
        }
        guard parsed.user == nil && parsed.password == nil else {
            throw PrometheusRangeError(
                "Prometheus URL \"\(Redaction.redactingUserinfo(url))\": credentials in the URL are not sent; use a bearer token file"
            )
        }
        guard !queries.isEmpty else { throw PrometheusRangeError("no query given") }
        guard step.isFinite, step >= 0.001, step <= 1e9 else {
            throw PrometheusRangeError("the step must be from 1ms to 1e9 s")
        }
        guard end >= start else { throw PrometheusRangeError("the start (\(start)) is after the end (\(end))") }
        // A range of more than 100 million steps is a typo, not a backtest.
        guard (end.seconds - start.seconds) / step <= 1e8 else {
            throw PrometheusRangeError("the range is more than 100,000,000 steps of \(step) s: widen the step")
        }
    }

    /// Reads every query over the whole range.
    ///
    /// - Parameters:
    ///   - kind: every series is this kind (`nil`: gauges, since what a query returns, such as a
    ///     `rate()`, is usually one; a raw counter needs `.counter`).
    ///   - progress: called after each request with the requests done and their total.
    /// - Throws: ``PrometheusRangeError`` for a refused connection, an HTTP error, Prometheus's
    ///   own error (a bad query), an answer too large or malformed, or too many series.
    public func load(
        kind: MetricKind? = nil,
        progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }
    ) async throws(PrometheusRangeError) -> SeriesFile {
        var collected = Collected(kind: kind ?? .gauge, maxSeries: maxSeries, maxSamples: maxSamples)
        try await read(progress: progress) { answer, query async throws(PrometheusRangeError) in
            try collected.add(answer, query: query, queries: queries)
        }
        return collected.file(name: Redaction.redactingUserinfo(url))
    }

    /// One series of one answer: its labels, and its points in time order.
    public struct Series: Sendable {
        public var labels: LabelSet
        public var points: [(time: Timestamp, value: Double)]

        public init(labels: LabelSet, points: [(time: Timestamp, value: Double)]) {
            self.labels = labels
            self.points = points
        }
    }

    /// Reads the range request by request, in time order (every query for the first chunk of
    /// time, then the next), handing each answer to `body` as it arrives: memory holds one answer.
    ///
    /// - Throws: ``PrometheusRangeError`` for a refused connection, an HTTP error, Prometheus's
    ///   own error (a bad query), an answer too large or malformed; or what `body` throws.
    public func read(
        progress: (_ done: Int, _ total: Int) -> Void = { _, _ in },
        _ body: (_ series: [Series], _ query: Int) async throws(PrometheusRangeError) -> Void
    ) async throws(PrometheusRangeError) {
        try validate()
        let (fetcher, address, prefix) = try connection()
        do throws(PrometheusRangeError) {
            try await read(with: fetcher, address: address, prefix: prefix, progress: progress, body)
        } catch {
            await fetcher.shutdown()
            throw error
        }
        await fetcher.shutdown()
    }

    /// The metric families' types as Prometheus learned them from its scrapes
    /// (`GET /api/v1/metadata`: `counter`, `gauge`, `histogram`, ...); empty for history it never
    /// scraped (blocks made by `promtool`).
    /// - Throws: ``PrometheusRangeError`` when Prometheus cannot be reached or answers nonsense.
    public func metadata() async throws(PrometheusRangeError) -> [String: String] {
        let (fetcher, address, prefix) = try connection()
        struct Answer: Decodable {
            struct Entry: Decodable { var type: String }
            var status: String
            var data: [String: [Entry]]?
            var error: String?
        }
        let body: FetchedBody
        do {
            body = try await fetcher.get(
                fetcher.url(address, prefix + "/api/v1/metadata"),
                accept: "application/json",
                deadline: ContinuousClock.now + .seconds(timeout)
            )
        } catch {
            await fetcher.shutdown()
            throw PrometheusRangeError("\(Redaction.redactingUserinfo(url)) metadata: \(error)")
        }
        await fetcher.shutdown()
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(body.bytes)), answer.status == "success"
        else {
            throw PrometheusRangeError("\(Redaction.redactingUserinfo(url)) metadata: not a Prometheus API answer")
        }
        return (answer.data ?? [:]).compactMapValues { $0.first?.type }
    }

    /// How a series of metric `name` is scored, from its family's type in `types`
    /// (``metadata()``), else by its name as replay takes an undeclared one: `_total` is a counter.
    public static func kind(of name: String, types: [String: String]) -> MetricKind {
        switch types[name] {
        case "counter": return .counter
        case "gauge", "unknown", "untyped", "info", "stateset": return .gauge
        default: break
        }
        for suffix in ["_total", "_bucket", "_count", "_sum"] where name.hasSuffix(suffix) {
            let family = String(name.dropLast(suffix.count))
            switch (types[family], suffix) {
            case ("counter", "_total"), ("histogram", _), ("summary", "_count"), ("summary", "_sum"): return .counter
            default: continue
            }
        }
        return name.hasSuffix("_total") ? .counter : .gauge
    }

    /// A client for the server, its `host:port` and its path prefix.
    private func connection() throws(PrometheusRangeError) -> (HTTPFetcher, String, String) {
        guard let parsed = URL(string: url), let host = parsed.host else {
            throw PrometheusRangeError("Prometheus URL \"\(Redaction.redactingUserinfo(url))\" is not a URL")
        }
        var job = ScrapeConfiguration(
            jobName: "prometheus-api",
            kind: .prometheus,
            scrapeInterval: timeout,
            scrapeTimeout: timeout,
            targets: []
        )
        job.scheme = parsed.scheme?.lowercased() ?? "http"
        job.bodySizeLimit = bodySizeLimit
        if let bearerTokenFile { job.authorization = .bearerTokenFile(bearerTokenFile) }
        let port = parsed.port.map { ":\($0)" } ?? ""
        let address = (host.contains(":") ? "[\(host)]" : host) + port
        let prefix = parsed.path.hasSuffix("/") ? String(parsed.path.dropLast()) : parsed.path
        do {
            return (try HTTPFetcher(job: job), address, prefix)
        } catch {
            throw PrometheusRangeError("\(error)")
        }
    }

    /// Every query over every chunk, one request at a time.
    private func read(
        with fetcher: HTTPFetcher,
        address: String,
        prefix: String,
        progress: (_ done: Int, _ total: Int) -> Void,
        _ handle: (_ series: [Series], _ query: Int) async throws(PrometheusRangeError) -> Void
    ) async throws(PrometheusRangeError) {
        let pieces = chunks()
        let total = pieces.count * queries.count
        var done = 0
        for piece in pieces {
            for (number, query) in queries.enumerated() {
                // An answer too large for the body limit is asked for again in halves of the
                // time range, down to a single step.
                var pending = [piece]
                while let part = pending.popLast() {
                    guard !Task.isCancelled else { throw PrometheusRangeError("cancelled") }
                    let path =
                        prefix + "/api/v1/query_range?"
                        + Self.formEncoded([
                            ("query", query), ("start", Self.seconds(part.start)), ("end", Self.seconds(part.end)),
                            ("step", Self.seconds(step)),
                        ])
                    let body: FetchedBody
                    do {
                        body = try await fetcher.get(
                            fetcher.url(address, path),
                            accept: "application/json",
                            deadline: ContinuousClock.now + .seconds(timeout),
                            // Prometheus says why a query failed in a JSON body with a 4xx/5xx status.
                            acceptErrorStatus: true
                        )
                    } catch {
                        if error.reason.hasPrefix("body larger than"), let halves = halves(of: part) {
                            // Later half first on the stack: the earlier one is read first.
                            pending += [halves.1, halves.0]
                            continue
                        }
                        throw PrometheusRangeError("query \"\(query)\" (\(part.start) to \(part.end)): \(error)")
                    }
                    let series: [Series]
                    do throws(PrometheusRangeError) {
                        series = try Self.series(Self.decode(body.bytes, status: body.status), within: part)
                    } catch {
                        throw PrometheusRangeError("query \"\(query)\" (\(part.start) to \(part.end)): \(error.reason)")
                    }
                    try await handle(series, number)
                }
                done += 1
                progress(done, total)
            }
        }
    }

    /// A time range of more than one step cut into two that neither overlap nor skip a step; nil
    /// for a single step.
    func halves(of part: (start: Timestamp, end: Timestamp)) -> (
        (start: Timestamp, end: Timestamp), (start: Timestamp, end: Timestamp)
    )? {
        guard let stepMilliseconds else { return nil }
        let steps = (part.end.milliseconds - part.start.milliseconds) / stepMilliseconds
        guard steps >= 1 else { return nil }
        let firstEnd = part.start.milliseconds + (steps - 1) / 2 * stepMilliseconds
        return (
            (part.start, Timestamp(milliseconds: firstEnd)),
            (Timestamp(milliseconds: firstEnd + stepMilliseconds), part.end)
        )
    }

    /// An answer's series, every label, time and value checked; every time within the range asked
    /// for (a time ahead of it would put a detector's clock in the future). Series with no float
    /// samples (native histograms) are left out.
    static func series(_ answer: [Answer.Series], within range: (start: Timestamp, end: Timestamp))
        throws(PrometheusRangeError) -> [Series]
    {
        var out: [Series] = []
        out.reserveCapacity(answer.count)
        for one in answer {
            guard let values = one.values else { continue }
            let labels: LabelSet
            do {
                labels = try LabelSet(validating: one.metric)
            } catch {
                throw PrometheusRangeError("a series has a bad label: \(error)")
            }
            var points: [(time: Timestamp, value: Double)] = []
            points.reserveCapacity(values.count)
            for point in values {
                guard let time = Timestamp(exactMilliseconds: point.time * 1000) else {
                    throw PrometheusRangeError("a sample's time \(point.time) is out of range")
                }
                guard time >= range.start && time <= range.end else {
                    throw PrometheusRangeError(
                        "a sample's time \(time) is outside the range asked for (\(range.start) to \(range.end))"
                    )
                }
                guard let value = NumberText.parseDouble(point.value) else {
                    throw PrometheusRangeError("a sample's value \"\(point.value.prefix(40))\" is not a number")
                }
                points.append((time, value))
            }
            out.append(Series(labels: labels, points: points))
        }
        return out
    }

    /// Seconds as Prometheus takes them: an integer when whole, else milliseconds.
    static func seconds(_ time: Timestamp) -> String {
        let ms = time.milliseconds
        if ms % 1000 == 0 { return String(ms / 1000) }
        let sign = ms < 0 ? "-" : ""
        let magnitude = ms.magnitude
        let fraction = String(magnitude % 1000)
        return sign + String(magnitude / 1000) + "." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    static func seconds(_ value: Double) -> String {
        seconds(Timestamp(exactMilliseconds: value * 1000) ?? Timestamp(milliseconds: 0))
    }

    /// `application/x-www-form-urlencoded` pairs: everything but unreserved characters escaped
    /// (a `+` in PromQL stays a plus).
    static func formEncoded(_ pairs: [(String, String)]) -> String {
        let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        func escape(_ text: String) -> String {
            text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
        }
        return pairs.map { escape($0.0) + "=" + escape($0.1) }.joined(separator: "&")
    }

    /// One answer of `query_range`.
    struct Answer: Decodable {
        struct Series: Decodable {
            var metric: [String: String]
            /// Absent for a native histogram (`histograms` instead).
            var values: [Point]?
        }
        struct Point: Decodable {
            var time: Double
            var value: String

            init(from decoder: any Decoder) throws {
                var pair = try decoder.unkeyedContainer()
                time = try pair.decode(Double.self)
                value = try pair.decode(String.self)
            }
        }
        struct Data: Decodable {
            var resultType: String
            var result: [Series]
        }
        var status: String
        var data: Data?
        var errorType: String?
        var error: String?
    }

    /// The series of one answer.
    /// - Throws: ``PrometheusRangeError`` with Prometheus's own error, or what is wrong with the body.
    static func decode(_ bytes: [UInt8], status: UInt) throws(PrometheusRangeError) -> [Answer.Series] {
        let answer: Answer
        do {
            answer = try JSONDecoder().decode(Answer.self, from: Data(bytes))
        } catch {
            let head = String(decoding: bytes.prefix(200), as: UTF8.self).trimmingCharacters(
                in: .whitespacesAndNewlines
            )
            throw PrometheusRangeError(
                "HTTP \(status): not a Prometheus API answer\(head.isEmpty ? "" : ": " + head)"
            )
        }
        guard answer.status == "success", (200..<300).contains(status) else {
            throw PrometheusRangeError(
                "Prometheus said \(answer.errorType ?? "error") (HTTP \(status)): \(answer.error ?? "no reason given")"
            )
        }
        guard let data = answer.data else { throw PrometheusRangeError("the answer has no data") }
        guard data.resultType == "matrix" else {
            throw PrometheusRangeError("the answer is a \(data.resultType), not a range of series (matrix)")
        }
        return data.result
    }

    /// The series gathered over every answer.
    struct Collected {
        var kind: MetricKind
        var maxSeries: Int
        var maxSamples: Int
        var samples = 0
        var index: [LabelSet: Int] = [:]
        var series: [LabelSet] = []
        /// Which query gave each series.
        var origin: [Int] = []
        /// Per series: its points by time, over every chunk.
        var points: [[(Timestamp, Double)]] = []
        var dropped = 0

        init(kind: MetricKind, maxSeries: Int, maxSamples: Int) {
            self.kind = kind
            self.maxSeries = maxSeries
            self.maxSamples = maxSamples
        }

        mutating func add(_ answer: [Series], query: Int, queries: [String]) throws(PrometheusRangeError) {
            for one in answer {
                let id: Int
                if let known = index[one.labels] {
                    guard origin[known] == query else {
                        throw PrometheusRangeError(
                            "queries \"\(queries[origin[known]])\" and \"\(queries[query])\" both return \(one.labels): "
                                + "give their series distinct labels (label_replace) or read them one at a time"
                        )
                    }
                    id = known
                } else {
                    guard series.count < maxSeries else {
                        throw PrometheusRangeError("more than \(maxSeries) series: narrow the query")
                    }
                    id = series.count
                    index[one.labels] = id
                    series.append(one.labels)
                    origin.append(query)
                    points.append([])
                }
                samples += one.points.count
                guard samples <= maxSamples else {
                    throw PrometheusRangeError(
                        "more than \(maxSamples) samples: narrow the query or the range, or widen --step"
                    )
                }
                for (time, value) in one.points {
                    // A later chunk starts after the last step of the one before.
                    if let last = points[id].last?.0, time <= last {
                        dropped += 1
                        continue
                    }
                    points[id].append((time, value))
                }
            }
        }

        func file(name: String) -> SeriesFile {
            var texts = TextArena()
            var rows: [SeriesFile.Row] = []
            rows.reserveCapacity(points.reduce(0) { $0 + $1.count })
            for (id, list) in points.enumerated() {
                for (time, value) in list {
                    rows.append(
                        SeriesFile.Row(
                            series: id,
                            timestamp: time,
                            text: texts.add(PrometheusRange.seconds(time), time: time),
                            value: value,
                            kind: kind,
                            line: rows.count + 1
                        )
                    )
                }
            }
            var warnings: [String] = []
            if dropped > 0 { warnings.append("\(dropped) samples not after their series' previous one were left out") }
            return SeriesFile(
                name: name,
                format: .openmetrics,
                series: series,
                rows: rows,
                texts: texts.bytes,
                warnings: warnings
            )
        }
    }
}

/// Why a range could not be read from Prometheus.
public struct PrometheusRangeError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String

    public init(_ reason: String) {
        self.reason = Redaction.redactingUserinfo(reason.truncated())
    }

    public var description: String { reason }
}
