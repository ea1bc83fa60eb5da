import FlatlineCore

private typealias F = HumanNumber

struct DropWatch: Codable, Sendable {
    struct Thing: Codable, Sendable {
        var labels: [String: String]
        /// The highest level held (or the lower one accepted after `relearn_after`).
        var level: Double
        var lowSince: Timestamp?
    }

    var things = Things<Thing>()

    mutating func observe(_ p: Model.DropParameters, time: Timestamp, seen: [Seen]) -> [Found] {
        var out: [Found] = []
        for s in seen {
            let value = s.sample.value
            var state = things[s.key] ?? Thing(labels: s.labels, level: value)
            state.labels = s.labels
            if value >= state.level {
                state.level = value
                state.lowSince = nil
            } else if let lowSince = state.lowSince {
                if time.seconds - lowSince.seconds >= p.relearnAfter {
                    // Held long enough to be the new normal (a route removed on purpose).
                    state.level = value
                    state.lowSince = nil
                }
            } else {
                state.lowSince = time
            }
            things.set(s.key, state, at: time)
            let drop = state.level - value
            let condition: AlertCondition = drop >= p.minDrop ? .active : drop <= 0 ? .inactive : .unchanged
            out.append(
                Found(labels: state.labels, condition: condition) {
                    [
                        "value": F.format(value), "level": F.format(state.level), "drop": F.format(drop),
                        "expected": F.format(state.level), "since": (state.lowSince ?? time).description,
                        "relearn_after": DurationText.human(seconds: p.relearnAfter),
                    ]
                }
            )
        }
        return out
    }
}

extension DropWatch: Watch {}
