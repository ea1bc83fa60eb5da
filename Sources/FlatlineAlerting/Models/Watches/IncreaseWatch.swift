import FlatlineCore

private typealias F = HumanNumber

struct IncreaseWatch: Codable, Sendable {
    struct Thing: Codable, Sendable {
        var labels: [String: String]
        var last: Double?
        /// Increases within the window, when they were seen.
        var increases: [Point] = []
    }

    var things = Things<Thing>()
    /// The first tick the model watched: series first seen later are new.
    var started: Timestamp?

    mutating func observe(_ p: Model.IncreaseParameters, time: Timestamp, seen: [Seen]) -> [Found] {
        let started = self.started ?? time
        self.started = started
        var out: [Found] = []
        for s in seen {
            let value = s.sample.value
            var state = things[s.key] ?? Thing(labels: s.labels)
            state.labels = s.labels  // a client's name may come after its first scrape
            if let last = state.last {
                // A counter that went down restarted: all of its value is new.
                let increase = s.sample.counterReset || value < last ? value : value - last
                if increase > 0 { state.increases.append(Point(time: time, value: increase)) }
            } else if p.newSeriesFromZero && (time > started || s.sample.counterReset) && value > 0 {
                // New since the model started, or a counter that says it counts from zero (one
                // an event created): all of its value is new.
                state.increases.append(Point(time: time, value: value))
            }
            state.last = value
            state.increases.removeAll { time.seconds - $0.time.seconds > p.window }
            things.set(s.key, state, at: time)
            let total = state.increases.reduce(0) { $0 + $1.value }
            let condition: AlertCondition = total >= p.minIncrease ? .active : total == 0 ? .inactive : .unchanged
            out.append(
                Found(labels: state.labels, condition: condition) {
                    [
                        "value": F.format(total), "threshold": F.format(p.minIncrease),
                        "window": DurationText.human(seconds: p.window), "total": F.format(value), "expected": "0",
                        "since": (state.increases.first?.time ?? time).description,
                    ]
                }
            )
        }
        return out
    }
}

extension IncreaseWatch: Watch {}
