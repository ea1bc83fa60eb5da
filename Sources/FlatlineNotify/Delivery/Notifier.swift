import Crypto
import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineNATS
import Foundation
import Logging

/// The integrations of every receiver, and the step from the dispatcher's notifications to
/// committed outbox entries: one per integration that wants it, its body built once (so every
/// attempt sends the same bytes) and its idempotency key fixed.
public final class Notifier: Sendable {
    public let outbox: Outbox
    public let courier: Courier
    /// Where Flatline is reached; alerts link to it.
    public let externalURL: String
    /// Integrations by receiver name.
    public let receivers: [String: [any Integration]]
    /// Whether a notification's idempotency key names what it tells only (its group, its alerts
    /// and their states), not where it stands in this process's sequence of the group: replicas
    /// that tell the same thing then give it the same key (see ``idempotencyKey(_:_:shared:)``).
    public let sharedKeys: Bool

    /// - Parameters:
    ///   - userAgent: what webhook requests say they come from.
    ///   - sharedKeys: see ``sharedKeys``.
    ///   - forward: what the outbox's courier delivers through instead of each integration (a
    ///     cluster's shared delivery); `nil`: the integrations themselves.
    /// - Throws: ``NotifierError`` when an integration cannot be set up (TLS files, a NATS URL).
    public init(
        settings: AlertingSettings,
        outbox: Outbox,
        externalURL: String,
        policy: RetryPolicy = RetryPolicy(),
        metrics: NotifyMetrics? = nil,
        userAgent: String = "Flatline",
        sharedKeys: Bool = false,
        forward: (@Sendable (any Integration) -> any Integration)? = nil,
        logger: Logger
    ) throws(NotifierError) {
        self.outbox = outbox
        self.externalURL = externalURL
        self.sharedKeys = sharedKeys
        var receivers: [String: [any Integration]] = [:]
        var all: [any Integration] = []
        // A receiver that cannot be set up fails the whole: the integrations made before it
        // close their connections (an HTTP client dropped unclosed is a leak, and traps debug
        // builds), in the background, as closing is asynchronous.
        func closing(_ made: [any Integration], _ error: NotifierError) -> NotifierError {
            Task { for integration in made { await integration.shutdown() } }
            return error
        }
        for receiver in settings.receivers {
            var list: [any Integration] = []
            do {
                for (i, webhook) in receiver.webhooks.enumerated() {
                    list.append(
                        try WebhookIntegration(
                            id: "\(receiver.name)/webhook/\(i)",
                            settings: webhook,
                            userAgent: userAgent
                        )
                    )
                }
                for (i, push) in receiver.alertmanagers.enumerated() {
                    for (j, url) in push.urls.enumerated() {
                        list.append(
                            try AlertmanagerIntegration(
                                id: "\(receiver.name)/alertmanager/\(i)/\(j)",
                                baseURL: url,
                                settings: push
                            )
                        )
                    }
                }
            } catch {
                throw closing(all + list, NotifierError(receiver: receiver.name, reason: error.description))
            }
            do {
                for (i, nats) in receiver.nats.enumerated() {
                    list.append(try NATSIntegration(id: "\(receiver.name)/nats/\(i)", settings: nats, logger: logger))
                }
            } catch {
                throw closing(all + list, NotifierError(receiver: receiver.name, reason: "\(error)"))
            }
            for (i, file) in receiver.files.enumerated() {
                list.append(FileIntegration(id: "\(receiver.name)/file/\(i)", settings: file))
            }
            receivers[receiver.name] = list
            all += list
        }
        self.receivers = receivers
        courier = Courier(
            outbox: outbox,
            integrations: forward.map { all.map($0) } ?? all,
            policy: policy,
            metrics: metrics,
            logger: logger
        )
        retireOrphans(keeping: Set(all.map(\.id)), logger: logger)
    }

    /// Notifications waiting for an integration the configuration no longer has (its receiver
    /// was removed or renamed, or its entry moved in the list, at a reload or a restart) would
    /// wait for ever: they move to the failed table with the reason, and are logged.
    private func retireOrphans(keeping current: Set<String>, logger: Logger) {
        do {
            let now = Date().timeIntervalSince1970
            for integration in try outbox.integrations() where !current.contains(integration) {
                let moved = try outbox.giveUp(
                    integration: integration,
                    reason: "integration \(integration) is no longer in the configuration (its receiver was removed, "
                        + "renamed or reordered)",
                    now: now
                )
                logger.error(
                    "notifications for an integration that no longer exists moved to failed",
                    metadata: ["integration": "\(integration)", "count": "\(moved)"]
                )
            }
        } catch {
            logger.error("outbox unreadable", metadata: ["error": "\(error)"])
        }
    }

    /// The outbox entries for notifications: one per integration of the notification's receiver
    /// that has something to send.
    public func entries(_ notifications: [GroupNotification], tree: RoutingTree) -> [OutboxEntry] {
        var out: [OutboxEntry] = []
        for notification in notifications {
            for integration in receivers[notification.receiver] ?? [] {
                let body: Data?
                switch integration {
                case let webhook as WebhookIntegration:
                    body = WebhookMessage(
                        notification,
                        externalURL: externalURL,
                        maxAlerts: webhook.settings.maxAlerts,
                        sendResolved: webhook.sendResolved
                    )?.body()
                case is AlertmanagerIntegration:
                    // Firing alerts end four resend periods ahead unless told again, as
                    // Prometheus does (it re-sends every minute, with endsAt 4 minutes ahead).
                    let route = tree.routes.first { $0.receiver == notification.receiver }
                    let period = max(route?.groupInterval ?? 60, route?.repeatInterval ?? 60)
                    body = AlertmanagerIntegration.body(notification, externalURL: externalURL, hold: 4 * period)
                default:
                    body = WebhookMessage(
                        notification,
                        externalURL: externalURL,
                        sendResolved: integration.sendResolved
                    )?
                    .body()
                }
                guard let body else { continue }
                out.append(
                    OutboxEntry(
                        integration: integration.id,
                        receiver: notification.receiver,
                        groupKey: notification.groupKey,
                        idempotencyKey: Self.idempotencyKey(integration.id, notification, shared: sharedKeys),
                        body: body
                    )
                )
            }
        }
        return out
    }

    /// Commits the notifications' entries and wakes the delivery loops.
    /// - Returns: how many entries were committed.
    /// - Throws: ``OutboxError`` when the outbox cannot be written: nothing was committed.
    @discardableResult
    public func submit(_ notifications: [GroupNotification], tree: RoutingTree, now: Double) throws(OutboxError) -> Int
    {
        let entries = entries(notifications, tree: tree)
        try outbox.enqueue(entries, now: now)
        courier.notify()
        return entries.count
    }

    /// Prometheus' way with Alertmanager: every alert due for re-sending (firing ones, and
    /// resolved ones still kept; the engine's ``AlertEngine/dueForResend(at:interval:)``) goes
    /// again to every Alertmanager integration of the receivers its route names, whatever the
    /// grouping, so an Alertmanager that restarted (it keeps alerts in memory only) learns of
    /// them again, resolutions included. Firing alerts end `hold` seconds ahead.
    /// - Returns: how many entries were committed.
    @discardableResult
    public func resendToAlertmanagers(_ alerts: [Alert], tree: RoutingTree, at time: Timestamp, hold: Double = 240)
        throws(OutboxError) -> Int
    {
        var byReceiver: [String: [Alert]] = [:]
        for alert in alerts where alert.state != .pending {
            for route in tree.match(alert.labels)
            where receivers[route.receiver]?.contains(where: { $0 is AlertmanagerIntegration }) == true {
                byReceiver[route.receiver, default: []].append(alert)
            }
        }
        var entries: [OutboxEntry] = []
        for receiver in byReceiver.keys.sorted() {
            let notification = GroupNotification(
                receiver: receiver,
                groupKey: "resend",
                groupLabels: [:],
                alerts: byReceiver[receiver] ?? [],
                time: time
            )
            let body = AlertmanagerIntegration.body(notification, externalURL: externalURL, hold: hold)
            for integration in receivers[receiver] ?? [] where integration is AlertmanagerIntegration {
                entries.append(
                    OutboxEntry(
                        integration: integration.id,
                        receiver: receiver,
                        groupKey: "resend",
                        idempotencyKey: Self.idempotencyKey(integration.id, notification),
                        body: body
                    )
                )
            }
        }
        try outbox.enqueue(entries, now: time.seconds)
        courier.notify()
        return entries.count
    }

    /// A key naming one notification to one integration: the same for every attempt and
    /// across restarts (it is stored with the notification), different for the next one.
    /// A group's notification is named by its place in the group's sequence and by the alerts
    /// it tells (when each began, and its state), not by the moment it was made: told again after
    /// a crash that came between the outbox and the notification log, it keeps its key, so a
    /// receiver that dedups by key hears it once. Re-sends outside a sequence are named by time.
    /// `shared`: a group's notification is named by its group and the alerts it tells and their
    /// states only, the same on every replica that tells it (a cluster then delivers it once).
    static func idempotencyKey(_ integration: String, _ notification: GroupNotification, shared: Bool = false)
        -> String
    {
        var text = integration + "\n" + notification.groupKey + "\n"
        if shared && notification.sequence > 0 {
            text += "shared"
        } else if notification.sequence > 0 {
            let began = notification.alerts.map { ($0.firedAt ?? $0.activeSince).milliseconds }.min() ?? 0
            text += "#\(notification.sequence)@\(began)"
        } else {
            text += String(notification.time.milliseconds)
        }
        // In the order of their fingerprints: replicas may list a group's alerts in another order.
        let told = notification.alerts.map { $0.fingerprint.description + ($0.state == .firing ? "+" : "-") }
        for alert in shared ? told.sorted() : told { text += "\n" + alert }
        return uuidKey(text)
    }

    /// A text's SHA-256 in UUID form: what most idempotency-key schemes expect.
    public static func uuidKey(_ text: String) -> String {
        let digest = hexadecimal(SHA256.hash(data: Data(text.utf8)).prefix(16))
        let c = Array(digest)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-"
            + String(c[20..<32])
    }

    /// Closes every integration's connections.
    public func shutdown() async {
        for list in receivers.values {
            for integration in list { await integration.shutdown() }
        }
    }
}

/// A receiver that cannot be set up.
public struct NotifierError: Error, Hashable, Sendable, CustomStringConvertible {
    public var receiver: String
    public var reason: String

    public var description: String { "receiver \(receiver): \(reason)" }
}
