import FlatlineCore
import FlatlineYAML
import Foundation

/// What an alert raised by a model looks like.
public struct AlertTemplate: Sendable, Hashable {
    /// `alertname`.
    public var name: String
    public var severity: String
    public var timing: AlertTiming
    /// Extra labels on every alert of the model.
    public var labels: [String: String]
    /// One line; `{{label}}` takes a label of the alert, `{{value}}`, `{{threshold}}`, `{{since}}` the
    /// model's numbers.
    public var summary: String
    /// What a person on call needs to act, in the same template language.
    public var description: String
}

/// A model: which series it watches, the signal it derives, when it alerts, and how the alert
/// reads. The kinds and their parameters are documented in the README ("Models").
public struct Model: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// A counter (`progress`) stops advancing while work waits. JetStream consumer freezes.
        case stall(StallParameters)
        /// A gauge rising past a level, scrape after scrape. Slow consumers.
        case growth(GrowthParameters)
        /// A counter's rate far above its own baseline. Producer floods, connection churn.
        case surge(SurgeParameters)
        /// A gauge (or a ratio of two) beyond a fixed level. Targets down, storage near its limit.
        case threshold(ThresholdParameters)
        /// A gauge below the level it held (routes, leaf nodes, gateways lost).
        case drop(DropParameters)
        /// A counter that increased at all within a window (slow-consumer disconnects).
        case increase(IncreaseParameters)
        /// A gauge's robust trend reaching a limit within a horizon (backlog forecasts).
        case forecast(ForecastParameters)
        /// The detector bank's verdict (the configured detector, `surprise` by default) on a series.
        case anomaly(AnomalyParameters)

        /// The metric names the kind reads.
        public var metrics: Set<String> {
            switch self {
            case .stall(let p):
                Set(
                    [p.progress] + p.waiting + p.draining + (p.delivered.map { [$0] } ?? [])
                        + (p.idle.map { [$0] } ?? [])
                        + (p.untaken.map { [$0] } ?? [])
                )
            case .growth(let p): [p.metric]
            case .surge(let p): Set([p.messages] + (p.bytes.map { [$0] } ?? []))
            case .threshold(let p): Set([p.metric] + (p.ratioTo.map { [$0] } ?? []))
            case .drop(let p): [p.metric]
            case .increase(let p): [p.metric]
            case .forecast(let p): Set([p.metric] + (p.limitMetric.map { [$0] } ?? []))
            case .anomaly(let p): Set(p.metrics)
            }
        }

        /// The metric names `match:` applies to (the watched series, not their limits).
        public var primaryMetrics: Set<String> {
            switch self {
            case .threshold(let p): [p.metric]
            case .forecast(let p): [p.metric]
            default: metrics
            }
        }

        public var name: String {
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
    }

    /// A counter that must keep advancing while the `waiting` gauges sum above zero.
    public struct StallParameters: Sendable, Hashable {
        public var progress: String
        public var waiting: [String]
        /// Gauges whose fall counts as progress too: a consumer whose ack-pending count falls is
        /// acknowledging, even while one slow message holds its ack floor.
        public var draining: [String] = []
        /// A counter of work handed out (`delivered.stream_seq`): when it advanced by more than
        /// the `draining` gauges rose, what was handed out was finished, which is progress too.
        public var delivered: String?
        /// A gauge in which the server itself tells the seconds since the thing last made progress
        /// (`jetstream_consumer_last_ack_seconds`, from the consumer's last acknowledgement): read
        /// at any one scrape, it says how long a stall has lasted whatever the scrape interval,
        /// where progress between scrapes can only say it at the second silent scrape.
        public var idle: String? = nil
        /// A gauge of the seconds since work was last handed out (`jetstream_consumer_last_delivery_seconds`).
        /// Work first seen waiting at this scrape may have arrived just before it: a stall
        /// reaching back before the scrape is believed only when nothing was taken meanwhile.
        public var untaken: String? = nil
        /// Never sooner than this many seconds without progress...
        public var stallAfter: Double
        /// ...nor sooner than this many times the thing's usual gap between advances.
        public var stallFactor: Double
        /// A thing that advanced at (nearly) every scrape while work waited is stalled after this
        /// many scrape intervals without progress (and `stallAfter`), instead of `stallFactor`
        /// usual gaps: at 15 s scrapes the usual gap is one scrape, and three of them would let a
        /// 30-second freeze pass unseen.
        public var stallScrapes: Double = 1
    }

    /// A gauge at or above `minValue`, risen `minRises` observations in a row over at least
    /// `minDuration` seconds; clears below `clearValue`.
    public struct GrowthParameters: Sendable, Hashable {
        public var metric: String
        public var minValue: Double
        public var clearValue: Double
        public var minRises: Int
        public var minDuration: Double
        /// The run of rises must add at least this much: a big queue that wobbles is no growth.
        public var minRise: Double = 0
    }

    /// A counter's rate far above its own baseline, optionally carrying payload (so
    /// acknowledgements and pull requests, which are messages without payload, are no flood).
    public struct SurgeParameters: Sendable, Hashable {
        /// The counter whose rate is watched.
        public var messages: String
        /// Its byte counter, when the surplus must carry payload.
        public var bytes: String?
        /// The rate must be at least this many times the baseline...
        public var factor: Double
        /// ...and this many per second above it...
        public var minRate: Double
        /// ...over an interval of this many seconds; over a longer interval `dt` the surplus
        /// needed is `minRate × √(minRateInterval / dt)`, since the noise of a count grows as its
        /// square root: a surplus that is noise over one second is a flood sustained over 15.
        /// 0: `minRate` at every interval.
        public var minRateInterval: Double = 0
        /// ...and this many of its own standard deviations above it (a noisy producer's peaks
        /// are no flood).
        public var sigmas: Double
        /// The surplus must carry this many payload bytes per message on average.
        public var minPayload: Double
        /// Seconds the surge must have lasted, over consecutive observations.
        public var minDuration: Double
        /// Half-life of the baseline (an exponentially weighted mean of the rate, not updated
        /// while surging), in seconds.
        public var halfLife: Double
        /// Seconds of normal traffic before the baseline is trusted (cold start).
        public var warmup: Double
        /// Half-life of a second, faster mean of normal traffic, in seconds (0: none). The surge
        /// is measured from the higher of the two means, so a producer at the top of its own
        /// slow swing, which the slow baseline averages away, needs a larger surge.
        public var levelHalfLife: Double = 0
        /// A second, steadier rule (0: none): a rate at least this many times the baseline
        /// (less than `factor`) is a surge too when it is `steadySigmas` of the producer's own
        /// standard deviations above it (and `minRate` as before). A producer whose rate hardly
        /// varies shows a flood that began late in a long scrape interval as a smaller multiple
        /// than the flood's own, but far beyond anything it does by nature.
        public var steadyFactor: Double = 0
        public var steadySigmas: Double = 0
        /// A scrape this many times past every bar of the usual rule (`factor` times the
        /// baseline, `minRate` and `sigmas` deviations above it) is a surge at once, without
        /// waiting `minDuration` (0: never). A flood of eight times a steady rate is no busy second.
        public var instant: Double = 0
    }

    /// A gauge, or its ratio to another series of the same thing, beyond `value`; clears back
    /// past `clear` (hysteresis).
    public struct ThresholdParameters: Sendable, Hashable {
        public var metric: String
        /// Divide by this series (same `group_by` labels); a denominator of 0 or below (no
        /// limit) means nothing to watch.
        public var ratioTo: String?
        /// `above` or `below`.
        public var direction: Direction
        public var value: Double
        public var clear: Double
    }

    /// A gauge more than `minDrop` below the highest level it held; a lower level held for
    /// `relearnAfter` seconds becomes the new normal (a route removed on purpose).
    public struct DropParameters: Sendable, Hashable {
        public var metric: String
        public var minDrop: Double
        public var relearnAfter: Double
    }

    /// A counter that rose by at least `minIncrease` within `window` seconds; clears after a
    /// window without any increase.
    public struct IncreaseParameters: Sendable, Hashable {
        public var metric: String
        public var minIncrease: Double
        public var window: Double
        /// A series that appears after the model started counts all of its value as an
        /// increase: right for counters created at their first event (Flatline's closed-
        /// connection counters), wrong for lifetime totals of a newly scraped target.
        public var newSeriesFromZero: Bool
    }

    /// A gauge's robust linear trend over `window` seconds reaching a limit (another series of the
    /// same thing, or a fixed number) within `horizon` seconds.
    public struct ForecastParameters: Sendable, Hashable {
        public var metric: String
        /// The limit as a series (`max_ack_pending`); 0 or below means no limit.
        public var limitMetric: String?
        /// The labels the limit series is found by, when it describes a larger thing than the
        /// watched one (a consumer's backlog against its stream's `max_msgs`: `[instance,
        /// account, stream]`); a subset of `group_by`. `nil`: the same `group_by` labels.
        public var limitOn: [String]?
        /// The limit as a number (an operator's choice); used when `limitMetric` is absent.
        public var limit: Double?
        public var window: Double
        public var horizon: Double
        /// Observations the trend needs.
        public var minPoints: Int
        /// The trend must have risen by this fraction of the limit over the window, so noise
        /// around a level is no trend.
        public var minRise: Double
        /// Consecutive observations whose trend reaches the limit within the horizon before the
        /// forecast fires (reaching the limit itself fires at once): at 15 s scrapes one noisy
        /// window's trend is no forecast.
        public var confirmations: Int = 1
        /// When set, seconds of history before the window whose highest value the trend must
        /// have passed: a gauge that swings (batches fetched and acknowledged) heading back to
        /// where it often is heads for no limit.
        public var beyondPeak: Double = 0
    }

    /// The detector bank's verdicts on some series.
    public struct AnomalyParameters: Sendable, Hashable {
        public var metrics: [String]
        public var direction: Direction
        /// No alert for a deviation smaller than this (in the signal's unit: a rate for counters).
        public var minDeviation: Double
        /// Nor for one smaller than this fraction of the expected value (0.5: half of it), so one
        /// model can watch signals of different units.
        public var minRelativeDeviation: Double
        /// Seconds after which a departure that has not come back is the new usual level: the
        /// condition ends (0: never).
        public var settleAfter: Double = 1800
    }

    public var name: String
    public var description: String
    public var kind: Kind
    /// The labels that tell one watched thing from another; they go on the alert.
    public var groupBy: [String]
    /// Labels copied onto the alert when the series has them (`client_name`, `account`...).
    public var carry: [String]
    /// Only series satisfying every matcher are watched.
    public var match: [LabelMatcher]
    /// The incident an alert belongs to, as a template over its labels (`jetstream
    /// {{account}}/{{stream}}`): alerts with the same `incident` label are one story.
    public var incident: String?
    public var alert: AlertTemplate
    /// Series shown with the alert, by the name they take in templates and annotations
    /// (`lag: flatline_nats_consumer_lag`): the latest value of each for the alert's thing (same
    /// `group_by` labels). They explain; they never decide.
    public var context: [String: String] = [:]
}

/// Reads every `*.yml` model of a directory, in name order.
public enum ModelDirectory {
    /// - Throws: ``ModelError`` for a directory that cannot be read or a model that cannot be used.
    public static func load(_ path: String) throws(ModelError) -> [Model] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            // A relative path says where it was looked for: the default `models` is relative.
            let place = path.hasPrefix("/") ? "" : " (looked for in \(FileManager.default.currentDirectoryPath))"
            throw ModelError(file: path, reason: "no such models directory\(place)")
        }
        guard isDirectory.boolValue else { throw ModelError(file: path, reason: "not a directory") }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".yml") }.sorted()
        } catch {
            throw ModelError(file: path, reason: "cannot read the models directory: \(error.localizedDescription)")
        }
        guard !names.isEmpty else { throw ModelError(file: path, reason: "no *.yml models in it") }
        var models: [Model] = []
        var seen: [String: String] = [:]
        for name in names {
            let file = path + "/" + name
            let data: [UInt8]
            switch BoundedFile.read(file, limit: 1 << 20) {
            case .success(let read): data = read
            case .failure(let error): throw ModelError(file: file, reason: error.reason)
            }
            let model = try Model.parse(String(decoding: data, as: UTF8.self), file: file)
            if let other = seen[model.name] {
                throw ModelError(file: file, reason: "model name \"\(model.name)\" is also used by \(other)")
            }
            seen[model.name] = file
            models.append(model)
        }
        return models
    }
}

/// A model file that cannot be used.
public struct ModelError: Error, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    /// 1-based; 0 when the problem is the file (or the directory) as a whole.
    public var line: Int
    /// The key's path, `surge.factor`; empty for the file.
    public var key: String
    public var reason: String

    public init(file: String, line: Int = 0, key: String = "", reason: String) {
        self.file = file
        self.line = line
        self.key = key
        self.reason = reason
    }

    /// As a configuration file's errors: `flood.yml:12: surge.factr: unknown key (...)`.
    public var description: String { ConfigError(file: file, line: line, key: key, reason: reason).description }
}
