import FlatlineCore
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// `flatline run` as deployed, in its own process, against a Prometheus target and a webhook
/// receiver served by this process:
/// - latency: every scrape carries one new series over a threshold; from the moment the target
///   produced that scrape's body to the moment its alert's webhook POST arrives (parse,
///   detection, models, routing, outbox commit with fsync, and delivery on the way);
/// - footprint: the daemon's CPU (from /proc, user + system) and resident memory while it
///   scrapes a large target at a production interval.
struct DaemonBenchmark {
    /// Serves `router` on a free port of 127.0.0.1 while `body` runs with its address.
    static func serving<Result: Sendable>(
        _ router: Router<BasicRequestContext>,
        _ body: (_ address: String) async throws -> Result
    ) async throws -> Result {
        let port = Mutex<Int?>(nil)
        let quiet = Logger(label: "flatline.bench", factory: { _ in SwiftLogNoOpLogHandler() })
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } },
            logger: quiet
        )
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: quiet))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            defer { tasks.cancelAll() }
            let started = ContinuousClock.now + .seconds(10)
            while port.withLock({ $0 }) == nil {
                guard ContinuousClock.now < started else { throw BenchError("the bench HTTP server did not start") }
                try await Task.sleep(for: .milliseconds(10))
            }
            let result = try await body("127.0.0.1:\(port.withLock { $0 } ?? 0)")
            await group.triggerGracefulShutdown()
            return result
        }
    }

    struct Latency {
        var series: Int
        var interval: Double
        var rounds: Int
        var delivered: Int
        var p50: Double
        var p99: Double
        var max: Double
    }

    struct Footprint {
        var series: Int
        var interval: Double
        var scrapes: Int
        var cpuPercent: Double
        var cpuSecondsPerScrape: Double
        var rssBytes: Int
        var peakRSSBytes: Int
        /// The peak including the state save a shutdown makes, and how long the shutdown took.
        var peakWithSaveBytes: Int
        var shutdownSeconds: Double
    }

    /// The `flatline` executable that runs the daemon.
    let executable: URL
    /// The shipped models (the latency run adds its trigger model to a copy).
    let models: String
    /// More arguments for `flatline run` (`--no-wal`).
    var extraArguments: [String] = []
    let progress: @Sendable (String) -> Void

    /// The target and receiver: `/metrics` with `series` series (half gauges, half counters,
    /// moving every scrape) and, when `trigger` is on, one `flatline_bench_trigger{round}` per
    /// scrape; `/hook` takes webhook messages and notes when each round's alert arrived.
    final class Bench: Sendable {
        struct State {
            var requests = 0
            var served: [Int: ContinuousClock.Instant] = [:]
            var arrived: [Int: ContinuousClock.Instant] = [:]
            var counters: [Double]
            var rng = SplitMix64(seed: 7)
        }

        let prefixes: [String]
        let trigger: Bool
        /// Scrapes before the trigger starts (the daemon settles).
        let warmup: Int
        let state: Mutex<State>

        init(series: Int, trigger: Bool, warmup: Int) {
            prefixes = (0..<series).map { i in
                i % 2 == 0
                    ? "bench_queue_depth{shard=\"\(i % 64)\",series=\"\(i)\"} "
                    : "bench_requests_total{shard=\"\(i % 64)\",series=\"\(i)\"} "
            }
            self.trigger = trigger
            self.warmup = warmup
            state = Mutex(State(counters: [Double](repeating: 0, count: series)))
        }

        func body() -> String {
            state.withLock { state in
                state.requests += 1
                let round = state.requests
                var text = "# TYPE bench_queue_depth gauge\n# TYPE bench_requests_total counter\n"
                text.reserveCapacity(prefixes.count * 48)
                let phase = Double(round) / 20
                for (i, prefix) in prefixes.enumerated() {
                    let noise = Double(state.rng.next() % 1000) / 100
                    text += prefix
                    if i % 2 == 0 {
                        text += String(Int(100 + 20 * sin(phase + Double(i)) + noise))
                    } else {
                        state.counters[i] += 50 + noise
                        text += String(Int(state.counters[i]))
                    }
                    text += "\n"
                }
                if trigger && round > warmup {
                    text += "# TYPE flatline_bench_trigger gauge\nflatline_bench_trigger{round=\"\(round)\"} 1\n"
                    state.served[round] = .now
                }
                return text
            }
        }

        func received(_ body: ByteBuffer) {
            let now = ContinuousClock.now
            guard let message = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
                let alerts = message["alerts"] as? [[String: Any]]
            else { return }
            state.withLock { state in
                for alert in alerts where alert["status"] as? String == "firing" {
                    guard let labels = alert["labels"] as? [String: String],
                        let round = labels["round"].flatMap(Int.init)
                    else { continue }
                    if state.arrived[round] == nil { state.arrived[round] = now }
                }
            }
        }

        var router: Router<BasicRequestContext> {
            let router = Router()
            router.get("/metrics") { _, _ -> Response in
                Response(
                    status: .ok,
                    headers: [.contentType: "text/plain; version=0.0.4"],
                    body: .init(byteBuffer: ByteBuffer(string: self.body()))
                )
            }
            router.post("/hook") { request, _ -> Response in
                self.received(try await request.body.collect(upTo: 1 << 24))
                return Response(status: .ok)
            }
            return router
        }
    }

    static let triggerModel = """
        name: bench_trigger
        description: The benchmark's trigger, one new series over its threshold per scrape
        kind: threshold
        group_by: [round]
        threshold:
          metric: flatline_bench_trigger
          above: 0.5
          clear: 0.5
        alert:
          name: BenchTrigger
          severity: info
          for: 0s
          summary: "round {{round}}"
          description: "the benchmark's trigger"

        """

    func latency(series: Int, interval: Double, rounds: Int) async throws -> Latency {
        let bench = Bench(series: series, trigger: true, warmup: 3)
        let total = rounds + bench.warmup
        try await withDaemon(bench, interval: interval, withTrigger: true) { _ in
            let deadline = ContinuousClock.now + .seconds(Double(total) * interval + 30)
            while ContinuousClock.now < deadline {
                let (requests, arrived) = bench.state.withLock { ($0.requests, $0.arrived.count) }
                progress("daemon latency, \(series.formatted) series: \(arrived)/\(rounds) alerts")
                if requests >= total && arrived >= rounds { break }
                if requests >= total + 5 { break }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        let (served, arrived) = bench.state.withLock { ($0.served, $0.arrived) }
        let latencies = served.keys.sorted().prefix(rounds).compactMap { round -> Double? in
            guard let sent = served[round], let got = arrived[round] else { return nil }
            let d = got - sent
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }.sorted()
        func quantile(_ q: Double) -> Double {
            latencies.isEmpty ? .nan : latencies[Swift.min(latencies.count - 1, Int((Double(latencies.count) * q)))]
        }
        return Latency(
            series: series,
            interval: interval,
            rounds: Swift.min(rounds, served.count),
            delivered: latencies.count,
            p50: quantile(0.5),
            p99: quantile(0.99),
            max: latencies.last ?? .nan
        )
    }

    func footprint(series: Int, interval: Double, scrapes: Int) async throws -> Footprint {
        let bench = Bench(series: series, trigger: false, warmup: 0)
        return try await withDaemon(bench, interval: interval, withTrigger: false) { pid in
            // From the start of the second scrape (the first one's series are set up) to the
            // start of the (scrapes + 2)th: `scrapes` whole intervals.
            func waitFor(request: Int) async throws {
                let deadline = ContinuousClock.now + .seconds(Double(request + 2) * interval + 60)
                while bench.state.withLock({ $0.requests }) < request {
                    guard ContinuousClock.now < deadline else {
                        throw BenchError("the daemon did not scrape \(request) times in time")
                    }
                    progress(
                        "daemon footprint, \(series.formatted) series: scrape \(bench.state.withLock { $0.requests })"
                    )
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            try await waitFor(request: 2)
            let cpu0 = try ProcessStats.cpuSeconds(pid)
            let t0 = ContinuousClock.now
            try await waitFor(request: scrapes + 2)
            let cpu1 = try ProcessStats.cpuSeconds(pid)
            let wall = t0.duration(to: .now)
            let seconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
            let memory = try ProcessStats.memory(pid)
            // Then SIGTERM: the daemon saves its state (all series) and exits; the high-water
            // mark read last before it is gone includes the save.
            progress("daemon footprint, \(series.formatted) series: saving state at shutdown")
            let stopping = ContinuousClock.now
            kill(pid, SIGTERM)
            var peakWithSave = memory.peak
            while let now = try? ProcessStats.memory(pid) {
                peakWithSave = Swift.max(peakWithSave, now.peak)
                guard stopping.duration(to: .now) < .seconds(120) else { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            let stop = stopping.duration(to: .now)
            return Footprint(
                series: series,
                interval: interval,
                scrapes: scrapes,
                cpuPercent: (cpu1 - cpu0) / seconds * 100,
                cpuSecondsPerScrape: (cpu1 - cpu0) / Double(scrapes),
                rssBytes: memory.rss,
                peakRSSBytes: memory.peak,
                peakWithSaveBytes: peakWithSave,
                shutdownSeconds: Double(stop.components.seconds) + Double(stop.components.attoseconds) / 1e18
            )
        }
    }

    /// Serves `bench` on a free port, runs `flatline run` against it until `body` returns, and
    /// stops it with SIGTERM.
    private func withDaemon<T: Sendable>(
        _ bench: Bench,
        interval: Double,
        withTrigger: Bool,
        _ body: @Sendable (Int32) async throws -> T
    ) async throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "flatline-bench-daemon-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let modelsCopy = directory.appendingPathComponent("models")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: models), to: modelsCopy)
        if withTrigger {
            try Self.triggerModel.write(
                to: modelsCopy.appendingPathComponent("bench_trigger.yml"),
                atomically: true,
                encoding: .utf8
            )
        }
        return try await DaemonBenchmark.serving(bench.router) { address in
            let every = DurationText.format(seconds: interval)
            let config = """
                global: {scrape_interval: \(every), scrape_timeout: \(every)}
                scrape_configs:
                  - job_name: bench
                    static_configs: [{targets: ["\(address)"]}]
                    max_series: 0
                route: {receiver: hook, group_by: [round], group_wait: 0s, group_interval: 1m, repeat_interval: 4h}
                receivers:
                  - name: hook
                    webhook_configs: [{url: "http://\(address)/hook", send_resolved: false}]

                """
            let configFile = directory.appendingPathComponent("flatline.yml")
            try config.write(to: configFile, atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = executable
            process.arguments =
                [
                    "run", "--config", configFile.path, "--data-dir", directory.appendingPathComponent("data").path,
                    "--models", modelsCopy.path, "--listen", "127.0.0.1:0", "--log-level", "warning",
                ] + extraArguments
            let log = directory.appendingPathComponent("daemon.log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            process.standardOutput = FileHandle.nullDevice
            process.standardError = try FileHandle(forWritingTo: log)
            try process.run()
            defer {
                if process.isRunning {
                    process.terminate()
                    process.waitUntilExit()
                }
            }
            do {
                return try await body(process.processIdentifier)
            } catch {
                let said = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                throw BenchError("\(error)\(said.isEmpty ? "" : "; the daemon said: " + said.suffix(2000))")
            }
        }
    }
}

/// A process's CPU time and memory, from Linux's /proc.
enum ProcessStats {
    /// User plus system CPU seconds so far.
    static func cpuSeconds(_ pid: Int32) throws -> Double {
        let text = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // Fields after the command name (which may hold spaces) in parentheses: state is the
        // 3rd field overall, utime the 14th, stime the 15th.
        guard let close = text.lastIndex(of: ")") else { throw BenchError("/proc/\(pid)/stat unreadable") }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else {
            throw BenchError("/proc/\(pid)/stat has no CPU times")
        }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Resident set size now and at its peak, in bytes.
    static func memory(_ pid: Int32) throws -> (rss: Int, peak: Int) {
        let text = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        func kilobytes(_ key: String) -> Int? {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return nil }
            return line.split(separator: " ").compactMap { Int($0) }.first
        }
        guard let rss = kilobytes("VmRSS"), let peak = kilobytes("VmHWM") else {
            throw BenchError("/proc/\(pid)/status has no VmRSS")
        }
        return (rss * 1024, peak * 1024)
    }
}
