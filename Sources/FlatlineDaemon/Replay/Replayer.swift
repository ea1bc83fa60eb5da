import Dispatch
import FlatlineAlerting
import FlatlineCore
import FlatlineIngest

/// What became of one row of a replayed file.
public struct ReplayPoint: Hashable, Sendable {
    /// How the row was handled.
    public enum Status: Hashable, Sendable {
        /// Scored by the detector.
        case scored
        /// Accepted, but no signal yet (a counter's first sample, the first after a gap or after a reset).
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

extension ReplayPoint {
    /// What the bank's `verdict` on a sample of `value` (its raw value) makes of it: the point
    /// when scored; a counter's first sample, or its first after a gap or a reset (no rate), with no
    /// value; a dropped sample with
    /// its raw value.
    init(_ verdict: SampleVerdict, value: Double) {
        switch verdict {
        case .scored(let p):
            self.init(
                status: .scored,
                value: p.value,
                expected: p.expected,
                lower: p.lower,
                upper: p.upper,
                z: p.z,
                score: p.score,
                anomaly: p.anomaly
            )
        case .pending: self.init(status: .pending, value: .nan)
        case .dropped(let reason): self.init(status: .dropped(reason), value: value)
        }
    }
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
    /// How many cores scored the series side by side.
    public var parts = 1
}

/// The result of replaying a file.
public struct ReplayResult: Sendable {
    /// The file replayed.
    public var file: SeriesFile
    /// One point per row of the file, in file order.
    public var points: [ReplayPoint]
    public var summary: ReplaySummary
    /// The detection state after the last row, to save and continue from; nil when the series
    /// were split over several cores (replay with `threads: 1` to keep it).
    public var bank: DetectionBank?
    /// Alerts that fired or resolved, in time order, when models were given.
    public var alertEvents: [AlertEvent] = []
}

/// Runs recorded series through the same detection bank the daemon uses, with time taken from
/// the recording: the same input gives the same output, byte for byte. Rows are scored in time
/// order (a stable sort, so file order within one timestamp); the output keeps file order.
public enum Replayer {
    /// Detectors whose series learn nothing from each other: their series can be scored in
    /// separate banks (every tick reaching each) with the same results.
    static let independentKinds: Set<DetectorKind> = [.surprise, .ewma, .robust]

    /// Why the step of `file` cannot be inferred.
    static func noStepReason(_ file: String) -> String {
        "\(file): cannot infer the sampling interval: no series has two distinct timestamps (pass --step)"
    }

    /// Replays a parsed file.
    ///
    /// - Parameters:
    ///   - file: the series.
    ///   - configuration: the detector, used when no `state` is given.
    ///   - step: the nominal sampling interval in seconds; `nil` infers it from the file (the
    ///     median spacing of each series, then the median over series).
    ///   - maxGap: the longest gap in seconds a counter rate is taken across; `nil` for no limit.
    ///   - state: a bank saved by an earlier replay to continue from.
    ///   - threads: how many cores may score series side by side. Series are split over them
    ///     only where that changes nothing (detectors whose series learn nothing from each other,
    ///     no models, no state to continue from); every tick reaches every part, so the result
    ///     is the same, value for value, as on one core.
    ///   - times: every tick of a larger file this one is a block of (whole series of it): each
    ///     series' clock moves through them all, as it would in the whole file. They must include
    ///     every timestamp of `file`.
    ///   - progress: called now and then with (ticks done, ticks in all), from one thread.
    /// - Throws: ``ReplayError`` when the step cannot be inferred or a parameter is bad.
    public static func run(
        _ file: SeriesFile,
        configuration: DetectorConfiguration,
        step: Double? = nil,
        maxGap: Double? = nil,
        state: DetectionBank? = nil,
        models: [Model] = [],
        threads: Int = 1,
        times: [Timestamp]? = nil,
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws(ReplayError) -> ReplayResult {
        let bank: DetectionBank
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

        let ticks: Ticks
        if let times {
            guard let onTimes = Ticks(file, on: times) else {
                throw ReplayError(reason: "\(file.name): a block has a timestamp the file's ticks lack")
            }
            ticks = onTimes
        } else {
            ticks = Ticks(file)
        }
        let parts =
            models.isEmpty && state == nil && independentKinds.contains(bank.detector.configuration.kind)
            ? Swift.max(1, Swift.min(threads, file.series.count / 64)) : 1
        var points = [ReplayPoint](repeating: ReplayPoint(status: .missing, value: .nan), count: file.rows.count)
        var banks = [DetectionBank](repeating: bank, count: parts)
        var alertEvents: [AlertEvent] = []
        points.withUnsafeMutableBufferPointer { points in
            banks.withUnsafeMutableBufferPointer { banks in
                let shared = UnsafeSendable((points: points, banks: banks))
                if parts == 1 {
                    alertEvents = score(
                        file,
                        ticks,
                        part: 0,
                        of: 1,
                        bank: &shared.value.banks[0],
                        points: shared.value.points,
                        models: models,
                        progress: progress
                    )
                } else {
                    // Progress is the first part's: the parts move at about the same pace.
                    withoutActuallyEscaping(progress) { progress in
                        let report = UnsafeSendable(progress)
                        DispatchQueue.concurrentPerform(iterations: parts) { part in
                            _ = score(
                                file,
                                ticks,
                                part: part,
                                of: parts,
                                bank: &shared.value.banks[part],
                                points: shared.value.points,
                                models: [],
                                progress: part == 0 ? report.value : { _, _ in }
                            )
                        }
                    }
                }
            }
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
        for part in banks {
            for reason in DropReason.allCases {
                summary.drops.add(reason, count: part.drops[reason] - bank.drops[reason])
            }
            summary.counterResets += part.counterResets - bank.counterResets
        }
        summary.ticks = ticks.times.count
        summary.parts = parts
        return ReplayResult(
            file: file,
            points: points,
            summary: summary,
            bank: parts == 1 ? banks[0] : nil,
            alertEvents: alertEvents
        )
    }

    /// The rows of a file grouped into ticks by timestamp, ticks in time order, rows of a tick in
    /// file order (a counting sort: one pass to number the times, one to place the rows).
    struct Ticks: Sendable {
        /// Each tick's time.
        var times: [Timestamp] = []
        /// Row indices, tick by tick.
        var order: [Int32] = []
        /// Where each tick's rows begin in `order` (one more entry than ticks).
        var starts: [Int] = []

        init(_ file: SeriesFile) {
            // A file in time order (one series, or a tick after another): the ticks are its runs.
            if file.rows.indices.dropFirst().allSatisfy({ file.rows[$0 - 1].timestamp <= file.rows[$0].timestamp }) {
                order = (0..<file.rows.count).map { Int32(truncatingIfNeeded: $0) }
                starts = [0]
                for (k, row) in file.rows.enumerated() where k == 0 || file.rows[k - 1].timestamp != row.timestamp {
                    times.append(row.timestamp)
                    if k > 0 { starts.append(k) }
                }
                starts.append(file.rows.count)
                if file.rows.isEmpty { starts = [0] }
                return
            }
            var numberOf: [Int64: Int] = [:]
            var firstTimes: [Timestamp] = []
            var tickOfRow = [Int32](repeating: 0, count: file.rows.count)
            var last: (ms: Int64, number: Int)?
            for (k, row) in file.rows.enumerated() {
                let ms = row.timestamp.milliseconds
                let number: Int
                if let last, last.ms == ms {
                    number = last.number
                } else if let known = numberOf[ms] {
                    number = known
                } else {
                    number = firstTimes.count
                    numberOf[ms] = number
                    firstTimes.append(row.timestamp)
                }
                last = (ms, number)
                tickOfRow[k] = Int32(truncatingIfNeeded: number)
            }
            let byTime = firstTimes.indices.sorted { firstTimes[$0] < firstTimes[$1] }
            var rank = [Int](repeating: 0, count: firstTimes.count)
            for (position, number) in byTime.enumerated() { rank[number] = position }
            times = byTime.map { firstTimes[$0] }
            var counts = [Int](repeating: 0, count: times.count + 1)
            for k in tickOfRow.indices {
                let tick = rank[Int(tickOfRow[k])]
                tickOfRow[k] = Int32(truncatingIfNeeded: tick)
                counts[tick + 1] += 1
            }
            place(tickOfRow, counts: counts)
        }

        /// The rows of `file` on the ticks `all` (in time order, every timestamp of `file` among
        /// them; ticks without rows stay, empty): nil when a row's time is not in `all`. A row's
        /// tick is searched for from the row before's, forward, when times ascend (as a series'
        /// rows do: mostly the next tick), else by bisection; no hashing per row.
        init?(_ file: SeriesFile, on all: [Timestamp]) {
            var tickOfRow = [Int32](repeating: 0, count: file.rows.count)
            var counts = [Int](repeating: 0, count: all.count + 1)
            let found = all.withUnsafeBufferPointer { all in
                file.rows.withUnsafeBufferPointer { rows in
                    var cursor = 0
                    for k in rows.indices {
                        let time = rows[k].timestamp
                        let tick = Self.lowerBound(all, time, from: cursor)
                        guard tick < all.count, all[tick] == time else { return false }
                        tickOfRow[k] = Int32(truncatingIfNeeded: tick)
                        counts[tick + 1] += 1
                        cursor = tick
                    }
                    return true
                }
            }
            guard found else { return nil }
            times = all
            place(tickOfRow, counts: counts)
        }

        /// ``order`` and ``starts`` from each row's tick and the rows of each tick (tick `t`'s in
        /// `counts[t + 1]`): a counting sort, a tick's rows in file order.
        private mutating func place(_ tickOfRow: [Int32], counts: [Int]) {
            var counts = counts
            for t in 0..<(counts.count - 1) { counts[t + 1] += counts[t] }
            starts = counts
            var next = counts
            order = [Int32](repeating: 0, count: tickOfRow.count)
            for k in tickOfRow.indices {
                let tick = Int(tickOfRow[k])
                order[next[tick]] = Int32(truncatingIfNeeded: k)
                next[tick] += 1
            }
        }

        /// The first index of `all` whose time is not before `time` (`all.count`: none): from
        /// `cursor` forward in growing steps when `all[cursor]` is before it, else by bisection
        /// below `cursor`.
        @inline(__always)
        static func lowerBound(_ all: UnsafeBufferPointer<Timestamp>, _ time: Timestamp, from cursor: Int) -> Int {
            var low = 0
            var high = Swift.min(cursor, all.count)
            if cursor < all.count && all[cursor] < time {
                low = cursor + 1
                high = low
                var step = 1
                while high < all.count && all[high] < time {
                    low = high + 1
                    high += step
                    step <<= 1
                }
                high = Swift.min(high, all.count)
            }
            while low < high {
                let middle = low + (high - low) / 2
                if all[middle] < time { low = middle + 1 } else { high = middle }
            }
            return low
        }
    }

    /// Scores the series of one part (series `part`, `part + parts`, ...) through every tick,
    /// writing their rows' points; the alert events when models are given (one part only).
    private static func score(
        _ file: SeriesFile,
        _ ticks: Ticks,
        part: Int,
        of parts: Int,
        bank: inout DetectionBank,
        points: UnsafeMutableBufferPointer<ReplayPoint>,
        models: [Model],
        progress: (Int, Int) -> Void
    ) -> [AlertEvent] {
        // The same evaluation as the daemon's from the verdicts on: models, alert states, and a
        // dispatcher that routes to nobody.
        var evaluation = Evaluation(models: models)
        var alertEvents: [AlertEvent] = []
        // Each series' slot once it has one (-1: not yet), or why its samples are dropped.
        var slots = [Int](repeating: -1, count: file.series.count)
        var refused: [Int: DropReason] = [:]
        // A tick's samples and their rows, filled in place (no array's uniqueness checked, no
        // range replaced, per tick): room for the widest tick.
        var widest = 0
        for t in ticks.times.indices { widest = Swift.max(widest, ticks.starts[t + 1] - ticks.starts[t]) }
        let batch = UnsafeMutableBufferPointer<DetectionBank.SlottedSample>.allocate(capacity: Swift.max(1, widest))
        let rowsOfBatch = UnsafeMutableBufferPointer<Int>.allocate(capacity: Swift.max(1, widest))
        defer {
            batch.deallocate()
            rowsOfBatch.deallocate()
        }
        var samples: [Sample] = []
        var verdicts: [SampleVerdict] = []
        for (t, time) in ticks.times.enumerated() {
            var count = 0
            if !samples.isEmpty { samples.removeAll(keepingCapacity: true) }
            for position in ticks.starts[t]..<ticks.starts[t + 1] {
                let index = Int(ticks.order[position])
                let row = file.rows[index]
                guard row.series % parts == part else { continue }
                guard let value = row.value else {
                    points[index] = ReplayPoint(status: .missing, value: .nan)
                    continue
                }
                points[index] = ReplayPoint(status: .pending, value: value)
                var slot = slots[row.series]
                if slot < 0 && value.isFinite {
                    if let reason = refused[row.series] {
                        points[index].status = .dropped(reason)
                        bank.countDrop(reason)
                        continue
                    }
                    do {
                        slot = try bank.slot(for: file.series[row.series], kind: row.kind, at: time)
                        slots[row.series] = slot
                    } catch {
                        let reason: DropReason = error.kind == .tooManyLabels ? .labelLimit : .seriesLimit
                        refused[row.series] = reason
                        points[index].status = .dropped(reason)
                        bank.countDrop(reason)
                        continue
                    }
                }
                batch.initializeElement(
                    at: count,
                    to: DetectionBank.SlottedSample(slot: slot, value: value, counterReset: row.counterReset)
                )
                rowsOfBatch.initializeElement(at: count, to: index)
                count += 1
                if !models.isEmpty {
                    samples.append(
                        Sample(
                            labels: file.series[row.series],
                            value: value,
                            timestamp: time,
                            kind: row.kind,
                            counterReset: row.counterReset
                        )
                    )
                }
            }
            bank.process(time: time, slotted: UnsafeBufferPointer(rebasing: batch[..<count]), into: &verdicts)
            if !models.isEmpty {
                alertEvents += evaluation.evaluate(time: time, samples: samples, verdicts: verdicts, now: time)
            }
            for (k, verdict) in verdicts.enumerated() {
                let index = rowsOfBatch[k]
                points[index] = ReplayPoint(verdict, value: points[index].value)
            }
            if t & 63 == 63 || t == ticks.times.count - 1 { progress(t + 1, ticks.times.count) }
        }
        return alertEvents
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
            throw ReplayError(reason: noStepReason(file.name))
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
