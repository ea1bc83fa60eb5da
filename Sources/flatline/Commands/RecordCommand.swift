import ArgumentParser
import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import FlatlineScrape
import Foundation
import Logging

struct RecordCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Scrape the configured targets and record every raw scrape, for replay.",
        discussion: """
            Writes one NDJSON line per scrape (per page of a paged endpoint): \
            {"ts": RFC 3339 with ms, "target": host:port, "labels": {...}, "endpoint": "varz", \
            "body": {...}}; failed scrapes as "error" instead of "body"; after each round of a \
            target a "scrape" line with up, duration and sample counts. Gzip when the name ends \
            in .gz. `flatline replay FILE` turns the recording into the same series the live \
            scraper produces. Progress goes to standard error every 10 s; Ctrl-C stops and \
            finishes the file.
            """
    )

    @Option(help: "The configuration file (YAML, shaped like prometheus.yml).")
    var config: String

    @Option(help: "The recording to write (.ndjson, or .ndjson.gz for gzip).")
    var out: String

    @Option(parsing: .unconditional, help: "Stop after this long, e.g. 5m (default: until Ctrl-C).")
    var duration: DurationArgument?

    @Option(parsing: .unconditional, help: "Stop after this many rounds of every target.")
    var rounds: Int?

    @Flag(help: "Log scrape failures and recoveries on standard error.")
    var verbose = false

    func validate() throws {
        if let rounds, rounds < 1 { throw ValidationError("--rounds must be at least 1") }
        try DurationArgument.refuseZero(duration, "--duration")
        if FileManager.default.fileExists(atPath: config), let written = FileAccess.identity(out),
            written == FileAccess.identity(config)
        {
            throw ValidationError(
                "--out \(out) is the configuration (\(config)): recording would destroy it; write to another path"
            )
        }
    }

    func run() async throws {
        let configuration: Configuration
        do {
            configuration = try Configuration.load(path: config)
        } catch {
            throw CommandFailure("\(error)")
        }
        guard !configuration.targets.isEmpty else {
            throw CommandFailure("\(config) has no targets")
        }
        var logger = Logger(label: "flatline.record")
        logger.logLevel = verbose ? .info : .error
        let recorder = try Recorder(path: out)
        let scraper = Scraper(configuration: configuration, recorder: recorder, logger: logger)
        let progress = RecordProgress()
        let rounds = rounds
        let work = Task {
            try await scraper.run(rounds: rounds, immediately: true) { batch in
                await progress.add(batch)
            }
        }
        let signals = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { work.cancel() }
            source.resume()
            return source
        }
        defer { for source in signals { source.cancel() } }
        let timer = Task {
            let started = ContinuousClock.now
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(10))
                Stderr.write("record: \(await progress.line(since: started))\n")
            }
        }
        let limit: Task<Void, any Error>? = duration.map { duration in
            Task {
                try await Task.sleep(for: Duration.clamped(seconds: duration.seconds))
                work.cancel()
            }
        }
        let started = ContinuousClock.now
        defer {
            timer.cancel()
            limit?.cancel()
        }
        do {
            try await work.value
        } catch is CancellationError {
        }
        try await recorder.close()
        Stderr.write("record: \(out): \(await recorder.count) lines; \(await progress.line(since: started))\n")
    }
}

/// Counts for the progress lines.
actor RecordProgress {
    private var rounds = 0
    private var samples = 0
    private var failed = 0
    private var errors: [String: String] = [:]

    func add(_ batch: ScrapeBatch) {
        rounds += 1
        samples += batch.samples.count
        if !batch.health.up { failed += 1 }
        for (endpoint, reason) in batch.errors { errors["\(batch.target) /\(endpoint)"] = reason }
    }

    func line(since start: ContinuousClock.Instant) -> String {
        let seconds = Int((ContinuousClock.now - start).components.seconds)
        var text = "\(rounds) rounds, \(samples) samples in \(seconds) s"
        if failed > 0 {
            let last = errors.sorted { $0.key < $1.key }.prefix(3).map { "\($0.key): \($0.value)" }
            text += ", \(failed) rounds with failures (" + last.joined(separator: "; ") + ")"
        }
        return text
    }
}
