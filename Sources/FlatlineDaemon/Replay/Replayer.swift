import FlatlineAlerting
import FlatlineCore
import FlatlineIngest

/// What became of one row of a replayed file.
public struct ReplayPoint: Hashable, Sendable {
    /// How the row was handled.
    public enum Status: Hashable, Sendable {
        /// Scored by the detector.
        case scored
        /// Accepted, but no signal yet (a counter's first sample, or the first after a gap).
        case pending
        /// The row had no value.
        case missing
        /// Dropped and counted.
        case dropped(DropReason)
    }

    public var status: Status
    /// The signal the detector saw: the value for a gauge, the per-second rate for a counter;
    /// NaN for a counter sample that gives no rate yet; the raw value for dropped rows (NaN when
    /// missing).
    public var value: Double
    public var expected: Double = .nan
    public var lower: Double = .nan
    public var upper: Double = .nan
    public var z: Double = .nan
    /// The calibrated score in [0, 1]; 0 when not scored.
    public var score: Double = 0
    public var anomaly = false
}

/// Totals of one replay.
public struct ReplaySummary: Hashable, Sendable {
    public var series = 0
    public var rows = 0
    public var scored = 0
    public var pending = 0
    public var missing = 0
    public var anomalies = 0
    public var drops = DropCounts()
    public var counterResets = 0
    /// The nominal sampling interval used, in seconds.
    public var step = 0.0
    public var ticks = 0
}

/// The result of replaying a file.
public struct ReplayResult: Sendable {
    /// The file replayed.
    public var file: SeriesFile
    /// One point per row of the file, in file order.
    public var points: [ReplayPoint]
    public var summary: ReplaySummary
    /// The detection state after the last row, to save and continue from.
    public var bank: DetectionBank
    /// Alerts that fired or resolved, in time order, when models were given.
    public var alertEvents: [AlertEvent] = []
}

/// Runs recorded series through the same detection bank the daemon uses, with time taken from
/// the recording: the same input gives the same output, byte for byte. Rows are scored in time
/// order (a stable sort, so file order within one timestamp); the output keeps file order.
public enum Replayer {
    /// Replays a parsed file.
    ///
    /// - Parameters:
    ///   - file: the series.
    ///   - configuration: the detector, used when no `state` is given.
    ///   - step: the nominal sampling interval in seconds; `nil` infers it from the file (the
    ///     median spacing of each series, then the median over series).
    ///   - maxGap: the longest gap in seconds a counter rate is taken across; `nil` for no limit.
    ///   - state: a bank saved by an earlier replay to continue from.
    ///   - progress: called after each tick with (ticks done, ticks in all).
    /// - Throws: ``ReplayError`` when the step cannot be inferred or a parameter is bad.
    public static func run(
        _ file: SeriesFile,
        configuration: DetectorConfiguration,
        step: Double? = nil,
        maxGap: Double? = nil,
        state: DetectionBank? = nil,
        models: [Model] = [],
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws(ReplayError) -> ReplayResult {
        var evaluator = ModelEvaluator(models: models)
        var engine = AlertEngine()
        var alertEvents: [AlertEvent] = []
        var bank: DetectionBank
        if let state {
            bank = state
        } else {
            let resolvedStep: Double
            if let step { resolvedStep = step } else { resolvedStep = try inferStep(file) }
            do {
                bank = try DetectionBank(configuration: configuration, step: resolvedStep, maxGap: maxGap)
            } catch {
                throw ReplayError(reason: "\(error)")
            }
        }
        var summary = ReplaySummary()
        summary.series = file.series.count
        summary.rows = file.rows.count
        summary.step = bank.detector.step
        let dropsBefore = bank.drops
        let resetsBefore = bank.counterResets

        var points = file.rows.map { row in
            ReplayPoint(status: row.value == nil ? .missing : .pending, value: row.value ?? .nan)
        }
        // Rows grouped into ticks by timestamp; a stable sort keeps file order within a tick.
        let order = file.rows.indices.sorted {
            let a = file.rows[$0].timestamp
            let b = file.rows[$1].timestamp
            return a != b ? a < b : $0 < $1
        }
        var ticks = 0
        var tickCount = 0
        var previous: Timestamp?
        for i in order where previous != file.rows[i].timestamp {
            previous = file.rows[i].timestamp
            tickCount += 1
        }
        var start = 0
        var samples: [Sample] = []
        var indices: [Int] = []
        while start < order.count {
            let time = file.rows[order[start]].timestamp
            var end = start
            samples.removeAll(keepingCapacity: true)
            indices.removeAll(keepingCapacity: true)
            while end < order.count && file.rows[order[end]].timestamp == time {
                let row = file.rows[order[end]]
                if let value = row.value {
                    samples.append(
                        Sample(
                            labels: file.series[row.series],
                            value: value,
                            timestamp: time,
                            kind: row.kind,
                            counterReset: row.counterReset
                        )
                    )
                    indices.append(order[end])
                }
                end += 1
            }
            let verdicts = bank.process(time: time, samples: samples)
            if !models.isEmpty {
                alertEvents += engine.evaluate(
                    at: time,
                    evaluator.observe(time: time, samples: samples, verdicts: verdicts)
                )
            }
            for (k, verdict) in verdicts.enumerated() {
                let index = indices[k]
                switch verdict {
                case .scored(let p):
                    points[index] = ReplayPoint(
                        status: .scored,
                        value: p.value,
                        expected: p.expected,
                        lower: p.lower,
                        upper: p.upper,
                        z: p.z,
                        score: p.score,
                        anomaly: p.anomaly
                    )
                case .pending:
                    // A counter's first sample: its rate, the signal, is not known yet.
                    points[index].status = .pending
                    points[index].value = .nan
                case .dropped(let reason):
                    points[index].status = .dropped(reason)
                }
            }
            ticks += 1
            progress(ticks, tickCount)
            start = end
        }

        for point in points {
            switch point.status {
            case .scored:
                summary.scored += 1
                if point.anomaly { summary.anomalies += 1 }
            case .pending: summary.pending += 1
            case .missing: summary.missing += 1
            case .dropped: break
            }
        }
        for reason in DropReason.allCases { summary.drops.add(reason, count: bank.drops[reason] - dropsBefore[reason]) }
        summary.counterResets = bank.counterResets - resetsBefore
        summary.ticks = ticks
        return ReplayResult(file: file, points: points, summary: summary, bank: bank, alertEvents: alertEvents)
    }

    /// The median over series of each series' median spacing between distinct timestamps.
    /// - Throws: ``ReplayError`` when no series has two distinct timestamps.
    public static func inferStep(_ file: SeriesFile) throws(ReplayError) -> Double {
        var perSeries = [[Int64]](repeating: [], count: file.series.count)
        for row in file.rows { perSeries[row.series].append(row.timestamp.milliseconds) }
        var medians: [Double] = []
        for var times in perSeries {
            times.sort()
            var gaps: [Int64] = []
            for i in times.indices.dropFirst() where times[i] > times[i - 1] { gaps.append(times[i] - times[i - 1]) }
            guard !gaps.isEmpty else { continue }
            gaps.sort()
            medians.append(Double(gaps[gaps.count / 2]) / 1000)
        }
        guard !medians.isEmpty else {
            throw ReplayError(
                reason:
                    "\(file.name): cannot infer the sampling interval: no series has two distinct timestamps (pass --step)"
            )
        }
        medians.sort()
        return medians[medians.count / 2]
    }
}

/// A replay that cannot run.
public struct ReplayError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String

    public init(reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}
