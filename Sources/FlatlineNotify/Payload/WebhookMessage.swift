import FlatlineAlerting
import FlatlineCore
import Foundation

/// Alertmanager's webhook payload, version 4, field for field: what every receiver built for
/// Alertmanager's webhook understands.
public struct WebhookMessage: Codable, Sendable, Hashable {
    public struct Alert: Codable, Sendable, Hashable {
        public var status: String
        public var labels: [String: String]
        public var annotations: [String: String]
        public var startsAt: String
        /// `0001-01-01T00:00:00Z` while firing, as Alertmanager sends it.
        public var endsAt: String
        public var generatorURL: String
        public var fingerprint: String
    }

    public var version = "4"
    public var groupKey: String
    /// Alerts left out because of `max_alerts`.
    public var truncatedAlerts: Int
    public var status: String
    public var receiver: String
    public var groupLabels: [String: String]
    public var commonLabels: [String: String]
    public var commonAnnotations: [String: String]
    public var externalURL: String
    public var alerts: [Alert]

    /// Go's zero time, Alertmanager's `endsAt` of a firing alert in webhooks.
    public static let zeroTime = "0001-01-01T00:00:00Z"

    /// The message for a notification.
    ///
    /// - Parameters:
    ///   - notification: the group's alerts.
    ///   - externalURL: where Flatline is reached (the status page); alerts link to it.
    ///   - maxAlerts: at most this many alerts (0: all); the rest are counted, not sent.
    ///   - sendResolved: whether resolved alerts are included.
    /// - Returns: `nil` when nothing is left to send (only resolved alerts, not wanted).
    public init?(
        _ notification: GroupNotification,
        externalURL: String,
        maxAlerts: Int = 0,
        sendResolved: Bool = true
    ) {
        var alerts = notification.alerts
        if !sendResolved { alerts.removeAll { $0.state == .resolved } }
        guard !alerts.isEmpty else { return nil }
        groupKey = notification.groupKey
        receiver = notification.receiver
        status = alerts.contains { $0.state == .firing } ? "firing" : "resolved"
        groupLabels = notification.groupLabels
        // Common labels and annotations: those equal on every alert of the message (before
        // truncation, as Alertmanager computes them).
        commonLabels = Self.common(alerts.map(\.labels))
        commonAnnotations = Self.common(alerts.map(\.annotations))
        self.externalURL = externalURL
        truncatedAlerts = maxAlerts > 0 ? max(0, alerts.count - maxAlerts) : 0
        if maxAlerts > 0 && alerts.count > maxAlerts { alerts = Array(alerts.prefix(maxAlerts)) }
        let base = externalURL.hasSuffix("/") ? String(externalURL.dropLast()) : externalURL
        self.alerts = alerts.map { alert in
            let firing = alert.state == .firing
            return Alert(
                status: firing ? "firing" : "resolved",
                labels: alert.labels,
                annotations: alert.annotations,
                startsAt: (alert.firedAt ?? alert.activeSince).description,
                endsAt: firing ? Self.zeroTime : (alert.resolvedAt ?? alert.lastSeen).description,
                generatorURL: base + "/#alert-" + alert.fingerprint.description,
                fingerprint: alert.fingerprint.description
            )
        }
    }

    static func common(_ maps: [[String: String]]) -> [String: String] {
        guard var common = maps.first else { return [:] }
        for map in maps.dropFirst() {
            common = common.filter { map[$0.key] == $0.value }
        }
        return common
    }

    /// The body: JSON with sorted keys (the same message always gives the same bytes, so a
    /// signature or a retry covers exactly what was first sent), ending in a newline as Go's
    /// encoder ends it.
    public func body() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings, numbers and dictionaries of strings cannot fail.
        var data = (try? encoder.encode(self)) ?? Data()
        data.append(0x0A)
        return data
    }
}
