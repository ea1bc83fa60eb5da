import FlatlineCore

private typealias F = HumanNumber

struct ThresholdWatch: Codable, Sendable {
    struct Thing: Codable, Sendable {
        var labels: [String: String]
        var value: Double?
        /// The latest denominator (limits change rarely; they may come less often).
        var limit: Double?
        var activeSince: Timestamp?
    }

    var things = Things<Thing>()

    mutating func observe(_ p: Model.ThresholdParameters, time: Timestamp, seen: [Seen]) -> [Found] {
        var touched: [String] = []
        for s in seen {
            var state = things[s.key] ?? Thing(labels: s.labels)
            state.labels = s.labels  // a client's name may come after its first scrape
            if s.sample.labels.metricName == p.metric {
                state.value = s.sample.value
                state.labels = s.labels
                touched.append(s.key)
            } else {
                state.limit = s.sample.value
            }
            things.set(s.key, state, at: time)
        }
        var out: [Found] = []
        for key in touched {
            guard var state = things[key], let raw = state.value else { continue }
            var value = raw
            if p.ratioTo != nil {
                // No limit (0 or -1, "unlimited"), or none known yet: nothing to compare with.
                guard let limit = state.limit, limit > 0 else { continue }
                value = raw / limit
            }
            let beyond = p.direction == .below ? value < p.value : value > p.value
            let back = p.direction == .below ? value >= p.clear : value <= p.clear
            let condition: AlertCondition = beyond ? .active : back ? .inactive : .unchanged
            if condition == .active && state.activeSince == nil { state.activeSince = time }
            if condition == .inactive { state.activeSince = nil }
            things.set(key, state, at: time)
            out.append(
                Found(labels: state.labels, condition: condition) {
                    var numbers = [
                        "value": F.format(value), "threshold": F.format(p.value), "raw": F.format(raw),
                        "expected": (p.direction == .below ? "at least " : "at most ") + F.format(p.value),
                        "since": (state.activeSince ?? time).description,
                    ]
                    if p.ratioTo != nil, let limit = state.limit {
                        numbers["limit"] = F.format(limit)
                        numbers["percent"] = F.format(value * 100)
                        numbers["threshold_percent"] = F.format(p.value * 100)
                    }
                    return numbers
                }
            )
        }
        return out
    }
}

extension ThresholdWatch: Watch {}
