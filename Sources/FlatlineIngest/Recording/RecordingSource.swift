import FlatlineCore

/// The samples of one recorded scrape (all its pages), or why it gave none.
public struct RecordedBatch: Sendable {
    /// The line of the scrape's first page.
    public var line: Int
    public var target: String?
    public var endpoint: String
    public var samples: [Sample]
    /// The scrape failed (recorded as an error), or its body could not be read.
    public var error: String?
}

/// Reads a recording of raw scrapes and turns it into samples with the same extraction the live
/// scraper uses: one ``TargetExtractor`` per target, pages of a paged scrape together, and the
/// `"scrape"` lines the recorder writes after each round turned into `up` and the other scrape
/// series.
///
/// A line's target labels are its `"labels"` when recorded; otherwise `job` is `defaultJob` and
/// `instance` the line's `"target"` (or `defaultInstance` when the recording names none, like
/// recordings of a single server made by other tools).
public struct RecordingSource {
    private let reader: RecordingReader
    private var extractors: [String: TargetExtractor] = [:]
    private var validators: [String: SampleValidator] = [:]
    /// The checks every target's samples pass, as on the live path.
    public var validation = SampleValidator()
    /// Samples the checks dropped, by reason, over all targets.
    public var drops: DropCounts {
        var all = DropCounts()
        for validator in validators.values {
            all.add(validator.drops)
        }
        return all
    }
    public let options: NATSExtractionOptions
    public let relabel: [RelabelRule]
    /// How the targets of a job were scraped, by job name, when the configuration is known: its
    /// extraction options, relabeling rules and checks (instead of the defaults above).
    public var jobs: [String: JobSettings] = [:]

    /// A job's extraction, relabeling and validation settings.
    public struct JobSettings: Sendable {
        public var options: NATSExtractionOptions
        public var relabel: [RelabelRule]
        public var validator: SampleValidator
        public var limits: ScrapeLimits

        public init(
            options: NATSExtractionOptions,
            relabel: [RelabelRule],
            validator: SampleValidator,
            limits: ScrapeLimits = ScrapeLimits()
        ) {
            self.options = options
            self.relabel = relabel
            self.validator = validator
            self.limits = limits
        }
    }
    public let defaultJob: String
    public let defaultInstance: String
    /// Lines of endpoints this version does not know, by endpoint; skipped, and counted here.
    public private(set) var skipped: [String: Int] = [:]

    /// Opens a recording (plain or gzip).
    /// - Throws: ``RecordingError`` when it cannot be opened.
    public init(
        path: String,
        options: NATSExtractionOptions = NATSExtractionOptions(),
        relabel: [RelabelRule] = [],
        defaultJob: String = "nats",
        defaultInstance: String = "recording"
    ) throws(RecordingError) {
        reader = try RecordingReader(path: path)
        self.options = options
        self.relabel = relabel
        self.defaultJob = defaultJob
        self.defaultInstance = defaultInstance
    }

    public var path: String { reader.path }
    /// Set when the recording ended early (cut off by a crash): everything before the cut was read.
    public var truncation: RecordingError? { reader.truncation }

    /// The next scrape's samples, or `nil` at the end of the recording.
    /// - Throws: ``RecordingError`` for a line that is not a recorded scrape.
    public mutating func next() throws(RecordingError) -> RecordedBatch? {
        while let pages = try reader.nextScrape() {
            if let batch = try batch(pages) { return batch }
        }
        return nil
    }

    private mutating func batch(_ pages: [RecordedScrape]) throws(RecordingError) -> RecordedBatch? {
        let first = pages[0]
        let labels = targetLabels(first)
        let key = labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{1}")
        let kind: TargetKind = first.endpoint == "metrics" ? .prometheus : .nats
        let job = labels["job"].flatMap { jobs[$0] }
        var extractor =
            extractors[key]
            ?? TargetExtractor(
                kind: kind,
                targetLabels: labels,
                options: job?.options ?? options,
                relabel: job?.relabel ?? relabel,
                limits: job?.limits ?? ScrapeLimits()
            )
        var validator = validators[key] ?? job?.validator ?? validation
        defer {
            validator.count(extractor.takeDrops())
            extractors[key] = extractor
            validators[key] = validator
        }
        var result = RecordedBatch(line: first.line, target: first.target, endpoint: first.endpoint, samples: [])
        if let error = first.error {
            result.error = error
            return result
        }
        guard let bodyNode = first.body else { return result }
        do {
            switch first.endpoint {
            case "scrape":
                let d = first.document
                let health = ScrapeHealth(
                    up: (d.number(bodyNode, "up") ?? 0) == 1,
                    durationSeconds: d.number(bodyNode, "duration_seconds") ?? 0,
                    samplesScraped: Int(exactly: d.number(bodyNode, "samples_scraped") ?? 0) ?? 0,
                    samplesDropped: Int(exactly: d.number(bodyNode, "samples_dropped") ?? 0) ?? 0
                )
                result.samples = extractor.healthSamples(health, drops: validator.drops, at: first.time)
            case "metrics":
                guard let text = first.document.utf8(bodyNode) else {
                    throw RecordingError(file: path, line: first.line, reason: "a metrics body must be a JSON string")
                }
                let samples = try extractor.samples(
                    exposition: text,
                    contentType: first.contentType,
                    scrapeTime: first.time
                )
                result.samples = validator.validate(samples, scrapeTime: first.time).valid
            case NATSEvent.recordingEndpoint:
                // An event told between scrapes, counted as it was live.
                let samples =
                    try NATSEvent.parse(first.document, root: bodyNode).map { extractor.samples(event: $0) } ?? []
                result.samples = validator.validate(samples, scrapeTime: first.time).valid
            default:
                guard let endpoint = NATSEndpoint(rawValue: first.endpoint) else {
                    skipped[first.endpoint, default: 0] += pages.count
                    return nil
                }
                let jsonPages = pages.compactMap { page in page.body.map { JSONPage(document: page.document, node: $0) }
                }
                result.samples = try extractor.samples(endpoint, pages: jsonPages, scrapeTime: first.time)
            }
        } catch let error as ExtractionError {
            result.error = error.description
        } catch let error as RecordingError {
            throw error
        } catch {
            result.error = "\(error)"
        }
        return result
    }

    private func targetLabels(_ scrape: RecordedScrape) -> [String: String] {
        Self.targetLabels(scrape, defaultJob: defaultJob, defaultInstance: defaultInstance)
    }

    /// A line's target labels: its recorded `"labels"` (valid names only), else `job` and
    /// `instance` from the defaults and the line's `"target"`.
    public static func targetLabels(
        _ scrape: RecordedScrape,
        defaultJob: String = "nats",
        defaultInstance: String = "recording"
    ) -> [String: String] {
        let d = scrape.document
        if let node = d.member(d.root, "labels"), d.kind(node) == .object {
            var labels: [String: String] = [:]
            for (key, value) in d.members(node) {
                guard let name = d.string(key), let text = d.string(value), LabelSet.isValidLabelName(name) else {
                    continue
                }
                labels[name] = text
            }
            if !labels.isEmpty { return labels }
        }
        return ["job": defaultJob, "instance": scrape.target ?? defaultInstance]
    }
}
