import FlatlineCore

/// One alert event as an NDJSON line (`flatline replay --alerts-out`, the input of `flatline
/// notify`): when, firing or resolved, and the alert as Alertmanager's webhook shows it.
public struct AlertEventRecord: Codable, Sendable, Hashable {
    public var ts: String
    public var status: String
    public var labels: [String: String]
    public var annotations: [String: String]
    public var fingerprint: String
    public var startsAt: String
    /// `0001-01-01T00:00:00Z` while firing, as in Alertmanager's webhook.
    public var endsAt: String

    public init(
        ts: String,
        status: String,
        labels: [String: String],
        annotations: [String: String],
        fingerprint: String,
        startsAt: String,
        endsAt: String
    ) {
        self.ts = ts
        self.status = status
        self.labels = labels
        self.annotations = annotations
        self.fingerprint = fingerprint
        self.startsAt = startsAt
        self.endsAt = endsAt
    }

    public init(_ event: AlertEvent) {
        let alert = event.alert
        ts = event.time.description
        status = event.status.rawValue
        labels = alert.labels
        annotations = alert.annotations
        fingerprint = alert.fingerprint.description
        startsAt = (alert.firedAt ?? alert.activeSince).description
        endsAt = event.status == .resolved ? event.time.description : "0001-01-01T00:00:00Z"
    }

    /// The event again.
    /// - Throws: ``AlertEventRecordError`` for a bad time, status or label name.
    public func event() throws(AlertEventRecordError) -> AlertEvent {
        guard let time = Self.time(ts), let start = Self.time(startsAt) else {
            throw AlertEventRecordError(reason: "ts and startsAt must be RFC 3339 times")
        }
        guard let status = AlertEvent.Status(rawValue: status) else {
            throw AlertEventRecordError(reason: "status must be firing or resolved, not \"\(self.status)\"")
        }
        guard !labels.isEmpty, labels.keys.allSatisfy(LabelSet.isValidLabelName) else {
            throw AlertEventRecordError(reason: "labels must be a non-empty map of label names")
        }
        let computed = AlertFingerprint(labels: labels)
        guard computed.description == fingerprint else {
            throw AlertEventRecordError(reason: "fingerprint \(fingerprint) does not match the labels (\(computed))")
        }
        let alert = Alert(
            fingerprint: computed,
            labels: labels,
            annotations: annotations,
            state: status == .firing ? .firing : .resolved,
            timing: AlertTiming(),
            activeSince: start,
            firedAt: start,
            lastActive: time,
            lastSeen: time,
            resolvedAt: status == .resolved ? time : nil
        )
        return AlertEvent(time: time, status: status, alert: alert)
    }

    static func time(_ text: String) -> Timestamp? { Timestamp(rfc3339: text) }
}

/// An alert event line that cannot be used.
public struct AlertEventRecordError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}
