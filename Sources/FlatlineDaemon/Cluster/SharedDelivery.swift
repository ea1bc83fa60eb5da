import FlatlineConfig
import FlatlineCore
import FlatlineNATS
import FlatlineNotify
import FlatlineScrape
import Foundation
import Logging
import NIOCore
import Synchronization

/// Notifications through the cluster, so that what several replicas tell is delivered once.
///
/// Each replica commits its notifications to its own outbox as it does alone, with keys that
/// name what they tell (``Notifier/sharedKeys``: the group, its alerts and their states, the same
/// on every replica). Its courier then hands each one to the JetStream stream
/// `<name>-notifications` with that key as `Nats-Msg-Id`: the stream keeps the first of equal
/// notifications within its duplicate window (the shortest `group_interval` of the routes, a
/// replica never tells a group the same thing twice within it) and drops the others. Every
/// replica pulls from the stream's one durable work-queue consumer, so each stored notification
/// goes to one replica, which delivers it through the integration and acknowledges it; a failed
/// attempt is asked again after the retry policy's delay, and one whose replica died is
/// redelivered to another after the acknowledgement wait. The `Idempotency-Key` a receiver sees
/// is made from the stream's sequence: the same for every attempt, on any replica.
///
/// A group's notifications keep their order across replicas: each group has its own subject
/// (`<name>.notifications.<hash of integration and group>`), and a replica delivers a
/// notification only when it is the oldest of its subject still in the stream (acknowledged ones
/// leave a work queue). One being retried, or held by a replica that died, holds the group's later
/// ones on every replica until it is delivered, given up or handed to another.
///
/// Out of touch with the coordinating NATS for longer than a lease (``Cluster/Phase/alone``), a
/// replica delivers its notifications itself.
public final class SharedDelivery: Sendable {
    public let cluster: Cluster
    private let policy: RetryPolicy
    private let metrics: ClusterMetrics?
    private let logger: Logger
    /// Set up on the coordinating NATS (stream and consumer), with this duplicate window.
    private let prepared = Mutex<Double?>(nil)
    /// The duplicate window the routes ask for, in seconds.
    private let window: Mutex<Double>
    /// Groups waiting for a retry: their later notifications wait too (a resolve does not
    /// overtake its firing on this replica).
    private let blocked = Mutex<[String: ContinuousClock.Instant]>([:])
    /// Integrations named by notifications that this replica's configuration lacks (logged once).
    private let unknown = Mutex<Set<String>>([])

    public var stream: String { cluster.settings.name + "-notifications" }
    /// The subjects' common prefix; a group's notifications go to `<prefix>.<hash>`.
    public var subject: String { cluster.settings.name + ".notifications" }
    /// The subject of one group's notifications.
    public func subject(integration: String, groupKey: String) -> String {
        subject + "." + String(Cluster.score(integration, groupKey), radix: 16)
    }
    public static let consumer = "delivery"
    /// How long a pulled notification may go unacknowledged before another replica gets it.
    public static let ackWait = 60.0
    /// How long a notification waiting for an earlier one of its group is put back for.
    static let orderWait = Duration.seconds(1)

    /// What goes through the stream.
    struct Envelope: Codable {
        var integration: String
        var receiver: String
        var groupKey: String
        var key: String
        var body: Data
        var createdAt: Double
    }

    public init(
        cluster: Cluster,
        window: Double,
        policy: RetryPolicy = RetryPolicy(),
        metrics: ClusterMetrics?,
        logger: Logger
    ) {
        self.cluster = cluster
        self.window = Mutex(Self.clampWindow(window))
        self.policy = policy
        self.metrics = metrics
        self.logger = logger
    }

    /// Sets the duplicate window (a reload's routes): the shortest `group_interval`, from 1 s
    /// to 10 minutes.
    public func setWindow(_ seconds: Double) {
        let clamped = Self.clampWindow(seconds)
        window.withLock { $0 = clamped }
    }

    private static func clampWindow(_ seconds: Double) -> Double { min(600, max(1, seconds)) }

    /// The courier's stand-in for `integration`: hands notifications to the stream.
    public func forward(_ integration: any Integration) -> any Integration {
        Forward(base: integration, delivery: self)
    }

    struct Forward: Integration {
        let base: any Integration
        let delivery: SharedDelivery

        var id: String { base.id }
        var sendResolved: Bool { base.sendResolved }

        func deliver(_ item: OutboxItem) async -> DeliveryOutcome {
            guard delivery.cluster.phase != .alone, let jetStream = delivery.cluster.jetStream else {
                // Cut off: deliver it here, under a key of this replica's own.
                var direct = item
                direct.idempotencyKey = Notifier.uuidKey(item.idempotencyKey + "\n\(item.createdAt)")
                return await base.deliver(direct)
            }
            do {
                try await delivery.publish(item, through: jetStream)
                return .delivered
            } catch {
                return .retry(reason: "cannot hand the notification to the cluster: \(error)", after: nil)
            }
        }

        func shutdown() async { await base.shutdown() }
    }

    func publish(_ item: OutboxItem, through jetStream: JetStream) async throws {
        try await prepare(jetStream)
        let envelope = Envelope(
            integration: item.integration,
            receiver: item.receiver,
            groupKey: item.groupKey,
            key: item.idempotencyKey,
            body: item.body,
            createdAt: item.createdAt
        )
        var headers = NATSHeaders()
        headers.set(item.idempotencyKey, for: "Nats-Msg-Id")
        let ack = try await jetStream.publish(
            Array(try JSONEncoder().encode(envelope)),
            to: subject(integration: item.integration, groupKey: item.groupKey),
            headers: headers
        )
        logger.debug(
            ack.duplicate
                ? "notification already handed to the cluster by another replica"
                : "notification handed to the cluster",
            metadata: [
                "integration": "\(item.integration)", "group": "\(item.groupKey)", "sequence": "\(ack.sequence)",
            ]
        )
    }

    /// Makes (or brings up to date) the stream and its consumer.
    private func prepare(_ jetStream: JetStream) async throws {
        let wanted = window.withLock { $0 }
        guard prepared.withLock({ $0 }) != wanted else { return }
        // The bare prefix is the subject of earlier versions: their messages are still delivered.
        var configuration = StreamConfiguration(name: stream, subjects: [subject, subject + ".>"])
        configuration.retention = .workqueue
        configuration.storage = .file
        configuration.discard = .new
        configuration.maxMessages = 100_000
        configuration.maxBytes = 1 << 30
        configuration.maxAge = Duration.clamped(seconds: policy.maxAge).wholeNanoseconds
        configuration.duplicateWindow = Duration.clamped(seconds: wanted).wholeNanoseconds
        configuration.replicas = Cluster.copies(jetStream)
        do {
            try await jetStream.createStream(configuration)
        } catch let error as NATSError where error.apiErrorCode == 10058 {
            // It exists with other settings (another window, another replica's copies).
            var existing = try await jetStream.streamInfo(stream).config
            existing.duplicateWindow = configuration.duplicateWindow
            existing.maxAge = configuration.maxAge
            existing.subjects = configuration.subjects
            try await jetStream.updateStream(existing)
        } catch let error as NATSError where configuration.replicas > 1 && error.code == .jetStream {
            configuration.replicas = 1
            try await jetStream.createStream(configuration)
        }
        var consumer = ConsumerConfiguration(durableName: Self.consumer)
        consumer.ackPolicy = .explicit
        consumer.ackWait = Duration.clamped(seconds: Self.ackWait).wholeNanoseconds
        consumer.maxAckPending = 1000
        do {
            try await jetStream.createConsumer(stream: stream, consumer)
        } catch let error as NATSError where error.code == .jetStream {
            // One made by another version with other settings: used as it is.
            _ = try await jetStream.consumerInfo(stream: stream, consumer: Self.consumer)
            logger.debug("cluster: using the existing delivery consumer", metadata: ["error": "\(error)"])
        }
        prepared.withLock { $0 = wanted }
    }

    // MARK: Delivering

    /// Pulls notifications and delivers them through `integrations` until the task is cancelled.
    public func run(integrations: [any Integration]) async {
        let byID = Dictionary(integrations.map { ($0.id, $0) }) { first, _ in first }
        var failing = false
        while !Task.isCancelled {
            guard cluster.phase != .alone, let jetStream = cluster.jetStream else {
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            do {
                try await prepare(jetStream)
                let messages = try await jetStream.fetch(
                    stream: stream,
                    consumer: Self.consumer,
                    batch: 64,
                    expires: .seconds(1)
                )
                if failing {
                    failing = false
                    logger.notice("cluster: pulling notifications again")
                }
                await deliver(messages, byID: byID, jetStream: jetStream)
            } catch {
                if !failing {
                    logger.warning("cluster: cannot pull notifications", metadata: ["error": "\(error)"])
                }
                failing = true
                // Made again at the next try (the stream may be gone: a new NATS).
                prepared.withLock { $0 = nil }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    private func deliver(_ messages: [JetStreamMessage], byID: [String: any Integration], jetStream: JetStream) async {
        // By integration and group, in the stream's order; groups side by side.
        var order: [String] = []
        var groups: [String: [(JetStreamMessage, Envelope)]] = [:]
        // In the stream's order (redeliveries may come back out of it).
        let sorted = messages.sorted { ($0.metadata?.streamSequence ?? 0) < ($1.metadata?.streamSequence ?? 0) }
        for message in sorted {
            guard
                let envelope = try? JSONDecoder().decode(
                    Envelope.self,
                    from: Data(message.message.payload.readableBytesView)
                )
            else {
                logger.error(
                    "cluster: a message in the notification stream is not a notification; dropped",
                    metadata: ["subject": "\(message.message.subject)"]
                )
                try? await message.term()
                continue
            }
            let group = envelope.integration + "\n" + envelope.groupKey
            if groups[group] == nil { order.append(group) }
            groups[group, default: []].append((message, envelope))
        }
        await withTaskGroup(of: Void.self) { tasks in
            for group in order {
                let list = groups[group] ?? []
                tasks.addTask { await self.deliver(group: group, list, byID: byID, jetStream: jetStream) }
            }
        }
    }

    private func deliver(
        group: String,
        _ list: [(JetStreamMessage, Envelope)],
        byID: [String: any Integration],
        jetStream: JetStream
    ) async {
        let waiting = blocked.withLock { $0[group] }.map { $0 - ContinuousClock.now } ?? .zero
        if waiting > .zero {
            for (message, _) in list { try? await message.nak(delay: waiting) }
            return
        }
        if let (head, _) = list.first, await waitsForEarlier(head, in: jetStream) {
            // An earlier one of the group is being retried or held elsewhere: ask again soon.
            metrics?.notification("waited")
            for (message, _) in list { try? await message.nak(delay: Self.orderWait) }
            return
        }
        for (index, (message, envelope)) in list.enumerated() {
            let age = Date().timeIntervalSince1970 - envelope.createdAt
            guard age <= policy.maxAge else {
                logger.error(
                    "cluster: notification given up: not delivered within the retry policy's age",
                    metadata: ["integration": "\(envelope.integration)", "group": "\(envelope.groupKey)"]
                )
                metrics?.notification("expired")
                try? await message.term()
                continue
            }
            guard let integration = byID[envelope.integration] else {
                if unknown.withLock({ $0.insert(envelope.integration).inserted }) {
                    logger.error(
                        "cluster: a notification for an integration this replica's configuration does not have; left for the others (do all replicas have the same configuration?)",
                        metadata: ["integration": "\(envelope.integration)"]
                    )
                }
                try? await message.nak(delay: .seconds(5))
                continue
            }
            let metadata = message.metadata
            let sequence = metadata?.streamSequence ?? 0
            let attempts = max(0, (metadata?.delivered ?? 1) - 1)
            let item = OutboxItem(
                id: Int64(clamping: sequence),
                integration: envelope.integration,
                receiver: envelope.receiver,
                groupKey: envelope.groupKey,
                idempotencyKey: Notifier.uuidKey("\(stream)\n\(sequence)\n\(envelope.key)"),
                body: envelope.body,
                createdAt: envelope.createdAt,
                nextAttemptAt: envelope.createdAt,
                attempts: attempts
            )
            // Each attempt may take the integration's timeout: the ack wait starts again first, so
            // a long batch is not handed to another replica meanwhile.
            try? await message.inProgress()
            switch await integration.deliver(item) {
            case .delivered:
                try? await message.ack()
                metrics?.notification("delivered")
                logger.debug(
                    "notification delivered",
                    metadata: ["integration": "\(envelope.integration)", "sequence": "\(sequence)"]
                )
            case .rejected(let reason):
                try? await message.term()
                metrics?.notification("rejected")
                logger.error(
                    "notification rejected by the receiver; not retried",
                    metadata: [
                        "integration": "\(envelope.integration)", "group": "\(envelope.groupKey)",
                        "reason": "\(reason)",
                    ]
                )
            case .retry(let reason, let after):
                let seconds = max(after ?? 0, policy.delay(afterAttempts: attempts + 1))
                let delay = Duration.clamped(seconds: seconds)
                blocked.withLock { $0[group] = ContinuousClock.now + delay }
                metrics?.notification("retried")
                logger.warning(
                    "notification not delivered; retried",
                    metadata: [
                        "integration": "\(envelope.integration)", "attempt": "\(attempts + 1)", "reason": "\(reason)",
                        "retry_in": "\(seconds)",
                    ]
                )
                // This one and the group's later ones, in order, after the delay.
                for (later, _) in list[index...] { try? await later.nak(delay: delay) }
                return
            }
        }
        blocked.withLock { _ = $0.removeValue(forKey: group) }
    }

    /// Whether the stream still holds an earlier notification on `message`'s subject (its group's).
    /// When the stream cannot be asked, the message is delivered: order gives way to delivery.
    private func waitsForEarlier(_ message: JetStreamMessage, in jetStream: JetStream) async -> Bool {
        guard let sequence = message.metadata?.streamSequence, sequence > 1 else { return false }
        do {
            let oldest = try await jetStream.message(stream: stream, .next(on: message.message.subject, from: 1))
            return (oldest?.sequence ?? sequence) < sequence
        } catch {
            logger.debug("cluster: cannot look for earlier notifications", metadata: ["error": "\(error)"])
            return false
        }
    }
}
