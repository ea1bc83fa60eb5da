import FlatlineCore

/// A sample a model watches, with its group key and the labels its alert will carry.
struct Seen {
    var sample: Sample
    var key: String
    var labels: [String: String]
    /// The detection bank's verdict, when the caller gave verdicts.
    var verdict: SampleVerdict?
}

/// A model's verdict on one watched thing, before it becomes an ``AlertObservation``.
///
/// `numbers` fill the templates; the standard ones become annotations: `value` (observed),
/// `expected`, `band`, `score` (1 at the edge of normal), `since`.
struct Found {
    var labels: [String: String]
    var numbers: [String: String]
    var condition: AlertCondition
}

extension Found {
    /// A verdict whose numbers are made only when its condition is active: they fill the
    /// annotations, which only an active condition's observation carries (formatting them for
    /// every watched thing at every round was most of a watch's time).
    init(labels: [String: String], condition: AlertCondition, numbers: () -> [String: String]) {
        self.init(labels: labels, numbers: condition == .active ? numbers() : [:], condition: condition)
    }
}

/// A value at a time.
struct Point: Codable, Sendable {
    var time: Timestamp
    var value: Double
}

/// Per-thing state, with when each thing was last seen so the gone ones can be forgotten.
struct Things<State: Codable & Sendable>: Codable, Sendable {
    struct Entry: Codable, Sendable {
        var state: State
        var seen: Timestamp
    }

    var entries: [String: Entry] = [:]

    subscript(key: String) -> State? { entries[key]?.state }

    mutating func set(_ key: String, _ state: State, at time: Timestamp) {
        entries[key] = Entry(state: state, seen: time)
    }
}

/// The learned state of one model, by kind.
enum ModelWatch: Codable, Sendable {
    case stall(StallWatch)
    case growth(GrowthWatch)
    case surge(SurgeWatch)
    case threshold(ThresholdWatch)
    case drop(DropWatch)
    case increase(IncreaseWatch)
    case forecast(ForecastWatch)
    case anomaly(AnomalyWatch)

    init(kind: Model.Kind) {
        switch kind {
        case .stall: self = .stall(StallWatch())
        case .growth: self = .growth(GrowthWatch())
        case .surge: self = .surge(SurgeWatch())
        case .threshold: self = .threshold(ThresholdWatch())
        case .drop: self = .drop(DropWatch())
        case .increase: self = .increase(IncreaseWatch())
        case .forecast: self = .forecast(ForecastWatch())
        case .anomaly: self = .anomaly(AnomalyWatch())
        }
    }

    var kindName: String {
        switch self {
        case .stall: "stall"
        case .growth: "growth"
        case .surge: "surge"
        case .threshold: "threshold"
        case .drop: "drop"
        case .increase: "increase"
        case .forecast: "forecast"
        case .anomaly: "anomaly"
        }
    }

    mutating func observe(_ kind: Model.Kind, time: Timestamp, seen: [Seen]) -> [Found] {
        /// Runs a watch and stores it back in its case.
        func run<W: Watch>(_ watch: W, _ p: W.Parameters, _ wrap: (W) -> ModelWatch) -> (ModelWatch, [Found]) {
            var watch = watch
            let found = watch.observe(p, time: time, seen: seen)
            return (wrap(watch), found)
        }
        let result: (ModelWatch, [Found])
        switch (self, kind) {
        case (.stall(let w), .stall(let p)): result = run(w, p, ModelWatch.stall)
        case (.growth(let w), .growth(let p)): result = run(w, p, ModelWatch.growth)
        case (.surge(let w), .surge(let p)): result = run(w, p, ModelWatch.surge)
        case (.threshold(let w), .threshold(let p)): result = run(w, p, ModelWatch.threshold)
        case (.drop(let w), .drop(let p)): result = run(w, p, ModelWatch.drop)
        case (.increase(let w), .increase(let p)): result = run(w, p, ModelWatch.increase)
        case (.forecast(let w), .forecast(let p)): result = run(w, p, ModelWatch.forecast)
        case (.anomaly(let w), .anomaly(let p)): result = run(w, p, ModelWatch.anomaly)
        default:
            // State of another kind (a model changed kind): start over.
            self = ModelWatch(kind: kind)
            return observe(kind, time: time, seen: seen)
        }
        self = result.0
        return result.1
    }

    /// Forgets the things not seen since `cutoff`.
    mutating func forget(notSeenSince cutoff: Timestamp) { keepThings { _, seen in seen >= cutoff } }

    /// The per-thing state split by the unit `unit` gives each thing's labels (things it gives
    /// none are left out); each part keeps the kind's other state.
    func split(by unit: ([String: String]) -> String?) -> [String: ModelWatch] {
        func splitting<W: Watch>(_ watch: W, _ wrap: (W) -> ModelWatch) -> [String: ModelWatch] {
            var parts: [String: W] = [:]
            for (key, entry) in watch.things.entries {
                guard let name = unit(entry.state.labels) else { continue }
                var part =
                    parts[name]
                    ?? {
                        var empty = watch
                        empty.things = Things()
                        return empty
                    }()
                part.things.entries[key] = entry
                parts[name] = part
            }
            return parts.mapValues(wrap)
        }
        switch self {
        case .stall(let w): return splitting(w, ModelWatch.stall)
        case .growth(let w): return splitting(w, ModelWatch.growth)
        case .surge(let w): return splitting(w, ModelWatch.surge)
        case .threshold(let w): return splitting(w, ModelWatch.threshold)
        case .drop(let w): return splitting(w, ModelWatch.drop)
        case .increase(let w): return splitting(w, ModelWatch.increase)
        case .forecast(let w): return splitting(w, ModelWatch.forecast)
        case .anomaly(let w): return splitting(w, ModelWatch.anomaly)
        }
    }

    /// Takes the things of `other` (of the same kind) that this one has not got.
    /// - Returns: how many it took.
    mutating func adopt(_ other: ModelWatch) -> Int {
        func adopting<W: Watch>(_ watch: W, _ other: W, _ wrap: (W) -> ModelWatch) -> (ModelWatch, Int) {
            var watch = watch
            var taken = 0
            for (key, entry) in other.things.entries where watch.things.entries[key] == nil {
                watch.things.entries[key] = entry
                taken += 1
            }
            return (wrap(watch), taken)
        }
        let result: (ModelWatch, Int)
        switch (self, other) {
        case (.stall(let w), .stall(let o)): result = adopting(w, o, ModelWatch.stall)
        case (.growth(let w), .growth(let o)): result = adopting(w, o, ModelWatch.growth)
        case (.surge(let w), .surge(let o)): result = adopting(w, o, ModelWatch.surge)
        case (.threshold(let w), .threshold(let o)): result = adopting(w, o, ModelWatch.threshold)
        case (.drop(let w), .drop(let o)): result = adopting(w, o, ModelWatch.drop)
        case (.increase(let w), .increase(let o)): result = adopting(w, o, ModelWatch.increase)
        case (.forecast(let w), .forecast(let o)): result = adopting(w, o, ModelWatch.forecast)
        case (.anomaly(let w), .anomaly(let o)): result = adopting(w, o, ModelWatch.anomaly)
        default: return 0
        }
        self = result.0
        return result.1
    }

    /// Forgets the things whose labels `belongs` accepts.
    mutating func drop(where belongs: ([String: String]) -> Bool) { keepThings { labels, _ in !belongs(labels) } }

    /// Keeps the things `keep` accepts, by their labels and when they were last seen.
    private mutating func keepThings(_ keep: (_ labels: [String: String], _ seen: Timestamp) -> Bool) {
        func keeping<W: Watch>(_ watch: W, _ wrap: (W) -> ModelWatch) -> ModelWatch {
            var watch = watch
            watch.things.entries = watch.things.entries.filter { keep($0.value.state.labels, $0.value.seen) }
            return wrap(watch)
        }
        switch self {
        case .stall(let w): self = keeping(w, ModelWatch.stall)
        case .growth(let w): self = keeping(w, ModelWatch.growth)
        case .surge(let w): self = keeping(w, ModelWatch.surge)
        case .threshold(let w): self = keeping(w, ModelWatch.threshold)
        case .drop(let w): self = keeping(w, ModelWatch.drop)
        case .increase(let w): self = keeping(w, ModelWatch.increase)
        case .forecast(let w): self = keeping(w, ModelWatch.forecast)
        case .anomaly(let w): self = keeping(w, ModelWatch.anomaly)
        }
    }

    /// How many things it holds state of.
    var count: Int {
        switch self {
        case .stall(let w): w.things.entries.count
        case .growth(let w): w.things.entries.count
        case .surge(let w): w.things.entries.count
        case .threshold(let w): w.things.entries.count
        case .drop(let w): w.things.entries.count
        case .increase(let w): w.things.entries.count
        case .forecast(let w): w.things.entries.count
        case .anomaly(let w): w.things.entries.count
        }
    }
}

/// A watched thing's state: it knows the labels it is about (its group's).
protocol Labelled {
    var labels: [String: String] { get }
}

extension StallWatch.Thing: Labelled {}
extension GrowthWatch.Thing: Labelled {}
extension SurgeWatch.Thing: Labelled {}
extension ThresholdWatch.Thing: Labelled {}
extension DropWatch.Thing: Labelled {}
extension IncreaseWatch.Thing: Labelled {}
extension ForecastWatch.Thing: Labelled {}
extension AnomalyWatch.Thing: Labelled {}

/// One kind's learned state: per-thing states, and how it observes a tick.
protocol Watch: Codable, Sendable {
    associatedtype Parameters
    associatedtype Thing: Codable & Sendable & Labelled
    var things: Things<Thing> { get set }
    mutating func observe(_ p: Parameters, time: Timestamp, seen: [Seen]) -> [Found]
}
