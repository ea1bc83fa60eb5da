import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineNotify

/// Routing as Alertmanager does it: the tree, group keys, timers on a clock, inhibition,
/// silences; the configuration keys; the webhook payload against a real Alertmanager's.
@Suite("Routing")
struct RoutingTests {
    static func at(_ seconds: Double) -> Timestamp {
        Timestamp(milliseconds: 1_767_225_600_000 + Int64(seconds * 1000))
    }

    static func configuration(_ yaml: String) throws -> AlertingSettings {
        try #require(try Configuration.parse(yaml, file: "flatline.yml").alerting)
    }

    static let treeYAML = """
        route:
          receiver: default
          group_by: [alertname]
          group_wait: 10s
          group_interval: 1m
          repeat_interval: 1h
          routes:
            - matchers: ['severity="critical"']
              receiver: pager
              group_by: [alertname, instance]
              continue: true
            - matchers: ['team=~"db|storage"', 'env!="dev"']
              receiver: db
              routes:
                - matchers: ['alertname!~"Info.*"']
                  receiver: db-urgent
            - matchers: ['severity="critical"']
              receiver: audit
              group_by: ['...']
        receivers:
          - {name: default, file_configs: [{path: '-'}]}
          - {name: pager, webhook_configs: [{url: 'http://127.0.0.1:1/hook'}]}
          - {name: db, webhook_configs: [{url: 'http://127.0.0.1:1/db'}]}
          - {name: db-urgent, webhook_configs: [{url: 'http://127.0.0.1:1/dbu'}]}
          - {name: audit, file_configs: [{path: audit.ndjson}]}
        """

    @Test(
        "an alert reaches the receivers Alertmanager would send it to",
        arguments: [
            (["alertname": "A", "severity": "warning"], ["default"]),
            // critical: pager, and with `continue` the later critical route too.
            (["alertname": "A", "severity": "critical"], ["pager", "audit"]),
            // The first matching child wins; its own child takes it when it matches.
            (["alertname": "A", "team": "db"], ["db-urgent"]),
            (["alertname": "InfoDiskSpace", "team": "storage"], ["db"]),
            (["alertname": "A", "team": "db", "env": "dev"], ["default"]),
            (["alertname": "A", "team": "dba"], ["default"]),  // anchored regex
            (["alertname": "A", "team": "db", "severity": "critical"], ["pager", "db-urgent"]),
        ] as [([String: String], [String])]
    )
    func routes(labels: [String: String], receivers: [String]) throws {
        let tree = RoutingTree(try Self.configuration(Self.treeYAML).route)
        #expect(tree.match(labels).map(\.receiver) == receivers)
    }

    @Test("options are inherited; route keys and group keys are Alertmanager's")
    func keys() throws {
        let tree = RoutingTree(try Self.configuration(Self.treeYAML).route)
        let urgent = try #require(tree.routes.first { $0.receiver == "db-urgent" })
        #expect(urgent.key == "{}/{team=~\"db|storage\",env!=\"dev\"}/{alertname!~\"Info.*\"}")
        #expect(urgent.groupWait == 10 && urgent.groupInterval == 60 && urgent.repeatInterval == 3600)
        #expect(urgent.groupBy == .labels(["alertname"]))
        let audit = try #require(tree.routes.first { $0.receiver == "audit" })
        #expect(audit.groupBy == .everything)
        // Alertmanager's defaults when nothing is set.
        let bare = RoutingTree(RouteSettings(receiver: "x")).routes[0]
        #expect(bare.groupWait == 30 && bare.groupInterval == 300 && bare.repeatInterval == 14_400)

        var dispatcher = Dispatcher(tree: RoutingTree(try Self.configuration(Self.treeYAML).route))
        dispatcher.update(Self.alert(["alertname": "A", "severity": "warning", "x": "1"], firedAt: 0), at: Self.at(0))
        let note = try #require(dispatcher.flush(at: Self.at(10)).first)
        #expect(note.groupKey == "{}:{alertname=\"A\"}")
        #expect(note.groupLabels == ["alertname": "A"])
    }

    static func alert(_ labels: [String: String], firedAt: Double, resolvedAt: Double? = nil) -> Alert {
        var alert = Alert(
            fingerprint: AlertFingerprint(labels: labels),
            labels: labels,
            annotations: ["summary": "s"],
            state: resolvedAt == nil ? .firing : .resolved,
            timing: AlertTiming(),
            activeSince: at(firedAt),
            firedAt: at(firedAt),
            lastActive: at(resolvedAt ?? firedAt),
            lastSeen: at(resolvedAt ?? firedAt)
        )
        alert.resolvedAt = resolvedAt.map(at)
        return alert
    }

    /// Feeds (second, alert) updates and flushes every second; returns "second:receiver:status:n".
    static func timeline(_ yaml: String, _ updates: [(Double, Alert)], until: Double, silences: [Silence] = [])
        throws -> [String]
    {
        let settings = try configuration(yaml)
        var dispatcher = Dispatcher(tree: RoutingTree(settings.route), inhibitRules: settings.inhibitRules)
        dispatcher.silences = silences
        var out: [String] = []
        var pending = updates
        var t = 0.0
        while t <= until {
            while let next = pending.first, next.0 <= t {
                dispatcher.update(next.1, at: at(next.0))
                pending.removeFirst()
            }
            for note in dispatcher.flush(at: at(t)) {
                let names = note.alerts.map { ($0.labels["n"] ?? "?") + ($0.state == .resolved ? "r" : "") }
                out.append("\(Int(t)):\(note.receiver):\(note.status.rawValue):\(names.joined(separator: ","))")
            }
            t += 1
        }
        return out
    }

    static let timerYAML = """
        route:
          receiver: r
          group_by: [g]
          group_wait: 10s
          group_interval: 30s
          repeat_interval: 2m
        receivers: [{name: r, file_configs: [{path: '-'}]}]
        """

    @Test("group_wait batches, group_interval spaces changes, repeat_interval repeats, resolves are told")
    func timers() throws {
        let a = ["alertname": "X", "g": "1", "n": "a"]
        let b = ["alertname": "Y", "g": "1", "n": "b"]
        let lines = try Self.timeline(
            Self.timerYAML,
            [
                (0, Self.alert(a, firedAt: 0)),
                (5, Self.alert(b, firedAt: 5)),  // same group, within group_wait: one message
                (20, Self.alert(b, firedAt: 5, resolvedAt: 20)),  // told at the next interval (40)
                (90, Self.alert(a, firedAt: 0, resolvedAt: 90)),  // all resolved: told at the 100 s tick
            ],
            until: 300
        )
        #expect(lines == ["10:r:firing:a,b", "40:r:firing:a,br", "100:r:resolved:ar"], "\(lines)")

        // Unchanged for repeat_interval (2 min, checked on 30 s ticks): sent again.
        let repeated = try Self.timeline(Self.timerYAML, [(0, Self.alert(a, firedAt: 0))], until: 260)
        #expect(repeated == ["10:r:firing:a", "130:r:firing:a", "250:r:firing:a"], "\(repeated)")

        // Fired and resolved within group_wait: nothing at all, as in Alertmanager.
        let blip = try Self.timeline(
            Self.timerYAML,
            [(0, Self.alert(a, firedAt: 0)), (4, Self.alert(a, firedAt: 0, resolvedAt: 4))],
            until: 100
        )
        #expect(blip.isEmpty, "\(blip)")

        // A resolve whose firing was never routed here forms no group.
        let orphan = try Self.timeline(Self.timerYAML, [(0, Self.alert(a, firedAt: -50, resolvedAt: 0))], until: 60)
        #expect(orphan.isEmpty)
    }

    @Test("an alert older than group_wait (after a restart) is sent at once")
    func oldAlert() throws {
        let a = ["alertname": "X", "g": "1", "n": "a"]
        let lines = try Self.timeline(Self.timerYAML, [(0, Self.alert(a, firedAt: -600))], until: 20)
        #expect(lines == ["0:r:firing:a"])
    }

    @Test(
        "a restored notification log: what a group was told is not told again until repeat_interval; old entries are dropped"
    )
    func notificationLog() throws {
        let a = ["alertname": "X", "g": "1", "n": "a"]
        let b = ["alertname": "Y", "g": "1", "n": "b"]
        let settings = try Self.configuration(Self.timerYAML)
        var before = Dispatcher(tree: RoutingTree(settings.route))
        before.update(Self.alert(a, firedAt: 0), at: Self.at(0))
        #expect(before.flush(at: Self.at(10)).count == 1)
        let log = before.notificationLog
        #expect(log.values.map(\.firing) == [[AlertFingerprint(labels: a)]])
        // A restart at 60 s: the firing alert comes back, plus a new one of the same group.
        var after = Dispatcher(tree: RoutingTree(settings.route))
        after.restore(notificationLog: log, at: Self.at(60), maxAge: 3600)
        after.update(Self.alert(a, firedAt: 0), at: Self.at(60))
        #expect(after.flush(at: Self.at(60)).isEmpty)
        after.update(Self.alert(b, firedAt: 70), at: Self.at(70))
        let told = after.flush(at: Self.at(90))
        #expect(told.map { $0.alerts.map { $0.labels["n"] ?? "" } } == [["a", "b"]])
        // The group's sequence carries on: this is its second notification.
        #expect(told.map(\.sequence) == [2])
        // Unchanged since the restart: the repeat comes repeat_interval after what was told.
        var quiet = Dispatcher(tree: RoutingTree(settings.route))
        quiet.restore(notificationLog: log, at: Self.at(60), maxAge: 3600)
        quiet.update(Self.alert(a, firedAt: 0), at: Self.at(60))
        var times: [Int] = []
        for t in stride(from: 60, through: 200, by: 1) where !quiet.flush(at: Self.at(Double(t))).isEmpty {
            times.append(t)
        }
        #expect(times == [130], "\(times)")  // told at 10 s, repeated 2 minutes after
        // An entry older than maxAge is forgotten: the alert is told again.
        var stale = Dispatcher(tree: RoutingTree(settings.route))
        stale.restore(notificationLog: log, at: Self.at(7200), maxAge: 3600)
        stale.update(Self.alert(a, firedAt: 0), at: Self.at(7200))
        #expect(stale.flush(at: Self.at(7200)).count == 1)
    }

    @Test(
        "a resolve that came just before a restart is told after it; resolves told already, or never told firing, are not"
    )
    func resolveAcrossRestart() throws {
        let a = ["alertname": "X", "g": "1", "n": "a"]
        let b = ["alertname": "X", "g": "1", "n": "b"]
        let c = ["alertname": "X", "g": "2", "n": "c"]
        let settings = try Self.configuration(Self.timerYAML)
        var before = Dispatcher(tree: RoutingTree(settings.route))
        before.update(Self.alert(a, firedAt: 0), at: Self.at(0))
        before.update(Self.alert(b, firedAt: 0), at: Self.at(0))
        #expect(before.flush(at: Self.at(10)).count == 1)
        // b resolves and is told; then a resolves, and the daemon stops before the next flush.
        before.update(Self.alert(b, firedAt: 0, resolvedAt: 20), at: Self.at(20))
        #expect(before.flush(at: Self.at(40)).map { $0.alerts.map(\.state) } == [[.firing, .resolved]])
        before.update(Self.alert(a, firedAt: 0, resolvedAt: 50), at: Self.at(50))
        let log = before.notificationLog
        // After the restart: a's resolve is told, once; b's (told) and c's (never told firing) are not.
        var after = Dispatcher(tree: RoutingTree(settings.route))
        after.restore(notificationLog: log, at: Self.at(60), maxAge: 3600)
        after.readmit(
            firing: [],
            resolved: [
                Self.alert(a, firedAt: 0, resolvedAt: 50), Self.alert(b, firedAt: 0, resolvedAt: 20),
                Self.alert(c, firedAt: 5, resolvedAt: 8),
            ],
            at: Self.at(60)
        )
        var told: [[String]] = []
        for t in stride(from: 60, through: 400, by: 1) {
            for note in after.flush(at: Self.at(Double(t))) {
                told.append(note.alerts.map { "\($0.labels["n"] ?? ""):\($0.state)" })
            }
        }
        #expect(told == [["a:resolved"]], "\(told)")
    }

    @Test(
        "idempotency keys: the same notification made again after a crash keeps its key; the next one, a repeat or a re-formed group, gets another"
    )
    func idempotencyKeys() {
        let a = ["alertname": "X", "g": "1", "n": "a"]
        func note(_ sequence: Int, at time: Double, firedAt: Double = 0) -> GroupNotification {
            GroupNotification(
                receiver: "r",
                groupKey: "{}:{g=\"1\"}",
                groupLabels: ["g": "1"],
                alerts: [Self.alert(a, firedAt: firedAt)],
                time: Self.at(time),
                sequence: sequence
            )
        }
        let key = { (n: GroupNotification) in Notifier.idempotencyKey("webhook/r/0", n) }
        // Made at 10 s, lost with the process before the log was written, made again at 70 s.
        #expect(key(note(1, at: 10)) == key(note(1, at: 70)))
        // The repeat two minutes later, and the group formed again by a later firing.
        #expect(key(note(2, at: 130)) != key(note(1, at: 10)))
        #expect(key(note(1, at: 4000, firedAt: 3990)) != key(note(1, at: 10)))
        // Another integration of the same receiver.
        #expect(Notifier.idempotencyKey("webhook/r/1", note(1, at: 10)) != key(note(1, at: 10)))
        // Re-sends outside a sequence are named by their time.
        #expect(key(note(0, at: 10)) != key(note(0, at: 70)))

        // Shared keys (a cluster): what is told, not where it stands in one replica's sequence or
        // when its alert began there, nor the order the replica lists the alerts in.
        let shared = { (n: GroupNotification) in Notifier.idempotencyKey("webhook/r/0", n, shared: true) }
        #expect(shared(note(1, at: 10)) == shared(note(3, at: 12, firedAt: 2)))
        #expect(shared(note(1, at: 10)) != key(note(1, at: 10)))
        var two = note(1, at: 10)
        two.alerts.append(Self.alert(["alertname": "X", "g": "1", "n": "b"], firedAt: 0))
        var reversed = two
        reversed.alerts.reverse()
        #expect(shared(two) == shared(reversed))
        #expect(shared(two) != shared(note(1, at: 10)))
        var resolved = note(1, at: 10)
        resolved.alerts[0].state = .resolved
        #expect(shared(resolved) != shared(note(1, at: 10)))
        #expect(Notifier.idempotencyKey("webhook/r/1", note(1, at: 10), shared: true) != shared(note(1, at: 10)))
        // Re-sends are still named by their time.
        #expect(shared(note(0, at: 10)) != shared(note(0, at: 70)))
    }

    @Test("inhibition: a critical alert mutes warnings of the same instance, not others")
    func inhibition() throws {
        let yaml = """
            route: {receiver: r, group_by: ['...'], group_wait: 0s, group_interval: 10s}
            receivers: [{name: r, file_configs: [{path: '-'}]}]
            inhibit_rules:
              - source_matchers: ['severity="critical"']
                target_matchers: ['severity="warning"']
                equal: [instance]
            """
        let source = ["alertname": "Down", "severity": "critical", "instance": "n1", "n": "down"]
        let muted = ["alertname": "Slow", "severity": "warning", "instance": "n1", "n": "slow1"]
        let other = ["alertname": "Slow", "severity": "warning", "instance": "n2", "n": "slow2"]
        let lines = try Self.timeline(
            yaml,
            [
                (0, Self.alert(source, firedAt: 0)), (0, Self.alert(muted, firedAt: 0)),
                (0, Self.alert(other, firedAt: 0)),
            ],
            until: 5
        )
        #expect(lines.sorted() == ["0:r:firing:down", "0:r:firing:slow2"], "\(lines)")
        // Once the source resolves, the target is no longer muted.
        let settings = try Self.configuration(yaml)
        var dispatcher = Dispatcher(tree: RoutingTree(settings.route), inhibitRules: settings.inhibitRules)
        dispatcher.update(Self.alert(source, firedAt: 0), at: Self.at(0))
        #expect(dispatcher.inhibitedBy(Self.alert(muted, firedAt: 0)) == AlertFingerprint(labels: source))
        dispatcher.update(Self.alert(source, firedAt: 0, resolvedAt: 5), at: Self.at(5))
        #expect(dispatcher.inhibitedBy(Self.alert(muted, firedAt: 0)) == nil)
    }

    @Test("silences mute matching alerts inside their time range only")
    func silences() throws {
        let yaml = """
            route: {receiver: r, group_by: ['...'], group_wait: 0s, group_interval: 10s, repeat_interval: 1h}
            receivers: [{name: r, file_configs: [{path: '-'}]}]
            """
        let a = ["alertname": "X", "stream": "ORDERS", "n": "a"]
        let silence = Silence(id: "s1", matchers: ["stream=~\"ORD.*\""], startsAt: Self.at(-1), endsAt: Self.at(25))
        let lines = try Self.timeline(yaml, [(0, Self.alert(a, firedAt: 0))], until: 40, silences: [silence])
        #expect(lines == ["30:r:firing:a"], "\(lines)")
    }

    @Test("an alert told before a silence is not told again when the silence ends, nor while it lasts")
    func silenceAfterTold() throws {
        let yaml = """
            route: {receiver: r, group_by: [stream], group_wait: 0s, group_interval: 10s, repeat_interval: 1h}
            receivers: [{name: r, file_configs: [{path: '-'}]}]
            """
        let a = ["alertname": "X", "stream": "ORDERS", "n": "a"]
        let b = ["alertname": "X", "stream": "ORDERS", "n": "b"]
        let silence = Silence(id: "s1", matchers: ["stream=~\"ORD.*\""], startsAt: Self.at(5), endsAt: Self.at(25))
        // a is told at 0; silenced from 5 to 25: nothing at 10 or 20, nothing again at 30.
        let told = try Self.timeline(yaml, [(0, Self.alert(a, firedAt: 0))], until: 60, silences: [silence])
        #expect(told == ["0:r:firing:a"], "\(told)")
        // A new alert of the group after the silence is told, with the one told before.
        let more = try Self.timeline(
            yaml,
            [(0, Self.alert(a, firedAt: 0)), (40, Self.alert(b, firedAt: 40))],
            until: 60,
            silences: [silence]
        )
        #expect(more == ["0:r:firing:a", "40:r:firing:a,b"], "\(more)")
        // Resolved while silenced: the receiver is not told (it was muted), as Alertmanager does.
        let resolved = try Self.timeline(
            yaml,
            [(0, Self.alert(a, firedAt: 0)), (12, Self.alert(a, firedAt: 0, resolvedAt: 12))],
            until: 60,
            silences: [silence]
        )
        #expect(resolved == ["0:r:firing:a"], "\(resolved)")
    }

    @Test(
        "bad routing configurations name the key and the reason",
        arguments: [
            ("route: {receiver: nobody}\nreceivers: [{name: r}]\n", "receiver \"nobody\" is not defined"),
            (
                "route:\n  receiver: r\n  routes:\n    - matchers: ['a=\"b\"']\n      receiver: hookz\nreceivers: [{name: r}]\n",
                "flatline.yml:5: route.routes[0].receiver: receiver \"hookz\" is not defined"
            ),
            ("route: {group_by: [a]}\n", "the root route needs a receiver"),
            ("route: {receiver: r, matchers: ['a=\"b\"']}\nreceivers: [{name: r}]\n", "must not have matchers"),
            ("route: {receiver: r}\nreceivers: [{name: r}, {name: r}]\n", "used by an earlier receiver"),
            (
                "route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'ftp://x'}]}]\n",
                "must be an http:// or https:// URL"
            ),
            (
                "route: {receiver: r, routes: [{matchers: ['a=~\"(\"']}]}\nreceivers: [{name: r}]\n",
                "not a regular expression"
            ),
            ("receivers: [{name: r}]\n", "receivers without a route"),
            (
                "route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'http://x/y', sendresolved: true}]}]\n",
                "unknown key"
            ),
        ]
    )
    func badConfigurations(yaml: String, reason: String) {
        #expect {
            _ = try Configuration.parse(yaml, file: "flatline.yml")
        } throws: { error in
            "\(error)".contains(reason)
        }
    }

    @Test("Alertmanager's own alertmanager.yml is read as it is")
    func alertmanagerConfiguration() throws {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/alertmanager", withExtension: "yml"))
        let settings = try Self.configuration(String(contentsOf: url, encoding: .utf8))
        #expect(settings.route.receiver == "nats-webhook")
        #expect(settings.route.groupBy == ["alertname", "cluster"])
        #expect(
            settings.route.groupWait == 1 && settings.route.groupInterval == 5 && settings.route.repeatInterval == 3600
        )
        let hook = try #require(settings.receivers.first?.webhooks.first)
        #expect(hook.url == "http://127.0.0.1:18080/hook" && hook.sendResolved && hook.maxAlerts == 0)
        let rule = try #require(settings.inhibitRules.first)
        #expect(rule.sourceMatchers.map(\.description) == ["alertname=\"NatsServerDown\"", "severity=\"critical\""])
        #expect(rule.equal == ["instance"])
    }

    @Test("the webhook body has the fields and values of a real Alertmanager 0.25 payload")
    func webhookPayload() throws {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/webhook-v4-example", withExtension: "json"))
        let real = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let realAlert = try #require((real["alerts"] as? [[String: Any]])?.first)
        let labels = try #require(realAlert["labels"] as? [String: String])
        var alert = Self.alert(labels, firedAt: 0)
        alert.annotations = try #require(realAlert["annotations"] as? [String: String])
        let notification = GroupNotification(
            receiver: "nats-webhook",
            groupKey: "{}:"
                + labelSetText(["alertname": labels["alertname"] ?? "", "cluster": labels["cluster"] ?? ""]),
            groupLabels: ["alertname": labels["alertname"] ?? "", "cluster": labels["cluster"] ?? ""],
            alerts: [alert],
            time: Self.at(1)
        )
        let message = try #require(WebhookMessage(notification, externalURL: "http://vm:19093"))
        let ours = try #require(try JSONSerialization.jsonObject(with: message.body()) as? [String: Any])
        #expect(message.body().last == 0x0A)
        #expect(Set(ours.keys) == Set(real.keys))
        for key in ["receiver", "status", "version", "groupKey", "externalURL"] {
            #expect(ours[key] as? String == real[key] as? String, "\(key)")
        }
        #expect(ours["truncatedAlerts"] as? Int == 0)
        for key in ["groupLabels", "commonLabels", "commonAnnotations"] {
            #expect(ours[key] as? [String: String] == real[key] as? [String: String], "\(key)")
        }
        let ourAlert = try #require((ours["alerts"] as? [[String: Any]])?.first)
        #expect(Set(ourAlert.keys) == Set(realAlert.keys))
        // The same labels give the same fingerprint Alertmanager computed.
        #expect(ourAlert["fingerprint"] as? String == realAlert["fingerprint"] as? String)
        #expect(ourAlert["endsAt"] as? String == "0001-01-01T00:00:00Z")
        #expect(ourAlert["startsAt"] as? String == Self.at(0).description)

        // max_alerts: the rest are counted; send_resolved false leaves resolved alerts out.
        var many = notification
        many.alerts = (0..<5).map { Self.alert(["alertname": "A", "n": "\($0)"], firedAt: 0) }
        many.alerts.append(Self.alert(["alertname": "A", "n": "r"], firedAt: 0, resolvedAt: 1))
        let truncated = try #require(WebhookMessage(many, externalURL: "http://x", maxAlerts: 2))
        #expect(truncated.alerts.count == 2 && truncated.truncatedAlerts == 4)
        #expect(truncated.commonLabels == ["alertname": "A"])
        let firingOnly = try #require(WebhookMessage(many, externalURL: "http://x", sendResolved: false))
        #expect(firingOnly.alerts.count == 5)
        var resolved = many
        resolved.alerts = [Self.alert(["alertname": "A"], firedAt: 0, resolvedAt: 1)]
        #expect(WebhookMessage(resolved, externalURL: "http://x", sendResolved: false) == nil)
        let resolvedMessage = try #require(WebhookMessage(resolved, externalURL: "http://x"))
        #expect(resolvedMessage.status == "resolved" && resolvedMessage.alerts[0].endsAt == Self.at(1).description)
    }
}
