import FlatlineCore
import Foundation

/// Prometheus rule files from Flatline's knowledge, each with a `promtool test rules` file whose
/// input series make every alert fire, and not fire:
/// - `flatline.yml`: alerts over the series the daemon exports (`flatline_anomaly_score`, the
///   notification and outbox metrics), for Prometheus users who alert with their own stack;
/// - `nats.yml`: standalone alerts over prometheus-nats-exporter's metric names for the incidents
///   PromQL can express, with the thresholds of the models given (so a changed model changes
///   its rule), for places where Flatline does not run.
public enum RuleFiles {
    /// One alerting rule with its test.
    struct Rule {
        var alert: String
        /// The model it comes from (`nats.yml`), or `nil` (Flatline's own series).
        var model: String?
        var expr: String
        var forDuration: String
        var severity: String
        /// Templates over `{{ $labels.x }}` only, so the tests can state them exactly.
        var summary: String
        var description: String
        /// Input series (selector, values when it should fire, values when it should not).
        var series: [(String, String, String)]
        var evalTime: String
        /// The labels of the alert in the firing test, besides alertname and severity.
        var labels: [String: String]
    }

    /// A file's name and text.
    public struct File: Hashable, Sendable {
        public var name: String
        public var text: String
    }

    /// A consumer whose learned stall threshold is longer than the generic rule's window: it gets
    /// a rule of its own, and the generic rule leaves it out.
    public struct LearnedStall: Hashable, Sendable {
        public var stream: String
        public var consumer: String
        /// Seconds without progress that are normal for it, at most.
        public var seconds: Double
    }

    /// The generic freeze rule's window, in minutes.
    static let freezeWindowMinutes = 3

    /// The consumers whose saved `consumer_freeze` state (a data directory's `models.json`)
    /// learned a usual gap between acknowledgements longer than the generic window allows.
    public static func learnedStalls(_ state: ModelEvaluatorState, models: [Model]) -> [LearnedStall] {
        guard let model = models.first(where: { $0.name == "consumer_freeze" }), case .stall(let p) = model.kind,
            case .stall(let watch)? = state.models[model.name]
        else { return [] }
        var out: [LearnedStall] = []
        for entry in watch.things.entries.values {
            guard let stream = entry.state.labels["stream"], let consumer = entry.state.labels["consumer"],
                let usual = ModelEvaluator.median(entry.state.gaps)
            else { continue }
            let seconds = max(p.stallAfter, p.stallFactor * usual)
            if seconds > Double(freezeWindowMinutes * 60) {
                out.append(LearnedStall(stream: stream, consumer: consumer, seconds: seconds))
            }
        }
        return Array(Set(out)).sorted { ($0.stream, $0.consumer) < ($1.stream, $1.consumer) }
    }

    /// Every file, for the models given (rules of models that are absent are left out), with
    /// per-consumer freeze rules for the `learned` stalls.
    public static func files(models: [Model], learned: [LearnedStall] = []) -> [File] {
        var out: [File] = []
        for (name, group, rules) in [
            ("flatline", "flatline-verdicts", flatlineRules()),
            ("nats", "nats-incidents", natsRules(models, learned: learned)),
        ] {
            out.append(File(name: name + ".yml", text: ruleFile(group: group, rules)))
            out.append(File(name: name + ".test.yml", text: testFile(ruleFile: name + ".yml", rules)))
        }
        return out
    }

    // MARK: - The rules

    static func flatlineRules() -> [Rule] {
        let series = #"{job="flatline", instance="flatline:9464""#
        return [
            Rule(
                alert: "FlatlineSeriesAnomalous",
                model: nil,
                expr: "flatline_anomaly_score >= 0.999",
                forDuration: "5m",
                severity: "info",
                summary: "{{ $labels.metric }} on {{ $labels.target }} is outside its learned band",
                description:
                    "Flatline's detectors score {{ $labels.metric }} on {{ $labels.target }} as anomalous for 5 minutes (calibrated score at least 0.999). Compare it with flatline_expected and flatline_band_lower/upper.",
                series: [
                    (
                        "flatline_anomaly_score" + series + #", metric="gnatsd_varz_in_msgs", target="nats-1:8222"}"#,
                        "0.5 0.9995x8", "0.5 0.99x8"
                    )
                ],
                evalTime: "7m",
                labels: [
                    "job": "flatline", "instance": "flatline:9464", "metric": "gnatsd_varz_in_msgs",
                    "target": "nats-1:8222",
                ]
            ),
            Rule(
                alert: "FlatlineNotificationsGivenUp",
                model: nil,
                expr: #"increase(flatline_notifications_total{outcome=~"rejected|expired"}[15m]) > 0"#,
                forDuration: "0s",
                severity: "warning",
                summary: "Flatline gave up notifications to {{ $labels.receiver }} ({{ $labels.outcome }})",
                description:
                    "Notifications to {{ $labels.receiver }} were {{ $labels.outcome }}: refused by the receiver, or not delivered within the outbox's maximum age. They are in the outbox's failed table with the receiver's answer.",
                series: [
                    (
                        "flatline_notifications_total" + series + #", receiver="oncall", outcome="rejected"}"#,
                        "0 0 1 1 1", "0 0 0 0 0"
                    )
                ],
                evalTime: "3m",
                labels: ["job": "flatline", "instance": "flatline:9464", "receiver": "oncall", "outcome": "rejected"]
            ),
            Rule(
                alert: "FlatlineOutboxBacklog",
                model: nil,
                expr: "flatline_outbox_oldest_age_seconds > 600",
                forDuration: "5m",
                severity: "warning",
                summary: "Flatline's notifications wait for more than 10 minutes on {{ $labels.instance }}",
                description:
                    "The oldest notification in {{ $labels.instance }}'s outbox is older than 10 minutes: a receiver is down or refusing with retryable errors. Nothing is lost; it is retried until its maximum age.",
                series: [("flatline_outbox_oldest_age_seconds" + series + "}", "0 700+60x8", "0 10x8")],
                evalTime: "7m",
                labels: ["job": "flatline", "instance": "flatline:9464"]
            ),
            Rule(
                alert: "FlatlineSeriesLimit",
                model: nil,
                expr: #"increase(flatline_samples_dropped_total{reason="series_limit"}[15m]) > 0"#,
                forDuration: "0s",
                severity: "warning",
                summary: "Flatline drops new series of {{ $labels.job_name }}: its max_series is reached",
                description:
                    "New series of {{ $labels.job_name }} are dropped (series_limit): they are not watched. Raise max_series or drop the series you do not need with relabel_configs.",
                series: [
                    (
                        "flatline_samples_dropped_total" + series + #", job_name="nats", reason="series_limit"}"#,
                        "0 0 5 9 9", "0 0 0 0 0"
                    )
                ],
                evalTime: "3m",
                labels: ["job": "flatline", "instance": "flatline:9464", "job_name": "nats", "reason": "series_limit"]
            ),
        ]
    }

    static func natsRules(_ models: [Model], learned: [LearnedStall] = []) -> [Rule] {
        func model(_ name: String) -> Model? { models.first { $0.name == name } }
        var rules: [Rule] = []
        let server = #"{server_id="http://nats-1:8222""#
        let consumer = #"{server_id="http://nats-1:8222", account="$G", stream_name="ORDERS", consumer_name="worker""#
        let consumerLabels = [
            "server_id": "http://nats-1:8222", "account": "$G", "stream_name": "ORDERS", "consumer_name": "worker",
        ]
        if model("consumer_freeze") != nil {
            rules += freezeRules(learned: learned, consumer: consumer, consumerLabels: consumerLabels)
        }
        if let m = model("consumer_stream_limit_forecast"), case .forecast(let p) = m.kind {
            let window = DurationText.format(seconds: p.window)
            let horizon = Int(saturating: p.horizon)
            rules.append(
                Rule(
                    alert: "NATSConsumerBacklogWillHitStreamLimit",
                    model: m.name,
                    expr:
                        "predict_linear(jetstream_consumer_num_pending[\(window)], \(horizon)) > on(server_id, account, stream_name) group_left() (jetstream_stream_limit_messages > 0) and deriv(jetstream_consumer_num_pending[\(window)]) > 0",
                    forDuration: "0s",
                    severity: "warning",
                    summary:
                        "Consumer {{ $labels.stream_name }}/{{ $labels.consumer_name }}'s backlog will reach the stream's max_msgs within \(DurationText.human(seconds: p.horizon))",
                    description:
                        "The backlog of {{ $labels.consumer_name }} on stream {{ $labels.stream_name }} rises on a line that reaches the stream's max_msgs within \(DurationText.human(seconds: p.horizon)); from then on the stream discards messages this consumer has not read.",
                    series: [
                        ("jetstream_consumer_num_pending" + consumer + "}", "1000+500x12", "1000x12"),
                        (
                            "jetstream_stream_limit_messages"
                                + #"{server_id="http://nats-1:8222", account="$G", stream_name="ORDERS"}"#,
                            "10000x12", "10000x12"
                        ),
                    ],
                    evalTime: "11m",
                    labels: consumerLabels
                )
            )
        }
        if let m = model("producer_flood"), case .surge(let p) = m.kind {
            let baseline = "avg_over_time(rate(gnatsd_connz_in_msgs[5m])[1h:1m] offset 5m)"
            // The surplus a flood needs over the rule's 2-minute rate window.
            let minSurplus = HumanNumber.format(SurgeWatch.minSurplus(p, over: 120))
            rules.append(
                Rule(
                    alert: "NATSProducerFlood",
                    model: m.name,
                    expr:
                        "rate(gnatsd_connz_in_msgs[2m]) > \(HumanNumber.format(p.factor)) * \(baseline) and rate(gnatsd_connz_in_msgs[2m]) - \(baseline) > \(minSurplus) and rate(gnatsd_connz_in_msgs[2m]) - \(baseline) > \(HumanNumber.format(p.sigmas)) * stddev_over_time(rate(gnatsd_connz_in_msgs[2m])[1h:1m] offset 5m)",
                    forDuration: "0s",
                    severity: "warning",
                    summary: "Client {{ $labels.name }} (cid {{ $labels.cid }}) publishes far above its usual rate",
                    description:
                        "Connection {{ $labels.cid }} ({{ $labels.name }}) on {{ $labels.server_id }} publishes more than \(HumanNumber.format(p.factor)) times its rate of the hour before, \(minSurplus) msgs/s and \(HumanNumber.format(p.sigmas)) standard deviations more. Needs the exporter's -connz_detailed.",
                    series: [
                        (
                            "gnatsd_connz_in_msgs"
                                + #"{server_id="http://nats-1:8222", cid="7", name="orders-producer"}"#,
                            "0+600x60 36600+6000x6", "0+600x66"
                        )
                    ],
                    evalTime: "64m",
                    labels: ["server_id": "http://nats-1:8222", "cid": "7", "name": "orders-producer"]
                )
            )
        }
        if let m = model("slow_consumer"), case .growth(let p) = m.kind {
            rules.append(
                Rule(
                    alert: "NATSSlowConsumerQueueGrowing",
                    model: m.name,
                    expr:
                        "gnatsd_connz_pending_bytes > \(HumanNumber.format(p.minValue)) and deriv(gnatsd_connz_pending_bytes[2m]) > 0",
                    forDuration: "0s",
                    severity: "warning",
                    summary: "The server's queue for {{ $labels.server_id }} {{ $labels.name }} keeps growing",
                    description:
                        "{{ $labels.server_id }} holds more than \(HumanNumber.format(p.minValue)) bytes it could not yet write to {{ $labels.name }}, and the queue grows: the client is not reading fast enough and will be cut off as a slow consumer.",
                    series: [
                        (
                            "gnatsd_connz_pending_bytes"
                                + #"{server_id="http://nats-1:8222", cid="9", name="telemetry-sub"}"#,
                            "0 100000 300000 500000 700000", "0 0 0 0 0"
                        )
                    ],
                    evalTime: "4m",
                    labels: ["server_id": "http://nats-1:8222", "cid": "9", "name": "telemetry-sub"]
                )
            )
        }
        if model("slow_consumer_disconnect") != nil {
            rules.append(
                Rule(
                    alert: "NATSSlowConsumers",
                    model: "slow_consumer_disconnect",
                    expr: "increase(gnatsd_varz_slow_consumers[5m]) > 0",
                    forDuration: "0s",
                    severity: "warning",
                    summary: "{{ $labels.server_id }} cut off slow consumers in the last 5 minutes",
                    description:
                        "{{ $labels.server_id }} disconnected clients that did not read fast enough; what was queued for them is lost. The server's /connz?state=closed names them (reason Slow Consumer).",
                    series: [("gnatsd_varz_slow_consumers" + server + "}", "0 0 1 1 1", "0 0 0 0 0")],
                    evalTime: "3m",
                    labels: ["server_id": "http://nats-1:8222"]
                )
            )
        }
        if let m = model("connection_churn"), case .surge(let p) = m.kind {
            let baseline = "avg_over_time(rate(gnatsd_varz_total_connections[5m])[1h:5m] offset 5m)"
            rules.append(
                Rule(
                    alert: "NATSConnectionChurn",
                    model: m.name,
                    expr:
                        "rate(gnatsd_varz_total_connections[5m]) > \(HumanNumber.format(p.factor)) * \(baseline) and rate(gnatsd_varz_total_connections[5m]) - \(baseline) > \(HumanNumber.format(SurgeWatch.minSurplus(p, over: 300)))",
                    forDuration: "0s",
                    severity: "warning",
                    summary: "Clients reconnect to {{ $labels.server_id }} far more often than usual",
                    description:
                        "New connections to {{ $labels.server_id }} arrive more than \(HumanNumber.format(p.factor)) times as fast as in the hour before: a client reconnects in a loop. /connz?state=closed tells who and why.",
                    series: [
                        ("gnatsd_varz_total_connections" + server + "}", "0+6x60 366+600x8", "0+6x68")
                    ],
                    evalTime: "67m",
                    labels: ["server_id": "http://nats-1:8222"]
                )
            )
        }
        for (name, alert, stat, limit) in [
            ("jetstream_storage_near_limit", "NATSJetStreamStorageNearLimit", "storage", "max_storage"),
            ("jetstream_memory_near_limit", "NATSJetStreamMemoryNearLimit", "memory", "max_memory"),
        ] {
            guard let m = model(name), case .threshold(let p) = m.kind else { continue }
            let percent = HumanNumber.format(p.value * 100)
            rules.append(
                Rule(
                    alert: alert,
                    model: name,
                    expr:
                        "gnatsd_varz_jetstream_stats_\(stat) / gnatsd_varz_jetstream_config_\(limit) > \(HumanNumber.format(p.value))",
                    forDuration: DurationText.format(seconds: max(60, m.alert.timing.forSeconds)),
                    severity: m.alert.severity,
                    summary: "JetStream \(stat) on {{ $labels.server_id }} is more than \(percent)% full",
                    description:
                        "JetStream on {{ $labels.server_id }} uses more than \(percent)% of its configured \(limit); when it is full, publishes to its streams are refused.",
                    series: [
                        ("gnatsd_varz_jetstream_stats_\(stat)" + server + "}", "95x5", "50x5"),
                        ("gnatsd_varz_jetstream_config_\(limit)" + server + "}", "100x5", "100x5"),
                    ],
                    evalTime: "4m",
                    labels: ["server_id": "http://nats-1:8222"]
                )
            )
        }
        for (name, alert, metric, what) in [
            ("route_loss", "NATSRouteLoss", "gnatsd_varz_routes", "cluster routes"),
            ("leafnode_loss", "NATSLeafNodeLoss", "gnatsd_varz_leafnodes", "leaf node connections"),
        ] {
            guard let m = model(name) else { continue }
            rules.append(
                Rule(
                    alert: alert,
                    model: name,
                    expr: "\(metric) < max_over_time(\(metric)[1h])",
                    forDuration: DurationText.format(seconds: max(60, m.alert.timing.forSeconds)),
                    severity: m.alert.severity,
                    summary: "{{ $labels.server_id }} has fewer \(what) than in the last hour",
                    description:
                        "{{ $labels.server_id }} holds fewer \(what) than it did within the last hour: messages to the servers on the other side stop. The alert ends an hour after the loss, or when they are back.",
                    series: [(metric + server + "}", "2 2 2 1 1 1", "2 2 2 2 2 2")],
                    evalTime: "5m",
                    labels: ["server_id": "http://nats-1:8222"]
                )
            )
        }
        if let m = model("server_unhealthy") {
            rules.append(
                Rule(
                    alert: "NATSServerUnhealthy",
                    model: m.name,
                    expr: "gnatsd_healthz_status > 0",
                    forDuration: "1m",
                    severity: m.alert.severity,
                    summary: "{{ $labels.server_id }} reports itself unhealthy",
                    description:
                        "/healthz of {{ $labels.server_id }} has not answered \"ok\" for a minute: usually JetStream is not current.",
                    series: [("gnatsd_healthz_status" + server + "}", "0 1 1 1 1", "0 0 0 0 0")],
                    evalTime: "3m",
                    labels: ["server_id": "http://nats-1:8222"]
                )
            )
        }
        if let m = model("target_down") {
            rules.append(
                Rule(
                    alert: "NATSTargetDown",
                    model: m.name,
                    expr: #"up{job=~".*nats.*"} == 0"#,
                    forDuration: "1m",
                    severity: m.alert.severity,
                    summary: "Prometheus cannot scrape {{ $labels.instance }} (job {{ $labels.job }})",
                    description:
                        "Scrapes of {{ $labels.instance }} fail: the server or its exporter is down or unreachable. Adjust the job matcher to your job names.",
                    series: [(#"up{job="nats", instance="nats-1:7777"}"#, "1 0 0 0 0", "1 1 1 1 1")],
                    evalTime: "3m",
                    labels: ["job": "nats", "instance": "nats-1:7777"]
                )
            )
        }
        return rules
    }

    /// The generic freeze rule, and one per consumer with a learned longer stall.
    static func freezeRules(learned: [LearnedStall], consumer: String, consumerLabels: [String: String]) -> [Rule] {
        func expr(_ selector: String, minutes: Int) -> String {
            "changes(jetstream_consumer_ack_floor_stream_seq\(selector)[\(minutes)m]) == 0"
                + " and resets(jetstream_consumer_num_ack_pending\(selector)[\(minutes)m]) == 0"
                + " and (jetstream_consumer_num_pending\(selector) + jetstream_consumer_num_ack_pending\(selector)) > 0"
        }
        func selector(_ stall: LearnedStall) -> String {
            "{stream_name=\(quoted(stall.stream)), consumer_name=\(quoted(stall.consumer))}"
        }
        let window = freezeWindowMinutes
        var generic = expr("", minutes: window)
        if !learned.isEmpty {
            let own = learned.map { "jetstream_consumer_ack_floor_stream_seq" + selector($0) }.joined(separator: " or ")
            generic = "(" + generic + ") unless on(stream_name, consumer_name) (" + own + ")"
        }
        let description =
            "The ack floor of {{ $labels.consumer_name }} on stream {{ $labels.stream_name }} (account {{ $labels.account }}) has not moved for MINUTES minutes and its ack-pending count has not fallen, while messages wait. Check that its workers run and acknowledge."
        var rules = [
            Rule(
                alert: "NATSConsumerFreeze",
                model: "consumer_freeze",
                expr: generic,
                forDuration: "0s",
                severity: "critical",
                summary:
                    "Consumer {{ $labels.stream_name }}/{{ $labels.consumer_name }} has acknowledged nothing for \(window) minutes",
                description: description.replacingOccurrences(of: "MINUTES", with: "\(window)"),
                series: [
                    ("jetstream_consumer_ack_floor_stream_seq" + consumer + "}", "100x6", "100+10x6"),
                    ("jetstream_consumer_num_ack_pending" + consumer + "}", "50x6", "50x6"),
                    ("jetstream_consumer_num_pending" + consumer + "}", "10x6", "10x6"),
                ],
                evalTime: "5m",
                labels: consumerLabels
            )
        ]
        for stall in learned {
            let minutes = Int(saturating: (stall.seconds / 60).rounded(.up))
            let labels = [
                "server_id": "http://nats-1:8222", "account": "$G", "stream_name": stall.stream,
                "consumer_name": stall.consumer,
            ]
            let series =
                "{server_id=\"http://nats-1:8222\", account=\"$G\", stream_name=\(quoted(stall.stream)), consumer_name=\(quoted(stall.consumer))}"
            // Quiet: it acks once every `minutes - 1` minutes, which the generic rule would call
            // a freeze. Firing: nothing for longer than its own window.
            let steps = minutes + 3
            rules.append(
                Rule(
                    alert: "NATSConsumerFreeze",
                    model: "consumer_freeze",
                    expr: expr(selector(stall), minutes: minutes),
                    forDuration: "0s",
                    severity: "critical",
                    summary:
                        "Consumer {{ $labels.stream_name }}/{{ $labels.consumer_name }} has acknowledged nothing for \(minutes) minutes",
                    description: description.replacingOccurrences(of: "MINUTES", with: "\(minutes)")
                        + " (Its usual gap between acknowledgements, learned by Flatline, allows \(minutes) minutes.)",
                    series: [
                        (
                            "jetstream_consumer_ack_floor_stream_seq" + series, "100x\(steps)",
                            (0...steps).map { "\(100 + ($0 / max(1, minutes - 1)) * 50)" }.joined(separator: " ")
                        ),
                        ("jetstream_consumer_num_ack_pending" + series, "50x\(steps)", "50x\(steps)"),
                        ("jetstream_consumer_num_pending" + series, "10x\(steps)", "10x\(steps)"),
                    ],
                    evalTime: "\(minutes + 2)m",
                    labels: labels
                )
            )
        }
        return rules
    }

    // MARK: - Writing

    /// A YAML double-quoted string.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for c in text.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }

    static let header = "# Generated by `flatline rules`; do not edit (regenerate instead).\n"

    static func ruleFile(group: String, _ rules: [Rule]) -> String {
        var out = header + "groups:\n  - name: \(group)\n    rules:\n"
        if rules.isEmpty { out = header + "groups: []\n" }
        for rule in rules {
            out += "      - alert: \(rule.alert)\n"
            out += "        expr: \(quoted(rule.expr))\n"
            out += "        for: \(rule.forDuration)\n"
            out += "        labels:\n          severity: \(rule.severity)\n"
            if let model = rule.model { out += "          model: \(model)\n" }
            out += "        annotations:\n"
            out += "          summary: \(quoted(rule.summary))\n"
            out += "          description: \(quoted(rule.description))\n"
        }
        return out
    }

    /// `{{ $labels.x }}` replaced by the label's value, as Prometheus renders it.
    static func render(_ template: String, _ labels: [String: String]) -> String {
        var out = template
        for (name, value) in labels { out = out.replacingOccurrences(of: "{{ $labels.\(name) }}", with: value) }
        return out
    }

    static func testFile(ruleFile: String, _ rules: [Rule]) -> String {
        var out = header + "rule_files: [\(ruleFile)]\nevaluation_interval: 1m\ntests:\n"
        if rules.isEmpty { return out + "  []\n" }
        for rule in rules {
            for firing in [true, false] {
                out += "  - name: \(quoted(rule.alert + (firing ? " fires" : " stays quiet")))\n"
                out += "    interval: 1m\n    input_series:\n"
                for (selector, fire, calm) in rule.series {
                    out += "      - series: \(quoted(selector))\n        values: \(quoted(firing ? fire : calm))\n"
                }
                out += "    alert_rule_test:\n      - eval_time: \(rule.evalTime)\n        alertname: \(rule.alert)\n"
                guard firing else {
                    out += "        exp_alerts: []\n"
                    continue
                }
                var labels = rule.labels
                labels["severity"] = rule.severity
                if let model = rule.model { labels["model"] = model }
                out += "        exp_alerts:\n          - exp_labels:\n"
                for name in labels.keys.sorted() { out += "              \(name): \(quoted(labels[name] ?? ""))\n" }
                out += "            exp_annotations:\n"
                out += "              summary: \(quoted(render(rule.summary, rule.labels)))\n"
                out += "              description: \(quoted(render(rule.description, rule.labels)))\n"
            }
        }
        return out
    }
}
