import FlatlineCore

/// How long a condition must hold before its alert fires, and for how long it keeps firing.
public struct AlertTiming: Sendable, Hashable, Codable {
    /// Seconds the condition must hold, pending, before the alert fires (`for`).
    public var forSeconds: Double
    /// Seconds the alert keeps firing after the condition clears (`keep_firing_for`), so a
    /// condition that flickers does not resolve and fire again.
    public var keepFiringFor: Double
    /// Seconds without any observation after which the condition counts as cleared (the series
    /// went away).
    public var staleAfter: Double

    public init(forSeconds: Double = 0, keepFiringFor: Double = 0, staleAfter: Double = 300) {
        self.forSeconds = forSeconds
        self.keepFiringFor = keepFiringFor
        self.staleAfter = staleAfter
    }

    private enum CodingKeys: String, CodingKey {
        case forSeconds = "for_seconds", keepFiringFor = "keep_firing_for_seconds", staleAfter = "stale_after_seconds"
    }
}

/// What a model says about one alert identity at one evaluation.
public enum AlertCondition: Sendable, Hashable {
    /// The condition holds (the score is above the firing threshold).
    case active
    /// The condition does not hold (below the clearing threshold).
    case inactive
    /// In between the two thresholds: the alert keeps its state. Hysteresis, so a value
    /// hovering at the edge does not flap.
    case unchanged
}

/// One model's verdict on one alert identity.
public struct AlertObservation: Sendable {
    /// The alert's labels (`alertname`, `severity`, where...): its identity.
    public var labels: [String: String]
    /// What explains it; the latest active observation's annotations replace earlier ones (the
    /// engine reads them only when the condition is active).
    public var annotations: [String: String]
    public var condition: AlertCondition
    public var timing: AlertTiming

    public init(
        labels: [String: String],
        annotations: [String: String] = [:],
        condition: AlertCondition,
        timing: AlertTiming
    ) {
        self.labels = labels
        self.annotations = annotations
        self.condition = condition
        self.timing = timing
    }
}

/// An alert the engine tracks.
public struct Alert: Sendable, Hashable, Codable {
    public enum State: String, Sendable, Hashable, Codable {
        case pending, firing, resolved
    }

    public var fingerprint: AlertFingerprint
    public var labels: [String: String]
    public var annotations: [String: String]
    public var state: State
    public var timing: AlertTiming
    /// When the condition began to hold (the start of pending).
    public var activeSince: Timestamp
    /// When it fired (`startsAt` in Alertmanager's terms).
    public var firedAt: Timestamp?
    /// The last evaluation at which the condition held.
    public var lastActive: Timestamp
    /// The last evaluation that said anything about it.
    public var lastSeen: Timestamp
    /// When it resolved (`endsAt`).
    public var resolvedAt: Timestamp?
    /// When it was last handed out for sending.
    public var lastSent: Timestamp?

    public init(
        fingerprint: AlertFingerprint,
        labels: [String: String],
        annotations: [String: String],
        state: State,
        timing: AlertTiming,
        activeSince: Timestamp,
        firedAt: Timestamp? = nil,
        lastActive: Timestamp,
        lastSeen: Timestamp,
        resolvedAt: Timestamp? = nil,
        lastSent: Timestamp? = nil
    ) {
        self.fingerprint = fingerprint
        self.labels = labels
        self.annotations = annotations
        self.state = state
        self.timing = timing
        self.activeSince = activeSince
        self.firedAt = firedAt
        self.lastActive = lastActive
        self.lastSeen = lastSeen
        self.resolvedAt = resolvedAt
        self.lastSent = lastSent
    }

    private enum CodingKeys: String, CodingKey {
        case fingerprint, labels, annotations, state, timing
        case activeSince = "active_since", firedAt = "fired_at", lastActive = "last_active", lastSeen = "last_seen"
        case resolvedAt = "resolved_at", lastSent = "last_sent"
    }
}

/// A change worth telling a receiver about.
public struct AlertEvent: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable, Codable {
        case firing, resolved
    }

    public var time: Timestamp
    public var status: Status
    public var alert: Alert

    public init(time: Timestamp, status: Status, alert: Alert) {
        self.time = time
        self.status = status
        self.alert = alert
    }
}

/// Alert states, moved by observations at evaluation times given from outside (the live clock or
/// a replay's): inactive → pending → firing → resolved, as Prometheus' rule evaluation does,
/// with `for`, `keep_firing_for`, hysteresis, and resolved alerts kept for a while so they can be
/// sent again (a receiver that restarted still learns of the resolution).
///
/// The engine is a value: it does no I/O and reads no clock, so replays are exact and its state
/// can be saved and restored.
public struct AlertEngine: Sendable, Codable {
    /// Seconds a resolved alert is kept (and re-sent) after it resolved; Prometheus keeps 15 minutes.
    public var resolvedRetention: Double
    public private(set) var alerts: [AlertFingerprint: Alert] = [:]

    public init(resolvedRetention: Double = 900) {
        self.resolvedRetention = resolvedRetention
    }

    /// Applies one evaluation's observations at `time` and returns what fired or resolved, in
    /// fingerprint order. Alerts not observed keep their state until their `staleAfter` passes,
    /// when their condition counts as cleared.
    public mutating func evaluate(at time: Timestamp, _ observations: [AlertObservation]) -> [AlertEvent] {
        var events: [AlertEvent] = []
        var observed = Set<AlertFingerprint>()
        for observation in observations {
            let fingerprint = AlertFingerprint(labels: observation.labels)
            // Two observations of one identity in an evaluation: the first decides, as with a
            // duplicate sample.
            guard observed.insert(fingerprint).inserted else { continue }
            if let event = apply(observation, fingerprint: fingerprint, at: time) { events.append(event) }
        }
        for fingerprint in alerts.keys.sorted() where !observed.contains(fingerprint) {
            guard let alert = alerts[fingerprint] else { continue }
            switch alert.state {
            case .resolved:
                if let resolvedAt = alert.resolvedAt, time.seconds - resolvedAt.seconds > resolvedRetention {
                    alerts[fingerprint] = nil
                }
            case .pending, .firing:
                guard time.seconds - alert.lastSeen.seconds >= alert.timing.staleAfter else { continue }
                if alert.state == .pending {
                    alerts[fingerprint] = nil
                } else if let event = resolveIfDue(alert, at: time) {
                    events.append(event)
                }
            }
        }
        annotateIncidents()
        for i in events.indices where events[i].status == .firing {
            if let current = alerts[events[i].alert.fingerprint] { events[i].alert.annotations = current.annotations }
        }
        return events.sorted { ($0.alert.fingerprint, $0.status.rawValue) < ($1.alert.fingerprint, $1.status.rawValue) }
    }

    /// Forgets, without resolving them, the alerts whose labels `belongs` accepts: alerts of a
    /// target another process evaluates now, which carries them on.
    /// - Returns: how many pending or firing alerts were forgotten.
    @discardableResult
    public mutating func drop(where belongs: ([String: String]) -> Bool) -> Int {
        let gone = alerts.filter { belongs($0.value.labels) }
        for fingerprint in gone.keys { alerts[fingerprint] = nil }
        annotateIncidents()
        return gone.values.filter { $0.state != .resolved }.count
    }

    /// Alerts with the same `incident` label are one story (a frozen consumer and its stream
    /// nearing its limit): each pending or firing one names the others in a `related`
    /// annotation, so a receiver grouping by `incident` pages once and says why.
    private mutating func annotateIncidents() {
        var incidents: [String: [AlertFingerprint]] = [:]
        for (fingerprint, alert) in alerts where alert.state != .resolved {
            guard let incident = alert.labels["incident"] else { continue }
            incidents[incident, default: []].append(fingerprint)
        }
        for members in incidents.values {
            for fingerprint in members {
                guard var alert = alerts[fingerprint] else { continue }
                var counts: [String: Int] = [:]
                for other in members where other != fingerprint {
                    guard let peer = alerts[other] else { continue }
                    let name = (peer.labels["alertname"] ?? "?") + (peer.state == .pending ? " (pending)" : "")
                    counts[name, default: 0] += 1
                }
                let related = counts.keys.sorted().map { counts[$0] == 1 ? $0 : "\($0) x\(counts[$0] ?? 0)" }
                let text = related.isEmpty ? nil : related.joined(separator: ", ")
                guard alert.annotations["related"] != text else { continue }
                alert.annotations["related"] = text
                alerts[fingerprint] = alert
            }
        }
    }

    private mutating func apply(_ observation: AlertObservation, fingerprint: AlertFingerprint, at time: Timestamp)
        -> AlertEvent?
    {
        guard var alert = alerts[fingerprint], alert.state != .resolved else {
            // Nothing tracked, or only a resolved alert kept for re-sending: an active condition
            // starts a new alert (same fingerprint); anything else leaves the kept one as it is.
            guard observation.condition == .active else {
                if var kept = alerts[fingerprint], let resolvedAt = kept.resolvedAt {
                    kept.lastSeen = time
                    alerts[fingerprint] = time.seconds - resolvedAt.seconds > resolvedRetention ? nil : kept
                }
                return nil
            }
            let alert = Alert(
                fingerprint: fingerprint,
                labels: observation.labels,
                annotations: observation.annotations,
                state: .pending,
                timing: observation.timing,
                activeSince: time,
                lastActive: time,
                lastSeen: time
            )
            return promote(alert, at: time)
        }
        alert.lastSeen = time
        switch observation.condition {
        case .active:
            alert.lastActive = time
            alert.annotations = observation.annotations
            alert.timing = observation.timing
            return promote(alert, at: time)
        case .unchanged:
            alerts[fingerprint] = alert
            return nil
        case .inactive:
            guard alert.state == .firing else {
                // A pending alert whose condition clears never fired: it is forgotten.
                alerts[fingerprint] = nil
                return nil
            }
            return resolveIfDue(alert, at: time)
        }
    }

    /// Stores a pending or firing alert, firing it once its condition has held for `for`.
    private mutating func promote(_ alert: Alert, at time: Timestamp) -> AlertEvent? {
        var alert = alert
        defer { alerts[alert.fingerprint] = alert }
        guard alert.state == .pending, time.seconds - alert.activeSince.seconds >= alert.timing.forSeconds else {
            return nil
        }
        alert.state = .firing
        alert.firedAt = time
        return AlertEvent(time: time, status: .firing, alert: alert)
    }

    /// Stores a firing alert whose condition is cleared, resolving it once `keep_firing_for` has
    /// passed since it last held.
    private mutating func resolveIfDue(_ alert: Alert, at time: Timestamp) -> AlertEvent? {
        var alert = alert
        defer { alerts[alert.fingerprint] = alert }
        guard time.seconds - alert.lastActive.seconds >= alert.timing.keepFiringFor else { return nil }
        alert.state = .resolved
        alert.resolvedAt = time
        return AlertEvent(time: time, status: .resolved, alert: alert)
    }

    /// Firing alerts, and resolved ones still kept, that were not handed out within the last
    /// `interval` seconds; they are marked as sent at `time`. Receivers lose what they hold when
    /// they restart, so alerts are sent again until they are gone (Prometheus re-sends every
    /// minute).
    public mutating func dueForResend(at time: Timestamp, interval: Double) -> [Alert] {
        var due: [Alert] = []
        for fingerprint in alerts.keys.sorted() {
            guard var alert = alerts[fingerprint], alert.state != .pending else { continue }
            if let lastSent = alert.lastSent, time.seconds - lastSent.seconds < interval { continue }
            alert.lastSent = time
            alerts[fingerprint] = alert
            due.append(alert)
        }
        return due
    }

    /// The alerts in a state, in fingerprint order.
    public func alerts(in state: Alert.State) -> [Alert] {
        alerts.values.filter { $0.state == state }.sorted { $0.fingerprint < $1.fingerprint }
    }

    private enum CodingKeys: String, CodingKey {
        case resolvedRetention = "resolved_retention_seconds", alerts
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        resolvedRetention = try c.decode(Double.self, forKey: .resolvedRetention)
        let list = try c.decode([Alert].self, forKey: .alerts)
        for alert in list {
            // A fingerprint that does not match its labels is a corrupt or hand-edited file.
            guard alert.fingerprint == AlertFingerprint(labels: alert.labels) else {
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: c.codingPath,
                        debugDescription: "alert \(alert.fingerprint) does not match its labels"
                    )
                )
            }
            alerts[alert.fingerprint] = alert
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(resolvedRetention, forKey: .resolvedRetention)
        try c.encode(alerts.values.sorted { $0.fingerprint < $1.fingerprint }, forKey: .alerts)
    }
}
