import ArgumentParser
import FlatlineCore
import Foundation
import Logging

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure detector throughput and state size, next to plain-Swift references.",
        discussion: """
            Single-threaded. For each size, prints sample-updates per second of every estimator \
            (the numeric core of a detector) with its plain-Swift reference and the ratio, of every \
            whole detector (estimator, series profile, calibration, burst suppression), bytes of \
            state per series, and the seasonal fit's BLAS/LAPACK kernels against plain Swift. \
            Build with -c release (make bench does).
            """
    )

    @Option(help: "Series per tick (repeatable; pairs with --ticks). Default: 10000 and 1000000.")
    var series: [Int] = []

    @Option(help: "Ticks per run (repeatable; pairs with --series). Default: 10000 and 100.")
    var ticks: [Int] = []

    @Flag(help: "Small sizes (1,000 × 500 and 20,000 × 20), for a quick look or a test.")
    var quick = false

    @Option(
        help:
            "Which tables: estimators, detectors, kernels, ingest, replay, nats, notify, daemon, cluster (comma-separated; default all)."
    )
    var parts: String = "estimators,detectors,kernels,ingest,replay,nats,notify,daemon,cluster"

    @Option(
        help:
            "Which detectors the detector table runs: ewma, robust, seasonal, ensemble, surprise (comma-separated; default all)."
    )
    var kinds: String = DetectorKind.allCases.map(\.rawValue).joined(separator: ",")

    @Option(
        name: .customLong("cluster-size"),
        help: "Targets and series in all of the cluster part (default 100 and 1000000; --quick: 20 and 20000)."
    )
    var clusterSize: [Int] = [100, 1_000_000]

    @Option(
        name: .customLong("replay-size"),
        help: "Series and points per series of the replay part (default 1000 and 5760: a day at 15 s)."
    )
    var replaySize: [Int] = [1000, 5760]

    @Option(
        name: .customLong("daemon-series"),
        help: "Series of the daemon part: the latency run's, then the footprint run's."
    )
    var daemonSeries: [Int] = [10_000, 100_000]

    @Option(
        name: .customLong("daemon-scrapes"),
        help: "Scrapes the footprint run measures, at the production interval (15 s)."
    )
    var daemonScrapes: Int = 6

    @Option(name: .customLong("daemon-rounds"), help: "Alerts the latency run measures, one per 1 s scrape.")
    var daemonRounds: Int = 100

    @Flag(name: .customLong("daemon-no-wal"), help: "Run the daemon part's daemon without its write-ahead log.")
    var daemonNoWAL = false

    @Option(help: "The models the daemon and cluster parts and the replay part's NATS recording run with.")
    var models: String = "models"

    @Option(
        name: .customLong("nats-messages"),
        help: "Messages per publish run of the nats part (16 B; 1 KiB gets a tenth)."
    )
    var natsMessages: Int = 2_000_000

    @Option(name: .customLong("nats-request-seconds"), help: "How long each request/reply run of the nats part lasts.")
    var natsRequestSeconds: Double = 3

    @Option(
        name: .customLong("python-bench"),
        help: "The nats-py script run next to the NATS client for comparison (skipped if it or nats-py is missing)."
    )
    var pythonBench: String = "scripts/bench/nats_py_bench.py"

    @Option(help: "The Python interpreter that runs --python-bench (make bench uses a venv with nats-py).")
    var python: String = "python3"

    @Option(parsing: .unconditional, help: "Sampling interval the detectors assume, e.g. 15s.")
    var step: DurationArgument = DurationArgument(seconds: 15)

    func validate() throws {
        try DurationArgument.refuseZero(step, "--step")
        let known: Set<String> = [
            "estimators", "detectors", "kernels", "ingest", "replay", "nats", "notify", "daemon", "cluster",
        ]
        for part in parts.split(separator: ",") where !known.contains(String(part)) {
            throw ValidationError(
                "unknown part '\(part)'; choose from estimators, detectors, kernels, ingest, replay, nats, notify, daemon, cluster"
            )
        }
        for kind in kinds.split(separator: ",") where DetectorKind(rawValue: String(kind)) == nil {
            throw ValidationError(
                "unknown detector '\(kind)' in --kinds; choose from "
                    + DetectorKind.allCases.map(\.rawValue).joined(separator: ", ")
            )
        }
        guard clusterSize.count == 2, (1...10_000).contains(clusterSize[0]), (1...10_000_000).contains(clusterSize[1]),
            clusterSize[1] >= clusterSize[0]
        else {
            throw ValidationError(
                "--cluster-size takes two counts: targets (1 to 10000), then series in all (at least one a target, at most 10000000)"
            )
        }
        guard daemonSeries.count == 2, daemonSeries.allSatisfy({ $0 > 0 }), daemonScrapes > 0, daemonRounds > 0 else {
            throw ValidationError(
                "--daemon-series takes two positive counts (latency, footprint); --daemon-scrapes and --daemon-rounds must be positive"
            )
        }
        guard replaySize.count == 2, replaySize.allSatisfy({ (1...10_000_000).contains($0) }) else {
            throw ValidationError("--replay-size takes two counts from 1 to 10000000: series, then points per series")
        }
        guard natsMessages > 0, natsRequestSeconds > 0 else {
            throw ValidationError("--nats-messages and --nats-request-seconds must be positive")
        }
        guard series.count == ticks.count else {
            throw ValidationError("give --series and --ticks the same number of times")
        }
        guard series.allSatisfy({ $0 > 0 }), ticks.allSatisfy({ $0 > 3 }) else {
            throw ValidationError("--series must be positive and --ticks above 3")
        }
    }

    func run() async throws {
        var sizes = zip(series, ticks).map { DetectorBenchmark.Size(series: $0, ticks: $1) }
        if sizes.isEmpty {
            sizes =
                quick
                ? [.init(series: 1000, ticks: 500), .init(series: 20000, ticks: 20)]
                : [.init(series: 10000, ticks: 10000), .init(series: 1_000_000, ticks: 100)]
        }
        var configuration = DetectorConfiguration()
        // Every season in the fit from the first tick, so the benchmark pays for all columns.
        configuration.seasonal.minCycles = 0
        let bench = DetectorBenchmark(
            step: step.seconds,
            configuration: configuration,
            referenceBudget: quick ? .milliseconds(200) : .seconds(3),
            kinds: kinds.split(separator: ",").compactMap { DetectorKind(rawValue: String($0)) }
        ) { Stderr.write("\rbench: \($0)…                ") }

        print(
            "flatline bench: single thread, step \(DurationText.format(seconds: step.seconds)), seasons 1d (4 harmonics) + 1w (3)"
        )
        let wanted = Set(parts.split(separator: ",").map(String.init))
        let perSize = !wanted.isDisjoint(with: ["estimators", "detectors", "kernels"])
        for size in sizes where perSize {
            print("\n\(size)")
            if wanted.contains("estimators") {
                let estimators = bench.estimators(size)
                Stderr.write("\r\u{1B}[K")
                Self.table(
                    ["estimator", "M updates/s", "reference M/s", "speed-up", "bytes/series"],
                    estimators.map { row in
                        [
                            row.name, Self.millions(row.updatesPerSecond),
                            row.referencePerSecond.map(Self.millions) ?? "-",
                            row.referencePerSecond.map { String(format: "%.1f×", row.updatesPerSecond / $0) } ?? "-",
                            row.bytesPerSeries.map(String.init) ?? "-",
                        ]
                    }
                )
            }
            if wanted.contains("detectors") {
                let detectors = try bench.detectors(size)
                Stderr.write("\r\u{1B}[K")
                print("")
                Self.table(
                    ["detector (with calibration)", "M updates/s", "bytes/series"],
                    detectors.map {
                        [$0.name, Self.millions($0.updatesPerSecond), $0.bytesPerSeries.map(String.init) ?? "-"]
                    }
                )
            }
            if wanted.contains("kernels") {
                let kernels = try bench.kernels(series: size.series)
                Stderr.write("\r\u{1B}[K")
                print("")
                Self.table(
                    ["kernel, n = \(size.series.formatted)", "BLAS M series/s", "Swift M series/s", "ratio"],
                    kernels.map { row in
                        [
                            row.name, Self.millions(row.updatesPerSecond),
                            row.referencePerSecond.map(Self.millions) ?? "-",
                            row.referencePerSecond.map { String(format: "%.2f×", row.updatesPerSecond / $0) } ?? "-",
                        ]
                    }
                )
            }
        }
        if wanted.contains("estimators") || wanted.contains("detectors") || wanted.contains("kernels") {
            print(
                "\nreference = plain Swift: one struct per series for EWMA, a sort per tick for robust, loops instead"
            )
            print("of BLAS/LAPACK for seasonal; the ensemble's reference is the three run back to back.")
        }
        if wanted.contains("ingest") { try runIngest() }
        if wanted.contains("replay") { try runReplay() }
        if wanted.contains("nats") { try await runNATS() }
        if wanted.contains("notify") { try await runNotify() }
        if wanted.contains("daemon") { try await runDaemon() }
        if wanted.contains("cluster") { try await runCluster() }
    }

    func runCluster() async throws {
        try requireModels(part: "cluster")
        let bench = ClusterBenchmark(
            executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(),
            models: models
        ) { Stderr.write("\rbench: \($0)…                ") }
        let targets = quick ? 20 : clusterSize[0]
        let series = quick ? 20_000 : clusterSize[1]
        let interval = quick ? 1.0 : 15.0
        let lease = quick ? 3.0 : 10.0
        let result = try await bench.run(
            targets: targets,
            series: series,
            interval: interval,
            lease: lease,
            scrapes: quick ? 2 : 4
        )
        Stderr.write("\r\u{1B}[K")
        print(
            "\nA cluster: 3 flatline run replicas, a 3-node nats-server cluster with JetStream, \(result.targets.formatted) targets, \(result.series.formatted) series every \(DurationText.format(seconds: interval)), lease \(DurationText.format(seconds: lease))"
        )
        Self.table(
            ["replica", "targets", "series", "CPU % of a core", "RSS MiB", "targets ever scraped"],
            result.replicas.map { replica in
                [
                    replica.name, replica.targets.formatted, replica.series.formatted,
                    String(format: "%.1f", replica.cpuPercent),
                    String(format: "%.0f", Double(replica.rssBytes) / 1_048_576), replica.everScraped.formatted,
                ]
            }
        )
        print(
            String(
                format:
                    "SIGKILL of replica %@ (%d targets): the survivors scraped all of them within %.1f s (2 × lease = %.0f s).",
                result.killed,
                result.killedTargets,
                result.takeoverSeconds,
                2 * lease
            )
        )
    }

    func runDaemon() async throws {
        try requireModels(part: "daemon")
        let bench = DaemonBenchmark(
            executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(),
            models: models,
            extraArguments: daemonNoWAL ? ["--no-wal"] : []
        ) { Stderr.write("\rbench: \($0)…                ") }
        // --quick: small and fast (a look, or a test); otherwise the sizes the targets are for.
        let latencySeries = quick ? 1_000 : daemonSeries[0]
        let rounds = quick ? 8 : daemonRounds
        let latency = try await bench.latency(series: latencySeries, interval: 1, rounds: rounds)
        let footprintSeries = quick ? 10_000 : daemonSeries[1]
        let interval = quick ? 1.0 : 15.0
        let footprint = try await bench.footprint(
            series: footprintSeries,
            interval: interval,
            scrapes: quick ? 2 : daemonScrapes
        )
        Stderr.write("\r\u{1B}[K")
        print(
            "\nThe daemon (flatline run in its own process, a local target and webhook\(daemonNoWAL ? "; no write-ahead log" : ""))"
        )
        Self.table(
            ["measure", "value", "run"],
            [
                [
                    "scrape to webhook, p50", String(format: "%.0f ms", latency.p50 * 1000),
                    "\(latency.series.formatted) series every 1 s; \(latency.delivered)/\(latency.rounds) alerts delivered",
                ],
                [
                    "scrape to webhook, p99", String(format: "%.0f ms", latency.p99 * 1000),
                    "(max \(String(format: "%.0f ms", latency.max * 1000)))",
                ],
                [
                    "CPU", String(format: "%.1f %% of a core", footprint.cpuPercent),
                    "\(footprint.series.formatted) series every \(DurationText.format(seconds: interval)), \(footprint.scrapes) scrapes; \(String(format: "%.2f", footprint.cpuSecondsPerScrape)) CPU s per scrape",
                ],
                [
                    "resident memory", String(format: "%.0f MiB", Double(footprint.rssBytes) / 1_048_576),
                    String(
                        format: "peak %.0f MiB while scraping; %.0f bytes per series (all of RSS / series)",
                        Double(footprint.peakRSSBytes) / 1_048_576,
                        Double(footprint.rssBytes) / Double(footprint.series)
                    ),
                ],
                [
                    "peak with a state save",
                    String(format: "%.0f MiB", Double(footprint.peakWithSaveBytes) / 1_048_576),
                    String(format: "SIGTERM to exit %.1f s (state of every series written)", footprint.shutdownSeconds),
                ],
            ]
        )
        print("Scrape to webhook: from the target producing the body to the webhook POST arriving (parse, detection,")
        print("models, routing, outbox commit with fsync, delivery). Targets: p99 < 250 ms at 10,000 series;")
        print("RSS < 1 GiB at 100,000 series every 15 s.")
    }

    func runNotify() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "flatline-bench-\(UUID().uuidString)"
        )
        let result = try await NotifyBenchmark(quick: quick, directory: directory.path).run {
            Stderr.write("\rbench: notify \($0)…                ")
        }
        Stderr.write("\r\u{1B}[K")
        print("\nRouting and delivery")
        Self.table(
            ["stage", "per second", "detail"],
            [
                [
                    "routing (match + group)", String(format: "%.0f alerts", result.routedPerSecond),
                    "\(result.alerts.formatted) alerts, \(result.routes) routes, \(result.groups.formatted) groups, \(result.notificationsPerFlush.formatted) notifications",
                ],
                [
                    "outbox commit (fsync)", String(format: "%.0f notifications", result.commitPerSecond),
                    "batches of 500, SQLite WAL, synchronous=FULL",
                ],
                [
                    "delivered to a local webhook", String(format: "%.0f notifications", result.deliveredPerSecond),
                    String(
                        format: "%@ notifications, 2,000 groups; commit to 2xx p50 %.0f ms, p99 %.0f ms",
                        result.notifications.formatted,
                        result.p50 * 1000,
                        result.p99 * 1000
                    ),
                ],
            ]
        )
        print("Target: at least 5,000 notifications/s delivered with durability.")
    }

    func runIngest() throws {
        Stderr.write("\rbench: extraction…")
        let rows = try IngestBenchmark(python: python, quick: quick).run()
        Stderr.write("\r\u{1B}[K")
        print("\nExtraction: bodies into samples, best of several runs (parse included)")
        Self.table(
            ["body", "ms", "samples", "M samples/s", "reference ms", "speed-up", "Python json.loads ms"],
            rows.map { row in
                [
                    row.name, String(format: "%.1f", row.milliseconds), row.samples.formatted,
                    String(format: "%.2f", Double(row.samples) / row.milliseconds / 1000),
                    row.foundationMilliseconds.map { String(format: "%.1f", $0) } ?? "-",
                    row.foundationMilliseconds.map { String(format: "%.1f×", $0 / row.milliseconds) } ?? "-",
                    row.pythonMilliseconds.map { String(format: "%.1f", $0) } ?? "-",
                ]
            }
        )
        print("reference = Foundation's JSONSerialization reading the same fields (JSON), a naive split-and-convert")
        print("parser (exposition); Python parses only. Targets: a 10,000-connection /connz page set in under 50 ms")
        print("at a target's first scrape, under 10 ms at its next.")
    }

    /// The shipped models must be where `--models` says before a part that runs them starts.
    func requireModels(part: String) throws {
        guard FileManager.default.fileExists(atPath: models + "/consumer_freeze.yml") else {
            throw CommandFailure("the \(part) part needs the shipped models: \(models) has none (--models DIR)")
        }
    }

    func runReplay() throws {
        try requireModels(part: "replay")
        let series = quick ? 100 : replaySize[0]
        let points = quick ? 1000 : replaySize[1]
        let (natsConnections, natsRounds) = quick ? (200, 20) : (1000, 120)
        let bench = ReplayBenchmark(
            executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(),
            series: series,
            points: points,
            models: models,
            natsConnections: natsConnections,
            natsRounds: natsRounds
        ) { Stderr.write("\rbench: \($0)…                ") }
        let rows = try bench.run()
        Stderr.write("\r\u{1B}[K")
        print(
            "\nReplay end to end (flatline replay in its own process, output to /dev/null), \(series.formatted) series × \(points.formatted) points at 15 s"
        )
        Self.table(
            ["case", "samples", "seconds", "M samples/s", "peak RSS MB"],
            rows.map { row in
                [
                    row.name, row.samples.formatted, String(format: "%.2f", row.seconds),
                    String(format: "%.2f", Double(row.samples) / max(row.seconds, 1e-9) / 1e6),
                    row.peakKilobytes.map { String(format: "%.0f", Double($0) / 1024) } ?? "-",
                ]
            }
        )
        print("detection alone and the parser alone run in the bench's own process (no RSS of their own);")
        print("the parser alone hands each sample over and keeps nothing, the file's rows are what replay reads.")
        print(
            "The NATS recording: one server, \(natsConnections.formatted) connections and 50 streams × 4 consumers, \(natsRounds) rounds"
        )
        print("15 s apart; with alerts, every round also goes through the shipped models and the alert engine.")
    }

    func runNATS() async throws {
        let messages = quick ? 200_000 : natsMessages
        let comparison = FileManager.default.fileExists(atPath: pythonBench) ? [python, pythonBench] : nil
        let bench = NATSBenchmark(
            logger: Logger(label: "flatline.bench", factory: { _ in SwiftLogNoOpLogHandler() }),
            publishCounts: (messages, Swift.max(1000, messages / 10)),
            requestSeconds: quick ? Swift.min(1, natsRequestSeconds) : natsRequestSeconds
        ) { Stderr.write("\rbench: nats \($0)…                ") }
        let (results, pythonFailure) = try await bench.run(python: comparison)
        Stderr.write("\r\u{1B}[K")
        print("\nNATS client against a local nats-server (\(messages.formatted) messages of 16 B, a tenth of 1 KiB)")
        Self.table(
            ["operation", "Swift /s", "MB/s", "nats-py /s", "ratio"],
            results.map { r in
                [
                    r.name, String(format: "%.0f", r.perSecond),
                    r.megabytesPerSecond.map { String(format: "%.1f", $0) } ?? "-",
                    r.python.map { String(format: "%.0f", $0) } ?? "-",
                    r.python.map { String(format: "%.1f×", r.perSecond / $0) } ?? "-",
                ]
            }
        )
        if comparison == nil {
            print("(no nats-py comparison: \(pythonBench) not found)")
        } else if let pythonFailure {
            print("(no nats-py comparison: \(pythonFailure); make bench sets up a venv with nats-py)")
        }
    }

    static func millions(_ rate: Double) -> String { String(format: "%.1f", rate / 1e6) }

    static func table(_ header: [String], _ rows: [[String]]) {
        let widths = header.indices.map { c in ([header[c]] + rows.map { $0[c] }).map(\.count).max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { c, cell in
                c == 0
                    ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[c] - cell.count) + cell
            }.joined(separator: "   ")
        }
        print(line(header))
        print(String(repeating: "-", count: widths.reduce(0, +) + 3 * (widths.count - 1)))
        for row in rows { print(line(row)) }
    }
}
