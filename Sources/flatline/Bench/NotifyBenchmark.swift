import ArgumentParser
import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineNotify
import FlatlineScrape
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// Routing and delivery throughput: alerts through a tree of 100 routes into aggregation groups,
/// and notifications committed to the outbox (fsync included) and delivered to a local HTTP
/// receiver.
struct NotifyBenchmark {
    struct Result {
        var routedPerSecond: Double
        var routes: Int
        var alerts: Int
        var groups: Int
        var notificationsPerFlush: Int
        var commitPerSecond: Double
        var deliveredPerSecond: Double
        var notifications: Int
        var p50: Double
        var p99: Double
    }

    let quick: Bool
    let directory: String

    static func tree() throws -> RoutingTree {
        var yaml = "route:\n  receiver: default\n  group_by: [alertname, team]\n  routes:\n"
        for i in 0..<99 {
            if i % 10 == 0 {
                yaml += "    - {matchers: ['service=~\"svc-\(i)[0-9]*\"'], receiver: default, continue: true}\n"
            } else {
                yaml += "    - {matchers: ['team=\"team-\(i)\"', 'severity!=\"info\"'], receiver: default}\n"
            }
        }
        yaml += "receivers: [{name: default, file_configs: [{path: '-'}]}]\n"
        guard let alerting = try Configuration.parse(yaml, file: "bench.yml").alerting else {
            throw CommandFailure("bench routing tree has no route")
        }
        return RoutingTree(alerting.route)
    }

    func run(progress: (String) -> Void) async throws -> Result {
        // Routing: alerts into groups, then one flush of every group.
        let tree = try Self.tree()
        let count = quick ? 20_000 : 200_000
        var rng = SplitMix64(seed: 11)
        let base = Timestamp(milliseconds: 1_767_225_600_000)
        var alerts: [Alert] = []
        alerts.reserveCapacity(count)
        for i in 0..<count {
            let labels = [
                "alertname": "Alert\(i % 20)", "team": "team-\(Int(rng.next() % 120))",
                "service": "svc-\(Int(rng.next() % 1000))", "severity": i % 7 == 0 ? "info" : "warning",
                "instance": "n\(i % 50)",
            ]
            alerts.append(
                Alert(
                    fingerprint: AlertFingerprint(labels: labels),
                    labels: labels,
                    annotations: ["summary": "s"],
                    state: .firing,
                    timing: AlertTiming(),
                    activeSince: base,
                    firedAt: base,
                    lastActive: base,
                    lastSeen: base
                )
            )
        }
        progress("routing")
        var dispatcher = Dispatcher(tree: tree)
        let start = ContinuousClock.now
        for alert in alerts { dispatcher.update(alert, at: base) }
        let notifications = dispatcher.flush(at: base.advanced(bySeconds: 30))
        let routed = ContinuousClock.now - start
        let routedSeconds = Double(routed.components.seconds) + Double(routed.components.attoseconds) / 1e18

        // Delivery: an HTTP receiver on 127.0.0.1 that accepts everything.
        let accepted = Atomic<Int>(0)
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            _ = try await request.body.collect(upTo: 1 << 20)
            accepted.add(1, ordering: .relaxed)
            return Response(status: .ok)
        }
        let port = Mutex<Int?>(nil)
        let logger = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } },
            logger: logger
        )
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let server = Task { try await group.run() }
        defer { server.cancel() }
        while port.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(10)) }
        let yaml = """
            route: {receiver: hook, group_by: [group]}
            receivers: [{name: hook, webhook_configs: [{url: "http://127.0.0.1:\(port.withLock { $0 } ?? 0)/hook"}]}]
            """
        guard let alerting = try Configuration.parse(yaml, file: "bench.yml").alerting else {
            throw CommandFailure("bench receiver has no route")
        }
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let outbox = try Outbox(path: directory + "/outbox.sqlite")
        let notifier = try Notifier(settings: alerting, outbox: outbox, externalURL: "http://bench", logger: logger)
        let total = quick ? 2_000 : 20_000
        let batches = stride(from: 0, to: total, by: 500).map { from in
            (from..<min(total, from + 500)).map { i -> GroupNotification in
                var alert = alerts[i % alerts.count]
                alert.labels["group"] = "g\(i % 2000)"
                return GroupNotification(
                    receiver: "hook",
                    groupKey: "{}:{group=\"g\(i % 2000)\"}",
                    groupLabels: ["group": "g\(i % 2000)"],
                    alerts: [alert],
                    time: base.advanced(bySeconds: Double(i))
                )
            }
        }
        progress("delivery")
        let tree2 = RoutingTree(alerting.route)
        let deliveryStart = ContinuousClock.now
        let courier = Task { await notifier.courier.run() }
        var committing = Duration.zero
        for batch in batches {
            let t = ContinuousClock.now
            try notifier.submit(batch, tree: tree2, now: Date().timeIntervalSince1970)
            committing += ContinuousClock.now - t
        }
        while try accepted.load(ordering: .relaxed) < total || outbox.pendingCount() > 0 {
            try await Task.sleep(for: .milliseconds(5))
        }
        let delivered = ContinuousClock.now - deliveryStart
        courier.cancel()
        await courier.value
        await notifier.shutdown()
        await group.triggerGracefulShutdown()
        try? FileManager.default.removeItem(atPath: directory)
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
        let latencies = notifier.courier.stats.snapshot.latencies.sorted()
        func quantile(_ q: Double) -> Double {
            latencies.isEmpty ? .nan : latencies[min(latencies.count - 1, Int(Double(latencies.count) * q))]
        }
        return Result(
            routedPerSecond: Double(count) / routedSeconds,
            routes: tree.routes.count,
            alerts: count,
            groups: dispatcher.groupCount,
            notificationsPerFlush: notifications.count,
            commitPerSecond: Double(total) / seconds(committing),
            deliveredPerSecond: Double(total) / seconds(delivered),
            notifications: total,
            p50: quantile(0.5),
            p99: quantile(0.99)
        )
    }
}
