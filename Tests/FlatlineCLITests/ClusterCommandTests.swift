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
            let replica =
                userAgent.range(of: "(replica ").map { range in
                    String(userAgent[range.upperBound...].prefix { $0 != ")" })
                } ?? "?"
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
            // Targets that were not b's stayed where they were.
            for (n, owner) in initial where owner != "b" { #expect(after[n] == owner) }
            let metrics = try await Self.metrics(port: replicas["a"]?.port ?? 0)
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

    static func metrics(port: Int) async throws -> String {
        String(decoding: try NATSServerProcess.httpGet(port: port, path: "/metrics"), as: UTF8.self)
    }
}
