import FlatlineDaemon
import FlatlineTestSupport
import Foundation
import Hummingbird
import Synchronization
import Testing

/// `flatline run` replicas sharing targets through a real nats-server: every target is scraped
/// by one replica, a replica killed with SIGKILL hands its share over within two leases, one
/// stopped with SIGTERM at once, and a restarted one takes a share back.
@Suite("flatline run in a cluster", .serialized, .timeLimit(.minutes(3)))
struct ClusterCommandTests {
    /// Who scraped which target when, as the targets saw it (the replica is in the User-Agent).
    final class ScrapeLog: Sendable {
        struct Scrape: Sendable {
            var target: String
            var replica: String
            var at: ContinuousClock.Instant
        }
        let scrapes = Mutex<[Scrape]>([])

        func record(_ target: String, userAgent: String) {
            let replica = Cluster.replica(inUserAgent: userAgent) ?? "?"
            scrapes.withLock { $0.append(Scrape(target: target, replica: replica, at: .now)) }
        }

        /// Each target's replicas in a window ending now.
        func owners(last window: Duration) -> [String: Set<String>] {
            let since = ContinuousClock.now - window
            var out: [String: Set<String>] = [:]
            for scrape in scrapes.withLock({ $0 }) where scrape.at >= since {
                out[scrape.target, default: []].insert(scrape.replica)
            }
            return out
        }

        /// The first time after `since` a target was scraped by a replica in `by`.
        func first(_ target: String, by replicas: Set<String>, after since: ContinuousClock.Instant)
            -> ContinuousClock.Instant?
        {
            scrapes.withLock { $0 }.first { $0.target == target && replicas.contains($0.replica) && $0.at > since }?.at
        }

        /// The longest time any target was scraped by two replicas: for each pair of
        /// replicas, from the later of their first scrapes to the earlier of their last, over
        /// runs of scrapes no more than `gap` apart.
        func longestDoubleOwnership(gap: Duration) -> (String, Duration) {
            var spans: [String: [String: [(ContinuousClock.Instant, ContinuousClock.Instant)]]] = [:]
            for scrape in scrapes.withLock({ $0 }) {
                var list = spans[scrape.target, default: [:]][scrape.replica, default: []]
                if let last = list.last, scrape.at - last.1 <= gap {
                    list[list.count - 1].1 = scrape.at
                } else {
                    list.append((scrape.at, scrape.at))
                }
                spans[scrape.target, default: [:]][scrape.replica] = list
            }
            var worst = ("", Duration.zero)
            for (target, byReplica) in spans {
                let all = byReplica.flatMap { replica, list in list.map { (replica, $0) } }
                for (i, a) in all.enumerated() {
                    for b in all[(i + 1)...] where a.0 != b.0 {
                        let overlap = min(a.1.1, b.1.1) - max(a.1.0, b.1.0)
                        if overlap > worst.1 { worst = (target, overlap) }
                    }
                }
            }
            return worst
        }
    }

    static let targets = 30
    static let lease = 5.0

    @Test("three replicas share 30 targets; a killed one's targets move within 2 × lease")
    func sharding() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let log = ScrapeLog()
        let router = Router()
        router.get("/t/:n") { request, context -> String in
            log.record(context.parameters.get("n") ?? "?", userAgent: request.headers[.userAgent] ?? "")
            return "flatline_test_up 1\n"
        }
        try await TestHTTPServer.run(router) { port in
            var yaml = """
                global: {scrape_interval: 1s}
                cluster:
                  name: shardtest
                  replica: unused
                  nats: {url: "\(server.url)"}
                  lease: \(Int(Self.lease))s
                  replicas_per_shard: 1
                scrape_configs:

                """
            for n in 0..<Self.targets {
                yaml += """
                      - job_name: t\(n)
                        kind: prometheus
                        metrics_path: /t/\(n)
                        static_configs: [{targets: ["127.0.0.1:\(port)"]}]

                    """
            }
            let config = try directory.write("flatline.yml", yaml)
            var replicas: [String: (process: Process, port: Int)] = [:]
            func start(_ name: String) throws {
                let api = try NATSServerProcess.freePort()
                let process = try RunCommandTests.start(
                    [
                        "--config", config.path, "--data-dir", directory.file("data-\(name)").path,
                        "--listen", "127.0.0.1:\(api)", "--models", TestSupport.repositoryFile("models").path,
                        "--cluster.replica", name,
                    ],
                    log: directory.file("\(name).log")
                )
                replicas[name] = (process, api)
            }
            defer {
                for replica in replicas.values where replica.process.isRunning {
                    kill(replica.process.processIdentifier, SIGKILL)
                }
            }
            func logs() -> String {
                replicas.keys.sorted().map { name in
                    "--- \(name)\n" + ((try? String(contentsOf: directory.file("\(name).log"), encoding: .utf8)) ?? "")
                }.joined(separator: "\n")
            }
            /// Waits until, over the last 2 s, every target was scraped by exactly one replica,
            /// all of them in `members`.
            func settled(_ members: Set<String>) async throws -> [String: String]? {
                let deadline = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(500))
                    let owners = log.owners(last: .seconds(2))
                    guard owners.count == Self.targets, owners.values.allSatisfy({ $0.count == 1 }) else { continue }
                    let single = owners.mapValues { $0.first ?? "" }
                    guard Set(single.values) == members else { continue }
                    return single
                }
                return nil
            }

            for name in ["a", "b", "c"] { try start(name) }
            let initial = try #require(try await settled(["a", "b", "c"]), "\(logs())")
            // Each one got a share, and the API says what the targets saw.
            let status = try await Self.cluster(port: replicas["a"]?.port ?? 0)
            #expect(status.members == ["a", "b", "c"], "\(status)")
            for (n, owner) in initial { #expect(status.shards["t\(n)/127.0.0.1:\(port)"] == [owner]) }
            // One of them leads the cluster's singleton work.
            var leaders: [String] = []
            for name in ["a", "b", "c"] where try await Self.leads(port: replicas[name]?.port ?? 0) {
                leaders.append(name)
            }
            #expect(leaders.count == 1, "leaders: \(leaders)")
            // The status page says the same.
            let page = String(
                decoding: try NATSServerProcess.httpGet(port: replicas["a"]?.port ?? 0, path: "/"),
                as: UTF8.self
            )
            let owned = initial.values.filter { $0 == "a" }.count
            #expect(page.contains("<strong>a</strong>, member, evaluating \(owned) of 30 targets"), "\(page)")
            // (b may still say it settles: it tells so at the renewal after it took its share.)
            #expect(page.contains("<tr><td>b") && page.contains("<tr><td>a (this one)</td>"))

            // SIGKILL: b's entry lapses within a lease, the others take its targets.
            let share = initial.filter { $0.value == "b" }.map(\.key)
            let killed = ContinuousClock.now
            kill(replicas["b"]?.process.processIdentifier ?? 0, SIGKILL)
            let after = try #require(try await settled(["a", "c"]), "\(logs())")
            #expect(after.values.allSatisfy { $0 != "b" })
            let moved = share.compactMap { log.first($0, by: ["a", "c"], after: killed) }
            #expect(moved.count == share.count)
            let slowest = moved.map { $0 - killed }.max() ?? .zero
            #expect(slowest <= .seconds(2 * Self.lease), "slowest takeover \(slowest)")
            // Exactly one survivor leads (b may have led: its lease lapses with its key).
            let leadBy = ContinuousClock.now + .seconds(2 * Self.lease)
            var leading: [String] = []
            repeat {
                leading = []
                for name in ["a", "c"] where try await Self.leads(port: replicas[name]?.port ?? 0) {
                    leading.append(name)
                }
                if leading.count == 1 { break }
                try await Task.sleep(for: .milliseconds(300))
            } while ContinuousClock.now < leadBy
            #expect(leading.count == 1, "leaders after the kill: \(leading)")
            // Targets that were not b's stayed where they were.
            for (n, owner) in initial where owner != "b" { #expect(after[n] == owner) }
            // The members gauge follows at a's next look at the members (within a lease).
            var metrics = try await Self.metrics(port: replicas["a"]?.port ?? 0)
            let countedBy = ContinuousClock.now + .seconds(Self.lease)
            while !metrics.contains("flatline_cluster_members 2"), ContinuousClock.now < countedBy {
                try await Task.sleep(for: .milliseconds(300))
                metrics = try await Self.metrics(port: replicas["a"]?.port ?? 0)
            }
            #expect(metrics.contains("flatline_cluster_members 2"), "\(metrics)")
            #expect(metrics.contains("flatline_cluster_owned_targets \(after.values.filter { $0 == "a" }.count)"))

            // b again, with its name: it joins and takes a share back.
            try start("b")
            let rejoined = try #require(try await settled(["a", "b", "c"]), "\(logs())")
            #expect(rejoined == initial, "rendezvous hashing gives b the same share again")

            // SIGTERM: c leaves at once; its targets move within a third of a lease and a scrape.
            let stopping = ContinuousClock.now
            let cShare = rejoined.filter { $0.value == "c" }.map(\.key)
            #expect(try await RunCommandTests.stop(replicas["c"]?.process ?? Process()))
            _ = try #require(try await settled(["a", "b"]), "\(logs())")
            let handedOver = cShare.compactMap { log.first($0, by: ["a", "b"], after: stopping) }
            #expect(handedOver.count == cShare.count)
            #expect((handedOver.map { $0 - stopping }.max() ?? .zero) < .seconds(Self.lease), "\(logs())")
            #expect(logs().contains("cluster: left"))

            let (target, overlap) = log.longestDoubleOwnership(gap: .milliseconds(1500))
            #expect(overlap <= .seconds(2 * Self.lease), "t\(target) had two owners for \(overlap)")
        }
    }

    @Test("a target taken over starts warm: its detection state comes from the replica that had it")
    func warmTakeover() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let log = ScrapeLog()
        let router = Router()
        let round = Mutex(0)
        router.get("/t/:n") { request, context -> String in
            log.record(context.parameters.get("n") ?? "?", userAgent: request.headers[.userAgent] ?? "")
            let k = round.withLock { value in
                value += 1
                return value
            }
            return "# TYPE flatline_test_depth gauge\nflatline_test_depth \(100 + k % 7)\n"
        }
        try await TestHTTPServer.run(router) { port in
            var yaml = """
                global: {scrape_interval: 1s}
                cluster:
                  name: warmtest
                  nats: {url: "\(server.url)"}
                  lease: 2s
                  replicas_per_shard: 1
                scrape_configs:

                """
            // Each replica's share follows the target names, which hold the port: take job
            // numbers that give each of the two three targets (six numbers taken blindly went
            // all to one replica for one port in 32).
            var jobs: [Int] = []
            var shares = ["a": 0, "b": 0]
            for n in 0..<1000 where jobs.count < 6 {
                let owner = Cluster.owners(of: "t\(n)/127.0.0.1:\(port)", among: ["a", "b"], count: 1).first ?? ""
                if let share = shares[owner], share < 3 {
                    shares[owner] = share + 1
                    jobs.append(n)
                }
            }
            try #require(jobs.count == 6)
            for n in jobs {
                yaml += """
                      - job_name: t\(n)
                        metrics_path: /t/\(n)
                        static_configs: [{targets: ["127.0.0.1:\(port)"]}]

                    """
            }
            let config = try directory.write("flatline.yml", yaml)
            var replicas: [String: Process] = [:]
            for name in ["a", "b"] {
                replicas[name] = try RunCommandTests.start(
                    [
                        "--config", config.path, "--data-dir", directory.file("data-\(name)").path,
                        "--listen", "127.0.0.1:\(try NATSServerProcess.freePort())",
                        "--models", TestSupport.repositoryFile("models").path, "--cluster.replica", name,
                        "--save-interval", "1s",
                    ],
                    log: directory.file("\(name).log")
                )
            }
            defer {
                for process in replicas.values where process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
            func text(_ name: String) -> String {
                (try? String(contentsOf: directory.file("\(name).log"), encoding: .utf8)) ?? ""
            }
            // Both hold a share and have saved (and shared) it a few times.
            let deadline = ContinuousClock.now + .seconds(30)
            var owners: [String: String] = [:]
            while ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(500))
                let seen = log.owners(last: .seconds(2))
                guard seen.count == 6, seen.values.allSatisfy({ $0.count == 1 }) else { continue }
                owners = seen.compactMapValues(\.first)
                if Set(owners.values) == ["a", "b"] { break }
            }
            try #require(Set(owners.values) == ["a", "b"], "\(text("a"))\n\(text("b"))")
            try await Task.sleep(for: .seconds(4))
            let victim = owners.values.filter { $0 == "a" }.count >= 3 ? "a" : "b"
            let survivor = victim == "a" ? "b" : "a"
            let share = owners.filter { $0.value == victim }.map(\.key).sorted()
            kill(replicas[victim]?.processIdentifier ?? 0, SIGKILL)
            // The survivor takes each of them over warm: the shared state becomes its file and
            // is restored at the first scrape, instead of "starting cold".
            let takenBy = ContinuousClock.now + .seconds(20)
            func warm(_ n: String) -> Bool {
                let said = text(survivor)
                let target = "t\(n)/127.0.0.1:\(port)"
                return said.contains(
                    "target=\(target) [FlatlineDaemon] cluster: detection state taken over from the cluster"
                )
                    && said.contains("restored detection state of \(target)")
                    // Its models' state too (target_down's, grouped by job and instance).
                    && said.split(separator: "\n").contains {
                        $0.contains("cluster: model state taken over from the cluster")
                            && $0.contains("target=\(target) ")
                            && !$0.contains("things=0")
                    }
            }
            while !share.allSatisfy(warm), ContinuousClock.now < takenBy {
                try await Task.sleep(for: .milliseconds(300))
            }
            for n in share { #expect(warm(n), "t\(n): \(text(survivor))") }
            for n in share {
                #expect(!text(survivor).contains("no saved detection state of t\(n)/127.0.0.1:\(port): starting cold"))
            }
        }
    }

    /// A webhook receiver that keeps each notification with its `Idempotency-Key` and the replica
    /// that delivered it.
    final class Receiver: Sendable {
        struct Notification: Sendable {
            var key: String
            var replica: String
            /// The group, its status, and its alerts' fingerprints and states.
            var content: String
            var alertnames: Set<String>
            var status: String
        }
        let received = Mutex<[Notification]>([])

        func router() -> Router<BasicRequestContext> {
            let router = Router()
            router.post("/hook") { request, _ -> HTTPResponse.Status in
                let body = try await request.body.collect(upTo: 1 << 20)
                struct Payload: Decodable {
                    struct Alert: Decodable {
                        var status: String
                        var fingerprint: String
                        var labels: [String: String]
                    }
                    var groupKey: String
                    var status: String
                    var alerts: [Alert]
                }
                let payload = try JSONDecoder().decode(Payload.self, from: Data(body.readableBytesView))
                let agent = request.headers[.userAgent] ?? ""
                let replica = Cluster.replica(inUserAgent: agent)
                let told = payload.alerts.map { $0.fingerprint + ":" + $0.status }.sorted()
                let notification = Notification(
                    key: request.headers.first { $0.name.canonicalName == "idempotency-key" }?.value ?? "",
                    replica: replica ?? "?",
                    content: ([payload.groupKey, payload.status] + told).joined(separator: "|"),
                    alertnames: Set(payload.alerts.compactMap { $0.labels["alertname"] }),
                    status: payload.status
                )
                self.received.withLock { $0.append(notification) }
                return .ok
            }
            return router
        }

        /// Notifications telling of `alertname` with `status` (`firing`, `resolved`).
        func told(_ alertname: String, _ status: String) -> [Notification] {
            received.withLock { $0.filter { $0.alertnames.contains(alertname) && $0.status == status } }
        }
    }

    @Test(
        "an HA pair: the replica that delivered the freeze is killed; the flood and both resolves still arrive, nothing under two keys",
        .timeLimit(.minutes(4))
    )
    func highAvailability() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        // The flood model trusts its baseline after 20 s of normal traffic (2 minutes shipped).
        let models = try TestSupport.modelsWithFloodWarmup("20s", in: directory)
        let scenario = try directory.write(
            "scenario.yml",
            """
            name: ha-test
            seed: 5
            duration: 95s
            streams: [{name: ORDERS, subjects: ["orders.>"]}]
            consumers: [{stream: ORDERS, name: worker, capacity: 500, max_ack_pending: 100, ack_wait: 5s}]
            publishers:
              - {name: orders-producer, subject: orders.new, rate: 20, payload: 200}
              - {name: telemetry-producer, subject: telemetry.host, rate: 40, payload: 300}
            incidents:
              - {kind: freeze, target: ORDERS/worker, mode: nofetch, at: 25s, duration: 20s}
              - {kind: flood, target: telemetry-producer, multiplier: 10, at: 60s, duration: 15s}
            """
        )
        let receiver = Receiver()
        try await TestHTTPServer.run(receiver.router()) { hookPort in
            let config = try directory.write(
                "flatline.yml",
                """
                global: {scrape_interval: 1s}
                cluster:
                  name: hatest
                  nats: {url: "\(server.url)"}
                  lease: 3s
                scrape_configs:
                  - job_name: nats
                    kind: nats
                    static_configs: [{targets: ["127.0.0.1:\(server.monitoringPort)"]}]
                    nats: {endpoints: [varz, connz, jsz]}
                route: {receiver: hook, group_by: [incident], group_wait: 0s, group_interval: 5s}
                receivers:
                  - name: hook
                    webhook_configs: [{url: "http://127.0.0.1:\(hookPort)/hook"}]
                """
            )
            var replicas: [String: Process] = [:]
            for name in ["a", "b"] {
                replicas[name] = try RunCommandTests.start(
                    [
                        "--config", config.path, "--data-dir", directory.file("data-\(name)").path,
                        "--listen", "127.0.0.1:\(try NATSServerProcess.freePort())", "--models", models.path,
                        "--cluster.replica", name,
                    ],
                    log: directory.file("\(name).log")
                )
            }
            defer {
                for process in replicas.values where process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
            func logs() -> String {
                ["a", "b"].map { name in
                    "--- \(name)\n" + ((try? String(contentsOf: directory.file("\(name).log"), encoding: .utf8)) ?? "")
                }.joined(separator: "\n")
            }
            let loadgen = Process()
            loadgen.executableURL = TestSupport.flatlineBinary
            loadgen.arguments = ["loadgen", "--server", server.url, "--scenario", scenario.path]
            loadgen.standardOutput = FileHandle.nullDevice
            loadgen.standardError = FileHandle.nullDevice
            let started = ContinuousClock.now
            try loadgen.run()
            defer { if loadgen.isRunning { loadgen.terminate() } }

            func wait(until deadline: Duration, for condition: () -> Bool) async throws -> Bool {
                while !condition() {
                    guard ContinuousClock.now < started + deadline else { return false }
                    try await Task.sleep(for: .milliseconds(100))
                }
                return true
            }
            // The freeze fires; whichever replica delivered it is killed.
            #expect(
                try await wait(until: .seconds(60)) { !receiver.told("ConsumerFreeze", "firing").isEmpty },
                "\(logs())"
            )
            let deliverer = try #require(receiver.told("ConsumerFreeze", "firing").first?.replica)
            let victim = try #require(replicas[deliverer], "delivered by \(deliverer)")
            kill(victim.processIdentifier, SIGKILL)
            victim.waitUntilExit()
            let survivor = deliverer == "a" ? "b" : "a"

            // The survivor tells the freeze's end and the whole flood.
            #expect(
                try await wait(until: .seconds(150)) {
                    !receiver.told("ConsumerFreeze", "resolved").isEmpty
                        && !receiver.told("ProducerFlood", "firing").isEmpty
                        && !receiver.told("ProducerFlood", "resolved").isEmpty
                },
                "\(receiver.received.withLock { $0.map(\.content) })\n\(logs())"
            )
            for (name, status) in [
                ("ConsumerFreeze", "resolved"), ("ProducerFlood", "firing"), ("ProducerFlood", "resolved"),
            ] {
                #expect(receiver.told(name, status).allSatisfy { $0.replica == survivor }, "\(name) \(status)")
            }
            // Both replicas told everything up to the kill; each thing arrived once, under one key.
            let all = receiver.received.withLock { $0 }
            for (content, copies) in Dictionary(grouping: all, by: \.content) {
                #expect(copies.count == 1, "\(content) arrived \(copies.count) times, keys \(Set(copies.map(\.key)))")
            }
            #expect(all.allSatisfy { !$0.key.isEmpty })
        }
    }

    struct ClusterView: Decodable {
        struct Member: Decodable { var name: String }
        var members: [Member]
        var shards: [String: [String]]
    }

    static func cluster(port: Int) async throws -> (members: [String], shards: [String: [String]]) {
        let body = try NATSServerProcess.httpGet(port: port, path: "/api/v1/cluster")
        struct Envelope: Decodable { var data: ClusterView }
        let view = try JSONDecoder().decode(Envelope.self, from: body).data
        return (view.members.map(\.name), view.shards)
    }

    static func leads(port: Int) async throws -> Bool {
        let body = try NATSServerProcess.httpGet(port: port, path: "/api/v1/cluster")
        struct Envelope: Decodable {
            struct Data: Decodable { var leader: Bool }
            var data: Data
        }
        return try JSONDecoder().decode(Envelope.self, from: body).data.leader
    }

    static func metrics(port: Int) async throws -> String {
        String(decoding: try NATSServerProcess.httpGet(port: port, path: "/metrics"), as: UTF8.self)
    }
}
