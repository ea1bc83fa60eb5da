import FlatlineConfig
import FlatlineCore
import FlatlineNATS
import FlatlineScrape
import Foundation
import Logging
import Prometheus
import Synchronization

/// This process's part in a cluster of Flatline replicas (`cluster:`), coordinated through a
/// JetStream key-value bucket on NATS.
///
/// Each replica holds one key of the bucket `<name>-members`: it takes it with create-if-absent
/// and renews it every third of the lease with update-by-revision (never read-then-write), and
/// the bucket lets a key lapse one lease after its last write, so a replica that dies or is cut
/// off leaves the membership within one lease. Every third of the lease each replica also reads
/// the members, and a unit of scraping (a target; a `nats_system` or `nats_events` job as a
/// whole) is evaluated by the `replicas_per_shard` live members that rank highest for it by
/// rendezvous hashing: a replica that joins or leaves moves only its own share. A replica that
/// has just joined says so in its entry (`settled: false`), and members in place for longer than
/// a lease leave it out of the ranking until it owns its share, so its share stays with them
/// meanwhile.
///
/// A replica that cannot reach the coordinating NATS for longer than a lease evaluates every
/// unit ("alone"): during a partition, an alert twice rather than none.
public final class Cluster: Sendable {
    /// What a replica writes under its key.
    public struct Member: Codable, Hashable, Sendable {
        public var replica: String
        /// Random per process: tells a restarted replica from the process it replaces.
        public var incarnation: String
        /// When the process started (RFC 3339).
        public var started: String
        public var version: String
        /// Where its HTTP API is (its `--web.external-url`).
        public var api: String?
        /// Whether it owns its share yet: `false` while it settles after joining, and then it is
        /// not ranked. (Absent in entries of earlier versions: ranked.)
        public var settled: Bool?
    }

    /// Where this replica stands.
    public enum Phase: String, Sendable, Encodable {
        /// Not (yet) a member: owns nothing. Just registered (it waits a lease at the process's
        /// first join, a third of one later, for the others started with it), or its name is held
        /// by a live process.
        case joining
        /// A member: owns its share.
        case member
        /// Out of touch with the coordinating NATS for longer than a lease: owns everything.
        case alone
    }

    public let settings: ClusterSettings
    /// This process as the others see it.
    public let me: Member
    private let logger: Logger
    private let metrics: ClusterMetrics?
    private let state: Mutex<State>

    private struct State {
        var phase = Phase.joining
        /// The live members, by name, this one included once registered.
        var members: [String: Member] = [:]
        /// This replica's key's last revision, while it holds it.
        var revision: UInt64?
        var lastContact: ContinuousClock.Instant
        /// The units being scraped (set at each configuration generation).
        var configured: [String] = []
        /// Units found while scraping (a `nats_system` job's servers), by job.
        var discovered: [String: [DiscoveredUnit]] = [:]
        /// Every unit: configured, then found.
        var units: [String] {
            configured + discovered.keys.sorted().flatMap { discovered[$0, default: []].map(\.name) }
        }
        /// The incarnation holding this replica's name when it was found taken (logged once).
        var heldBy: String?
        var bucket: KeyValue?
        /// Renewals are failing (logged when it starts and when it ends, not at every try).
        var failing = false
        /// The coordinating NATS's JetStream, while running.
        var jetStream: JetStream?
        /// When this replica took its key (the last time).
        var registeredAt: ContinuousClock.Instant?
        /// Since when it has been a member without a break.
        var memberSince: ContinuousClock.Instant?
        /// Whether members still settling are ranked: only by a replica that became a member
        /// less than a lease ago (the replicas started with it), not by one long in place.
        var ranksSettling = true
        /// Whether it has been a member before, in this process.
        var wasMember = false
        /// The leader key's revision while this replica holds it.
        var leaderRevision: UInt64?
    }

    /// The key of the leader lease (a replica's name holds no dot, so no replica has it).
    public static let leaderKey = "cluster.leader"

    /// Whether this replica holds the cluster's leader lease, and with it the cluster's singleton
    /// work (see ``leading(_:)``).
    public var isLeader: Bool { state.withLock { $0.phase == .member && $0.leaderRevision != nil } }

    /// The coordinating NATS's JetStream while the cluster runs (for the shared delivery).
    public var jetStream: JetStream? { state.withLock { $0.jetStream } }

    /// Where this replica stands now.
    public var phase: Phase { state.withLock { $0.phase } }

    /// The bucket holding the members.
    public var bucket: String { settings.name + "-members" }

    private var tick: Duration { Duration.clamped(seconds: settings.lease / 3) }

    public init(settings: ClusterSettings, version: String, api: String?, metrics: ClusterMetrics?, logger: Logger) {
        self.settings = settings
        self.logger = logger
        self.metrics = metrics
        me = Member(
            replica: settings.replica,
            incarnation: Self.randomToken(),
            started: Date().formatted(.iso8601),
            version: version,
            api: api
        )
        state = Mutex(State(lastContact: .now))
    }

    // MARK: Ownership

    /// The replicas that evaluate `unit` among `members`: the `count` highest by rendezvous
    /// score (ties by name), highest first.
    public static func owners(of unit: String, among members: some Sequence<String>, count: Int) -> [String] {
        let ranked = members.map { ($0, score($0, unit)) }.sorted { a, b in
            a.1 != b.1 ? a.1 > b.1 : a.0 < b.0
        }
        return ranked.prefix(max(0, count)).map(\.0)
    }

    /// Whether this replica evaluates `unit` now.
    public func owns(_ unit: String) -> Bool {
        state.withLock { s in Self.owns(unit, s, me: me.replica, count: settings.replicasPerShard) }
    }

    private static func owns(_ unit: String, _ s: State, me: String, count: Int) -> Bool {
        switch s.phase {
        case .joining: false
        case .alone: true
        case .member: owners(of: unit, among: ranked(s, me: me), count: count).contains(me)
        }
    }

    /// The members that units are shared among: the settled ones, and this replica once it is a
    /// member (the others learn it at its next renewal). Members still settling count too for a
    /// replica that became a member less than a lease ago: replicas started together share from
    /// the start instead of the first one settled taking everything for a moment, while a
    /// replica long in place keeps a restarted one's share until it takes it.
    private static func ranked(_ s: State, me: String) -> [String] {
        s.members.compactMap { name, member in
            if name == me { return s.phase == .member ? name : nil }
            return member.settled == false && !s.ranksSettling ? nil : name
        }
    }

    /// Sets the units the running configuration scrapes (for the metrics and the status).
    public func track(_ units: [String]) {
        let owned = state.withLock { s in
            s.configured = units
            // Jobs no longer configured take their servers with them.
            s.discovered = s.discovered.filter { job, _ in units.contains { $0.hasPrefix(job + "/") } }
            return units.filter { Self.owns($0, s, me: me.replica, count: settings.replicasPerShard) }.count
        }
        metrics?.ownedTargets.set(to: Double(owned))
    }

    /// The servers of a `nats_system` job that answered its last round (each a unit, see
    /// ``Scraper/units(of:)``).
    public func discovered(job: String, servers: [DiscoveredUnit]) {
        let owned = state.withLock { s in
            s.discovered[job] = servers
            return s.units.filter { Self.owns($0, s, me: me.replica, count: settings.replicasPerShard) }.count
        }
        metrics?.ownedTargets.set(to: Double(owned))
    }

    /// The units found while scraping (a `nats_system` job's servers).
    public var discoveredUnits: [DiscoveredUnit] {
        state.withLock { s in s.discovered.keys.sorted().flatMap { s.discovered[$0, default: []] } }
    }

    /// What the API and the status page show.
    public var status: ClusterStatus {
        state.withLock { s in
            let names = Self.ranked(s, me: me.replica)
            var shards: [String: [String]] = [:]
            for unit in s.units {
                switch s.phase {
                case .member: shards[unit] = Self.owners(of: unit, among: names, count: settings.replicasPerShard)
                case .alone: shards[unit] = [me.replica]
                case .joining: shards[unit] = []
                }
            }
            return ClusterStatus(
                clustered: true,
                name: settings.name,
                replica: me.replica,
                leader: s.phase == .member && s.leaderRevision != nil,
                phase: s.phase,
                lease: settings.lease,
                replicasPerShard: settings.replicasPerShard,
                members: s.members.values.sorted { $0.replica < $1.replica }.map { member in
                    ClusterStatus.MemberView(
                        name: member.replica,
                        started: member.started,
                        version: member.version,
                        api: member.api,
                        settled: member.replica == me.replica ? s.phase == .member : member.settled != false,
                        this: member.replica == me.replica
                    )
                },
                shards: shards
            )
        }
    }

    // MARK: Running

    /// Joins, renews and watches the membership until the task is cancelled.
    public func run() async {
        let configuration: NATSClientConfiguration
        do {
            configuration = try settings.nats.clientConfiguration(name: "flatline-cluster-\(settings.replica)")
        } catch {
            logger.error(
                "cluster: cannot connect to the coordinating NATS; this replica evaluates every target",
                metadata: ["reason": "\(error.reason)"]
            )
            becomeAlone()
            // Returns with the daemon, not before.
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
            return
        }
        let client = NATSClient(configuration: configuration, logger: logger)
        let timeout = Duration.clamped(seconds: min(5, max(0.5, settings.lease / 3)))
        let jetStream = JetStream(client: client, timeout: timeout)
        state.withLock { $0.jetStream = jetStream }
        // Detached: the connection stays up after a cancellation or a graceful shutdown (which
        // closes clients run in the service group's tasks), to leave.
        let logger = logger
        let connection = Task.detached {
            do {
                try await client.run()
            } catch {
                logger.warning(
                    "cluster: the connection to the coordinating NATS ended",
                    metadata: ["error": "\(error)"]
                )
            }
        }
        while !Task.isCancelled {
            let started = ContinuousClock.now
            await step(jetStream)
            // Renewals keep their pace even when a step took a while.
            do { try await Task.sleep(until: started + tick) } catch { break }
        }
        // Leaving: the others take this replica's share now instead of a lease from now. Not
        // cancelled with this task.
        await Task { await self.leave() }.value
        state.withLock { $0.jetStream = nil }
        client.close()
        await connection.value
    }

    /// Gives the key up (only if this process still holds it).
    private func leave() async {
        let (bucket, revision, leader) = state.withLock { ($0.bucket, $0.revision, $0.leaderRevision) }
        guard let bucket, let revision else { return }
        if let leader {
            try? await bucket.delete(Self.leaderKey, revision: leader)
            state.withLock { $0.leaderRevision = nil }
        }
        do {
            try await bucket.delete(me.replica, revision: revision)
            logger.info("cluster: left", metadata: ["replica": "\(me.replica)"])
        } catch {
            logger.warning(
                "cluster: could not leave; the others take over when the lease lapses",
                metadata: ["error": "\(error)"]
            )
        }
        state.withLock { $0.revision = nil }
    }

    /// One renewal and one look at the members.
    private func step(_ jetStream: JetStream) async {
        do {
            let bucket = try await self.bucket(jetStream)
            var entry = me
            entry.settled = state.withLock { $0.phase == .member }
            let value = Array(try JSONEncoder().encode(entry))
            var revision = state.withLock { $0.revision }
            if let held = revision {
                do {
                    revision = try await bucket.update(me.replica, value: value, revision: held)
                } catch let error as NATSError where error.apiErrorCode == KeyValue.wrongRevision {
                    logger.warning(
                        "cluster: this replica's entry lapsed before it was renewed (a pause longer than the lease?); joining again"
                    )
                    revision = try await register(bucket, value: value)
                }
            } else {
                revision = try await register(bucket, value: value)
            }
            var members: [String: Member] = [:]
            for entry in try await bucket.entries(limit: 10_000) {
                guard let member = try? JSONDecoder().decode(Member.self, from: Data(entry.value)),
                    member.replica == entry.key
                else { continue }
                members[entry.key] = member
            }
            if revision != nil { members[me.replica] = entry }
            update(members: members, revision: revision)
            try await lead(bucket)
            if state.withLock({ s in
                defer { s.failing = false }; return s.failing
            }) {
                logger.notice("cluster: the coordinating NATS answers again")
            }
        } catch {
            metrics?.renewFailures.increment()
            let (first, alone) = state.withLock { s in
                // A bucket that is gone (a new NATS, a deleted stream) is made again.
                // (A publish to a stream that is gone gets no responder, not 10059.)
                if let error = error as? NATSError, error.apiErrorCode == 10059 || error.code == .noResponders {
                    s.bucket = nil
                }
                defer { s.failing = true }
                let lapsed = ContinuousClock.now - s.lastContact > Duration.clamped(seconds: settings.lease)
                return (!s.failing, s.phase != .alone && lapsed)
            }
            if first {
                logger.warning(
                    "cluster: cannot renew the membership; trying again every third of the lease",
                    metadata: ["error": "\(error)"]
                )
            }
            if alone { becomeAlone() }
        }
    }

    /// Takes the leader lease if nobody holds it (create-if-absent), or renews it
    /// (update-by-revision); a member only. It lapses with the bucket's age limit like a member's
    /// key, so a leader that dies is replaced within a lease and a third.
    private func lead(_ bucket: KeyValue) async throws {
        let (phase, held) = state.withLock { ($0.phase, $0.leaderRevision) }
        let value = Array(try JSONEncoder().encode(me))
        guard phase == .member else {
            if let held {
                try? await bucket.delete(Self.leaderKey, revision: held)
                state.withLock { $0.leaderRevision = nil }
            }
            return
        }
        do {
            let revision: UInt64
            if let held {
                revision = try await bucket.update(Self.leaderKey, value: value, revision: held)
            } else {
                revision = try await bucket.create(Self.leaderKey, value: value)
                logger.notice(
                    "cluster: this replica leads the cluster's singleton work",
                    metadata: ["replica": "\(me.replica)"]
                )
            }
            state.withLock { $0.leaderRevision = revision }
        } catch let error as NATSError where error.apiErrorCode == KeyValue.wrongRevision {
            if held != nil { logger.warning("cluster: this replica lost the leader lease") }
            state.withLock { $0.leaderRevision = nil }
        }
    }

    /// The members' bucket: made with up to 3 copies when the coordinating NATS is a cluster
    /// (1 when that fails or it is one server); an existing one is used as it is, its age limit
    /// brought to the lease.
    private func bucket(_ jetStream: JetStream) async throws -> KeyValue {
        if let bucket = state.withLock({ $0.bucket }) { return bucket }
        var configuration = KeyValue.Configuration(bucket: bucket)
        configuration.ttl = Duration.clamped(seconds: settings.lease)
        let found: StreamConfiguration?
        do {
            found = try await jetStream.streamInfo("KV_" + bucket).config
        } catch let error as NATSError where error.apiErrorCode == 10059 {
            // "stream not found": made below.
            found = nil
        }
        let kv: KeyValue
        if var existing = found {
            kv = try KeyValue(bucket: bucket, jetStream: jetStream)
            let ttl = configuration.ttl?.wholeNanoseconds ?? 0
            if existing.maxAge != ttl {
                existing.maxAge = ttl
                existing.duplicateWindow = min(ttl, existing.duplicateWindow ?? ttl)
                try await jetStream.updateStream(existing)
                logger.notice(
                    "cluster: the members' entries now lapse after the lease",
                    metadata: ["lease": "\(settings.lease)"]
                )
            }
        } else {
            configuration.replicas = Self.copies(jetStream)
            do {
                kv = try await KeyValue.create(configuration, in: jetStream)
            } catch let error as NATSError where configuration.replicas > 1 && error.code == .jetStream {
                logger.warning(
                    "cluster: cannot keep the members' bucket in \(configuration.replicas) copies; keeping one",
                    metadata: ["error": "\(error)"]
                )
                configuration.replicas = 1
                kv = try await KeyValue.create(configuration, in: jetStream)
            }
        }
        state.withLock { $0.bucket = kv }
        return kv
    }

    /// Takes this replica's key if nobody holds it; `nil` while a live process does.
    private func register(_ bucket: KeyValue, value: [UInt8]) async throws -> UInt64? {
        do {
            let revision = try await bucket.create(me.replica, value: value)
            logger.info(
                "cluster: joined",
                metadata: ["cluster": "\(settings.name)", "replica": "\(me.replica)", "lease": "\(settings.lease)"]
            )
            state.withLock { $0.heldBy = nil }
            return revision
        } catch let error as NATSError where error.apiErrorCode == KeyValue.wrongRevision {
            let holder = try await bucket.get(me.replica).flatMap { entry in
                (try? JSONDecoder().decode(Member.self, from: Data(entry.value))).map { ($0, entry.revision) }
            }
            // This process wrote it (an answer lost on the way back): it is ours.
            if let holder, holder.0.incarnation == me.incarnation { return holder.1 }
            let incarnation = holder?.0.incarnation ?? "?"
            let first = state.withLock { s -> Bool in
                defer { s.heldBy = incarnation }
                return s.heldBy != incarnation
            }
            if first {
                logger.warning(
                    "cluster: the replica name is held by another process; waiting for its entry to lapse (a restart waits at most one lease; two live replicas with one name wait for ever: give each its own cluster.replica)",
                    metadata: [
                        "replica": "\(me.replica)", "held_since": "\(holder?.0.started ?? "?")",
                        "held_by_api": "\(holder?.0.api ?? "?")",
                    ]
                )
            }
            return nil
        }
    }

    private func update(members: [String: Member], revision: UInt64?) {
        let count = settings.replicasPerShard
        let (owned, gained, left, joined) = state.withLock { s in
            let before = Set(s.units.filter { Self.owns($0, s, me: me.replica, count: count) })
            let previous = Set(s.members.keys)
            let wasAlone = s.phase == .alone
            // Just registered: a look at the members a while later before owning anything, so
            // replicas started together (whose first tries may fail while one of them makes the
            // bucket) do not each take everything for a moment: a whole lease at the process's
            // first join, a third of one when it joins again.
            if revision != nil && s.revision == nil { s.registeredAt = .now }
            let settle = s.wasMember ? tick : Duration.clamped(seconds: settings.lease)
            let settled = revision != nil && s.registeredAt.map { ContinuousClock.now - $0 >= settle } == true
            if settled { s.wasMember = true }
            s.members = members
            s.revision = revision
            s.lastContact = .now
            s.phase = settled ? .member : .joining
            if settled {
                if s.memberSince == nil { s.memberSince = .now }
            } else {
                s.memberSince = nil
            }
            s.ranksSettling =
                s.memberSince.map { ContinuousClock.now - $0 < Duration.clamped(seconds: settings.lease) } ?? true
            let after = Set(s.units.filter { Self.owns($0, s, me: me.replica, count: count) })
            let left = wasAlone ? [] : previous.subtracting(members.keys).sorted()
            let joined = previous.isEmpty ? [] : Set(members.keys).subtracting(previous).sorted()
            return (after.count, after.subtracting(before).count, left, joined)
        }
        metrics?.members.set(to: Double(members.count))
        metrics?.ownedTargets.set(to: Double(owned))
        metrics?.alone.set(to: 0)
        if !left.isEmpty {
            metrics?.takeovers.increment(by: Int64(gained))
            logger.notice(
                "cluster: members left; their targets move to the others",
                metadata: ["left": "\(left.joined(separator: ","))", "taken_over_here": "\(gained)"]
            )
        }
        if !joined.isEmpty {
            logger.info(
                "cluster: members joined",
                metadata: ["joined": "\(joined.joined(separator: ","))", "owned_here": "\(owned)"]
            )
        }
    }

    private func becomeAlone() {
        let units = state.withLock { s -> Int in
            s.phase = .alone
            s.memberSince = nil
            s.revision = nil
            s.leaderRevision = nil
            return s.units.count
        }
        metrics?.alone.set(to: 1)
        metrics?.ownedTargets.set(to: Double(units))
        logger.error(
            "cluster: out of touch with the coordinating NATS for longer than the lease: this replica evaluates every target until it is back (other replicas may alert too)"
        )
    }

    /// The `User-Agent` of what a replica sends (`flatline (replica a)`), `product` first.
    public static func userAgent(_ product: String, replica: String) -> String { "\(product) (replica \(replica))" }

    /// The replica a `User-Agent` made by ``userAgent(_:replica:)`` names.
    public static func replica(inUserAgent agent: String) -> String? {
        agent.range(of: "(replica ").map { String(agent[$0.upperBound...].prefix { $0 != ")" }) }
    }

    // MARK: Plumbing

    /// How many copies to keep of what the cluster stores: 3 when the coordinating NATS is a
    /// cluster of 3 or more servers (as many as it has when fewer), 1 when it is one server.
    static func copies(_ jetStream: JetStream) -> Int {
        let info = jetStream.client.serverInfo
        let servers = info?.cluster == nil ? 1 : max(1, info?.connectURLs.count ?? 1)
        return min(3, servers)
    }

    /// FNV-1a over the replica, a zero byte and the unit, then a 64-bit finalizer: stable across
    /// processes and platforms (`Hasher` is seeded per process), and well spread.
    static func score(_ replica: String, _ unit: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in replica.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        hash = hash &* 0x0000_0100_0000_01B3
        for byte in unit.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        // splitmix64's finalizer.
        hash = (hash ^ (hash >> 30)) &* 0xbf58_476d_1ce4_e5b9
        hash = (hash ^ (hash >> 27)) &* 0x94d0_49bb_1331_11eb
        return hash ^ (hash >> 31)
    }

    private static func randomToken() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<16).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] })
    }
}

/// `GET /api/v1/cluster`.
public struct ClusterStatus: Encodable, Sendable {
    public struct MemberView: Encodable, Sendable {
        public var name: String
        public var started: String
        public var version: String
        public var api: String?
        /// Whether it owns its share yet (a replica that just joined is settling).
        public var settled: Bool
        /// This replica.
        public var this: Bool
    }

    public var clustered: Bool
    public var name: String?
    public var replica: String?
    /// This replica holds the cluster's leader lease (its singleton work); alone: true.
    public var leader: Bool
    public var phase: Cluster.Phase
    public var lease: Double?
    public var replicasPerShard: Int?
    public var members: [MemberView]
    /// Each unit of scraping (target, or a `nats_system`/`nats_events` job) and the replicas
    /// that evaluate it.
    public var shards: [String: [String]]

    /// A process without `cluster:`: it evaluates everything.
    public static let alone = ClusterStatus(
        clustered: false,
        name: nil,
        replica: nil,
        leader: true,
        phase: .alone,
        lease: nil,
        replicasPerShard: nil,
        members: [],
        shards: [:]
    )

    private enum CodingKeys: String, CodingKey {
        case clustered, name, replica, leader, phase, lease, members, shards
        case replicasPerShard = "replicas_per_shard"
    }
}
