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
    private var last: [Double] = []
    private var noise: [Double] = []
    private var quantum: [Double] = []
    // Exponentially discounted counts of repeats and of samples with a predecessor.
    private var repeats: [Double] = []
    private var samples: [Double] = []
    private var run: [Double] = []
    private var longestRun: [Double] = []
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

    package var capacity: Int { last.count }

    package var bytesPerSeries: Int { 7 * MemoryLayout<Double>.stride }

    package mutating func reserve(capacity: Int) {
        guard capacity > last.count else { return }
        let extra = capacity - last.count
        last.append(contentsOf: repeatElement(.nan, count: extra))
        noise.append(contentsOf: repeatElement(0, count: extra))
        quantum.append(contentsOf: repeatElement(.infinity, count: extra))
        repeats.append(contentsOf: repeatElement(0, count: extra))
        samples.append(contentsOf: repeatElement(0, count: extra))
        run.append(contentsOf: repeatElement(0, count: extra))
        longestRun.append(contentsOf: repeatElement(0, count: extra))
        floors.append(contentsOf: repeatElement(parameters.absolute, count: extra))
    }

    package mutating func reset(slot: Int) {
        guard slot < last.count else { return }
        last[slot] = .nan
        noise[slot] = 0
        quantum[slot] = .infinity
        repeats[slot] = 0
        samples[slot] = 0
        run[slot] = 0
        longestRun[slot] = 0
    }

    /// The number of consecutive samples, the current one included, equal to their predecessor.
    package func runLength(_ slot: Int) -> Double { run[slot] }

    /// The log10 of the probability of the current run of repeats given the series' repeat rate
    /// before the run (0 when there is no run), and the (discounted) number of samples that rate
    /// rests on. The rate is `(repeats + 1) / (samples + 2)`: a uniform prior.
    package func stuckEvidence(_ slot: Int) -> (log10Probability: Double, samples: Double) {
        let r = run[slot]
        let n = samples[slot]
        guard r > 0, r > 2 * longestRun[slot] else { return (0, n) }
        let rate = (repeats[slot] + 1) / (n + 2)
        return (r * _log(rate) / _log(10), n)
    }

    /// Computes the floors for a tick from what was learned before it, then learns from the tick.
    ///
    /// - Parameters:
    ///   - values: the tick, NaN where absent.
    ///   - bursts: per slot, negative unless the series is inside an anomalous burst; a series in
    ///     a burst keeps counting its run but learns nothing about what is normal.
    package mutating func update(_ values: UnsafeBufferPointer<Double>, bursts: UnsafeBufferPointer<Int32>) {
        let n = Swift.min(values.count, last.count)
        let absolute = parameters.absolute
        let relative = parameters.relative
        let noiseFactor = parameters.longTerm * 0.886_226_925_452_758  // √π / 2: E|Δx| = 2σ/√π
        let quantumFactor = parameters.quantum
        let alpha = alpha
        for i in 0..<n {
            let x = values[i]
            let previous = last[i]
            let l = noise[i]
            let q = quantum[i]
            let level = previous.isNaN ? 0 : abs(previous)
            // Whole numbers so far: a resolution of 1 until a finer step shows.
            let resolution = q.isFinite ? q : (previous.isNaN || previous != previous.rounded() ? 0 : 1)
            let fromQuantum = quantumFactor * resolution
            floors[i] = Swift.max(Swift.max(absolute, relative * level), Swift.max(noiseFactor * l, fromQuantum))
            guard !x.isNaN else { continue }
            if !previous.isNaN {
                let step = abs(x - previous)
                let learning = i >= bursts.count || bursts[i] < 0
                if learning {
                    let clipped = l > 0 ? Swift.min(step, 100 * l) : step
                    noise[i] = l + alpha * (clipped - l)
                }
                if step > 0 && step < q { quantum[i] = step }
                longestRun[i] *= runDecay
                if step == 0 {
                    // A run in progress does not teach the rate that runs are normal until it ends.
                    run[i] += 1
                } else if !learning {
                    run[i] = 0
                } else {
                    // The run that just ended, then this break: r repeats and one change.
                    let keep = 1 - alpha
                    let r = run[i]
                    longestRun[i] = Swift.max(longestRun[i], r)
                    let decay = _pow(keep, r)
                    let added = r > 0 ? (1 - decay) / alpha : 0
                    repeats[i] = keep * (decay * repeats[i] + added)
                    samples[i] = keep * (decay * samples[i] + added) + 1
                    run[i] = 0
                }
            }
            last[i] = x
        }
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
        last = try c.decode(PackedDoubles.self, forKey: .last).values
        noise = try c.decode(PackedDoubles.self, forKey: .noise).values
        quantum = try c.decode(PackedDoubles.self, forKey: .quantum).values
        repeats = try c.decode(PackedDoubles.self, forKey: .repeats).values
        samples = try c.decode(PackedDoubles.self, forKey: .samples).values
        run = try c.decode(PackedDoubles.self, forKey: .run).values
        longestRun = try c.decode(PackedDoubles.self, forKey: .longestRun).values
        try StateCheck.sameLength(
            [last.count, noise.count, quantum.count, repeats.count, samples.count, run.count, longestRun.count],
            "series profile",
            c.codingPath
        )
        floors = [Double](repeating: parameters.absolute, count: last.count)
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(alpha, forKey: .alpha)
        try c.encode(runDecay, forKey: .runDecay)
        try c.encode(PackedDoubles(last), forKey: .last)
        try c.encode(PackedDoubles(noise), forKey: .noise)
        try c.encode(PackedDoubles(quantum), forKey: .quantum)
        try c.encode(PackedDoubles(repeats), forKey: .repeats)
        try c.encode(PackedDoubles(samples), forKey: .samples)
        try c.encode(PackedDoubles(run), forKey: .run)
        try c.encode(PackedDoubles(longestRun), forKey: .longestRun)
    }
}
