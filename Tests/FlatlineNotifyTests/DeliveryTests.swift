import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineNATS
import FlatlineTestSupport
import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import Synchronization
import Testing

@testable import FlatlineNotify

/// Delivery through the durable outbox to a real HTTP receiver on 127.0.0.1: failures are
/// retried with the same idempotency key until accepted, 429's Retry-After is honoured, other
/// 4xx are recorded and not retried, old notifications are given up and recorded, groups keep
/// their order, and the signature verifies with Python's hmac.
@Suite("Delivery")
struct DeliveryTests {
    /// What the test receiver saw: every request, in arrival order.
    final class Seen: Sendable {
        struct Request: Sendable {
            var key: String
            var body: Data
            var signature: String?
            var time: ContinuousClock.Instant
            var answered: Int
        }

        let requests = Mutex<[Request]>([])
        /// Answers to give, in order; then 200.
        let script: Mutex<[(Int, String?)]>

        init(_ script: [(Int, String?)]) {
            self.script = Mutex(script)
        }

        var all: [Request] { requests.withLock { $0 } }
        var accepted: [Request] { all.filter { (200..<300).contains($0.answered) } }
    }

    static func router(_ seen: Seen) -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let (status, retryAfter) = seen.script.withLock { $0.isEmpty ? (200, nil) : $0.removeFirst() }
            seen.requests.withLock {
                $0.append(
                    Seen.Request(
                        key: request.headers.first { $0.name.canonicalName == "idempotency-key" }?.value ?? "",
                        body: Data(body.readableBytesView),
                        signature: request.headers.first { $0.name.canonicalName == "x-flatline-signature" }?.value,
                        time: .now,
                        answered: status
                    )
                )
            }
            var headers: HTTPFields = [:]
            if let retryAfter { headers[.retryAfter] = retryAfter }
            return Response(
                status: .init(code: status),
                headers: headers,
                body: .init(byteBuffer: ByteBuffer(string: status == 200 ? "" : "answer \(status)"))
            )
        }
        return router
    }

    static func at(_ seconds: Double) -> Timestamp {
        Timestamp(milliseconds: 1_767_225_600_000 + Int64(seconds * 1000))
    }

    static func notification(group: String, _ state: Alert.State, time: Double) -> GroupNotification {
        let labels = ["alertname": "ConsumerFreeze", "stream": group]
        let alert = Alert(
            fingerprint: AlertFingerprint(labels: labels),
            labels: labels,
            annotations: ["summary": "frozen"],
            state: state,
            timing: AlertTiming(),
            activeSince: at(0),
            firedAt: at(0),
            lastActive: at(time),
            lastSeen: at(time),
            resolvedAt: state == .resolved ? at(time) : nil
        )
        return GroupNotification(
            receiver: "hook",
            groupKey: "{}:{stream=\"\(group)\"}",
            groupLabels: ["stream": group],
            alerts: [alert],
            time: at(time)
        )
    }

    /// The routes and receivers of `yaml`, a configuration file in `directory` (relative paths
    /// resolve there).
    static func alerting(_ yaml: String, in directory: TestSupport.TemporaryDirectory) throws -> AlertingSettings {
        try #require(
            try Configuration.parse(yaml, file: directory.file("f.yml").path, directory: directory.url.path).alerting
        )
    }

    static func notifier(
        port: Int,
        directory: TestSupport.TemporaryDirectory,
        policy: RetryPolicy,
        extra: String = "",
        metrics: NotifyMetrics? = nil,
        timeout: String = "5s"
    ) throws -> (Notifier, RoutingTree) {
        let yaml = """
            route: {receiver: hook}
            receivers:
              - name: hook
                webhook_configs:
                  - url: http://127.0.0.1:\(port)/hook
                    timeout: \(timeout)
            \(extra)
            """
        let settings = try DeliveryTests.alerting(yaml, in: directory)
        let outbox = try Outbox(path: directory.file("outbox.sqlite").path)
        let notifier = try Notifier(
            settings: settings,
            outbox: outbox,
            externalURL: "http://flatline.test",
            policy: policy,
            metrics: metrics,
            logger: TestSupport.quietLogger
        )
        return (notifier, RoutingTree(settings.route))
    }

    /// Runs the courier until the outbox is empty or `seconds` pass.
    static func deliverAll(_ notifier: Notifier, within seconds: Double) async throws {
        await notifier.courier.drain(within: seconds)
    }

    static var fastPolicy: RetryPolicy {
        var policy = RetryPolicy()
        policy.initialDelay = 0.05
        policy.maxDelay = 0.2
        return policy
    }

    @Test("a receiver that cannot be set up names itself; the receivers made before it close their clients")
    func receiverThatCannotBeSetUp() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        // `hook` and `also` are set up first: in a debug build an HTTP client dropped without
        // being shut down traps, so this test crashes if the failure leaks them.
        let yaml = """
            route: {receiver: hook}
            receivers:
              - name: hook
                webhook_configs: [{url: "http://127.0.0.1:9/hook"}]
              - name: also
                alertmanager_configs: [{urls: ["http://127.0.0.1:9"]}]
              - name: broken
                webhook_configs:
                  - url: https://127.0.0.1:9/hook
                    http_config: {tls_config: {ca_file: missing-ca.pem}}
            """
        let settings = try DeliveryTests.alerting(yaml, in: directory)
        let outbox = try Outbox(path: directory.file("outbox.sqlite").path)
        #expect {
            _ = try Notifier(
                settings: settings,
                outbox: outbox,
                externalURL: "http://flatline.test",
                logger: TestSupport.quietLogger
            )
        } throws: { error in
            let text = "\(error)"
            return text.hasPrefix("receiver broken: ") && text.contains("ca_file")
                && text.contains("missing-ca.pem\" does not exist")
        }
        // Time for the background close, before the process could end with it pending.
        try await Task.sleep(for: .milliseconds(200))
    }

    @Test("500s, then a 429 with Retry-After, then 200: all delivered, in group order, one key each")
    func retries() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let seen = Seen([(500, nil), (500, nil), (503, nil), (429, "1")])
        let registry = PrometheusCollectorRegistry()
        try await TestHTTPServer.run(Self.router(seen)) { port in
            // Retry-After is honoured within [backoff, max delay]: 1 s fits under a 2 s maximum.
            var policy = Self.fastPolicy
            policy.maxDelay = 2
            let (notifier, tree) = try Self.notifier(
                port: port,
                directory: directory,
                policy: policy,
                metrics: NotifyMetrics(registry: registry)
            )
            defer { Task { await notifier.shutdown() } }
            let notes = [
                Self.notification(group: "ORDERS", .firing, time: 1),
                Self.notification(group: "PAYMENTS", .firing, time: 1),
                Self.notification(group: "ORDERS", .resolved, time: 2),
            ]
            #expect(try notifier.submit(notes, tree: tree, now: Date().timeIntervalSince1970) == 3)
            try await Self.deliverAll(notifier, within: 20)
            #expect(try notifier.outbox.pendingCount() == 0)
            #expect(try notifier.outbox.failed().isEmpty)
            notifier.courier.updateOutboxGauges()
        }
        // The metrics say the same, and promtool accepts their exposition.
        let exposition = registry.emitToString()
        let labels = #"{receiver="hook",integration="hook/webhook/0",outcome="#
        #expect(exposition.contains("flatline_notifications_total\(labels)\"delivered\"} 3"), "\(exposition)")
        #expect(exposition.contains("flatline_notifications_total\(labels)\"retried\"} 4"), "\(exposition)")
        #expect(exposition.contains("flatline_outbox_pending 0"))
        #expect(exposition.contains("flatline_outbox_oldest_age_seconds 0"))
        #expect(exposition.contains("flatline_notification_latency_seconds_count 3"))
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") {
            let file = directory.file("metrics.txt")
            try Data(exposition.utf8).write(to: file)
            let check = try TestSupport.run(
                URL(fileURLWithPath: "/bin/sh"),
                ["-c", "/usr/bin/promtool check metrics < \(file.path)"]
            )
            #expect(check.status == 0, "\(check.standardOutput)\(check.standardError)")
        }
        let accepted = seen.accepted
        #expect(accepted.count == 3, "\(seen.all.map { "\($0.key) \($0.answered)" })")
        // Every notification accepted once, under one key; retries reused it.
        #expect(Set(accepted.map(\.key)).count == 3)
        #expect(Set(seen.all.map(\.key)) == Set(accepted.map(\.key)))
        // A resolve never overtakes its firing.
        let orders = accepted.filter { String(decoding: $0.body, as: UTF8.self).contains("ORDERS") }
        #expect(
            orders.map { String(decoding: $0.body, as: UTF8.self).contains("\"status\":\"resolved\"") } == [
                false, true,
            ]
        )
        // The request after the 429 waited for Retry-After (1 s).
        let all = seen.all
        let after429 = try #require(all.firstIndex { $0.answered == 429 })
        let retriedKey = all[after429].key
        let next = try #require(all[(after429 + 1)...].first { $0.key == retriedKey })
        #expect(next.time - all[after429].time >= .milliseconds(950))
    }

    @Test("a 400 is recorded with the response and not retried; an old notification is given up")
    func rejectedAndExpired() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let seen = Seen([(400, nil)] + Array(repeating: (503, nil), count: 200))
        try await TestHTTPServer.run(Self.router(seen)) { port in
            var policy = Self.fastPolicy
            policy.maxAge = 1
            let (notifier, tree) = try Self.notifier(port: port, directory: directory, policy: policy)
            defer { Task { await notifier.shutdown() } }
            try notifier.submit(
                [Self.notification(group: "A", .firing, time: 1)],
                tree: tree,
                now: Date().timeIntervalSince1970
            )
            try await Self.deliverAll(notifier, within: 10)
            try notifier.submit(
                [Self.notification(group: "B", .firing, time: 2)],
                tree: tree,
                now: Date().timeIntervalSince1970
            )
            try await Self.deliverAll(notifier, within: 10)
            let failed = try notifier.outbox.failed()
            #expect(failed.count == 2)
            #expect(failed.first?.reason == "HTTP 400: answer 400")
            #expect(failed.first?.item.attempts == 1)
            #expect(failed.last?.reason.hasPrefix("gave up after") == true)
            #expect(failed.last?.reason.contains("HTTP 503") == true)
            let stats = notifier.courier.stats.snapshot.outcomes["hook/webhook/0"] ?? [:]
            #expect(stats["rejected"] == 1 && stats["expired"] == 1)
        }
        // The 400 was asked once only.
        let keys = seen.all.map(\.key)
        #expect(keys.filter { $0 == keys.first }.count == 1)
    }

    @Test(
        "Retry-After is clamped to [backoff, max delay]: 999999999 does not park a notification, 0 does not hammer",
        arguments: ["999999999", "0"]
    )
    func retryAfterClamped(_ retryAfter: String) async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let seen = Seen([(429, retryAfter), (429, retryAfter)])
        try await TestHTTPServer.run(Self.router(seen)) { port in
            var policy = Self.fastPolicy
            policy.initialDelay = 0.3
            policy.multiplier = 1
            policy.maxDelay = 0.5
            policy.jitter = 0
            let (notifier, tree) = try Self.notifier(port: port, directory: directory, policy: policy)
            defer { Task { await notifier.shutdown() } }
            try notifier.submit(
                [Self.notification(group: "A", .firing, time: 1)],
                tree: tree,
                now: Date().timeIntervalSince1970
            )
            try await Self.deliverAll(notifier, within: 10)
            #expect(try notifier.outbox.pendingCount() == 0)
        }
        let all = seen.all
        #expect(all.count == 3 && seen.accepted.count == 1)
        for k in 1..<all.count {
            let gap = all[k].time - all[k - 1].time
            #expect(gap >= .milliseconds(280), "\(gap)")
            #expect(gap < .seconds(3), "\(gap)")
        }
    }

    @Test("a notification older than max_age is given up even while its next attempt lies far ahead")
    func expiryWithoutAttempt() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let seen = Seen([(429, "3600")])
        try await TestHTTPServer.run(Self.router(seen)) { port in
            var policy = Self.fastPolicy
            policy.maxDelay = 3600
            policy.maxAge = 1
            let (notifier, tree) = try Self.notifier(port: port, directory: directory, policy: policy)
            defer { Task { await notifier.shutdown() } }
            try notifier.submit(
                [Self.notification(group: "A", .firing, time: 1)],
                tree: tree,
                now: Date().timeIntervalSince1970
            )
            try await Self.deliverAll(notifier, within: 5)
            #expect(try notifier.outbox.pendingCount() == 0)
            let failed = try notifier.outbox.failed()
            #expect(failed.count == 1)
            #expect(failed.first?.reason.contains("HTTP 429") == true, "\(failed)")
        }
        #expect(seen.all.count == 1)
    }

    @Test("a receiver that answers its headers and stalls its body holds one group for its timeout, not the others")
    func stalledAnswer() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let attempts = Mutex<[String: Int]>([:])
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            let body = String(buffer: try await request.body.collect(upTo: 1 << 20))
            let group = body.contains("STUCK") ? "STUCK" : "OK"
            attempts.withLock { $0[group, default: 0] += 1 }
            guard group == "STUCK" else { return Response(status: .ok) }
            return Response(
                status: .ok,
                body: ResponseBody { writer in
                    try await writer.write(ByteBuffer(string: "working"))
                    try await Task.sleep(for: .seconds(30))
                    try await writer.finish(nil)
                }
            )
        }
        let started = ContinuousClock.now
        try await TestHTTPServer.run(router) { port in
            let (notifier, tree) = try Self.notifier(
                port: port,
                directory: directory,
                policy: Self.fastPolicy,
                timeout: "1s"
            )
            defer { Task { await notifier.shutdown() } }
            let now = Date().timeIntervalSince1970
            try notifier.submit([Self.notification(group: "STUCK", .firing, time: 1)], tree: tree, now: now)
            try notifier.submit([Self.notification(group: "OK", .firing, time: 1)], tree: tree, now: now)
            try await Self.deliverAll(notifier, within: 4)
            // The other group was delivered; the stalled one was given up on each time at its
            // timeout, retried, and is still waiting: not lost, not holding anything.
            let pending = try notifier.outbox.pending()
            #expect(pending.count == 1 && String(decoding: pending[0].body, as: UTF8.self).contains("STUCK"))
            #expect(pending.first?.lastError?.contains("timed out") == true, "\(pending.first?.lastError ?? "")")
        }
        #expect(attempts.withLock { $0["OK"] } == 1)
        #expect((attempts.withLock { $0["STUCK"] } ?? 0) >= 2)
        #expect(ContinuousClock.now - started < .seconds(15))
    }

    @Test("a reload that removes a receiver moves its waiting notifications to failed, with the reason")
    func removedReceiver() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let port = try NATSServerProcess.freePort()
        // Notifications committed for a receiver "hook" that nobody answers.
        let (first, tree) = try Self.notifier(port: port, directory: directory, policy: Self.fastPolicy)
        try first.submit(
            [Self.notification(group: "A", .firing, time: 1)],
            tree: tree,
            now: Date().timeIntervalSince1970
        )
        #expect(try first.outbox.pendingCount() == 1)
        await first.shutdown()
        // The next configuration has no "hook" any more.
        let yaml = """
            route: {receiver: other}
            receivers:
              - name: other
                webhook_configs: [{url: "http://127.0.0.1:\(port)/other"}]
            """
        let settings = try DeliveryTests.alerting(yaml, in: directory)
        let second = try Notifier(
            settings: settings,
            outbox: try Outbox(path: directory.file("outbox.sqlite").path),
            externalURL: "http://flatline.test",
            logger: TestSupport.quietLogger
        )
        defer { Task { await second.shutdown() } }
        #expect(try second.outbox.pendingCount() == 0)
        let failed = try second.outbox.failed()
        #expect(failed.count == 1)
        #expect(failed.first?.reason.contains("hook/webhook/0 is no longer in the configuration") == true)
    }

    @Test("X-Flatline-Signature verifies with Python's hmac, and a changed body does not")
    func signature() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let secret = try directory.write("hook.secret", "s3cr3t-value\n")
        let seen = Seen([])
        try await TestHTTPServer.run(Self.router(seen)) { port in
            let (notifier, tree) = try Self.notifier(
                port: port,
                directory: directory,
                policy: Self.fastPolicy,
                extra: "        signature_secret_file: \(secret.lastPathComponent)"
            )
            defer { Task { await notifier.shutdown() } }
            try notifier.submit(
                [Self.notification(group: "A", .firing, time: 1)],
                tree: tree,
                now: Date().timeIntervalSince1970
            )
            try await Self.deliverAll(notifier, within: 10)
        }
        let request = try #require(seen.accepted.first)
        let header = try #require(request.signature)
        let body = directory.file("body.json")
        try request.body.write(to: body)
        let script = """
            import hmac, hashlib, sys, time
            header, secret, body = sys.argv[1], open(sys.argv[2]).read().strip().encode(), open(sys.argv[3], "rb").read()
            parts = dict(p.split("=", 1) for p in header.split(","))
            t = parts["t"]
            assert abs(time.time() - int(t)) < 300, "stale timestamp"
            for candidate, name in ((body, "body"), (body + b" ", "changed")):
                mac = hmac.new(secret, t.encode() + b"." + candidate, hashlib.sha256).hexdigest()
                print(name, hmac.compare_digest(mac, parts["v1"]))
            """
        let python = try TestSupport.run(
            URL(fileURLWithPath: "/usr/bin/python3"),
            ["-c", script, header, secret.path, body.path]
        )
        #expect(python.status == 0, "\(python.standardError)")
        #expect(python.standardOutput == "body True\nchanged False\n")
    }

    @Test("Retry-After as seconds or an HTTP date; statuses classified as Alertmanager users want")
    func classification() {
        #expect(WebhookIntegration.retryAfter("7") == 7)
        let date = Date().addingTimeInterval(120)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let seconds = WebhookIntegration.retryAfter(formatter.string(from: date)) ?? 0
        #expect(seconds > 110 && seconds <= 120)
        #expect(WebhookIntegration.retryAfter("soon") == nil)
        #expect(WebhookIntegration.classify(status: 204, retryAfter: nil, detail: "") == .delivered)
        #expect(WebhookIntegration.classify(status: 429, retryAfter: "3", detail: "x") == .retry(reason: "x", after: 3))
        #expect(
            WebhookIntegration.classify(status: 502, retryAfter: nil, detail: "x") == .retry(reason: "x", after: nil)
        )
        #expect(WebhookIntegration.classify(status: 404, retryAfter: nil, detail: "x") == .rejected(reason: "x"))
        // Backoff doubles up to the maximum.
        let policy = RetryPolicy()
        #expect([1, 2, 3, 12].map(policy.delay(afterAttempts:)) == [1, 2, 4, 300])
    }
}

/// The alertmanager integration against a real Alertmanager 0.25 on 127.0.0.1: the pushed alert
/// is taken, keeps its fingerprint, and is forwarded to Alertmanager's own webhook receiver;
/// the resolve follows.
@Suite("Alertmanager push", .serialized)
struct AlertmanagerPushTests {
    @Test("a real Alertmanager receives the alert, forwards it, then the resolve")
    func push() async throws {
        let seen = DeliveryTests.Seen([])
        try await TestHTTPServer.run(DeliveryTests.router(seen)) { hookPort in
            let alertmanager = try AlertmanagerProcess(
                configuration: """
                    route: {receiver: hook, group_by: [alertname], group_wait: 1s, group_interval: 1s, repeat_interval: 1h}
                    receivers:
                      - name: hook
                        webhook_configs: [{url: "http://127.0.0.1:\(hookPort)/hook", send_resolved: true}]
                    """
            )
            defer { alertmanager.stop() }
            let directory = try TestSupport.TemporaryDirectory()
            defer { directory.remove() }
            let yaml = """
                route: {receiver: am, group_wait: 0s, group_interval: 1m, repeat_interval: 1m}
                receivers:
                  - name: am
                    alertmanager_configs: [{urls: ["http://127.0.0.1:\(alertmanager.port)"]}]
                """
            let settings = try #require(try Configuration.parse(yaml, file: "f.yml").alerting)
            let notifier = try Notifier(
                settings: settings,
                outbox: try Outbox(path: directory.file("outbox.sqlite").path),
                externalURL: "http://flatline.test",
                logger: TestSupport.quietLogger
            )
            let tree = RoutingTree(settings.route)
            let now = Date().timeIntervalSince1970
            let time = Timestamp(milliseconds: Int64(now * 1000))
            var firing = DeliveryTests.notification(group: "ORDERS", .firing, time: 0)
            firing.time = time
            firing.receiver = "am"
            firing.alerts[0].firedAt = time.advanced(bySeconds: -30)
            try notifier.submit([firing], tree: tree, now: now)
            try await DeliveryTests.deliverAll(notifier, within: 10)
            #expect(notifier.courier.stats.snapshot.outcomes["am/alertmanager/0/0"]?["delivered"] == 1)
            // Alertmanager holds it, under the fingerprint Flatline computed.
            let held = try alertmanager.alerts()
            #expect(held.count == 1)
            #expect(held.first?["fingerprint"] as? String == firing.alerts[0].fingerprint.description)
            // ...and forwards it to its webhook within its group_wait.
            let deadline = ContinuousClock.now + .seconds(15)
            while !seen.all.contains(where: {
                String(decoding: $0.body, as: UTF8.self).contains("\"status\":\"firing\"")
            }),
                ContinuousClock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(100))
            }
            var resolved = firing
            resolved.alerts[0].state = .resolved
            resolved.alerts[0].resolvedAt = Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000))
            resolved.time = resolved.alerts[0].resolvedAt ?? time
            try notifier.submit([resolved], tree: tree, now: Date().timeIntervalSince1970)
            try await DeliveryTests.deliverAll(notifier, within: 10)
            while !seen.all.contains(where: {
                String(decoding: $0.body, as: UTF8.self).contains("\"status\":\"resolved\"")
            }),
                ContinuousClock.now < deadline + .seconds(10)
            {
                try await Task.sleep(for: .milliseconds(100))
            }
            await notifier.shutdown()
        }
        let bodies = seen.all.map { String(decoding: $0.body, as: UTF8.self) }
        #expect(
            bodies.contains { $0.contains("\"status\":\"firing\"") && $0.contains("\"stream\":\"ORDERS\"") },
            "\(bodies)"
        )
        #expect(
            bodies.contains { $0.contains("\"status\":\"firing\"") && $0.contains("\"stream\":\"ORDERS\"") },
            "\(bodies)"
        )
        #expect(bodies.contains { $0.contains("\"status\":\"resolved\"") }, "\(bodies)")
    }
}

/// The NATS and file integrations: the webhook payload on a subject of a real nats-server, and
/// as an NDJSON line in a file.
@Suite("NATS and file receivers", .serialized)
struct SubjectAndFileTests {
    @Test("the payload arrives on the subject and in the file, once each")
    func natsAndFile() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let yaml = """
            route: {receiver: bus}
            receivers:
              - name: bus
                nats_configs: [{url: "nats://127.0.0.1:\(server.port)", subject: alerts.nats}]
                file_configs: [{path: alerts.ndjson}]
            """
        let settings = try DeliveryTests.alerting(yaml, in: directory)
        let notifier = try Notifier(
            settings: settings,
            outbox: try Outbox(path: directory.file("outbox.sqlite").path),
            externalURL: "http://flatline.test",
            logger: TestSupport.quietLogger
        )
        let payload = try await TestSupport.withNATSClient("nats://127.0.0.1:\(server.port)") { client in
            let subscription = try client.subscribe(to: "alerts.nats")
            try await client.flush()
            var note = DeliveryTests.notification(group: "ORDERS", .firing, time: 1)
            note.receiver = "bus"
            try notifier.submit([note], tree: RoutingTree(settings.route), now: Date().timeIntervalSince1970)
            try await DeliveryTests.deliverAll(notifier, within: 15)
            var iterator = subscription.makeAsyncIterator()
            let message = await iterator.next()
            return message.map { String(buffer: $0.payload) }
        }
        await notifier.shutdown()
        let text = try #require(payload)
        let message = try JSONDecoder().decode(WebhookMessage.self, from: Data(text.utf8))
        #expect(message.receiver == "bus" && message.alerts.first?.labels["stream"] == "ORDERS")
        let lines = try String(contentsOf: directory.file("alerts.ndjson"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1)
        #expect(try JSONDecoder().decode(WebhookMessage.self, from: Data(lines[0].utf8)) == message)
    }
}

/// Re-sending to an Alertmanager that lost its memory (a restart): the firing alert is back, the
/// resolved one is told as resolved.
@Suite("Alertmanager re-send", .serialized)
struct AlertmanagerResendTests {
    @Test("resendToAlertmanagers gives a fresh Alertmanager the firing alert again, not the resolved one")
    func resend() async throws {
        let alertmanager = try AlertmanagerProcess(
            configuration: "route: {receiver: none}\nreceivers: [{name: none}]\n"
        )
        defer { alertmanager.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let yaml = """
            route: {receiver: am}
            receivers: [{name: am, alertmanager_configs: [{urls: ["http://127.0.0.1:\(alertmanager.port)"]}]}]
            """
        let settings = try #require(try Configuration.parse(yaml, file: "f.yml").alerting)
        let notifier = try Notifier(
            settings: settings,
            outbox: try Outbox(path: directory.file("outbox.sqlite").path),
            externalURL: "http://flatline.test",
            logger: TestSupport.quietLogger
        )
        let now = Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000))
        var firing = DeliveryTests.notification(group: "ORDERS", .firing, time: 0).alerts[0]
        firing.firedAt = now.advanced(bySeconds: -120)
        var resolved = DeliveryTests.notification(group: "PAYMENTS", .resolved, time: 0).alerts[0]
        resolved.firedAt = now.advanced(bySeconds: -300)
        resolved.resolvedAt = now.advanced(bySeconds: -60)
        let committed = try notifier.resendToAlertmanagers(
            [firing, resolved],
            tree: RoutingTree(settings.route),
            at: now
        )
        #expect(committed == 1)
        try await DeliveryTests.deliverAll(notifier, within: 10)
        await notifier.shutdown()
        let held = try alertmanager.alerts()
        #expect(held.count == 1, "\(held)")
        #expect(held.first?["fingerprint"] as? String == firing.fingerprint.description)
    }

    @Test("a NATS receiver's user and password never reach the outbox's last error")
    func redactedReceiverURL() async throws {
        let port = try NATSServerProcess.freePort()
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let yaml = """
            route: {receiver: bus}
            receivers:
              - name: bus
                nats_configs: [{url: "nats://alice:s3cret@127.0.0.1:\(port)", subject: alerts.nats}]
            """
        let settings = try DeliveryTests.alerting(yaml, in: directory)
        let notifier = try Notifier(
            settings: settings,
            outbox: try Outbox(path: directory.file("outbox.sqlite").path),
            externalURL: "http://flatline.test",
            logger: TestSupport.quietLogger
        )
        var note = DeliveryTests.notification(group: "ORDERS", .firing, time: 1)
        note.receiver = "bus"
        try notifier.submit([note], tree: RoutingTree(settings.route), now: Date().timeIntervalSince1970)
        try await DeliveryTests.deliverAll(notifier, within: 3)
        await notifier.shutdown()
        let pending = try notifier.outbox.pending()
        let error = try #require(pending.first?.lastError)
        #expect(!error.contains("s3cret") && error.contains("<secret>@127.0.0.1"), "\(error)")
    }
}
