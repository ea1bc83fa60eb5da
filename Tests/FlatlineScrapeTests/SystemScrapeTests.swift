import FlatlineCore
import FlatlineIngest
import FlatlineNATS
import FlatlineTestSupport
import Foundation
import Synchronization
import Testing

@testable import FlatlineConfig
@testable import FlatlineScrape

/// `kind: nats_system`: a real nats-server with a system account, scraped over NATS: each server
/// of the cluster is a target named after it, with the same series as over HTTP.
@Suite("Scraping through the system account", .serialized)
struct SystemScrapeTests {
    static let serverConfiguration = """
        accounts {
          SYS { users = [ { user: sys, password: sys } ] }
          APP { users = [ { user: app, password: app } ], jetstream: enabled }
        }
        system_account: SYS
        """

    /// A nats-server with a system account, and a client of it that answers every
    /// `$SYS.REQ.SERVER.PING.VARZ` for made-up servers named `prefix-0`, `prefix-1`, ... (`count` of
    /// them) besides the real one; `body` gets a configuration of a `nats_system` job `cluster`
    /// scraping `/varz` of them (`nats_system` settings `extra` added to the password file's).
    static func withMadeUpServers(
        prefix: String,
        count: Int,
        system extra: String,
        _ body: (_ yaml: String) async throws -> Void
    ) async throws {
        let server = try NATSServerProcess(jetStream: false, configuration: Self.serverConfiguration)
        defer { server.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let password = try directory.write("sys.password", "sys\n")
        try await TestSupport.withNATSClient(
            server.url,
            name: "made-up",
            configure: { $0.authentication = .userPassword(user: "sys", password: "sys") }
        ) { others in
            let requests = try others.subscribe(to: "$SYS.REQ.SERVER.PING.VARZ")
            try await others.flush()
            let responder = Task {
                for await request in requests {
                    guard let reply = request.replyTo else { continue }
                    for k in 0..<count {
                        let body =
                            #"{"server":{"name":"\#(prefix)-\#(k)","id":"\#(prefix)\#(k)"},"data":{"now":"2026-01-01T00:00:00Z","in_msgs":1}}"#
                        try await others.publish(body, to: reply)
                    }
                    try await others.flush()
                }
            }
            defer { responder.cancel() }
            try await body(
                """
                scrape_configs:
                  - job_name: cluster
                    kind: nats_system
                    scrape_interval: 5s
                    static_configs: [{targets: ["127.0.0.1:\(server.port)"]}]
                    nats: {endpoints: [varz]}
                    nats_system: {user: sys, password_file: \(password.path), \(extra)}
                """
            )
        }
    }

    @Test("every server answers varz, connz (paged), jsz, healthz; series as over HTTP, instance = server name")
    func systemAccount() async throws {
        let server = try NATSServerProcess(jetStream: true, configuration: Self.serverConfiguration)
        defer { server.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        _ = try directory.write("sys.password", "sys\n")
        // Five application connections and a page size of 2: /connz takes several pages.
        try await TestSupport.withNATSClient(
            server.url,
            name: "app-1",
            configure: { $0.authentication = .userPassword(user: "app", password: "app") }
        ) { _ in
            let yaml = """
                scrape_configs:
                  - job_name: cluster
                    kind: nats_system
                    scrape_interval: 5s
                    static_configs: [{targets: ["127.0.0.1:\(server.port)"], labels: {env: test}}]
                    nats: {endpoints: [varz, connz, jsz, healthz], page_limit: 1}
                    nats_system: {user: sys, password_file: \(directory.file("sys.password").path), timeout: 2s, expected_servers: 1}
                """
            let recording = directory.file("system.ndjson").path
            let batches = try await ScrapeSupport.scrape(yaml, rounds: 2, recordTo: recording)
            try #require(batches.count == 2)
            for batch in batches {
                #expect(batch.errors.isEmpty, "\(batch.errors)")
                #expect(batch.labels == ["job": "cluster", "instance": "flatline-test", "env": "test"])
                #expect(ScrapeSupport.sample(batch.samples, "up")?.value == 1)
            }
            let samples = batches[1].samples
            #expect(ScrapeSupport.sample(samples, "gnatsd_varz_in_msgs")?.labels["server_name"] == "flatline-test")
            #expect(ScrapeSupport.sample(samples, "gnatsd_connz_in_msgs", ["client_name": "app-1"]) != nil)
            // The system user's own connection and app-1: two connections, one page each.
            #expect((ScrapeSupport.sample(samples, "gnatsd_connz_num_connections")?.value ?? 0) >= 2)
            #expect(ScrapeSupport.sample(samples, "gnatsd_healthz_status")?.value == 0)
            #expect(ScrapeSupport.sample(samples, "jetstream_server_total_streams") != nil)
            // The recording replays to the same samples.
            let connzPages = try String(contentsOfFile: recording, encoding: .utf8).split(separator: "\n")
                .filter { $0.contains("\"endpoint\":\"connz\"") }
            #expect(connzPages.contains { $0.contains("\"page\":2") })
            var source = try RecordingSource(path: recording)
            var replayed: [Sample] = []
            while let batch = try source.next() { replayed += batch.samples }
            #expect(Set(replayed) == Set(batches.flatMap(\.samples)))
        }
    }

    @Test("a cluster nobody answers for: up = 0 with the reason")
    func unreachable() async throws {
        let port = try NATSServerProcess.freePort()
        let yaml = """
            scrape_configs:
              - job_name: cluster
                kind: nats_system
                scrape_interval: 5s
                scrape_timeout: 1s
                static_configs: [{targets: ["127.0.0.1:\(port)"]}]
            """
        let batches = try await ScrapeSupport.scrape(yaml, rounds: 1)
        let batch = try #require(batches.first)
        #expect(!batch.health.up)
        #expect(ScrapeSupport.sample(batch.samples, "up")?.value == 0)
        #expect(batch.errors["connect"]?.contains("cannot connect to 127.0.0.1:\(port)") == true, "\(batch.errors)")
    }

    @Test("a rogue $SYS responder inventing 1,200 server names: 1,000 tracked at most, the rest ignored and said")
    func rogueResponder() async throws {
        try await Self.withMadeUpServers(prefix: "rogue", count: 1200, system: "timeout: 2s") { yaml in
            let batches = try await ScrapeSupport.scrape(yaml, rounds: 1)
            // The real server and 999 made-up ones fill the 1,000 places.
            let rogues = batches.filter { ($0.labels["instance"] ?? "").hasPrefix("rogue-") }
            #expect(batches.count == SystemScraper.maxServers && rogues.count == SystemScraper.maxServers - 1)
            let said = batches.flatMap { $0.errors.values }.contains { $0.contains("more than 1000 servers answered") }
            #expect(said, "\(batches.prefix(1).map(\.errors))")
        }
    }

    @Test("a NATS URL's user and password never reach labels, errors or target names")
    func redactedCredentials() async throws {
        let port = try NATSServerProcess.freePort()
        let yaml = """
            scrape_configs:
              - job_name: cluster
                kind: nats_system
                scrape_interval: 5s
                scrape_timeout: 1s
                static_configs: [{targets: ["nats://sys:s3cret@127.0.0.1:\(port)"]}]
            """
        let batches = try await ScrapeSupport.scrape(yaml, rounds: 1)
        let batch = try #require(batches.first)
        #expect(!batch.health.up)
        let everything = "\(batch.labels) \(batch.errors) \(batch.target) \(batch.samples.map(\.labels))"
        #expect(!everything.contains("s3cret"), "\(everything)")
        #expect(batch.labels["instance"] == "nats://<secret>@127.0.0.1:\(port)")
        #expect(
            Redaction.redactingUserinfo("cannot connect to nats://a:b@h:1,tls://c@d:2/x and http://e/f")
                == "cannot connect to nats://<secret>@h:1,tls://<secret>@d:2/x and http://e/f"
        )
    }

    @Test(
        "in a cluster of replicas each server is a unit: only the servers owned here are taken, every one is told, a server that moves is forgotten here"
    )
    func serversAsUnits() async throws {
        // Six more servers answer the system request besides the real one.
        try await Self.withMadeUpServers(prefix: "s", count: 6, system: "timeout: 1s, expected_servers: 7") { yaml in
            let configuration = try Configuration.parse(yaml, file: "test.yml")
            let job = try #require(configuration.scrapeConfigs.first)
            let owned = Mutex<Set<String>>(["cluster/s-0", "cluster/s-1", "cluster/s-2"])
            let taken = Mutex<[String]>([])
            let told = Mutex<[DiscoveredUnit]>([])
            let released = Mutex<[String: String]>([:])
            var scraper = SystemScraper(
                job: job,
                global: configuration.global,
                recorder: nil,
                owns: { unit in owned.withLock { $0.contains(unit) } },
                taking: { unit in taken.withLock { $0.append(unit) } },
                discovered: { name, servers in
                    #expect(name == "cluster")
                    told.withLock { $0 = servers }
                },
                released: { unit, labels in released.withLock { $0[unit] = labels["instance"] } },
                logger: TestSupport.quietLogger
            )
            func instances(_ batches: [ScrapeBatch]) -> Set<String> {
                Set(batches.compactMap { $0.labels["instance"] })
            }

            let first = await scraper.scrape()
            #expect(instances(first) == ["s-0", "s-1", "s-2"])
            #expect(first.allSatisfy { $0.errors.isEmpty && $0.health.up }, "\(first.map(\.errors))")
            #expect(Set(taken.withLock { $0 }) == ["cluster/s-0", "cluster/s-1", "cluster/s-2"])
            let all = (0..<6).map { "cluster/s-\($0)" } + ["cluster/flatline-test"]
            #expect(Set(told.withLock { $0.map(\.name) }) == Set(all))
            #expect(told.withLock { $0.first { $0.name == "cluster/s-4" }?.instance } == "s-4")

            // Ownership moves: s-0 and s-1 go elsewhere (not "no reply" here), s-3 and the real
            // server come here (taken over first), s-2 stays (not taken again).
            owned.withLock { $0 = ["cluster/s-2", "cluster/s-3", "cluster/flatline-test"] }
            let second = await scraper.scrape()
            #expect(instances(second) == ["s-2", "s-3", "flatline-test"])
            #expect(second.allSatisfy { $0.errors.isEmpty }, "\(second.map(\.errors))")
            #expect(taken.withLock { $0.count } == 5)
            // What was kept here of the two that moved is let go.
            #expect(released.withLock { $0 } == ["cluster/s-0": "s-0", "cluster/s-1": "s-1"])
            #expect(Set(taken.withLock { $0.suffix(2) }) == ["cluster/s-3", "cluster/flatline-test"])
            await scraper.close()
        }

        // Nobody answers: the job's failure is told by the owner of the job's unit alone.
        let port = try NATSServerProcess.freePort()
        let unreachable = try Configuration.parse(
            """
            scrape_configs:
              - job_name: down
                kind: nats_system
                scrape_timeout: 1s
                static_configs: [{targets: ["127.0.0.1:\(port)"]}]
            """,
            file: "test.yml"
        )
        let job = try #require(unreachable.scrapeConfigs.first)
        for (owner, expected) in [("down/127.0.0.1:\(port)", 1), ("down/elsewhere", 0)] {
            var scraper = SystemScraper(
                job: job,
                global: unreachable.global,
                recorder: nil,
                owns: { $0 == owner },
                logger: TestSupport.quietLogger
            )
            let batches = await scraper.scrape()
            #expect(batches.count == expected && batches.allSatisfy { !$0.health.up })
            await scraper.close()
        }
    }
}
