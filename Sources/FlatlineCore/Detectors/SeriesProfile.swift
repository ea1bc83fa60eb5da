/// What a detector knows of each series' raw values, whatever its model: the last value, the
/// long-term noise, the resolution, how often a value repeats its predecessor, and the current
/// run of repeats.
///
/// It gives every estimator the per-series scale floor of ``ScaleFloor`` for each tick (the
/// ensemble's three detectors share it, so the floor means the same to each), and tells when a
/// series is stuck: a run of identical values that its own repeat rate makes improbable and that
/// is more than twice as long as the longest run it has had lately.
///
/// A series whose values have all been whole numbers has a resolution of 1 until it shows a
/// finer step: gauges like `connections` count things, and going from 10 to 11 for the first
/// time is not an incident.
package struct SeriesProfile: Sendable, Hashable {
    package let parameters: ScaleFloor
    private let alpha: Double
    /// What one series keeps, side by side (one series' numbers are read and written together).
    struct Numbers: Sendable, Hashable {
        var last = Double.nan
        var noise = 0.0
        var quantum = Double.infinity
        // Exponentially discounted counts of repeats and of samples with a predecessor.
        var repeats = 0.0
        var samples = 0.0
        var run = 0.0
        var longestRun = 0.0
    }
    private var numbers: [Numbers] = []
    private let runDecay: Double
    /// The floors of the last tick, one per slot.
    private(set) var floors: [Double] = []

    /// - Parameters:
    ///   - parameters: the floor's parameters.
    ///   - step: the nominal sampling interval, to resolve the half-life.
    package init(_ parameters: ScaleFloor, step: Double) {
        self.parameters = parameters
        alpha = 1 - _exp2(-1 / parameters.longTermHalfLife.samples(step: step))
        runDecay = _exp2(-1 / (4 * parameters.longTermHalfLife.samples(step: step)))
    }

    package var capacity: Int { numbers.count }

    package var bytesPerSeries: Int { MemoryLayout<Numbers>.stride }

    package mutating func reserve(capacity: Int) {
        guard capacity > numbers.count else { return }
        let extra = capacity - numbers.count
        numbers.append(contentsOf: repeatElement(Numbers(), count: extra))
        floors.append(contentsOf: repeatElement(parameters.absolute, count: extra))
    }

    package mutating func reset(slot: Int) {
        guard slot < numbers.count else { return }
        numbers[slot] = Numbers()
    }

    /// The number of consecutive samples, the current one included, equal to their predecessor.
    package func runLength(_ slot: Int) -> Double { numbers[slot].run }

    /// The log10 of the probability of the current run of repeats given the series' repeat rate
    /// before the run (0 when there is no run), and the (discounted) number of samples that rate
    /// rests on. The rate is `(repeats + 1) / (samples + 2)`: a uniform prior.
    package func stuckEvidence(_ slot: Int) -> (log10Probability: Double, samples: Double) {
        let numbers = numbers[slot]
        let r = numbers.run
        let n = numbers.samples
        guard r > 0, r > 2 * numbers.longestRun else { return (0, n) }
        let rate = (numbers.repeats + 1) / (n + 2)
        return (r * _log(rate) / _log(10), n)
    }

    /// Computes the floors for a tick from what was learned before it, then learns from the tick.
    ///
    /// - Parameters:
    ///   - values: the tick, NaN where absent.
    ///   - bursts: per slot, negative unless the series is inside an anomalous burst; a series in
    ///     a burst keeps counting its run but learns nothing about what is normal.
    package mutating func update(_ values: UnsafeBufferPointer<Double>, bursts: UnsafeBufferPointer<Int32>) {
        let n = Swift.min(values.count, numbers.count)
        let absolute = parameters.absolute
        let relative = parameters.relative
        let noiseFactor = parameters.longTerm * 0.886_226_925_452_758  // √π / 2: E|Δx| = 2σ/√π
        let quantumFactor = parameters.quantum
        let alpha = alpha
        let runDecay = runDecay
        // One exclusive access to each array for the tick, not a uniqueness check per point.
        numbers.withUnsafeMutableBufferPointer { numbers in
            floors.withUnsafeMutableBufferPointer { floors in
                for i in 0..<n {
                    Self.update(
                        &numbers[i],
                        floor: &floors[i],
                        x: values[i],
                        learning: i >= bursts.count || bursts[i] < 0,
                        absolute: absolute,
                        relative: relative,
                        noiseFactor: noiseFactor,
                        quantumFactor: quantumFactor,
                        alpha: alpha,
                        runDecay: runDecay
                    )
                }
            }
        }
    }

    @inline(__always)
    private static func update(
        _ s: inout Numbers,
        floor: inout Double,
        x: Double,
        learning: Bool,
        absolute: Double,
        relative: Double,
        noiseFactor: Double,
        quantumFactor: Double,
        alpha: Double,
        runDecay: Double
    ) {
        let previous = s.last
        let l = s.noise
        let q = s.quantum
        let level = previous.isNaN ? 0 : abs(previous)
        // Whole numbers so far: a resolution of 1 until a finer step shows.
        let resolution = q.isFinite ? q : (previous.isNaN || previous != previous.rounded() ? 0 : 1)
        let fromQuantum = quantumFactor * resolution
        floor = Swift.max(Swift.max(absolute, relative * level), Swift.max(noiseFactor * l, fromQuantum))
        guard !x.isNaN else { return }
        if !previous.isNaN {
            let step = abs(x - previous)
            if learning {
                let clipped = l > 0 ? Swift.min(step, 100 * l) : step
                s.noise = l + alpha * (clipped - l)
            }
            if step > 0 && step < q { s.quantum = step }
            s.longestRun *= runDecay
            if step == 0 {
                // A run in progress does not teach the rate that runs are normal until it ends.
                s.run += 1
            } else if !learning {
                s.run = 0
            } else {
                // The run that just ended, then this break: r repeats and one change.
                let keep = 1 - alpha
                let r = s.run
                s.longestRun = Swift.max(s.longestRun, r)
                // No run (most points): keep⁰ = 1 exactly, without the power.
                let decay = r == 0 ? 1 : _pow(keep, r)
                let added = r > 0 ? (1 - decay) / alpha : 0
                s.repeats = keep * (decay * s.repeats + added)
                s.samples = keep * (decay * s.samples + added) + 1
                s.run = 0
            }
        }
        s.last = x
    }
}

extension SeriesProfile: Codable {
    private enum CodingKeys: String, CodingKey {
        case parameters, alpha, runDecay = "run_decay", last, noise, quantum, repeats, samples, run
        case longestRun = "longest_run"
    }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        parameters = try c.decode(ScaleFloor.self, forKey: .parameters)
        alpha = try c.decode(Double.self, forKey: .alpha)
        runDecay = try c.decode(Double.self, forKey: .runDecay)
        func column(_ key: CodingKeys) throws -> [Double] { try c.decode(PackedDoubles.self, forKey: key).values }
        let last = try column(.last)
        let noise = try column(.noise)
        let quantum = try column(.quantum)
        let repeats = try column(.repeats)
        let samples = try column(.samples)
        let run = try column(.run)
        let longestRun = try column(.longestRun)
        try StateCheck.sameLength(
            [last.count, noise.count, quantum.count, repeats.count, samples.count, run.count, longestRun.count],
            "series profile",
            c.codingPath
        )
        numbers = (0..<last.count).map { i in
            Numbers(
                last: last[i],
                noise: noise[i],
                quantum: quantum[i],
                repeats: repeats[i],
                samples: samples[i],
                run: run[i],
                longestRun: longestRun[i]
            )
        }
        floors = [Double](repeating: parameters.absolute, count: last.count)
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(alpha, forKey: .alpha)
        try c.encode(runDecay, forKey: .runDecay)
        try c.encode(PackedDoubles(numbers.map(\.last)), forKey: .last)
        try c.encode(PackedDoubles(numbers.map(\.noise)), forKey: .noise)
        try c.encode(PackedDoubles(numbers.map(\.quantum)), forKey: .quantum)
        try c.encode(PackedDoubles(numbers.map(\.repeats)), forKey: .repeats)
        try c.encode(PackedDoubles(numbers.map(\.samples)), forKey: .samples)
        try c.encode(PackedDoubles(numbers.map(\.run)), forKey: .run)
        try c.encode(PackedDoubles(numbers.map(\.longestRun)), forKey: .longestRun)
    }
}
