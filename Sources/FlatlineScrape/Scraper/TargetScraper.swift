import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import Foundation
import Logging

/// What one round of scrapes of a target produced.
public struct ScrapeBatch: Sendable {
    /// `job/address`.
    public var target: String
    public var labels: [String: String]
    /// When the round started.
    public var time: Timestamp
    /// Validated samples, the scrape's own series (`up`...) included.
    public var samples: [Sample]
    public var health: ScrapeHealth
    /// Why endpoints failed, by endpoint.
    public var errors: [String: String]
    /// Drops by reason in this round.
    public var drops: DropCounts
    /// Samples an event of the server brought between scrapes (a slow consumer's disconnect),
    /// at the event's time: no scrape, so the target's health is not touched.
    public var event = false

    public init(
        target: String,
        labels: [String: String],
        time: Timestamp,
        samples: [Sample],
        health: ScrapeHealth,
        errors: [String: String],
        drops: DropCounts,
        event: Bool = false
    ) {
        self.target = target
        self.labels = labels
        self.time = time
        self.samples = samples
        self.health = health
        self.errors = errors
        self.drops = drops
        self.event = event
    }
}

/// Writes raw scrapes to a recording; shared by every target's task.
public actor Recorder {
    private let writer: RecordingWriter
    public var path: String { writer.path }
    public var count: Int { writer.count }
    private var failure: RecordingError?
    private let failed: (@Sendable (RecordingError) -> Void)?

    /// - Parameter failed: told of the first write that fails (the recording stops there).
    /// - Throws: ``RecordingError`` when the file cannot be created.
    public init(path: String, failed: (@Sendable (RecordingError) -> Void)? = nil) throws(RecordingError) {
        writer = try RecordingWriter(path: path)
        self.failed = failed
    }

    func json(_ time: Timestamp, _ target: ScrapeTarget, _ endpoint: String, page: Int, _ body: JSONDocument) {
        record { () throws(RecordingError) in
            try writer.write(
                time: time,
                target: target.address,
                labels: target.labels,
                endpoint: endpoint,
                page: page,
                document: body
            )
        }
    }

    func text(_ time: Timestamp, _ target: ScrapeTarget, _ body: [UInt8], contentType: String?) {
        record { () throws(RecordingError) in
            try writer.write(
                time: time,
                target: target.address,
                labels: target.labels,
                endpoint: "metrics",
                text: body,
                contentType: contentType
            )
        }
    }

    func error(_ time: Timestamp, _ target: ScrapeTarget, _ endpoint: String, _ reason: String) {
        record { () throws(RecordingError) in
            try writer.write(
                time: time,
                target: target.address,
                labels: target.labels,
                endpoint: endpoint,
                error: reason
            )
        }
    }

    func health(_ time: Timestamp, _ target: ScrapeTarget, _ health: ScrapeHealth) {
        record { () throws(RecordingError) in
            try writer.write(time: time, target: target.address, labels: target.labels, health: health)
            try writer.flush()
        }
    }

    private func record(_ body: () throws(RecordingError) -> Void) {
        guard failure == nil else { return }
        do {
            try body()
        } catch {
            failure = error
            failed?(error)
        }
    }

    /// Finishes the file.
    /// - Throws: the first write error, if any write failed.
    public func close() throws(RecordingError) {
        try writer.close()
        if let failure { throw failure }
    }
}

/// Scrapes one target, round after round: every endpoint (every page), then extraction,
/// validation and the round's health. Rounds of one target never overlap.
struct TargetScraper {
    let fetcher: HTTPFetcher
    let recorder: Recorder?
    let logger: Logger
    var state: TargetState
    var failures = FailureLog()

    var target: ScrapeTarget { state.target }

    init(target: ScrapeTarget, global: GlobalSettings, fetcher: HTTPFetcher, recorder: Recorder?, logger: Logger) {
        self.fetcher = fetcher
        self.recorder = recorder
        var logger = logger
        logger[metadataKey: "target"] = "\(target.name)"
        self.logger = logger
        state = TargetState(target: target, global: global)
    }

    /// One round.
    mutating func scrape() async -> ScrapeBatch {
        let clock = ContinuousClock()
        let started = clock.now
        let deadline = started + Duration.clamped(seconds: target.job.scrapeTimeout)
        let time = Timestamp.now
        var samples: [Sample] = []
        var errors: [String: String] = [:]
        switch target.job.kind {
        case .prometheus:
            do {
                samples = try await scrapeExposition(time: time, deadline: deadline)
            } catch {
                errors["metrics"] = error.reason
            }
        case .natsEvents:
            break
        case .nats, .natsSystem:
            // A target that cannot be reached is not asked again for its other endpoints in the
            // same round: each would wait out the scrape timeout and report a timeout instead of
            // the refused connection.
            var unreachable: String?
            for endpoint in target.job.nats.endpoints {
                if let unreachable {
                    errors[endpoint.rawValue] = unreachable
                    await recorder?.error(time, target, endpoint.rawValue, unreachable)
                    continue
                }
                do {
                    samples += try await scrapeNATS(endpoint, deadline: deadline)
                } catch {
                    errors[endpoint.rawValue] = error.reason
                    await recorder?.error(time, target, endpoint.rawValue, error.reason)
                    if error.unreachable {
                        unreachable = "not tried: \(endpoint.rawValue) found the target unreachable (\(error.reason))"
                    }
                }
            }
        }
        failures.update(errors, logger: logger)
        return await state.finish(
            samples: samples,
            errors: errors,
            time: time,
            durationSeconds: (clock.now - started).seconds,
            recorder: recorder
        )
    }

    private mutating func scrapeExposition(time: Timestamp, deadline: ContinuousClock.Instant) async throws(ScrapeError)
        -> [Sample]
    {
        let url = fetcher.url(target.address, target.job.metricsPath)
        let body: FetchedBody
        do {
            body = try await fetcher.get(url, accept: ExpositionFormat.acceptHeader, deadline: deadline)
        } catch {
            await recorder?.error(time, target, "metrics", error.reason)
            throw error
        }
        await recorder?.text(time, target, body.bytes, contentType: body.contentType)
        do {
            return try state.extractor.samples(exposition: body.bytes, contentType: body.contentType, scrapeTime: time)
        } catch {
            throw ScrapeError(reason: error.reason)
        }
    }

    /// The path and query of page `offset` of `endpoint`.
    func path(_ endpoint: NATSEndpoint, offset: Int) -> String {
        let settings = target.job.nats
        let base = target.job.metricsPath == "/metrics" ? "" : target.job.metricsPath
        var query: [String] = []
        switch endpoint {
        case .connz:
            if settings.connzSubscriptions { query.append("subs=1") }
        case .connzClosed:
            query.append("state=closed")
        case .jsz:
            query.append("accounts=true")
            query.append("streams=true")
            if settings.jszConsumers { query.append("consumers=true") }
            if settings.jszConfig { query.append("config=true") }
        case .accstatz:
            if settings.accstatzUnused { query.append("unused=1") }
        default:
            break
        }
        if endpoint.isPaged {
            query.append("offset=\(offset)")
            query.append("limit=\(settings.pageLimit)")
        }
        return base + endpoint.path + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
    }

    /// Every page of `endpoint`, then its samples.
    private mutating func scrapeNATS(_ endpoint: NATSEndpoint, deadline: ContinuousClock.Instant)
        async throws(ScrapeError)
        -> [Sample]
    {
        var pages: [JSONPage] = []
        var offset = 0
        var scrapeTime: Timestamp?
        // Pages until the items seen reach the total; bounded, in case a server keeps growing.
        for page in 1...10_000 {
            let time = Timestamp.now
            if scrapeTime == nil { scrapeTime = time }
            let url = fetcher.url(target.address, path(endpoint, offset: offset))
            let body = try await fetcher.get(
                url,
                accept: "application/json",
                deadline: deadline,
                acceptErrorStatus: endpoint == .healthz
            )
            let document: JSONDocument
            do {
                document = try JSONDocument(parsing: body.bytes)
            } catch {
                let start = String(decoding: body.bytes.prefix(60), as: UTF8.self)
                throw ScrapeError(reason: "not JSON (HTTP \(body.status), \(error)): \(start)")
            }
            await recorder?.json(time, target, endpoint.rawValue, page: page, document)
            let jsonPage = JSONPage(document: document)
            pages.append(jsonPage)
            let total: Int?
            do {
                total = try endpoint.pageTotal(jsonPage)
            } catch {
                throw ScrapeError(reason: error.description)
            }
            guard endpoint.isPaged, let items = endpoint.pageCount(jsonPage), items > 0, let total else { break }
            offset += items
            guard offset < total else { break }
        }
        do {
            return try state.extractor.samples(endpoint, pages: pages, scrapeTime: scrapeTime ?? .now)
        } catch {
            throw ScrapeError(reason: error.description)
        }
    }
}

extension Timestamp {
    /// The local clock, to the millisecond.
    static var now: Timestamp {
        Timestamp(milliseconds: Int64((Date().timeIntervalSince1970 * 1000).rounded()))
    }
}
