import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineNotify
import FlatlineScrape

/// Detection → models → alert states → dispatcher: the one evaluation every source goes
/// through. ``Pipeline`` feeds it the daemon's scrapes and events (and so, in ``DaemonReplay``,
/// a recording's rounds, and at a restart the write-ahead log); ``Replayer`` the ticks of a
/// series file, scored by its own banks (split across cores) and handed in as verdicts;
/// `flatline notify` recorded alert events, which enter at the dispatcher.
///
/// A value that reads no clock (every call is told the time: the wall clock live, the batch's or
/// event's time offline) and does no I/O: logging, saving and sending are its owner's.
public struct Evaluation: Sendable {
    /// Each source's (target's) detection bank.
    public internal(set) var banks: [String: DetectionBank] = [:]
    /// What the models watch and have learned.
    public internal(set) var evaluator: ModelEvaluator
    /// Alert states: pending, firing, resolved.
    public internal(set) var engine: AlertEngine
    /// Routes, groups, inhibition and silences, from alert states to notifications.
    public internal(set) var dispatcher: Dispatcher

    /// - Parameter routing: where notifications go; `nil`: nowhere (a replay that only writes
    ///   its alert events).
    public init(models: [Model], routing: AlertingSettings? = nil) {
        evaluator = ModelEvaluator(models: models)
        engine = AlertEngine()
        dispatcher = Self.dispatcher(routing)
    }

    /// A dispatcher for `routing` (one that routes to nobody for `nil`).
    static func dispatcher(_ routing: AlertingSettings?) -> Dispatcher {
        let routing = routing ?? AlertingSettings(route: RouteSettings(receiver: "none"), receivers: [])
        return Dispatcher(tree: RoutingTree(routing.route), inhibitRules: routing.inhibitRules)
    }

    /// One round of a source: its bank (from `coldBank` when it has none yet) scores the
    /// samples, and the verdicts go on through ``evaluate(time:samples:verdicts:now:)``.
    /// - Returns: the verdicts, one per sample, and the alerts that fired or resolved; `nil`
    ///   when the source has no bank and `coldBank` gives none (nothing was evaluated).
    public mutating func ingest(
        _ batch: ScrapeBatch,
        now: Timestamp,
        coldBank: () -> DetectionBank?
    ) -> (verdicts: [SampleVerdict], events: [AlertEvent])? {
        guard var bank = banks.removeValue(forKey: batch.target) ?? coldBank() else { return nil }
        let verdicts = bank.process(time: batch.time, samples: batch.samples)
        banks[batch.target] = bank
        return (verdicts, evaluate(time: batch.time, samples: batch.samples, verdicts: verdicts, now: now))
    }

    /// A tick's samples and their verdicts (none for an event between scrapes) through the
    /// models and the alert states at the tick's `time`; alerts that changed go to the
    /// dispatcher at `now`.
    /// - Returns: the alerts that fired or resolved.
    public mutating func evaluate(
        time: Timestamp,
        samples: [Sample],
        verdicts: [SampleVerdict],
        now: Timestamp
    ) -> [AlertEvent] {
        let events = engine.evaluate(at: time, evaluator.observe(time: time, samples: samples, verdicts: verdicts))
        for event in events { dispatcher.update(event.alert, at: now) }
        return events
    }

    /// Recorded alert events through the dispatcher on their own clock: the notifications the
    /// daemon would have made, with their times (so `flatline notify` sends a replayed incident
    /// the way it would have gone out live). Timers run on the events' times; after the last
    /// event the groups are flushed until every change has been told.
    public mutating func notifications(for events: [AlertEvent]) -> [GroupNotification] {
        var out: [GroupNotification] = []
        let ordered = events.enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }
        for (_, event) in ordered {
            while let next = dispatcher.nextFlush, next <= event.time {
                out += dispatcher.flush(at: next)
            }
            dispatcher.update(event.alert, at: event.time)
        }
        // Tell what is left: every group's next ticks until one passes with nothing new (firing
        // groups would otherwise tick for ever).
        guard let last = ordered.last?.element.time else { return out }
        let horizon = dispatcher.tree.routes.map { $0.groupWait + 2 * $0.groupInterval }.max() ?? 0
        while let next = dispatcher.nextFlush, next.seconds <= last.seconds + horizon {
            out += dispatcher.flush(at: next)
        }
        return out
    }

    /// A reloaded configuration's routes: silences kept, groups that keep their key keep what they
    /// were told (up to `logAge` seconds), firing alerts (and resolves not told yet) routed again
    /// at `now`.
    mutating func reroute(_ routing: AlertingSettings, at now: Timestamp, logAge: Double) {
        var next = Self.dispatcher(routing)
        next.silences = dispatcher.silences
        next.restore(notificationLog: dispatcher.notificationLog, at: now, maxAge: logAge)
        next.readmit(firing: engine.alerts(in: .firing), resolved: engine.alerts(in: .resolved), at: now)
        dispatcher = next
    }
}
