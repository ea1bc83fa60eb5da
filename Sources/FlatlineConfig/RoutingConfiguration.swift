import FlatlineCore
import FlatlineYAML

/// Where alerts go: `route`, `receivers` and `inhibit_rules`, shaped like `alertmanager.yml`.
public struct AlertingSettings: Sendable, Hashable {
    public var route: RouteSettings
    public var receivers: [ReceiverSettings]
    public var inhibitRules: [InhibitRuleSettings]

    public init(route: RouteSettings, receivers: [ReceiverSettings], inhibitRules: [InhibitRuleSettings] = []) {
        self.route = route
        self.receivers = receivers
        self.inhibitRules = inhibitRules
    }
}

/// One node of the routing tree. Unset options (`nil`) are inherited from the parent.
public struct RouteSettings: Sendable, Hashable {
    public var receiver: String?
    /// The alert must satisfy every matcher to enter this route.
    public var matchers: [LabelMatcher] = []
    /// Labels that split alerts into groups, one notification per group; `["..."]`: every
    /// alert is its own group.
    public var groupBy: [String]?
    /// Seconds before a new group's first notification (default 30).
    public var groupWait: Double?
    /// Seconds between notifications about changes to a group (default 300).
    public var groupInterval: Double?
    /// Seconds before an unchanged group is notified again (default 4 h).
    public var repeatInterval: Double?
    /// After matching this route, go on trying its later siblings.
    public var continueMatching = false
    public var routes: [RouteSettings] = []

    public init(receiver: String? = nil) {
        self.receiver = receiver
    }
}

/// A named set of integrations that all receive a notification.
public struct ReceiverSettings: Sendable, Hashable {
    public var name: String
    public var webhooks: [WebhookSettings] = []
    public var alertmanagers: [AlertmanagerPushSettings] = []
    public var nats: [NATSReceiverSettings] = []
    public var files: [FileReceiverSettings] = []

    public init(name: String) {
        self.name = name
    }

    /// Integrations in all.
    public var count: Int { webhooks.count + alertmanagers.count + nats.count + files.count }
}

/// `webhook_configs`: Alertmanager's webhook payload (version 4), POSTed.
public struct WebhookSettings: Sendable, Hashable {
    public var url: String
    public var sendResolved = true
    /// At most this many alerts per message (0: no limit); the rest are counted in
    /// `truncatedAlerts`.
    public var maxAlerts = 0
    /// Seconds one attempt may take.
    public var timeout = 10.0
    /// Extra request headers.
    public var headers: [String: String] = [:]
    public var authorization = Authorization.none
    public var tls: TLSSettings?
    /// A file holding the HMAC-SHA256 key of the `X-Flatline-Signature` header.
    public var signatureSecretFile: String?

    public init(url: String) {
        self.url = url
    }
}

/// `alertmanager_configs`: alerts pushed to every listed Alertmanager's `POST /api/v2/alerts`.
public struct AlertmanagerPushSettings: Sendable, Hashable {
    /// Base URLs (`http://am-1:9093`); every one gets every alert (HA peers do not share alerts).
    public var urls: [String]
    public var timeout = 10.0
    public var authorization = Authorization.none
    public var tls: TLSSettings?

    public init(urls: [String]) {
        self.urls = urls
    }
}

/// `nats_configs`: the webhook payload published to a subject.
public struct NATSReceiverSettings: Sendable, Hashable {
    public var url: String
    public var subject: String
    public var sendResolved = true

    public init(url: String, subject: String) {
        self.url = url
        self.subject = subject
    }
}

/// `file_configs`: the webhook payload appended as one NDJSON line; `-` is standard output.
public struct FileReceiverSettings: Sendable, Hashable {
    public var path: String
    public var sendResolved = true

    public init(path: String) {
        self.path = path
    }
}

/// Mutes alerts matching `targetMatchers` while an alert matching `sourceMatchers` fires with
/// the same values of the `equal` labels.
public struct InhibitRuleSettings: Sendable, Hashable {
    public var sourceMatchers: [LabelMatcher]
    public var targetMatchers: [LabelMatcher]
    public var equal: [String]

    public init(sourceMatchers: [LabelMatcher], targetMatchers: [LabelMatcher], equal: [String]) {
        self.sourceMatchers = sourceMatchers
        self.targetMatchers = targetMatchers
        self.equal = equal
    }
}

extension Configuration {
    static func alerting(
        route routeValue: YAMLValue?,
        receivers receiversValue: YAMLValue?,
        inhibitRules inhibitValue: YAMLValue?,
        directory: String,
        owner: YAMLValue
    ) throws(ConfigError) -> AlertingSettings? {
        guard let routeValue else {
            if let receiversValue {
                throw receiversValue.error("receivers without a route: add route: {receiver: NAME}")
            }
            if let inhibitValue { throw inhibitValue.error("inhibit_rules without a route") }
            return nil
        }
        var receivers: [ReceiverSettings] = []
        var names = Set<String>()
        for element in try receiversValue?.sequence() ?? [] {
            let receiver = try receiverSettings(element, directory: directory)
            guard names.insert(receiver.name).inserted else {
                throw element.error("receiver name \"\(receiver.name)\" is used by an earlier receiver")
            }
            receivers.append(receiver)
        }
        let route = try routeSettings(routeValue, root: true)
        guard route.receiver != nil else { throw routeValue.error("the root route needs a receiver") }
        try checkReceivers(route, routeValue, names)
        var rules: [InhibitRuleSettings] = []
        for element in try inhibitValue?.sequence() ?? [] {
            let m = try element.mapping(known: ["source_matchers", "target_matchers", "equal"])
            let rule = InhibitRuleSettings(
                sourceMatchers: try matchers(m["source_matchers"]),
                targetMatchers: try matchers(m["target_matchers"]),
                equal: try m["equal"]?.strings() ?? []
            )
            guard !rule.sourceMatchers.isEmpty, !rule.targetMatchers.isEmpty else {
                throw element.error("an inhibit rule needs source_matchers and target_matchers")
            }
            rules.append(rule)
        }
        return AlertingSettings(route: route, receivers: receivers, inhibitRules: rules)
    }

    /// Each route's receiver is defined; an error points at the route's own `receiver` line.
    private static func checkReceivers(_ route: RouteSettings, _ value: YAMLValue, _ names: Set<String>)
        throws(ConfigError)
    {
        let m = try value.mapping(known: routeKeys)
        if let receiver = route.receiver, !names.contains(receiver) {
            throw (m["receiver"] ?? value).error("receiver \"\(receiver)\" is not defined in receivers")
        }
        let children = try m["routes"]?.sequence() ?? []
        for (k, child) in route.routes.enumerated() {
            try checkReceivers(child, k < children.count ? children[k] : value, names)
        }
    }

    /// The keys of a route.
    private static let routeKeys: Set<String> = [
        "receiver", "matchers", "group_by", "group_wait", "group_interval", "repeat_interval", "continue", "routes",
    ]

    private static func matchers(_ value: YAMLValue?) throws(ConfigError) -> [LabelMatcher] {
        guard let value else { return [] }
        var out: [LabelMatcher] = []
        for element in try value.sequence() {
            do {
                out.append(try LabelMatcher(parsing: try element.string()))
            } catch let error as PatternError {
                throw element.error(error.reason)
            } catch let error as ConfigError {
                throw error
            } catch {
                throw element.error("\(error)")
            }
        }
        return out
    }

    private static func routeSettings(_ value: YAMLValue, root: Bool) throws(ConfigError) -> RouteSettings {
        let m = try value.mapping(known: routeKeys)
        var route = RouteSettings(receiver: try m["receiver"]?.string())
        route.matchers = try matchers(m["matchers"])
        if root && !route.matchers.isEmpty { throw value.error("the root route must not have matchers") }
        if let v = m["group_by"] {
            let names = try v.strings()
            if names.contains("...") && names.count > 1 { throw v.error("\"...\" must be the only group_by entry") }
            for name in names where name != "..." && !LabelSet.isValidLabelName(name) {
                throw v.error("\"\(name)\" is not a label name")
            }
            route.groupBy = names
        }
        if let v = m["group_wait"] { route.groupWait = try v.duration() }
        if let v = m["group_interval"] { route.groupInterval = try positive(v, v.duration()) }
        if let v = m["repeat_interval"] { route.repeatInterval = try positive(v, v.duration()) }
        if let v = m["continue"] {
            if root { throw v.error("the root route cannot continue") }
            route.continueMatching = try v.bool()
        }
        for element in try m["routes"]?.sequence() ?? [] {
            route.routes.append(try routeSettings(element, root: false))
        }
        return route
    }

    private static func receiverSettings(_ value: YAMLValue, directory: String) throws(ConfigError)
        -> ReceiverSettings
    {
        let m = try value.mapping(known: [
            "name", "webhook_configs", "alertmanager_configs", "nats_configs", "file_configs",
        ])
        var receiver = ReceiverSettings(name: try m.required("name").string())
        for element in try m["webhook_configs"]?.sequence() ?? [] {
            let w = try element.mapping(known: [
                "url", "send_resolved", "max_alerts", "timeout", "headers", "http_config", "signature_secret_file",
            ])
            var webhook = WebhookSettings(url: try url(try w.required("url")))
            if let v = w["send_resolved"] { webhook.sendResolved = try v.bool() }
            if let v = w["max_alerts"] { webhook.maxAlerts = try v.int(min: 0) }
            if let v = w["timeout"] { webhook.timeout = try positive(v, v.duration()) }
            if let v = w["headers"] {
                for (name, text, _) in try v.stringMap() { webhook.headers[name] = text }
            }
            if let v = w["http_config"] {
                let h = try v.mapping(known: ["bearer_token_file", "basic_auth", "oauth2", "tls_config"])
                (webhook.authorization, webhook.tls) = try httpSettings(h, owner: v, directory: directory)
            }
            if let v = w["signature_secret_file"] { webhook.signatureSecretFile = try file(v, directory: directory) }
            receiver.webhooks.append(webhook)
        }
        for element in try m["alertmanager_configs"]?.sequence() ?? [] {
            let a = try element.mapping(known: ["urls", "timeout", "http_config"])
            let urlsValue = try a.required("urls")
            var urls: [String] = []
            for u in try urlsValue.sequence() { urls.append(try url(u)) }
            guard !urls.isEmpty else { throw urlsValue.error("list at least one Alertmanager") }
            var push = AlertmanagerPushSettings(urls: urls)
            if let v = a["timeout"] { push.timeout = try positive(v, v.duration()) }
            if let v = a["http_config"] {
                let h = try v.mapping(known: ["bearer_token_file", "basic_auth", "oauth2", "tls_config"])
                (push.authorization, push.tls) = try httpSettings(h, owner: v, directory: directory)
            }
            receiver.alertmanagers.append(push)
        }
        for element in try m["nats_configs"]?.sequence() ?? [] {
            let n = try element.mapping(known: ["url", "subject", "send_resolved"])
            let urlValue = try n.required("url")
            let natsURL = try urlValue.string()
            guard natsURL.hasPrefix("nats://") || natsURL.hasPrefix("tls://") else {
                throw urlValue.error("must be a nats:// or tls:// URL")
            }
            let subjectValue = try n.required("subject")
            let subject = try subjectValue.string()
            guard !subject.isEmpty, !subject.contains(where: { $0 == " " || $0 == "*" || $0 == ">" }) else {
                throw subjectValue.error("must be a subject without spaces or wildcards")
            }
            var nats = NATSReceiverSettings(url: natsURL, subject: subject)
            if let v = n["send_resolved"] { nats.sendResolved = try v.bool() }
            receiver.nats.append(nats)
        }
        for element in try m["file_configs"]?.sequence() ?? [] {
            let f = try element.mapping(known: ["path", "send_resolved"])
            let pathValue = try f.required("path")
            let path = try pathValue.string()
            var fileReceiver = FileReceiverSettings(path: path == "-" ? "-" : try file(pathValue, directory: directory))
            if let v = f["send_resolved"] { fileReceiver.sendResolved = try v.bool() }
            receiver.files.append(fileReceiver)
        }
        return receiver
    }

    private static func url(_ value: YAMLValue) throws(ConfigError) -> String {
        let text = try value.string()
        guard text.hasPrefix("http://") || text.hasPrefix("https://"), text.count > 8 else {
            throw value.error("must be an http:// or https:// URL")
        }
        return text
    }
}
