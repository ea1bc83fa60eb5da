import FlatlineConfig
import FlatlineCore
import FlatlineIngest

/// A recording read back as the batches the daemon fed its pipeline: per target, the bodies of
/// one round through the target's own extractor, and at the round's `"scrape"` line the same
/// validation and scrape series the live scraper adds (``TargetState``, the same code), stamped
/// with the round's time; events as event batches at their own time. With the configuration the
/// daemon ran with, a replay of its `--record` file evaluates exactly what it evaluated.
///
/// A target's job comes from its recorded `job` label (the configuration's settings for that
/// job: extraction, relabeling, limits, `max_series`); an unknown job gets the defaults. A round
/// without a `"scrape"` line (recordings of other tools) ends when one of its endpoints comes
/// again for that target, or the recording ends; its time is its first body's.
public struct RecordedRounds {
    private let reader: RecordingReader
    private let configuration: Configuration
    private var states: [String: TargetState] = [:]
    private var open: [String: Round] = [:]
    private var ready: [ScrapeBatch] = []
    private var finished = false
    /// Lines of endpoints this version does not know, by endpoint; skipped, and counted here.
    public private(set) var skipped: [String: Int] = [:]
    /// Scrapes recorded as failed or whose body could not be read, by `TARGET /ENDPOINT`.
    public private(set) var failures = RecordingFailures()

    private struct Round {
        var time: Timestamp
        var samples: [Sample] = []
        var errors: [String: String] = [:]
        var endpoints: Set<String> = []
    }

    /// - Throws: ``RecordingError`` when the recording cannot be opened.
    public init(path: String, configuration: Configuration) throws(RecordingError) {
        reader = try RecordingReader(path: path)
        self.configuration = configuration
    }

    public var path: String { reader.path }
    /// Set when the recording ended early (cut off by a crash): everything before the cut was read.
    public var truncation: RecordingError? { reader.truncation }

    /// The next batch, or `nil` at the end.
    /// - Throws: ``RecordingError`` for a line that is not a recorded scrape.
    public mutating func next() throws(RecordingError) -> ScrapeBatch? {
        while ready.isEmpty && !finished {
            guard let pages = try reader.nextScrape() else {
                finished = true
                // Rounds the recording ended in, oldest first.
                for key in open.keys.sorted(by: {
                    (open[$0]?.time.milliseconds ?? 0, $0) < (open[$1]?.time.milliseconds ?? 0, $1)
                }) {
                    guard var state = states[key] else { continue }
                    close(key, &state, health: nil)
                    states[key] = state
                }
                break
            }
            handle(pages)
        }
        return ready.isEmpty ? nil : ready.removeFirst()
    }

    private mutating func handle(_ pages: [RecordedScrape]) {
        let first = pages[0]
        let labels = RecordingSource.targetLabels(first)
        let key = labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{1}")
        var state =
            states[key]
            ?? {
                let jobName = labels["job"] ?? "nats"
                let job =
                    configuration.scrapeConfigs.first { $0.jobName == jobName }
                    ?? ScrapeConfiguration(
                        jobName: jobName,
                        kind: first.endpoint == "metrics" ? .prometheus : .nats,
                        scrapeInterval: configuration.global.scrapeInterval,
                        scrapeTimeout: configuration.global.scrapeTimeout,
                        targets: []
                    )
                let address = first.target ?? labels["instance"] ?? "recording"
                return TargetState(
                    target: ScrapeTarget(job: job, address: address, labels: labels),
                    global: configuration.global
                )
            }()
        defer { states[key] = state }
        if first.endpoint == "scrape" {
            close(key, &state, health: first)
            return
        }
        if first.endpoint == NATSEvent.recordingEndpoint {
            guard let body = first.body else { return }
            let event = (try? NATSEvent.parse(first.document, root: body)) ?? nil
            let samples = event.map { state.extractor.samples(event: $0) } ?? []
            let batch = state.event(samples: samples, time: first.time)
            if !batch.samples.isEmpty { ready.append(batch) }
            return
        }
        // An endpoint again while its round is open: the earlier round had no "scrape" line.
        if let round = open[key], round.endpoints.contains(first.endpoint) {
            close(key, &state, health: nil)
        }
        var round = open[key] ?? Round(time: first.time)
        round.endpoints.insert(first.endpoint)
        defer { open[key] = round }
        if let error = first.error {
            round.errors[first.endpoint] = error
            fail(first, error)
            return
        }
        do {
            switch first.endpoint {
            case "metrics":
                guard let node = first.body, let text = first.document.string(node) else {
                    round.errors["metrics"] = "a metrics body must be a JSON string"
                    fail(first, "a metrics body must be a JSON string")
                    return
                }
                round.samples += try state.extractor.samples(
                    exposition: Array(text.utf8),
                    contentType: first.contentType,
                    scrapeTime: first.time
                )
            default:
                guard let endpoint = NATSEndpoint(rawValue: first.endpoint) else {
                    skipped[first.endpoint, default: 0] += pages.count
                    return
                }
                let bodies = pages.compactMap { page in page.body.map { JSONPage(document: page.document, node: $0) } }
                round.samples += try state.extractor.samples(endpoint, pages: bodies, scrapeTime: first.time)
            }
        } catch {
            round.errors[first.endpoint] = error.description
            fail(first, error.description)
        }
    }

    /// Counts a failed scrape.
    private mutating func fail(_ line: RecordedScrape, _ reason: String) {
        failures.add(target: line.target, endpoint: line.endpoint, line: line.line, reason: reason)
    }

    /// Ends a target's round as the live scraper does, with the recorded health when there is one.
    private mutating func close(_ key: String, _ state: inout TargetState, health line: RecordedScrape?) {
        let round = open[key] ?? Round(time: line?.time ?? Timestamp(milliseconds: 0))
        open[key] = nil
        var duration = 0.0
        if let line, let node = line.body {
            duration = line.document.number(node, "duration_seconds") ?? 0
        }
        let batch = state.close(
            samples: round.samples,
            errors: round.errors,
            time: line?.time ?? round.time,
            durationSeconds: duration.isFinite ? duration : 0
        )
        ready.append(batch)
    }
}

extension RecordedRounds {
    /// The configuration a recording was made with, as far as the recording tells: one job per
    /// recorded `job` label, `prometheus` when its targets were read as expositions, else
    /// `nats`, each with its scrape interval (the median spacing of its targets' rounds, from
    /// their `"scrape"` lines, else their `/varz` or `metrics` bodies). For replaying a recording
    /// through the daemon's pipeline when no configuration is given.
    /// - Throws: ``RecordingError`` for a line that is not a recorded scrape.
    public static func inferConfiguration(path: String, detector: DetectorConfiguration) throws(RecordingError)
        -> Configuration
    {
        let reader = try RecordingReader(path: path)
        // Per target: its job, the times of its "scrape" lines, and of its /varz or metrics bodies.
        var rounds: [String: (job: String, scrapes: [Int64], bodies: [Int64])] = [:]
        var prometheus: Set<String> = []
        var jobs: [String] = []
        while let line = try reader.next() {
            let labels = RecordingSource.targetLabels(line)
            let job = labels["job"] ?? "nats"
            if !jobs.contains(job) { jobs.append(job) }
            if line.endpoint == "metrics" { prometheus.insert(job) }
            let key = labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{1}")
            var entry = rounds[key] ?? (job, [], [])
            switch line.endpoint {
            case "scrape": entry.scrapes.append(line.time.milliseconds)
            case "varz", "metrics": entry.bodies.append(line.time.milliseconds)
            default: continue
            }
            rounds[key] = entry
        }
        func median(_ values: [Double]) -> Double? {
            guard !values.isEmpty else { return nil }
            return values.sorted()[values.count / 2]
        }
        var spacing: [String: [Double]] = [:]
        for entry in rounds.values {
            let times = Array(Set(entry.scrapes.isEmpty ? entry.bodies : entry.scrapes)).sorted()
            guard times.count > 1 else { continue }
            // In floating point: times from a file may be far apart, and no difference may trap.
            let gaps = zip(times.dropFirst(), times).map { (Double($0) - Double($1)) / 1000 }.filter { $0 > 0 }
            if let gap = median(gaps) { spacing[entry.job, default: []].append(gap) }
        }
        var configuration = Configuration(global: GlobalSettings(), scrapeConfigs: [], alerting: nil, file: path)
        configuration.detector = detector
        let overall = median(spacing.values.flatMap { $0 }) ?? configuration.global.scrapeInterval
        configuration.global.scrapeInterval = overall
        configuration.global.scrapeTimeout = min(configuration.global.scrapeTimeout, overall)
        for job in jobs {
            let interval = median(spacing[job] ?? []) ?? overall
            configuration.scrapeConfigs.append(
                ScrapeConfiguration(
                    jobName: job,
                    kind: prometheus.contains(job) ? .prometheus : .nats,
                    scrapeInterval: interval,
                    scrapeTimeout: min(configuration.global.scrapeTimeout, interval),
                    targets: []
                )
            )
        }
        return configuration
    }
}
