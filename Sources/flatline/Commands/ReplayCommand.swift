import ArgumentParser
import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineDaemon
import FlatlineIngest
import FlatlineScrape
import Foundation
import Logging

struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Run recorded series through the detectors, faster than real time.",
        discussion: """
            INPUT is a CSV file with a header (timestamp,value: one series; timestamps as \
            YYYY-MM-DD HH:MM:SS, RFC 3339 or Unix seconds), Prometheus text / OpenMetrics with \
            timestamps (many series), or a recording of raw scrapes from `flatline record` \
            (NDJSON, plain or .gz), which goes through the daemon's own pipeline, round by round. \
            Writes one row per input row, in input order (for a recording, per sample the daemon \
            scored, in the order it did): timestamp,value,expected,lower,upper,score,anomaly (with \
            a leading series column when the input holds several series). The same input gives \
            the same output, byte for byte.

            With --prometheus URL --query Q --start T instead of INPUT, the series are read from a \
            Prometheus server's HTTP API (/api/v1/query_range, in chunks of 10,000 steps of --step, \
            default 15s): a model is backtested on what Prometheus already holds.
            """
    )

    @Argument(
        help: "The file to replay: CSV, Prometheus text, OpenMetrics or a recording (none with --prometheus)."
    )
    var input: String?

    @Option(
        help: "Read the series from this Prometheus server's HTTP API instead of a file, e.g. http://127.0.0.1:9090."
    )
    var prometheus: String?

    @Option(
        help:
            "With --prometheus: a PromQL expression to read (give it again for more); counters are read as gauges unless --kind counter, so query rate(x[5m]) or the raw counter with --kind counter."
    )
    var query: [String] = []

    @Option(
        help:
            "With --prometheus: the first time, as RFC 3339, Unix seconds, or a duration before --end (e.g. 14d)."
    )
    var start: String?

    @Option(help: "With --prometheus: the last time, as RFC 3339, Unix seconds or now (the default).")
    var end: String = "now"

    @Option(
        name: .customLong("bearer-token-file"),
        help: "With --prometheus: send this file's token as a bearer token."
    )
    var bearerTokenFile: String?

    /// The input as messages name it.
    var source: String {
        Self.inputName ?? input ?? prometheus.map { Redaction.redactingUserinfo($0) } ?? ""
    }

    /// The name given for an input that was copied to a file first (a pipe, `/dev/stdin`).
    @TaskLocal static var inputName: String?

    @Option(
        help:
            "The detector: surprise (the default), ensemble, ewma, robust or seasonal (default: --config's detector: section, else surprise)."
    )
    var model: DetectorKind?

    @Option(help: "Output format: csv or ndjson.")
    var format: ReplayOutputFormat = .csv

    @Option(help: "Write the output here instead of standard output.")
    var out: String?

    @Option(
        name: .customLong("input-format"),
        help: "csv, prometheus, openmetrics or recording (default: from the file name, then the content)."
    )
    var inputFormat: SeriesFile.Format?

    @Option(
        help:
            "The daemon's configuration: its detector: section is the detector replayed (the options below override what they name), and for a recording each job's relabel_configs, required_labels and max_series apply as they did live."
    )
    var config: String?

    @Option(help: "Treat every series as a counter or a gauge (default: the file's TYPE lines; CSV series are gauges).")
    var kind: MetricKind?

    @Option(
        parsing: .unconditional,
        help:
            "Nominal sampling interval, e.g. 15s or 5m (default: inferred from the timestamps); with --prometheus, the query's step (default 15s)."
    )
    var step: DurationArgument?

    @Option(
        name: .customLong("max-gap"),
        parsing: .unconditional,
        help: "Take no counter rate across a gap longer than this, e.g. 5m (default: no limit)."
    )
    var maxGap: DurationArgument?

    @Option(
        help:
            "Seasons for the seasonal fit: 'none' or periods with optional harmonics, e.g. 1d,1w or 1d:4,1w:3 (default 1d:4,1w:3)."
    )
    var seasons: SeasonsArgument?

    // (Unconditional: a surprise threshold may be negative, and `--threshold -1` is its value,
    // not another option.)
    @Option(
        parsing: .unconditional,
        help:
            "When a point is anomalous: for surprise, the surprise L (-log10 of such points per hour, from -3 to 30, default 3); for the others, the calibrated score (between 0 and 1, default 0.999)."
    )
    var threshold: Double?

    @Option(
        name: .customLong("per-hour"),
        help:
            "surprise: weight of the per-hour term (1, the default: the same threshold means the same alerts per hour at any step; 0: per point)."
    )
    var perHour: Double?

    @Option(name: .customLong("min-z"), parsing: .unconditional, help: "Raw |z| a point needs as well (default 4).")
    var minZ: Double?

    @Option(
        parsing: .unconditional,
        help: "How far beyond its own threshold quantile of |z| a point must go (default 1.3)."
    )
    var margin: Double?

    @Option(help: "Which deviations count: above, below or both (default both).")
    var direction: Direction?

    @Option(
        name: .customLong("min-deviation"),
        help: "Absolute deviation from the expected value a point needs as well (default 0)."
    )
    var minDeviation: Double?

    @Option(
        name: .customLong("alerts-out"),
        help:
            "Run the models too and write their alert events here as NDJSON (firing and resolved, as the daemon would send them)."
    )
    var alertsOut: String?

    @Option(help: "The directory of model files (*.yml) for --alerts-out.")
    var models: String = "models"

    @Flag(name: .customLong("anomalies-only"), help: "Write only the rows flagged as anomalies.")
    var anomaliesOnly = false

    @Option(
        name: .customLong("load-state"),
        help: "Continue from detection state saved by --save-state (its model and parameters apply)."
    )
    var loadState: String?

    @Option(name: .customLong("save-state"), help: "Save the detection state after the last row, to continue later.")
    var saveState: String?

    @Option(
        parsing: .unconditional,
        help: "How many cores to use (default: all). The output is the same bytes whatever the count."
    )
    var jobs: Int?

    /// The cores to use.
    var threads: Int { Swift.max(1, jobs ?? ProcessInfo.processInfo.activeProcessorCount) }

    @Flag(help: "Print no summary on standard error.")
    var quiet = false

    /// The detector: `base` (the configuration file's `detector:` section, or the defaults) with
    /// the options given on top.
    func detectorConfiguration(base: DetectorConfiguration = DetectorConfiguration()) -> DetectorConfiguration {
        var configuration = base
        if let model { configuration.kind = model }
        if let seasons { configuration.seasonal.seasons = seasons.seasons }
        if let threshold {
            if configuration.kind == .surprise {
                configuration.surprise.threshold = threshold
            } else {
                configuration.calibration.threshold = threshold
            }
        }
        if let perHour { configuration.surprise.perHour = perHour }
        if let minZ { configuration.calibration.minZ = minZ }
        if let margin { configuration.calibration.margin = margin }
        if let direction { configuration.calibration.direction = direction }
        if let minDeviation { configuration.calibration.minDeviation = minDeviation }
        return configuration
    }

    /// A loaded state under the judging options given (`--threshold`, `--min-deviation`, ...):
    /// it goes on with what it learned and judges with them.
    /// - Throws: `ValidationError` when an option changes what the state learned with
    ///   (`--model`, `--seasons`, or `--direction` for a calibrated detector).
    func continuing(_ saved: DetectionBank, path: String) throws -> DetectionBank {
        let learned = saved.detector.configuration
        let asked = detectorConfiguration(base: learned)
        if let difference = asked.learningDifference(from: learned) {
            throw ValidationError(
                "--load-state \(path): the state learned with \(difference.key) \(difference.saved), the options ask for "
                    + "\(difference.now); a saved state goes on only with what it learned with"
            )
        }
        guard let bank = saved.continuing(as: asked) else {
            throw ValidationError("--load-state \(path): the options give no valid detector for the saved state")
        }
        return bank
    }

    /// A recording by its name (`.ndjson`, `.ndjson.gz`, `.gz`) or its first byte (`{`, or gzip's).
    static func looksLikeRecording(_ path: String) -> Bool {
        let lower = path.lowercased()
        if lower.hasSuffix(".ndjson") || lower.hasSuffix(".ndjson.gz") || lower.hasSuffix(".gz") { return true }
        if lower.hasSuffix(".csv") || lower.hasSuffix(".prom") || lower.hasSuffix(".om") { return false }
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 64)) ?? Data()
        if head.starts(with: [0x1F, 0x8B]) { return true }
        return head.first { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 } == UInt8(ascii: "{")
    }

    func validate() throws {
        if let jobs, !(1...1024).contains(jobs) { throw ValidationError("--jobs must be from 1 to 1024") }
        try DurationArgument.refuseZero(step, "--step")
        try DurationArgument.refuseZero(maxGap, "--max-gap")
        switch (input, prometheus) {
        case (nil, nil): throw ValidationError("give a file to replay, or --prometheus URL with --query and --start")
        case (.some, .some): throw ValidationError("give a file or --prometheus, not both")
        case (.some, nil):
            if !query.isEmpty || start != nil || end != "now" || bearerTokenFile != nil {
                throw ValidationError("--query, --start, --end and --bearer-token-file go with --prometheus")
            }
        case (nil, .some):
            if query.isEmpty { throw ValidationError("--prometheus needs --query") }
            if start == nil { throw ValidationError("--prometheus needs --start") }
            if config != nil || inputFormat != nil {
                throw ValidationError("--config and --input-format are for files, not --prometheus")
            }
            _ = try prometheusRange(now: Pipeline.now())
        }
        do {
            try detectorConfiguration().validate()
        } catch {
            throw ValidationError("\(error)")
        }
        try Self.refuseOverwriting(
            input: input,
            loadState: loadState,
            out: out,
            alertsOut: alertsOut,
            saveState: saveState
        )
    }

    /// Refuses an output that is a file the replay reads, or another output: `--out` and
    /// `--alerts-out` are opened (and truncated) before the input is read, so the input would be
    /// lost and nothing scored; `--save-state` replaces its file at the end (saving over the
    /// state it loaded is allowed). Compared as files (device and inode), so a symbolic link or
    /// another spelling of the path is the same file; paths that do not exist yet by their
    /// directory (resolved) and name.
    static func refuseOverwriting(
        input: String?,
        loadState: String?,
        out: String?,
        alertsOut: String?,
        saveState: String?
    )
        throws
    {
        func identity(_ path: String?) -> String? { path.flatMap(FileAccess.identity) }
        let reads = [("the input", input), ("--load-state", loadState)].compactMap { name, path in
            path.flatMap { path in identity(path).map { (name: name, path: path, id: $0) } }
        }
        var written: [(name: String, path: String, id: String)] = []
        for (name, path) in [("--out", out), ("--alerts-out", alertsOut), ("--save-state", saveState)] {
            guard let path, let id = identity(path) else { continue }
            for read in reads where read.id == id && !(name == "--save-state" && read.name == "--load-state") {
                throw ValidationError(
                    "\(name) \(path) is \(read.name) (\(read.path)): writing it would destroy what the replay reads; write to another path"
                )
            }
            if let other = written.first(where: { $0.id == id }) {
                throw ValidationError(
                    "\(name) \(path) is the same file as \(other.name) \(other.path); give each its own path"
                )
            }
            written.append((name, path, id))
        }
    }

    /// What --prometheus, --query, --start, --end and --step ask for.
    func prometheusRange(now: Timestamp) throws -> PrometheusRange {
        guard let prometheus, let start else { throw ValidationError("--prometheus needs --query and --start") }
        let endTime: Timestamp
        if end == "now" {
            endTime = now
        } else if let parsed = NumberText.parseTimestamp(end) {
            endTime = parsed
        } else {
            throw ValidationError("--end \"\(end)\" is not RFC 3339, Unix seconds or now")
        }
        let startTime: Timestamp
        if let parsed = NumberText.parseTimestamp(start) {
            startTime = parsed
        } else if let before = DurationText.parse(start), before > 0,
            let time = Timestamp(exactMilliseconds: Double(endTime.milliseconds) - before * 1000)
        {
            startTime = time
        } else {
            throw ValidationError("--start \"\(start)\" is not RFC 3339, Unix seconds or a duration before --end")
        }
        var range = PrometheusRange(
            url: prometheus,
            queries: query,
            start: startTime,
            end: endTime,
            step: step?.seconds ?? 15
        )
        range.bearerTokenFile = bearerTokenFile
        do {
            try range.validate()
        } catch {
            throw ValidationError("\(error)")
        }
        return range
    }

    /// The series of --prometheus, with progress on standard error.
    func loadPrometheus() async throws -> SeriesFile {
        let range = try prometheusRange(now: Pipeline.now())
        let quiet = quiet
        let clock = ContinuousClock()
        let started = clock.now
        let file = try await range.load(kind: kind) { done, total in
            guard !quiet, clock.now - started > .seconds(2) || done == total, total > 1 else { return }
            Stderr.write("\rreplay: read \(done)/\(total) ranges from Prometheus" + (done == total ? "\n" : ""))
        }
        if file.rows.isEmpty {
            Stderr.write("replay: \(source): the queries returned no samples from \(range.start) to \(range.end)\n")
        }
        return file
    }

    /// Whether the input is a recording of raw scrapes (by `--input-format`, else its name or
    /// first byte).
    var inputIsRecording: Bool {
        guard prometheus == nil, let input else { return false }
        return inputFormat == .recording || (inputFormat == nil && Self.looksLikeRecording(input))
    }

    func run() async throws {
        // Written after the rows: a path that cannot be written is said before the work (and
        // before a pipe is read).
        if let alertsOut { try OutputPath.refuseUnwritable("--alerts-out", alertsOut, renamed: false) }
        if let saveState { try OutputPath.refuseUnwritable("--save-state", saveState, renamed: true) }
        // A pipe, a FIFO or `/dev/stdin` can be read once, and telling its format reads it: it
        // is copied to a temporary file first, then replayed as a file (messages name it as given).
        guard prometheus == nil, let input, FileAccess.isStream(input) else { return try await replay() }
        let (copy, descriptor) = try Self.spool(input)
        defer { close(descriptor) }
        var command = self
        command.input = copy
        do {
            try await Self.$inputName.withValue(input) { try await command.replay() }
        } catch let error as ValidationError {
            throw ValidationError(error.message.replacingOccurrences(of: copy, with: input))
        } catch let error as ExitCode {
            throw error
        } catch {
            throw CommandFailure("\(error)".replacingOccurrences(of: copy, with: input))
        }
    }

    /// Copies what `path` gives, to its end, into a new temporary file, removed at once (nothing
    /// is left behind however the process ends): returns the path it is read by while the
    /// descriptor stays open (`/proc/self/fd/N`), and the descriptor.
    static func spool(_ path: String) throws -> (path: String, descriptor: Int32) {
        let directory = FileAccess.temporaryDirectory
        let out: Int32
        switch FileAccess.anonymousTemporaryFile(prefix: "flatline-replay") {
        case .success(let descriptor): out = descriptor
        case .failure(let error):
            throw CommandFailure("cannot create a temporary file in \(error.directory) for \(path): \(error.reason)")
        }
        let input = open(path, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else {
            let reason = String(cString: strerror(errno))
            close(out)
            throw CommandFailure("\(path): cannot open: \(reason)")
        }
        defer { close(input) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                close(out)
                throw CommandFailure("\(path): cannot read: \(reason)")
            }
            var written = 0
            while written < n {
                let m = buffer.withUnsafeBytes { bytes in
                    bytes.baseAddress.map { write(out, $0 + written, n - written) } ?? -1
                }
                if m < 0 {
                    if errno == EINTR { continue }
                    let reason = String(cString: strerror(errno))
                    close(out)
                    throw CommandFailure("cannot copy \(path) to \(directory): \(reason)")
                }
                written += m
            }
        }
        return ("/proc/self/fd/\(out)", out)
    }

    func replay() async throws {
        let clock = ContinuousClock()
        let started = clock.now
        var file: SeriesFile
        var detector = detectorConfiguration()
        let input = self.input ?? ""
        var configuration: Configuration?
        if let config {
            do {
                let loaded = try Configuration.load(path: config)
                detector = detectorConfiguration(base: loaded.detector)
                try detector.validate()
                configuration = loaded
            } catch {
                throw CommandFailure("\(error)")
            }
        }
        // A recording goes through the daemon's own pipeline, rows and alerts in one read (a
        // state to load or save is one bank over every series: read whole, below).
        if inputIsRecording, loadState == nil, saveState == nil {
            try await replayRecording(input, configuration: configuration, detector: detector, started: started)
            return
        }
        if prometheus != nil {
            file = try await loadPrometheus()
        } else if let configuration, inputIsRecording {
            file = try SeriesFile.loadRecording(path: input, jobs: configuration.recordingJobs, kind: kind)
        } else {
            if try replayStreaming(input, detector: detector, started: started) { return }
            file = try SeriesFile.load(path: input, format: inputFormat, kind: kind, threads: threads)
        }
        // Warnings (a recording cut short, lines skipped) are said even with --quiet.
        for warning in file.warnings { Stderr.write("replay: \(source): \(warning)\n") }
        let state = try loadState.map { path in try continuing(try StateFile.load(from: path), path: path) }
        let loadedModels = try loadModels()
        var lastReport = started
        var reported = false
        let result = try Replayer.run(
            file,
            configuration: detector,
            step: step?.seconds,
            maxGap: maxGap?.seconds,
            state: state,
            // A recording's alerts come from the daemon's pipeline below, not from this pass.
            models: inputIsRecording ? [] : loadedModels,
            // A state to save is one bank: the series stay on one core.
            threads: saveState == nil ? threads : 1
        ) { done, total in
            guard !quiet, done & 63 == 0 || done == total else { return }
            let now = clock.now
            guard now - started > .seconds(2), now - lastReport > .seconds(1) || done == total else { return }
            lastReport = now
            reported = true
            let percent = total > 0 ? 100 * done / total : 100
            Stderr.write("\rreplay: \(percent)% (\(done)/\(total) ticks)")
        }
        if reported { Stderr.write("\n") }

        let sink = try OutputSink(path: out)
        ReplayWriter(format: format, anomaliesOnly: anomaliesOnly).write(result, threads: threads) { sink.write($0) }
        try sink.close()
        if let saveState, let bank = result.bank { try StateFile.save(bank, to: saveState) }
        if alertsOut != nil && inputIsRecording {
            let daemon = try await DaemonReplay.run(
                recording: input,
                configuration: try recordingConfiguration(input, given: configuration, detector: detector),
                models: loadedModels,
                kind: kind,
                maxGap: maxGap?.seconds,
                logger: replayLogger()
            )
            try writeAlerts(daemon.events)
        } else {
            try writeAlerts(result.alertEvents)
        }
        if !quiet {
            Stderr.write(Self.summary(result.summary, input: source, seconds: seconds(since: started)) + "\n")
        }
    }

    /// The configuration a recording is replayed through the daemon's pipeline with: `given`
    /// (the daemon's jobs, relabeling, checks and steps), else the jobs the recording names,
    /// each with the median spacing of its rounds as its scrape interval; `--step` is every
    /// job's interval, `detector` (the options on top of the configuration's) every bank's.
    func recordingConfiguration(_ input: String, given: Configuration?, detector: DetectorConfiguration) throws
        -> Configuration
    {
        var configuration = try given ?? RecordedRounds.inferConfiguration(path: input, detector: detector)
        configuration.detector = detector
        if let step {
            for k in configuration.scrapeConfigs.indices {
                configuration.scrapeConfigs[k].scrapeInterval = step.seconds
            }
        }
        return configuration
    }

    /// Errors of the daemon's pipeline on standard error (none with --quiet).
    func replayLogger() -> Logger {
        Logger(label: "flatline.replay") { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = quiet ? .critical : .error
            return handler
        }
    }

    /// The models for `--alerts-out` (none without it).
    func loadModels() throws -> [Model] {
        guard alertsOut != nil else { return [] }
        do {
            return try ModelDirectory.load(models)
        } catch {
            throw CommandFailure("\(error) (\(RunCommand.modelsHint))")
        }
    }

    /// Writes `--alerts-out`, when asked for.
    func writeAlerts(_ events: [AlertEvent]) throws {
        guard let alertsOut else { return }
        let alerts = try OutputSink(path: alertsOut)
        for event in events { alerts.write(AlertEventLine.json(event) + "\n") }
        try alerts.close()
        if !quiet {
            let firing = events.filter { $0.status == .firing }.count
            Stderr.write("replay: \(alertsOut): \(firing) alerts fired, \(events.count - firing) resolved\n")
        }
    }

    func seconds(since started: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - started
        return Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds)
    }

    /// A recording through the daemon's pipeline (``RecordingReplay``), configured by
    /// ``recordingConfiguration(_:given:detector:)``.
    func replayRecording(
        _ input: String,
        configuration: Configuration?,
        detector: DetectorConfiguration,
        started: ContinuousClock.Instant
    ) async throws {
        let configuration = try recordingConfiguration(input, given: configuration, detector: detector)
        let models = try loadModels()
        let clock = ContinuousClock()
        var lastReport = started
        var reported = false
        let sink = try OutputSink(path: out)
        let result = try await RecordingReplay.run(
            recording: input,
            configuration: configuration,
            models: models,
            kind: kind,
            maxGap: maxGap?.seconds,
            writer: ReplayWriter(format: format, anomaliesOnly: anomaliesOnly),
            threads: threads,
            logger: replayLogger(),
            progress: { rounds in
                guard !quiet, rounds & 63 == 0 else { return }
                let now = clock.now
                guard now - started > .seconds(2), now - lastReport > .seconds(1) else { return }
                lastReport = now
                reported = true
                Stderr.write("\rreplay: \(rounds) rounds")
            }
        ) { sink.write($0) }
        if reported { Stderr.write("\n") }
        // Warnings (a recording cut short, lines skipped) are said even with --quiet.
        for warning in result.warnings { Stderr.write("replay: \(source): \(warning)\n") }
        guard result.summary.rows > 0 else {
            let cut = result.daemon.truncation.map { "; \($0.reason) at line \($0.line)" } ?? ""
            throw SeriesFileError(file: input, line: 0, reason: "no usable data: the recording yields no samples" + cut)
        }
        try sink.close()
        try writeAlerts(result.daemon.events)
        if !quiet {
            Stderr.write(Self.summary(result.summary, input: source, seconds: seconds(since: started)) + "\n")
        }
    }

    /// A Prometheus, OpenMetrics or CSV file laid out series after series or in time order,
    /// replayed a block at a time (memory holds blocks, not the file; the same output); false,
    /// with nothing done,
    /// when this replay cannot go so (models, saved state, a detector whose series learn from each
    /// other, another format or layout).
    func replayStreaming(_ input: String, detector: DetectorConfiguration, started: ContinuousClock.Instant)
        throws -> Bool
    {
        guard alertsOut == nil, loadState == nil, saveState == nil,
            let fileFormat = SeriesFile.streamableFormat(path: input, format: inputFormat)
        else { return false }
        var settings = StreamingReplay.Settings(configuration: detector)
        settings.step = step?.seconds
        settings.maxGap = maxGap?.seconds
        settings.kind = kind
        settings.threads = threads
        guard let replay = try StreamingReplay(path: input, format: fileFormat, settings: settings) else {
            return false
        }
        for warning in replay.outline.warnings { Stderr.write("replay: \(source): \(warning)\n") }
        let clock = ContinuousClock()
        var lastReport = started
        var reported = false
        let sink = try OutputSink(path: out)
        let summary = try replay.run(writer: ReplayWriter(format: format, anomaliesOnly: anomaliesOnly)) {
            done,
            total in
            let now = clock.now
            guard !quiet, now - started > .seconds(2), now - lastReport > .seconds(1) || done == total else { return }
            lastReport = now
            reported = true
            let percent = total > 0 ? 100 * done / total : 100
            Stderr.write("\rreplay: \(percent)% (\(done)/\(total) points)")
        } to: {
            sink.write($0)
        }
        if reported { Stderr.write("\n") }
        try sink.close()
        if !quiet {
            let elapsed = clock.now - started
            let seconds = Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds)
            Stderr.write(Self.summary(summary, input: source, seconds: seconds) + "\n")
        }
        return true
    }

    static func summary(_ s: ReplaySummary, input: String, seconds: Double) -> String {
        let dropped = s.drops.total
        var text = "replay: \(input): \(s.series) series, \(s.rows) points (\(s.scored) scored"
        if s.pending > 0 { text += ", \(s.pending) awaiting a rate" }
        if s.missing > 0 { text += ", \(s.missing) missing" }
        if dropped > 0 {
            let reasons = DropReason.allCases.filter { s.drops[$0] > 0 }.map { "\($0.rawValue)=\(s.drops[$0])" }
            text += ", \(dropped) dropped: " + reasons.joined(separator: " ")
        }
        text +=
            "), \(s.anomalies) anomal\(s.anomalies == 1 ? "y" : "ies"), step \(DurationText.format(seconds: s.step))"
        if s.counterResets > 0 { text += ", \(s.counterResets) counter resets" }
        if s.parts > 1 { text += ", series scored on \(s.parts) cores" }
        let rate = seconds > 0 ? Double(s.rows) / seconds : 0
        text += String(format: ", %.2f s (%.0f points/s)", seconds, rate)
        return text
    }
}

/// Standard error, for progress and summaries.
enum Stderr {
    static func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}

/// Buffered output to a file or standard output. A path is opened as it is (created or
/// truncated, never replaced), so `/dev/null`, a pipe or a symbolic link stays what it is.
final class OutputSink {
    private let descriptor: Int32
    private let path: String?
    private var buffer: [UInt8] = []
    private var failure: String?

    init(path: String?) throws {
        self.path = path
        if let path {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw CommandFailure("cannot create \(path): \(String(cString: strerror(errno)))")
            }
            descriptor = fd
        } else {
            descriptor = STDOUT_FILENO
        }
        buffer.reserveCapacity(1 << 16)
    }

    func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) {
        if bytes.count >= 1 << 16 {
            flush()
            writeAll(bytes)
            return
        }
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 16 { flush() }
    }

    func write(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= 1 << 16 { flush() }
    }

    func flush() {
        guard !buffer.isEmpty else { return }
        buffer.withUnsafeBytes { writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes every byte, or remembers why not (said by ``close()``).
    private func writeAll(_ bytes: UnsafeRawBufferPointer) {
        guard failure == nil, var base = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = Glibc.write(descriptor, base, left)
            if n < 0 {
                if errno == EINTR { continue }
                failure = String(cString: strerror(errno))
                return
            }
            left -= n
            base += n
        }
    }

    func close() throws {
        flush()
        if path != nil, Glibc.close(descriptor) != 0, failure == nil {
            failure = String(cString: strerror(errno))
        }
        if let failure { throw CommandFailure("cannot write \(path ?? "standard output"): \(failure)") }
    }
}

/// One alert event as a line of `--alerts-out`: what the daemon would send, with when.
enum AlertEventLine {
    static func json(_ event: AlertEvent) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(AlertEventRecord(event))).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
