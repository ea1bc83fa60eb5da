import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineNATS
import FlatlineNotify
import FlatlineScrape
import FlatlineTestSupport
import Foundation
import Hummingbird
import NIOCore
import Synchronization
import Testing

@testable import FlatlineDaemon

@Suite("Cluster membership and ownership", .timeLimit(.minutes(2)))
struct ClusterTests {
    static let units = (0..<3000).map { "job\($0 % 7)/host-\($0):9100" }

    @Test("rendezvous: shares are even, and a member leaving or joining moves only its own share")
    func rendezvous() {
        let three = ["a", "b", "c"]
        let owner = Dictionary(
            uniqueKeysWithValues: Self.units.map { ($0, Cluster.owners(of: $0, among: three, count: 1)) }
        )
        for name in three {
            let share = owner.values.filter { $0 == [name] }.count
            // 1000 expected; a binomial's 4 standard deviations are ±103.
            #expect((880...1120).contains(share), "\(name) owns \(share) of 3000")
        }
        // c leaves: a's and b's units stay; c's spread over both.
        let two = Dictionary(
            uniqueKeysWithValues: Self.units.map { ($0, Cluster.owners(of: $0, among: ["a", "b"], count: 1)) }
        )
        for unit in Self.units where owner[unit] != ["c"] { #expect(two[unit] == owner[unit]) }
        let cShare = Self.units.filter { owner[$0] == ["c"] }
        let toA = cShare.filter { two[$0] == ["a"] }.count
        #expect(abs(toA - (cShare.count - toA)) < cShare.count / 4, "\(toA) of \(cShare.count) to a")
        // d joins: only units that move to d move.
        let four = Dictionary(
            uniqueKeysWithValues: Self.units.map { ($0, Cluster.owners(of: $0, among: three + ["d"], count: 1)) }
        )
        for unit in Self.units where four[unit] != ["d"] { #expect(four[unit] == owner[unit]) }
        // Two per unit: distinct, and the first is the single owner.
        for unit in Self.units.prefix(300) {
            let pair = Cluster.owners(of: unit, among: three, count: 2)
            #expect(pair.count == 2 && pair[0] != pair[1] && [pair[0]] == owner[unit])
        }
        #expect(Cluster.owners(of: "x", among: ["a"], count: 2) == ["a"])
        // The order members are listed in does not matter.
        #expect(
            Cluster.owners(of: "x", among: ["c", "a", "b"], count: 3) == Cluster.owners(of: "x", among: three, count: 3)
        )
    }

    static func settings(_ server: NATSServerProcess, replica: String, lease: Double = 1.5) -> ClusterSettings {
        var settings = ClusterSettings(replica: replica, nats: NATSConnectionSettings(urls: [server.url]))
        settings.name = "unit"
        settings.lease = lease
        settings.replicasPerShard = 1
        return settings
    }

    static func cluster(
        _ server: NATSServerProcess,
        _ replica: String,
        lease: Double = 1.5,
        metrics: ClusterMetrics? = nil
    ) -> Cluster {
        Cluster(
            settings: settings(server, replica: replica, lease: lease),
            version: "t",
            api: nil,
            metrics: metrics,
            logger: TestSupport.quietLogger
        )
    }

    static func wait(for seconds: Double, until condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while !condition() {
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(50))
        }
        return true
    }

    @Test("a second live process with the same name waits and owns nothing; it joins when the first leaves")
    func nameHeld() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        let first = Self.cluster(server, "a")
        let second = Self.cluster(server, "a")
        first.track(["u1", "u2"])
        second.track(["u1", "u2"])
        let firstRun = Task { await first.run() }
        #expect(try await Self.wait(for: 10) { first.status.phase == .member })
        let secondRun = Task { await second.run() }
        // Several renewals later the second is still waiting: the name is held.
        try await Task.sleep(for: .seconds(2))
        #expect(second.status.phase == .joining)
        #expect(!second.owns("u1") && !second.owns("u2"))
        #expect(first.owns("u1") && first.owns("u2"))
        #expect(first.status.members.map(\.name) == ["a"])
        // The first leaves (deleting its entry): the second takes the name at its next attempt.
        firstRun.cancel()
        await firstRun.value
        #expect(try await Self.wait(for: 5) { second.status.phase == .member })
        #expect(second.owns("u1"))
        secondRun.cancel()
        await secondRun.value
    }

    @Test("a replica that is settling is not ranked by the others: its share stays with them until it owns it")
    func settling() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        // A 3 s lease: b settles for 3 s after its first join.
        let a = Self.cluster(server, "a", lease: 3)
        let b = Self.cluster(server, "b", lease: 3)
        let units = (0..<40).map { "u\($0)" }
        a.track(units)
        b.track(units)
        let runA = Task { await a.run() }
        defer { runA.cancel() }
        #expect(try await Self.wait(for: 10) { a.phase == .member })
        // a has been in place for longer than a lease when b joins (a restart, not a cohort).
        try await Task.sleep(for: .seconds(3.5))
        let runB = Task { await b.run() }
        defer { runB.cancel() }
        // Until both are members and a has given b its share, every unit has an owner.
        var sawSettling = false
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            let orphans = units.filter { !a.owns($0) && !b.owns($0) }
            #expect(orphans.isEmpty, "unowned while b settles: \(orphans)")
            if b.phase == .joining && a.status.members.count == 2 {
                sawSettling = true
                #expect(a.status.members.first { $0.name == "b" }?.settled == false)
            }
            if b.phase == .member && a.status.members.allSatisfy(\.settled) && units.contains(where: b.owns)
                && !units.allSatisfy(a.owns)
            {
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(sawSettling, "a never saw b settling")
        // Then the shares are the rendezvous ones, each unit once.
        #expect(try await Self.wait(for: 5) { units.allSatisfy { a.owns($0) != b.owns($0) } })
        for unit in units {
            #expect(b.owns(unit) == (Cluster.owners(of: unit, among: ["a", "b"], count: 1) == ["b"]))
        }
        // A nats_system job's servers are units too, found while scraping; gone with their job.
        let found = DiscoveredUnit(name: "sys/n1", job: "sys", instance: "n1")
        a.track(units + ["sys/127.0.0.1:4222"])
        a.discovered(job: "sys", servers: [found])
        #expect(a.discoveredUnits == [found])
        #expect(a.status.shards["sys/n1"] == Cluster.owners(of: "sys/n1", among: ["a", "b"], count: 1))
        a.track(units)
        #expect(a.discoveredUnits.isEmpty && a.status.shards["sys/n1"] == nil)
    }

    @Test("out of touch with NATS for a lease: alone, owning everything; back: a member again")
    func partition() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        let metrics = DaemonMetrics(version: "t", clustered: true)
        let a = Self.cluster(server, "a", metrics: metrics.cluster)
        let b = Self.cluster(server, "b")
        let units = (0..<20).map { "u\($0)" }
        a.track(units)
        b.track(units)
        let runs = [Task { await a.run() }, Task { await b.run() }]
        defer { for run in runs { run.cancel() } }
        #expect(
            try await Self.wait(for: 10) {
                [a, b].allSatisfy {
                    $0.phase == .member && $0.status.members.count == 2 && $0.status.members.allSatisfy(\.settled)
                }
            }
        )
        // Each owns its share, together all of them, once.
        for unit in units { #expect(a.owns(unit) != b.owns(unit)) }
        let shareOfA = units.filter(a.owns).count

        server.kill()
        #expect(try await Self.wait(for: 10) { a.status.phase == .alone && b.status.phase == .alone })
        #expect(units.allSatisfy(a.owns) && units.allSatisfy(b.owns))
        let text = metrics.exposition([])
        #expect(text.contains("flatline_cluster_alone 1"), "\(text)")
        #expect(!text.contains("flatline_cluster_lease_renew_failures_total 0\n"))

        try server.restart()
        #expect(
            try await Self.wait(for: 15) {
                [a, b].allSatisfy {
                    $0.phase == .member && $0.status.members.count == 2 && $0.status.members.allSatisfy(\.settled)
                }
            }
        )
        #expect(units.filter(a.owns).count == shareOfA)
        #expect(metrics.exposition([]).contains("flatline_cluster_alone 0"))
        for run in runs { run.cancel() }
        for run in runs { await run.value }
    }

    /// A member `a` of a cluster on `server`, its shared delivery (retries after 0.3 s) and a
    /// webhook to a receiver on 127.0.0.1 that answers each request with `status(count so far)`;
    /// `body` gets them and what the receiver was sent.
    static func withSharedDelivery(
        _ server: NATSServerProcess,
        status: @escaping @Sendable (Int) -> HTTPResponse.Status,
        _ body:
            @Sendable (
                _ cluster: Cluster, _ shared: SharedDelivery, _ webhook: WebhookIntegration, _ metrics: DaemonMetrics,
                _ received: @Sendable () -> [(key: String, body: String, status: Int)]
            ) async throws -> Void
    ) async throws {
        let received = Mutex<[(key: String, body: String, status: Int)]>([])
        let router = Router()
        router.post("/hook") { request, _ -> HTTPResponse.Status in
            let body = String(buffer: try await request.body.collect(upTo: 1 << 16))
            let key = request.headers.first { $0.name.canonicalName == "idempotency-key" }?.value ?? ""
            return received.withLock { list in
                let answer = status(list.count)
                list.append((key, body, Int(answer.code)))
                return answer
            }
        }
        try await TestHTTPServer.run(router) { port in
            let cluster = Self.cluster(server, "a")
            let running = Task { await cluster.run() }
            defer { running.cancel() }
            #expect(try await Self.wait(for: 10) { cluster.phase == .member })
            var policy = RetryPolicy()
            policy.initialDelay = 0.3
            policy.jitter = 0
            let metrics = DaemonMetrics(version: "t", clustered: true)
            let shared = SharedDelivery(
                cluster: cluster,
                window: 60,
                policy: policy,
                metrics: metrics.cluster,
                logger: TestSupport.quietLogger
            )
            let webhook = try WebhookIntegration(
                id: "hook/webhook/0",
                settings: WebhookSettings(url: "http://127.0.0.1:\(port)/hook")
            )
            try await body(cluster, shared, webhook, metrics) { received.withLock { $0 } }
            await webhook.shutdown()
        }
    }

    static func item(_ key: String, _ body: String, group: String = "g") -> OutboxItem {
        OutboxItem(
            id: 1,
            integration: "hook/webhook/0",
            receiver: "hook",
            groupKey: group,
            idempotencyKey: key,
            body: Data(body.utf8),
            createdAt: Date().timeIntervalSince1970,
            nextAttemptAt: 0,
            attempts: 0
        )
    }

    @Test(
        "shared delivery: one notification handed over twice is delivered once; a failing receiver gets it again, in order, under one key"
    )
    func sharedDelivery() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        // The receiver refuses the first two attempts (503), then takes everything.
        try await Self.withSharedDelivery(server, status: { $0 < 2 ? .serviceUnavailable : .ok }) {
            cluster,
            shared,
            webhook,
            metrics,
            received in
            let forward = shared.forward(webhook)
            // Two replicas hand over the firing (same key), then one the resolve.
            #expect(await forward.deliver(Self.item("firing", "firing from a")) == .delivered)
            #expect(await forward.deliver(Self.item("firing", "firing from b")) == .delivered)
            #expect(await forward.deliver(Self.item("resolved", "resolved")) == .delivered)
            let pulling = Task { await shared.run(integrations: [webhook]) }
            defer { pulling.cancel() }
            #expect(try await Self.wait(for: 20) { received().filter { $0.status == 200 }.count >= 2 })
            try await Task.sleep(for: .milliseconds(500))
            let all = received()
            // Attempts 1 and 2 failed, the third delivered: all the firing, under one key; then
            // the resolve, which waited for it. b's copy never went anywhere.
            #expect(all.map(\.body) == ["firing from a", "firing from a", "firing from a", "resolved"])
            #expect(Set(all.prefix(3).map(\.key)).count == 1)
            #expect(all.count == 4 && all[3].key != all[0].key)
            let text = metrics.exposition([])
            #expect(text.contains(#"flatline_cluster_notifications_total{outcome="retried"} 2"#), "\(text)")
            #expect(text.contains(#"flatline_cluster_notifications_total{outcome="delivered"} 2"#))
            // Nothing is left in the stream: each was acknowledged.
            let js = try #require(cluster.jetStream)
            #expect(try await js.streamInfo(shared.stream).state.messages == 0)
        }
    }

    @Test(
        "shared delivery keeps a group's order across replicas: a resolve waits while another replica retries its firing"
    )
    func orderAcrossReplicas() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        try await Self.withSharedDelivery(server, status: { _ in .ok }) { cluster, shared, webhook, metrics, received in
            let forward = shared.forward(webhook)
            #expect(await forward.deliver(Self.item("firing", "firing")) == .delivered)
            #expect(await forward.deliver(Self.item("resolved", "resolved")) == .delivered)
            // Another group, on its own subject, is not held by this one.
            #expect(await forward.deliver(Self.item("other", "other group", group: "h")) == .delivered)
            let js = try #require(cluster.jetStream)
            // Another replica pulled the firing and failed: it asks for it again in 3 s.
            let held = try await js.fetch(stream: shared.stream, consumer: SharedDelivery.consumer, batch: 1)
            #expect(held.count == 1 && held.first?.metadata?.streamSequence == 1)
            try await held.first?.nak(delay: .seconds(3))
            let pulling = Task { await shared.run(integrations: [webhook]) }
            defer { pulling.cancel() }
            #expect(try await Self.wait(for: 20) { received().count >= 3 })
            try await Task.sleep(for: .milliseconds(300))
            let bodies = received().map(\.body)
            // The other group went at once; the resolve only after its firing came back.
            #expect(bodies == ["other group", "firing", "resolved"], "\(bodies)")
            let text = metrics.exposition([])
            #expect(!text.contains(#"flatline_cluster_notifications_total{outcome="waited"} 0"#), "\(text)")
            #expect(try await js.streamInfo(shared.stream).state.messages == 0)
        }
    }

    @Test(
        "one leader at a time (create-if-absent, renewed by revision); it prunes the shared state; the next one takes over"
    )
    func leader() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let a = Self.cluster(server, "a")
        let b = Self.cluster(server, "b")
        let runA = Task { await a.run() }
        let runB = Task { await b.run() }
        defer {
            runA.cancel()
            runB.cancel()
        }
        #expect(try await Self.wait(for: 10) { a.phase == .member && b.phase == .member && (a.isLeader || b.isLeader) })
        // A few renewals later still exactly one.
        for _ in 0..<4 {
            try await Task.sleep(for: .milliseconds(400))
            #expect(a.isLeader != b.isLeader)
            #expect(a.status.leader == a.isLeader && b.status.leader == b.isLeader)
        }
        let (leader, leaderRun, other) = a.isLeader ? (a, runA, b) : (b, runB, a)

        // Its singleton work: shared state of targets no longer configured is deleted.
        let shared = SharedState(
            cluster: leader,
            state: try StateDirectory(path: directory.file("data").path),
            logger: TestSupport.quietLogger
        )
        let js = try #require(leader.jetStream)
        let store = try await ObjectStore.create(bucket: shared.bucket, in: js)
        try await store.put("job/kept:1", bytes: [1, 2, 3])
        try await store.put("job/gone:1", bytes: [4, 5, 6])
        #expect(await shared.prune(keeping: ["job/kept:1", "job/other:1"]) == 1)
        #expect(try await store.list().map(\.name) == ["job/kept:1"])
        // Chunks of a writer that died before its description: purged once they stayed orphaned.
        let orphan = "$O.\(shared.bucket).C.deadwriter"
        try await js.publish(Array("lost".utf8), to: orphan)
        let start = ContinuousClock.now
        await shared.prune(keeping: ["job/kept:1"], now: start)
        await shared.prune(keeping: ["job/kept:1"], now: start + .seconds(200))
        #expect(try await store.orphanedChunks() == [orphan])
        await shared.prune(keeping: ["job/kept:1"], now: start + SharedState.orphanAge)
        #expect(try await store.orphanedChunks().isEmpty)
        #expect(try await store.get("job/kept:1")?.bytes == [1, 2, 3])

        // The leader leaves (its lease deleted with its key): the other leads.
        leaderRun.cancel()
        await leaderRun.value
        #expect(try await Self.wait(for: 5) { other.isLeader })
        #expect(!leader.isLeader)
    }

    @Test(
        "a target moved to another replica: its alerts are forgotten without a resolve, its state goes; the others stay"
    )
    func release() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let state = try StateDirectory(path: directory.file("data").path)
        let (pipeline, notifier) = try OutboxFailureTests.pipeline(
            groupBy: "instance",
            outbox: directory.file("outbox.sqlite").path,
            state: state
        )
        func batch(_ instance: String, _ value: Double) throws -> ScrapeBatch {
            var batch = try OutboxFailureTests.batch(value)
            let labels = try LabelSet(validating: ["__name__": "x", "instance": instance, "job": "j"])
            batch.target = "j/\(instance)"
            batch.labels = ["job": "j", "instance": instance]
            batch.samples = [Sample(labels: labels, value: value, timestamp: batch.time)]
            return batch
        }
        func told() throws -> [String] {
            try notifier.outbox.pending().map { item in
                let body = String(decoding: item.body, as: UTF8.self)
                return (body.contains(#""status":"resolved""#) ? "resolved " : "firing ")
                    + (body.contains("t:1") ? "t:1" : "t:2")
            }
        }
        for instance in ["t:1", "t:2"] { await pipeline.ingest(try batch(instance, 10)) }
        await pipeline.flush()
        await pipeline.save()
        #expect(Set(try told()) == ["firing t:1", "firing t:2"])
        #expect(FileManager.default.fileExists(atPath: state.detectionFile("j/t:1")))

        #expect(await pipeline.release(target: "j/t:1", labels: ["job": "j", "instance": "t:1"]) == 1)
        #expect(await pipeline.alerts().compactMap { $0.labels["instance"] } == ["t:2"])
        #expect(await pipeline.isCold(target: "j/t:1"))
        #expect(await !pipeline.isCold(target: "j/t:2"))
        // Long after its staleness would have resolved it: nothing is told of t:1.
        try await Task.sleep(for: .milliseconds(1100))
        var later = try batch("t:2", 10)
        later.time = later.time.advanced(bySeconds: 900)
        later.samples = later.samples.map { Sample(labels: $0.labels, value: $0.value, timestamp: later.time) }
        await pipeline.ingest(later)
        await pipeline.flush()
        let after = try told()
        #expect(!after.contains("resolved t:1") && after.contains("firing t:2"), "\(after)")
        await notifier.shutdown()
    }
}
