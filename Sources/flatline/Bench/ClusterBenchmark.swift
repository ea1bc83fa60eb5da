import FlatlineCore
import FlatlineDaemon
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Three `flatline run` replicas sharing a synthetic target set through a 3-node nats-server
/// cluster with JetStream, all on 127.0.0.1: each replica's CPU and resident memory and the
/// series it holds, then the time the survivors take to scrape every target of a replica killed
/// with SIGKILL.
struct ClusterBenchmark {
    struct Replica {
        var name: String
        var targets: Int
        /// Targets it scraped at least once, before the kill (ownership settling at the start).
        var everScraped: Int
        var series: Int
        var cpuPercent: Double
        var rssBytes: Int
    }

    struct Result {
        var targets: Int
        var series: Int
        var interval: Double
        var lease: Double
        var replicas: [Replica]
        var killed: String
        var killedTargets: Int
        /// From SIGKILL until every target of the killed replica was scraped by another.
        var takeoverSeconds: Double
    }

    let executable: URL
    let models: String
    let progress: @Sendable (String) -> Void

    /// The targets: `/t/N` serves `seriesPerTarget` series (half gauges, half counters), and
    /// notes which replica (from the User-Agent) scraped which target when.
    final class Targets: Sendable {
        let prefixes: [String]
        let scrapes = Mutex<[Int: [(replica: String, at: ContinuousClock.Instant)]]>([:])
        let round = Mutex(0)

        init(seriesPerTarget: Int) {
            prefixes = (0..<seriesPerTarget).map { i in
                i % 2 == 0
                    ? "bench_queue_depth{shard=\"\(i % 64)\",series=\"\(i)\"} "
                    : "bench_requests_total{shard=\"\(i % 64)\",series=\"\(i)\"} "
            }
        }

        func body() -> String {
            let round = round.withLock { value in
                value += 1
                return value
            }
            var text = "# TYPE bench_queue_depth gauge\n# TYPE bench_requests_total counter\n"
            text.reserveCapacity(prefixes.count * 48)
            for (i, prefix) in prefixes.enumerated() {
                text += prefix
                text += String(i % 2 == 0 ? 100 + (round + i) % 17 : round * 50 + i % 13)
                text += "\n"
            }
            return text
        }

        func record(_ target: Int, userAgent: String) {
            let replica = Cluster.replica(inUserAgent: userAgent) ?? "?"
            let now = ContinuousClock.now
            scrapes.withLock { $0[target, default: []].append((replica, now)) }
        }

        /// Each target's replicas over the last `window`.
        func owners(last window: Duration) -> [Int: Set<String>] {
            let since = ContinuousClock.now - window
            return scrapes.withLock { all in
                all.mapValues { Set($0.filter { $0.at >= since }.map(\.replica)) }
            }
        }

        var router: Router<BasicRequestContext> {
            let router = Router()
            router.get("/t/:n") { request, context -> Response in
                self.record(
                    context.parameters.get("n", as: Int.self) ?? -1,
                    userAgent: request.headers[.userAgent] ?? ""
                )
                return Response(
                    status: .ok,
                    headers: [.contentType: "text/plain; version=0.0.4"],
                    body: .init(byteBuffer: ByteBuffer(string: self.body()))
                )
            }
            router.post("/hook") { _, _ in HTTPResponse.Status.ok }
            return router
        }
    }

    func run(targets count: Int, series: Int, interval: Double, lease: Double, scrapes: Int) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "flatline-bench-cluster-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        progress("cluster: starting a 3-node nats-server cluster")
        let nats = try NATSCluster(directory: directory)
        defer { nats.stop() }
        let targets = Targets(seriesPerTarget: max(1, series / count))
        return try await DaemonBenchmark.serving(targets.router) { address in
            let every = DurationText.format(seconds: interval)
            var config = """
                global: {scrape_interval: \(every), scrape_timeout: \(every)}
                cluster:
                  name: bench
                  nats: {url: "\(nats.urls.joined(separator: ","))"}
                  lease: \(DurationText.format(seconds: lease))
                  replicas_per_shard: 1
                route: {receiver: hook, group_by: [alertname], group_wait: 30s, group_interval: 5m}
                receivers:
                  - name: hook
                    webhook_configs: [{url: "http://\(address)/hook", send_resolved: false}]
                scrape_configs:

                """
            for n in 0..<count {
                config += """
                      - job_name: t\(n)
                        metrics_path: /t/\(n)
                        max_series: 0
                        static_configs: [{targets: ["\(address)"]}]

                    """
            }
            let configFile = directory.appendingPathComponent("flatline.yml")
            try config.write(to: configFile, atomically: true, encoding: .utf8)
            var processes: [String: Process] = [:]
            defer {
                for process in processes.values where process.isRunning {
                    process.terminate()
                    process.waitUntilExit()
                }
            }
            for name in ["a", "b", "c"] {
                let process = Process()
                process.executableURL = executable
                process.arguments = [
                    "run", "--config", configFile.path, "--data-dir",
                    directory.appendingPathComponent("data-\(name)").path,
                    "--models", models, "--listen", "127.0.0.1:0", "--log-level", "warning", "--cluster.replica", name,
                    "--save-interval", "1h",
                ]
                let log = directory.appendingPathComponent("\(name).log")
                _ = FileManager.default.createFile(atPath: log.path, contents: nil)
                process.standardOutput = FileHandle.nullDevice
                process.standardError = try FileHandle(forWritingTo: log)
                try process.run()
                processes[name] = process
            }
            func said() -> String {
                ["a", "b", "c"].map { name in
                    let text =
                        (try? String(contentsOf: directory.appendingPathComponent("\(name).log"), encoding: .utf8))
                        ?? ""
                    return "\(name): " + text.suffix(800)
                }.joined(separator: "\n")
            }
            // Settled: over the last interval and a half every target was scraped, each by one
            // replica, all three among them.
            var owners: [Int: String] = [:]
            let settleBy = ContinuousClock.now + .seconds(interval * 6 + lease * 3 + 60)
            while true {
                guard ContinuousClock.now < settleBy else {
                    throw BenchError(
                        "the replicas did not settle on one owner per target; the replicas said:\n\(said())"
                    )
                }
                try await Task.sleep(for: .milliseconds(500))
                let seen = targets.owners(last: .seconds(interval * 1.5))
                progress("cluster: \(seen.filter { $0.value.count == 1 }.count)/\(count) targets with one owner")
                guard seen.count == count, seen.values.allSatisfy({ $0.count == 1 }) else { continue }
                owners = seen.compactMapValues(\.first)
                if Set(owners.values).count == 3 { break }
            }
            let pids = processes.mapValues(\.processIdentifier)
            var cpu0: [String: Double] = [:]
            for (name, pid) in pids { cpu0[name] = try ProcessStats.cpuSeconds(pid) }
            let t0 = ContinuousClock.now
            for k in 1...scrapes {
                progress("cluster: measuring, interval \(k)/\(scrapes)")
                try await Task.sleep(for: .seconds(interval))
            }
            let wall = t0.duration(to: .now)
            let seconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
            var replicas: [Replica] = []
            for name in ["a", "b", "c"] {
                guard let pid = pids[name] else { continue }
                let owned = owners.values.filter { $0 == name }.count
                let ever = targets.scrapes.withLock { all in
                    all.values.filter { $0.contains { $0.replica == name } }.count
                }
                replicas.append(
                    Replica(
                        name: name,
                        targets: owned,
                        everScraped: ever,
                        series: owned * targets.prefixes.count,
                        cpuPercent: (try ProcessStats.cpuSeconds(pid) - (cpu0[name] ?? 0)) / seconds * 100,
                        rssBytes: try ProcessStats.memory(pid).rss
                    )
                )
            }
            // SIGKILL the replica holding the most; time until the others scraped all of it.
            let victim = replicas.max { $0.targets < $1.targets }?.name ?? "a"
            let share = owners.filter { $0.value == victim }.map(\.key)
            progress("cluster: SIGKILL of replica \(victim) (\(share.count) targets)")
            let killed = ContinuousClock.now
            if let pid = pids[victim] { kill(pid, SIGKILL) }
            processes[victim]?.waitUntilExit()
            let takeoverBy = killed + .seconds(lease * 4 + interval * 3 + 30)
            var takeover: Duration?
            while takeover == nil {
                guard ContinuousClock.now < takeoverBy else {
                    throw BenchError(
                        "the survivors did not take replica \(victim)'s targets over; they said:\n\(said())"
                    )
                }
                try await Task.sleep(for: .milliseconds(200))
                let firsts = targets.scrapes.withLock { all in
                    share.compactMap { target in
                        all[target]?.first { $0.replica != victim && $0.at > killed }?.at
                    }
                }
                progress("cluster: \(firsts.count)/\(share.count) of \(victim)'s targets taken over")
                if firsts.count == share.count { takeover = (firsts.max() ?? killed) - killed }
            }
            let taken = takeover ?? .zero
            return Result(
                targets: count,
                series: targets.prefixes.count * count,
                interval: interval,
                lease: lease,
                replicas: replicas,
                killed: victim,
                killedTargets: share.count,
                takeoverSeconds: Double(taken.components.seconds) + Double(taken.components.attoseconds) / 1e18
            )
        }
    }

    /// Three nats-server processes in one cluster with JetStream, on free 127.0.0.1 ports.
    final class NATSCluster {
        private var processes: [Process] = []
        let urls: [String]

        init(directory: URL) throws {
            guard
                let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"].first(
                    where: { FileManager.default.isExecutableFile(atPath: $0) })
            else { throw BenchError("nats-server is not installed (make deps installs it)") }
            let clients = try (0..<3).map { _ in try Self.freePort() }
            let routes = try (0..<3).map { _ in try Self.freePort() }
            urls = clients.map { "nats://127.0.0.1:\($0)" }
            var logs: [URL] = []
            for i in 0..<3 {
                let others = (0..<3).filter { $0 != i }.map { "nats-route://127.0.0.1:\(routes[$0])" }
                let store = directory.appendingPathComponent("nats-\(i)")
                let config = """
                    server_name: n\(i)
                    listen: 127.0.0.1:\(clients[i])
                    jetstream { store_dir: "\(store.path)" }
                    cluster {
                      name: bench
                      listen: 127.0.0.1:\(routes[i])
                      routes: [\(others.map { "\"\($0)\"" }.joined(separator: ", "))]
                    }
                    """
                let file = directory.appendingPathComponent("nats-\(i).conf")
                try config.write(to: file, atomically: true, encoding: .utf8)
                let log = directory.appendingPathComponent("nats-\(i).log")
                logs.append(log)
                let process = Process()
                process.executableURL = URL(fileURLWithPath: binary)
                process.arguments = ["-c", file.path, "-l", log.path]
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                processes.append(process)
            }
            // Ready when the JetStream cluster has a metadata leader.
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                let text = logs.map { (try? String(contentsOf: $0, encoding: .utf8)) ?? "" }.joined()
                if text.contains("JetStream cluster new metadata leader")
                    || text.contains("Self is new JetStream cluster metadata leader")
                {
                    return
                }
                usleep(100_000)
            }
            stop()
            let text = logs.map { (try? String(contentsOf: $0, encoding: .utf8)) ?? "" }.joined()
            throw BenchError("the nats-server cluster elected no JetStream leader within 30 s: \(text.suffix(800))")
        }

        func stop() {
            for process in processes where process.isRunning { process.terminate() }
            for process in processes { process.waitUntilExit() }
            processes = []
        }

        /// A port nothing listens on now (the kernel's pick for an ephemeral bind).
        static func freePort() throws -> Int {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw BenchError("cannot open a socket") }
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                    bind(fd, socketAddress, length) == 0 && getsockname(fd, socketAddress, &length) == 0
                }
            }
            guard bound else { throw BenchError("cannot bind a socket on 127.0.0.1") }
            return Int(UInt16(bigEndian: address.sin_port))
        }
    }
}
