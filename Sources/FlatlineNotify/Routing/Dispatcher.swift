import FlatlineAlerting
import FlatlineConfig
import FlatlineCore

/// A silence: alerts whose labels satisfy every matcher are not notified between `startsAt` and
/// `endsAt`.
public struct Silence: Sendable, Hashable, Codable {
    public var id: String
    public var matchers: [String] {
        didSet { compiled = Self.compile(matchers) }
    }
    public var startsAt: Timestamp
    public var endsAt: Timestamp
    public var createdBy: String
    public var comment: String
    /// The matchers, parsed once (a regular expression compiled per check would cost every
    /// flush); `nil` when one does not parse, so the silence mutes nothing.
    private var compiled: [LabelMatcher]?

    public init(
        id: String,
        matchers: [String],
        startsAt: Timestamp,
        endsAt: Timestamp,
        createdBy: String = "",
        comment: String = ""
    ) {
        self.id = id
        self.matchers = matchers
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.createdBy = createdBy
        self.comment = comment
        compiled = Self.compile(matchers)
    }

    private enum CodingKeys: String, CodingKey {
        case id, matchers, startsAt, endsAt, createdBy, comment
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(String.self, forKey: .id),
            matchers: try c.decode([String].self, forKey: .matchers),
            startsAt: try c.decode(Timestamp.self, forKey: .startsAt),
            endsAt: try c.decode(Timestamp.self, forKey: .endsAt),
            createdBy: try c.decode(String.self, forKey: .createdBy),
            comment: try c.decode(String.self, forKey: .comment)
        )
    }

    private static func compile(_ matchers: [String]) -> [LabelMatcher]? {
        var out: [LabelMatcher] = []
        for text in matchers {
            guard let matcher = try? LabelMatcher(parsing: text) else { return nil }
            out.append(matcher)
        }
        return out
    }

    /// Whether the silence mutes `labels` at `time`. Matchers that do not parse mute nothing
    /// (they are refused when a silence is created).
    public func mutes(_ labels: [String: String], at time: Timestamp) -> Bool {
        guard time >= startsAt, time < endsAt, let compiled, !compiled.isEmpty else { return false }
        return compiled.allSatisfy { $0.matches(labels) }
    }
}

/// One message for one receiver about one group of alerts: what Alertmanager's webhook sends.
public struct GroupNotification: Sendable, Hashable {
    public var receiver: String
    /// `<route key>:<group labels>`, as Alertmanager writes it.
    public var groupKey: String
    public var groupLabels: [String: String]
    /// Firing and resolved alerts of the group, in label order.
    public var alerts: [Alert]
    /// When the dispatcher made it.
    public var time: Timestamp
    /// The group's count of notifications, this one included (kept across restarts by the
    /// notification log); 0 for messages outside a group's sequence (Alertmanager re-sends).
    public var sequence: Int

    public init(
        receiver: String,
        groupKey: String,
        groupLabels: [String: String],
        alerts: [Alert],
        time: Timestamp,
        sequence: Int = 0
    ) {
        self.receiver = receiver
        self.groupKey = groupKey
        self.groupLabels = groupLabels
        self.alerts = alerts
        self.time = time
        self.sequence = sequence
    }

    /// `firing` when any alert in it fires, else `resolved`.
    public var status: AlertEvent.Status { alerts.contains { $0.state == .firing } ? .firing : .resolved }
}

/// Alertmanager's grouping and timing, clocked from outside: alerts are routed into aggregation
/// groups (one per route and distinct values of its `group_by`), and a group is notified
/// `group_wait` after it formed, then at most every `group_interval` when it changed (a new
/// firing alert, a new resolved one, all resolved), and every `repeat_interval` when it did not.
/// Silenced and inhibited alerts are left out; a group with nothing to say says nothing.
///
/// Resolved alerts leave their group once notified (or once a flush found them muted). The
/// dispatcher is a value: no I/O, no clock, so it is tested with a table and replays exactly.
public struct Dispatcher: Sendable {
    public let tree: RoutingTree
    public var inhibitRules: [InhibitRuleSettings]
    public var silences: [Silence] = []
    private var groups: [String: Group] = [:]
    /// Firing alerts by fingerprint, for inhibition.
    private var firing: [AlertFingerprint: Alert] = [:]

    struct Group: Sendable {
        var route: Int
        var key: String
        var labels: [String: String]
        var alerts: [AlertFingerprint: Alert] = [:]
        var nextFlush: Timestamp
        var lastNotified: Timestamp?
        var notifiedFiring: Set<AlertFingerprint> = []
        var notifiedResolved: Set<AlertFingerprint> = []
        /// Notifications made for this group so far.
        var sequence = 0
    }

    /// What was last told about one group: when, and which alerts as firing and as resolved.
    /// Alertmanager keeps the same (its notification log) so a restart does not tell again what
    /// a receiver already heard.
    public struct NotificationLogEntry: Sendable, Hashable, Codable {
        public var lastNotified: Timestamp
        public var firing: [AlertFingerprint]
        public var resolved: [AlertFingerprint]
        /// The group's count of notifications.
        public var sequence: Int?

        public init(lastNotified: Timestamp, firing: [AlertFingerprint], resolved: [AlertFingerprint], sequence: Int) {
            self.lastNotified = lastNotified
            self.firing = firing
            self.resolved = resolved
            self.sequence = sequence
        }
    }

    /// Entries of a saved notification log whose group has not formed again yet.
    private var restoredLog: [String: NotificationLogEntry] = [:]

    public init(tree: RoutingTree, inhibitRules: [InhibitRuleSettings] = []) {
        self.tree = tree
        self.inhibitRules = inhibitRules
    }

    /// What was last told about each group, by group key (groups told something, and saved
    /// entries whose group has not formed again yet).
    public var notificationLog: [String: NotificationLogEntry] {
        var log = restoredLog
        for (key, group) in groups {
            guard let last = group.lastNotified else { continue }
            log[key] = NotificationLogEntry(
                lastNotified: last,
                firing: group.notifiedFiring.sorted(),
                resolved: group.notifiedResolved.sorted(),
                sequence: group.sequence
            )
        }
        return log
    }

    /// Continues from a saved notification log: a group that forms again knows what it told
    /// (firing alerts already told are not told again until `repeat_interval`). Entries older
    /// than `maxAge` seconds before `time` are dropped.
    public mutating func restore(
        notificationLog log: [String: NotificationLogEntry],
        at time: Timestamp,
        maxAge: Double
    ) {
        restoredLog = log.filter { time.seconds - $0.value.lastNotified.seconds <= maxAge }
        for (key, entry) in restoredLog {
            guard var group = groups[key] else { continue }
            Self.apply(entry, to: &group)
            groups[key] = group
            restoredLog[key] = nil
        }
    }

    private static func apply(_ entry: NotificationLogEntry, to group: inout Group) {
        group.lastNotified = entry.lastNotified
        group.notifiedFiring = Set(entry.firing)
        group.notifiedResolved = Set(entry.resolved)
        group.sequence = max(0, entry.sequence ?? 0)
    }

    /// Routes the alerts of a continuing engine again, after a restart or a reload (once the
    /// notification log is restored): the firing ones, and the resolved ones the log says were
    /// told firing and not told resolved, so a resolve that came just before is still told.
    /// (Resolves told already, or of alerts never told, are left out, as they would have been.)
    public mutating func readmit(firing: [Alert], resolved: [Alert], at time: Timestamp) {
        let toldFiring = Set(notificationLog.values.flatMap(\.firing))
        for alert in firing { update(alert, at: time) }
        for alert in resolved where toldFiring.contains(alert.fingerprint) { update(alert, at: time) }
    }

    /// The number of aggregation groups.
    public var groupCount: Int { groups.count }

    /// The earliest time a group is due, or `nil` when there is none.
    public var nextFlush: Timestamp? { groups.values.map(\.nextFlush).min() }

    /// Takes in an alert's current state (firing, or resolved). Pending alerts are ignored.
    public mutating func update(_ alert: Alert, at time: Timestamp) {
        guard alert.state != .pending else { return }
        if alert.state == .firing { firing[alert.fingerprint] = alert } else { firing[alert.fingerprint] = nil }
        for index in tree.matchIndices(alert.labels) {
            let groupLabels = tree.routes[index].groupBy.groupLabels(alert.labels)
            let key = tree.routes[index].key + ":" + labelSetText(groupLabels)
            let groupWait = tree.routes[index].groupWait
            var group =
                groups[key]
                ?? Group(
                    route: index,
                    key: key,
                    labels: groupLabels,
                    nextFlush: time.advanced(bySeconds: groupWait)
                )
            if let entry = restoredLog.removeValue(forKey: key) { Self.apply(entry, to: &group) }
            if group.alerts.isEmpty && group.lastNotified == nil, let fired = alert.firedAt,
                time.seconds - fired.seconds >= groupWait
            {
                // An alert older than the group wait (after a restart): no reason to wait again.
                group.nextFlush = min(group.nextFlush, time)
            }
            if alert.state == .resolved && group.alerts[alert.fingerprint] == nil && group.alerts.isEmpty
                && group.lastNotified == nil
            {
                // A resolve for a group that never formed: nothing to tell anyone.
                continue
            }
            group.alerts[alert.fingerprint] = alert
            groups[key] = group
        }
    }

    /// The notifications due at `time`, in group key order.
    public mutating func flush(at time: Timestamp) -> [GroupNotification] {
        var out: [GroupNotification] = []
        for key in groups.keys.sorted() {
            guard var group = groups[key], group.nextFlush <= time else { continue }
            let repeatInterval = tree.routes[group.route].repeatInterval
            let groupInterval = tree.routes[group.route].groupInterval
            let receiver = tree.routes[group.route].receiver
            let visible = group.alerts.values.filter { !isMuted($0, at: time) }
            let firingNow = Set(visible.filter { $0.state == .firing }.map(\.fingerprint))
            let resolvedNow = Set(visible.filter { $0.state == .resolved }.map(\.fingerprint))
            let needed: Bool
            if visible.isEmpty {
                // Every alert of the group muted: nothing is told, and what was told stays as it
                // was (as in Alertmanager, where muted alerts never reach the notification log),
                // so an alert told before a silence is not told again when the silence ends.
                needed = false
            } else if group.lastNotified == nil {
                needed = !firingNow.isEmpty
            } else if !firingNow.isSubset(of: group.notifiedFiring) {
                needed = true
            } else if firingNow.isEmpty && !group.notifiedFiring.isEmpty {
                needed = true
            } else if !resolvedNow.isSubset(of: group.notifiedResolved) {
                needed = true
            } else if let last = group.lastNotified, time.seconds - last.seconds >= repeatInterval,
                !firingNow.isEmpty
            {
                needed = true
            } else {
                needed = false
            }
            if needed {
                group.sequence &+= 1
                out.append(
                    GroupNotification(
                        receiver: receiver,
                        groupKey: group.key,
                        groupLabels: group.labels,
                        alerts: visible.map { (labelSetText($0.labels), $0) }.sorted { $0.0 < $1.0 }.map(\.1),
                        time: time,
                        sequence: group.sequence
                    )
                )
                group.lastNotified = time
                group.notifiedFiring = firingNow
                group.notifiedResolved = resolvedNow
            }
            // Resolved alerts have been told (or were muted): they leave the group.
            for fingerprint in group.alerts.keys where group.alerts[fingerprint]?.state == .resolved {
                group.alerts[fingerprint] = nil
            }
            group.nextFlush = time.advanced(bySeconds: groupInterval)
            groups[key] = group.alerts.isEmpty ? nil : group
        }
        return out
    }

    /// Whether an alert is silenced or inhibited at `time`.
    public func isMuted(_ alert: Alert, at time: Timestamp) -> Bool {
        if silences.contains(where: { $0.mutes(alert.labels, at: time) }) { return true }
        return inhibitedBy(alert) != nil
    }

    /// The firing alert that inhibits `alert`, if any: one matching a rule's source matchers,
    /// with the rule's `equal` labels equal (absent counts as empty), while `alert` matches its
    /// target matchers. An alert matching both sides is not inhibited by others that do too.
    public func inhibitedBy(_ alert: Alert) -> AlertFingerprint? {
        for rule in inhibitRules where rule.targetMatchers.allSatisfy({ $0.matches(alert.labels) }) {
            let targetIsSource = rule.sourceMatchers.allSatisfy { $0.matches(alert.labels) }
            for source in firing.values.sorted(by: { $0.fingerprint < $1.fingerprint })
            where source.fingerprint != alert.fingerprint {
                guard rule.sourceMatchers.allSatisfy({ $0.matches(source.labels) }) else { continue }
                if targetIsSource && rule.targetMatchers.allSatisfy({ $0.matches(source.labels) }) { continue }
                guard rule.equal.allSatisfy({ (source.labels[$0] ?? "") == (alert.labels[$0] ?? "") }) else { continue }
                return source.fingerprint
            }
        }
        return nil
    }
}
