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

    mutating func forget(notSeenSince cutoff: Timestamp) {
        entries = entries.filter { $0.value.seen >= cutoff }
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

    mutating func forget(notSeenSince cutoff: Timestamp) {
        func forgetting<W: Watch>(_ watch: W, _ wrap: (W) -> ModelWatch) -> ModelWatch {
            var watch = watch
            watch.things.forget(notSeenSince: cutoff)
            return wrap(watch)
        }
        switch self {
        case .stall(let w): self = forgetting(w, ModelWatch.stall)
        case .growth(let w): self = forgetting(w, ModelWatch.growth)
        case .surge(let w): self = forgetting(w, ModelWatch.surge)
        case .threshold(let w): self = forgetting(w, ModelWatch.threshold)
        case .drop(let w): self = forgetting(w, ModelWatch.drop)
        case .increase(let w): self = forgetting(w, ModelWatch.increase)
        case .forecast(let w): self = forgetting(w, ModelWatch.forecast)
        case .anomaly(let w): self = forgetting(w, ModelWatch.anomaly)
        }
    }
}

/// One kind's learned state: per-thing states, and how it observes a tick.
protocol Watch: Codable, Sendable {
    associatedtype Parameters
    associatedtype Thing: Codable & Sendable
    var things: Things<Thing> { get set }
    mutating func observe(_ p: Parameters, time: Timestamp, seen: [Seen]) -> [Found]
}
