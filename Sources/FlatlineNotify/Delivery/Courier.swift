import FlatlineCore
import Foundation
import Logging
import Synchronization

/// How failed attempts are spaced, and when a notification is given up.
public struct RetryPolicy: Sendable, Hashable {
    /// Seconds before the second attempt.
    public var initialDelay = 1.0
    /// Each further delay is this many times the previous one...
    public var multiplier = 2.0
    /// ...up to this many seconds.
    public var maxDelay = 300.0
    /// Each delay is moved by up to this fraction either way, so receivers that come back are
    /// not hit by every sender at once.
    public var jitter = 0.2
    /// Seconds after which a notification still not delivered is given up (recorded in the
    /// outbox's failed table and counted).
    public var maxAge = 86_400.0

    public init() {}

    /// The delay after `attempts` failed attempts, before jitter.
    public func delay(afterAttempts attempts: Int) -> Double {
        min(maxDelay, initialDelay * pow(multiplier, Double(max(0, attempts - 1))))
    }
}

/// Counts of what deliveries came to, by integration and outcome, and the latency from a
/// notification's commit to its delivery.
public final class DeliveryStats: Sendable {
    /// What an attempt came to; the `outcome` label of `flatline_notifications_total`.
    public enum Outcome: String, Sendable, Hashable, CaseIterable {
        case delivered, retried, rejected, expired
    }

    public struct Counts: Sendable, Hashable {
        /// By integration id, then outcome: `delivered`, `retried`, `rejected`, `expired`.
        public var outcomes: [String: [String: Int]] = [:]
        /// Seconds from commit to delivery, of every delivered notification (for quantiles).
        public var latencies: [Double] = []
    }

    private let counts = Mutex(Counts())

    public init() {}

    func record(_ integration: String, _ outcome: Outcome, latency: Double? = nil) {
        counts.withLock {
            $0.outcomes[integration, default: [:]][outcome.rawValue, default: 0] += 1
            if let latency {
                $0.latencies.append(latency)
                if $0.latencies.count > 100_000 { $0.latencies.removeFirst(50_000) }
            }
        }
    }

    public var snapshot: Counts { counts.withLock { $0 } }
}

/// Delivers what the outbox holds: one loop per integration, the head of each group's queue at
/// a time (so a resolve never overtakes its firing), groups side by side. A 2xx removes the
/// notification; a retryable failure schedules the next attempt with exponential backoff and
/// jitter (or the receiver's `Retry-After`); a refusal or an expired notification moves to the
/// failed table. Nothing leaves the outbox any other way.
public final class Courier: Sendable {
    public let outbox: Outbox
    public let integrations: [any Integration]
    public let policy: RetryPolicy
    public let stats: DeliveryStats
    public let metrics: NotifyMetrics?
    private let logger: Logger
    private let wakeups: [String: Wakeup]
    /// Fired when delivery outcomes were recorded (a drain looks at the outbox again).
    private let recorded = Wakeup()
    private let now: @Sendable () -> Double

    public init(
        outbox: Outbox,
        integrations: [any Integration],
        policy: RetryPolicy = RetryPolicy(),
        stats: DeliveryStats = DeliveryStats(),
        metrics: NotifyMetrics? = nil,
        logger: Logger,
        now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) {
        self.outbox = outbox
        self.integrations = integrations
        self.policy = policy
        self.stats = stats
        self.metrics = metrics
        self.logger = logger
        self.now = now
        wakeups = Dictionary(uniqueKeysWithValues: integrations.map { ($0.id, Wakeup()) })
    }

    /// Tells the loops that new notifications were committed.
    public func notify() {
        for wakeup in wakeups.values { wakeup.fire() }
    }

    /// Runs the delivery loops until the task is cancelled.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            for integration in integrations {
                group.addTask { await self.loop(integration) }
            }
        }
    }

    /// Runs the delivery loops until the outbox is empty or `seconds` pass (a command's
    /// lifetime, a shutdown's grace). What is left stays for the next run.
    /// - Returns: the notifications still waiting (`nil` when the outbox cannot be read).
    @discardableResult
    public func drain(within seconds: Double) async -> Int? {
        let deadline = ContinuousClock.now + Duration.clamped(seconds: seconds)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.run() }
            // Looks again whenever outcomes were recorded (and at least every second).
            while (try? outbox.pendingCount()) ?? 0 > 0, ContinuousClock.now < deadline {
                await recorded.wait(upTo: min(deadline - ContinuousClock.now, .seconds(1)))
            }
            group.cancelAll()
        }
        return try? outbox.pendingCount()
    }

    private func loop(_ integration: any Integration) async {
        let wakeup = wakeups[integration.id]
        while !Task.isCancelled {
            expireOld(integration)
            let attempted = await deliverDue(integration)
            updateOutboxGauges()
            if attempted > 0 { continue }
            // Sleep until the next item is due (at most a second, to notice the clock), or a wakeup.
            var wait = 1.0
            do {
                if let next = try outbox.nextAttempt(integration: integration.id) {
                    wait = min(wait, max(0.005, next - now()))
                }
            } catch {
                logger.error("outbox unreadable", metadata: ["integration": "\(integration.id)", "error": "\(error)"])
            }
            await wakeup?.wait(upTo: Duration.clamped(seconds: wait))
        }
    }

    /// Gives up every notification of `integration` older than the policy's `maxAge`, due or
    /// not: one whose next attempt lies far ahead still expires on time.
    public func expireOld(_ integration: any Integration) {
        let time = now()
        let old: [OutboxItem]
        do {
            old = try outbox.created(integration: integration.id, atOrBefore: time - policy.maxAge)
        } catch {
            logger.error("outbox unreadable", metadata: ["integration": "\(integration.id)", "error": "\(error)"])
            return
        }
        guard !old.isEmpty else { return }
        record(
            old.map { ($0, .retry(reason: $0.lastError ?? "not delivered", after: nil)) },
            integration: integration.id
        )
    }

    /// Sets `flatline_outbox_pending` and `flatline_outbox_oldest_age_seconds`.
    public func updateOutboxGauges() {
        guard let metrics else { return }
        do {
            let count = try outbox.pendingCount()
            let oldest = try outbox.oldestCreatedAt()
            metrics.outbox(pending: count, oldestAge: oldest.map { max(0, now() - $0) } ?? 0)
        } catch {
            logger.error("outbox unreadable", metadata: ["error": "\(error)"])
        }
    }

    /// One pass: attempts every due notification of `integration` (heads of their groups, side
    /// by side) and records the outcomes. Returns how many were attempted.
    @discardableResult
    public func deliverDue(_ integration: any Integration, limit: Int = 256) async -> Int {
        let items: [OutboxItem]
        do {
            items = try outbox.due(integration: integration.id, now: now(), limit: limit)
        } catch {
            logger.error("outbox unreadable", metadata: ["integration": "\(integration.id)", "error": "\(error)"])
            return 0
        }
        guard !items.isEmpty else { return 0 }
        let outcomes = await withTaskGroup(of: (OutboxItem, DeliveryOutcome).self) { group in
            for item in items {
                group.addTask { (item, await integration.deliver(item)) }
            }
            var all: [(OutboxItem, DeliveryOutcome)] = []
            for await result in group { all.append(result) }
            return all
        }
        // An attempt cut short by a shutdown (or `notify --timeout`) says so, not what the HTTP
        // client threw when it was cancelled; the notification stays in the outbox.
        let cut = Task.isCancelled
        record(
            outcomes.map { item, outcome in
                guard cut, case .retry(let reason, _) = outcome else { return (item, outcome) }
                // (The HTTP client's own cancellation already says it in those words.)
                let detail = reason == "cut short: stopping" ? "" : " (\(reason))"
                return (item, .retry(reason: "attempt cut short by stopping" + detail, after: nil))
            },
            integration: integration.id,
            cutShort: cut
        )
        return items.count
    }

    /// Stores a round's outcomes in one transaction, then counts and logs them.
    private func record(_ outcomes: [(OutboxItem, DeliveryOutcome)], integration: String, cutShort: Bool = false) {
        let time = now()
        var updates: [Outbox.Update] = []
        var notes: [(DeliveryStats.Outcome, OutboxItem, String?, Double?)] = []
        for (item, outcome) in outcomes {
            // Reasons may quote a receiver's URL: its user and password never reach the outbox or logs.
            let outcome: DeliveryOutcome =
                switch outcome {
                case .delivered: .delivered
                case .rejected(let reason): .rejected(reason: Redaction.redactingUserinfo(reason))
                case .retry(let reason, let after): .retry(reason: Redaction.redactingUserinfo(reason), after: after)
                }
            switch outcome {
            case .delivered:
                updates.append(.delivered(item.id))
                notes.append((.delivered, item, nil, nil))
            case .rejected(let reason):
                updates.append(.giveUp(item.id, reason: reason))
                notes.append((.rejected, item, reason, nil))
            case .retry(let reason, let after):
                if time - item.createdAt >= policy.maxAge {
                    updates.append(.giveUp(item.id, reason: "gave up after \(item.attempts + 1) attempts: \(reason)"))
                    notes.append((.expired, item, reason, nil))
                } else {
                    let base = policy.delay(afterAttempts: item.attempts + 1)
                    // A receiver's Retry-After is honoured within [backoff, max delay]: `0` cannot
                    // make us hammer it, `999999999` cannot park a notification for decades.
                    let delay =
                        after.map { $0.isNaN ? base : min(max($0, base), policy.maxDelay) }
                        ?? base * (1 + policy.jitter * Double.random(in: -1...1))
                    updates.append(.retry(item.id, at: time + delay, error: reason))
                    notes.append((.retried, item, reason, delay))
                }
            }
        }
        do {
            try outbox.apply(updates, now: time)
        } catch {
            // The outbox cannot be written: the items stay as they were and are attempted again.
            logger.error(
                "cannot record delivery outcomes",
                metadata: ["integration": "\(integration)", "error": "\(error)"]
            )
            return
        }
        recorded.fire()
        for (outcome, item, reason, delay) in notes {
            stats.record(integration, outcome, latency: outcome == .delivered ? time - item.createdAt : nil)
            metrics?.outcome(receiver: item.receiver, integration: integration, outcome)
            if outcome == .delivered { metrics?.delivered(after: time - item.createdAt) }
            var metadata: Logger.Metadata = [
                "integration": "\(integration)", "group": "\(item.groupKey)",
                "idempotency_key": "\(item.idempotencyKey)", "attempt": "\(item.attempts + 1)",
            ]
            if let reason { metadata["reason"] = "\(reason)" }
            switch outcome {
            case .delivered:
                logger.debug("notification delivered", metadata: metadata)
            case .rejected:
                logger.error("notification rejected by the receiver, not retried", metadata: metadata)
            case .expired:
                logger.error("notification given up: too old", metadata: metadata)
            case .retried where cutShort:
                logger.warning("notification attempt cut short by stopping, it stays queued", metadata: metadata)
            case .retried:
                metadata["retry_in"] = "\(DurationText.format(seconds: ((delay ?? 0) * 10).rounded() / 10))"
                logger.warning("notification failed, will retry", metadata: metadata)
            }
        }
    }
}
