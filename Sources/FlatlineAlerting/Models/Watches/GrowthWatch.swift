import FlatlineCore

private typealias F = HumanNumber

struct GrowthWatch: Codable, Sendable {
    struct Thing: Codable, Sendable {
        var labels: [String: String]
        var values: [Point] = []
    }

    var things = Things<Thing>()

    mutating func observe(_ p: Model.GrowthParameters, time: Timestamp, seen: [Seen]) -> [Found] {
        var out: [Found] = []
        for s in seen {
            var state = things[s.key] ?? Thing(labels: s.labels)
            state.labels = s.labels  // a client's name may come after its first scrape
            let value = s.sample.value
            state.values.append(Point(time: time, value: value))
            if state.values.count > 64 { state.values.removeFirst(state.values.count - 64) }
            things.set(s.key, state, at: time)
            // The run of rises ending now: how many, and over how long.
            var rises = 0
            var start = time
            var k = state.values.count - 1
            while k > 0 && state.values[k - 1].value < state.values[k].value {
                rises += 1
                start = state.values[k - 1].time
                k -= 1
            }
            let rising =
                rises >= p.minRises && time.seconds - start.seconds >= p.minDuration
                && value - state.values[k].value >= p.minRise
            let condition: AlertCondition
            if value >= p.minValue && rising {
                condition = .active
            } else if value < p.clearValue {
                condition = .inactive
            } else {
                condition = .unchanged
            }
            out.append(
                Found(labels: state.labels, condition: condition) {
                    [
                        "value": F.format(value), "threshold": F.format(p.minValue),
                        "rise": F.format(value - state.values[k].value),
                        "rise_seconds": F.format(time.seconds - start.seconds), "since": start.description,
                        "expected": "below \(F.format(p.minValue)) or not rising",
                        "score": F.format(value / p.minValue),
                    ]
                }
            )
        }
        return out
    }
}

extension GrowthWatch: Watch {}
