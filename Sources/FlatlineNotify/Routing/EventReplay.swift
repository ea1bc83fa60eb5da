import FlatlineAlerting
import FlatlineCore

/// Recorded alert events through the dispatcher on their own clock: the notifications the
/// daemon would have made, with their times (so `flatline notify` sends a replayed incident
/// the way it would have gone out live).
public enum EventReplay {
    /// The notifications for `events`, in order. Timers run on the events' times; after the
    /// last event the groups are flushed until every change has been told.
    public static func notifications(_ events: [AlertEvent], dispatcher: inout Dispatcher) -> [GroupNotification] {
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
}
