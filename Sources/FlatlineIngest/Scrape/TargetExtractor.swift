import FlatlineCore

/// What a target is and how Flatline reads it.
public enum TargetKind: String, Sendable, Hashable, CaseIterable, Codable {
    /// A NATS server's HTTP monitoring port (`/varz`, `/connz`, ...).
    case nats
    /// Any Prometheus `/metrics` endpoint.
    case prometheus
    /// A NATS cluster through the system account: the same bodies, requested over NATS.
    case natsSystem = "nats_system"
    /// JetStream advisories of one account, subscribed to over NATS (no scrapes).
    case natsEvents = "nats_events"
}

/// How one scrape of a target went, as the series `up`, `scrape_duration_seconds`,
/// `scrape_samples_scraped` and `scrape_samples_dropped` (Prometheus's names), so that a target
/// going down is itself a signal.
public struct ScrapeHealth: Sendable, Hashable {
    public var up: Bool
    public var durationSeconds: Double
    public var samplesScraped: Int
    public var samplesDropped: Int

    public init(up: Bool, durationSeconds: Double, samplesScraped: Int, samplesDropped: Int) {
        self.up = up
        self.durationSeconds = durationSeconds
        self.samplesScraped = samplesScraped
        self.samplesDropped = samplesDropped
    }
}

/// Turns one target's scrapes into samples: NATS bodies through the ``NATSExtractor``,
/// expositions through the ``ExpositionParser``, then the target's relabeling rules. The live
/// scraper and the replay of a recording use this same code; only the source of the bodies
/// and the clock differ.
public struct TargetExtractor: Sendable {
    public let kind: TargetKind
    /// The target's labels (`job`, `instance`, static labels), sorted.
    public let targetLabels: [String: String]
    private var nats: NATSExtractor
    private var advisories: ConsumerAdvisoryCounter
    private var relabeler: Relabeler
    private let base: [Label]
    /// The series of the last exposition body, so the next scrape parses only what changed.
    private var memory: SeriesMemory
    /// The job's limits on one body.
    public let limits: ScrapeLimits
    /// Samples the relabeling rules dropped, so far.
    public private(set) var relabelDropped = 0

    public init(
        kind: TargetKind,
        targetLabels: [String: String],
        options: NATSExtractionOptions = NATSExtractionOptions(),
        relabel: [RelabelRule] = [],
        limits: ScrapeLimits = ScrapeLimits()
    ) {
        self.kind = kind
        self.targetLabels = targetLabels
        nats = NATSExtractor(targetLabels: targetLabels, options: options)
        advisories = ConsumerAdvisoryCounter(targetLabels: targetLabels)
        relabeler = Relabeler(rules: relabel)
        base = nats.targetLabels
        memory = SeriesMemory(base: nats.targetLabels, limit: SeriesMemory.defaultLimit)
        self.limits = limits
    }

    /// The samples of one NATS endpoint's body (or pages).
    /// - Throws: ``ExtractionError`` when a body has the wrong shape or breaks a limit.
    public mutating func samples(
        _ endpoint: NATSEndpoint,
        pages: [JSONPage],
        scrapeTime: Timestamp
    ) throws(ExtractionError) -> [Sample] {
        let samples = relabel(try nats.extract(endpoint, pages: pages, scrapeTime: scrapeTime))
        try limits.check(samples, endpoint: endpoint.rawValue)
        return samples
    }

    /// A connection the server cut off as a slow consumer, told by a disconnect event: the
    /// client group's slow-consumer counter at `time` (relabeled as scrapes are), or nothing when
    /// a scrape counted it already (see ``NATSExtractor/slowConsumerDisconnected(cid:clientName:at:)``).
    public mutating func slowConsumerDisconnected(cid: Int, clientName: String, at time: Timestamp) -> [Sample] {
        guard kind == .nats || kind == .natsSystem else { return [] }
        return relabel(nats.slowConsumerDisconnected(cid: cid, clientName: clientName, at: time))
    }

    /// What an event brings: a slow consumer's disconnect counted on its client group, an
    /// advisory on its consumer; nothing for other events.
    public mutating func samples(event: NATSEvent) -> [Sample] {
        switch event {
        case .clientDisconnect(let disconnect) where disconnect.isSlowConsumer:
            slowConsumerDisconnected(cid: disconnect.cid, clientName: disconnect.clientName, at: disconnect.time)
        case .consumerAdvisory(let advisory):
            self.advisory(advisory)
        default:
            []
        }
    }

    /// A JetStream consumer advisory counted: its consumer's counter at the advisory's time,
    /// relabeled as scrapes are.
    public mutating func advisory(_ advisory: NATSEvent.ConsumerAdvisory) -> [Sample] {
        relabel(advisories.count(advisory))
    }

    /// Samples the extraction could not give since the last call (a time field that is no
    /// representable time), by reason; resets the count.
    public mutating func takeDrops() -> DropCounts { nats.takeDrops() }

    /// The samples of an exposition body. Samples without their own timestamp take
    /// `scrapeTime`. A label the target also sets is kept as `exported_<name>` (prefixed again
    /// until the name is free), as Prometheus does without `honor_labels`.
    /// - Throws: ``ExtractionError`` naming the line when the body is not a valid exposition,
    ///   or the limit a body breaks.
    public mutating func samples(
        exposition body: some Collection<UInt8>,
        contentType: String?,
        scrapeTime: Timestamp
    ) throws(ExtractionError) -> [Sample] {
        let parser = ExpositionParser(format: ExpositionFormat(contentType: contentType))
        var out: [Sample] = []
        out.reserveCapacity(memory.count)
        // Each series' labels with the target's merged in, by its number in this body.
        var labels: [LabelSet] = []
        labels.reserveCapacity(memory.count)
        do {
            try parser.parseRaw(Array(body), memory: &memory) { sample, new in
                if let new { labels.append(new.labels) }
                out.append(
                    Sample(
                        labels: labels[sample.series],
                        value: sample.value,
                        timestamp: sample.timestamp ?? scrapeTime,
                        kind: sample.kind
                    )
                )
            }
        } catch {
            throw ExtractionError(endpoint: "metrics", reason: "\(error)")
        }
        let samples = relabel(out)
        try limits.check(samples, endpoint: "metrics")
        return samples
    }

    /// The scrape's own series, stamped with the scrape's start: `up`,
    /// `scrape_duration_seconds`, `scrape_samples_scraped`, `scrape_samples_dropped`, and
    /// `flatline_samples_dropped_total{reason}` from the target's validator (every reason, from
    /// zero, so a first drop already shows as a rate).
    public func healthSamples(_ health: ScrapeHealth, drops: DropCounts, at time: Timestamp) -> [Sample] {
        let series: [(String, Double)] = [
            ("scrape_duration_seconds", health.durationSeconds),
            ("scrape_samples_dropped", Double(health.samplesDropped)),
            ("scrape_samples_scraped", Double(health.samplesScraped)),
            ("up", health.up ? 1 : 0),
        ]
        var builder = SampleBuilder(time: time, base: base, counterReset: false)
        for reason in DropReason.allCases {
            builder.add(
                "flatline_samples_dropped_total",
                Double(drops[reason]),
                .counter,
                labels: builder.labels([("reason", reason.rawValue)])
            )
        }
        for (name, value) in series { builder.add(name, value, .gauge) }
        return builder.samples
    }

    private mutating func relabel(_ samples: [Sample]) -> [Sample] {
        guard !relabeler.rules.isEmpty else { return samples }
        var out: [Sample] = []
        out.reserveCapacity(samples.count)
        for var sample in samples {
            guard let labels = relabeler.relabel(sample.labels) else {
                relabelDropped += 1
                continue
            }
            sample.labels = labels
            out.append(sample)
        }
        return out
    }
}
