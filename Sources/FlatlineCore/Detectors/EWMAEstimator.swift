/// Exponentially weighted mean and variance per series, with a half-life in seconds so irregular
/// spacing works.
///
/// For a sample `x` after `Δt` seconds, with `α = 1 − 2^(−Δt / halfLife)` and `d = x − mean`:
/// `mean ← mean + α·d`, `variance ← (1 − α)·(variance + α·d²)` (West's weighted variance). The
/// score is `z = (x − mean) / max(√variance, floor)` against the state before the update. Once
/// warm, `d` enters the update clipped at `clip` scales, so one spike cannot drag the mean.
///
/// All series that were present in the previous tick share one `α`, so a tick is one pass that
/// the compiler vectorises; series that skipped ticks are fixed up afterwards with their own `α`.
package struct EWMAEstimator: Estimator {
    package let halfLife: Double
    package let warmup: Double
    package let clip: Double

    private var mean: [Double] = []
    private var variance: [Double] = []
    private var count: [Double] = []
    private var lastTime: [Double] = []
    private var previousTick: Double = -.infinity

    /// - Parameters:
    ///   - parameters: the EWMA parameters.
    ///   - step: the nominal sampling interval in seconds.
    package init(_ parameters: EWMAParameters, step: Double) {
        halfLife = parameters.halfLife.seconds(step: step)
        warmup = Double(parameters.warmup)
        clip = parameters.clip
    }

    package var capacity: Int { mean.count }

    package var bytesPerSeries: Int { 4 * MemoryLayout<Double>.stride }

    package mutating func reserve(capacity: Int) {
        guard capacity > mean.count else { return }
        let extra = capacity - mean.count
        mean.append(contentsOf: repeatElement(0, count: extra))
        variance.append(contentsOf: repeatElement(0, count: extra))
        count.append(contentsOf: repeatElement(0, count: extra))
        lastTime.append(contentsOf: repeatElement(-.infinity, count: extra))
    }

    package mutating func reset(slot: Int) {
        guard slot < mean.count else { return }
        mean[slot] = 0
        variance[slot] = 0
        count[slot] = 0
        lastTime[slot] = -.infinity
    }

    package mutating func update(
        time t: Double,
        values: UnsafeBufferPointer<Double>,
        floors: UnsafeBufferPointer<Double>,
        into out: inout Estimates
    ) {
        let n = Swift.min(values.count, mean.count)
        let previous = previousTick
        let alpha = previous.isFinite ? 1 - _exp2(-(t - previous) / halfLife) : 1
        let warmup = warmup
        let clip = clip
        var stragglers = 0

        mean.withUnsafeMutableBufferPointer { mean in
            variance.withUnsafeMutableBufferPointer { variance in
                count.withUnsafeMutableBufferPointer { count in
                    lastTime.withUnsafeMutableBufferPointer { lastTime in
                        out.withBuffers { expected, scale, z in
                            for i in 0..<n {
                                let x = values[i]
                                let m = mean[i]
                                let v = variance[i]
                                let c = count[i]
                                let seen = lastTime[i]
                                let present = !x.isNaN
                                let fresh = c == 0
                                let ready = c >= warmup
                                let s = Swift.max(v.squareRoot(), floors[i])
                                let d = x - m
                                expected[i] = present && !fresh ? m : .nan
                                scale[i] = ready ? s : .nan
                                z[i] = present && ready ? d / s : .nan
                                let limit = ready && clip > 0 ? clip * s : .infinity
                                let dc = Swift.min(Swift.max(d, -limit), limit)
                                let inStep = seen == previous
                                let apply = present && (fresh || inStep)
                                mean[i] = apply ? (fresh ? x : m + alpha * dc) : m
                                variance[i] = apply ? (fresh ? 0 : (1 - alpha) * (v + alpha * dc * dc)) : v
                                count[i] = apply ? c + 1 : c
                                lastTime[i] = apply ? t : seen
                                stragglers &+= present && !fresh && !inStep ? 1 : 0
                            }
                        }
                    }
                }
            }
        }

        if stragglers > 0 {
            // Series that were absent from the previous tick: their own α for their own gap.
            for i in 0..<n where !values[i].isNaN && lastTime[i] != t && count[i] > 0 {
                let a = 1 - _exp2(-(t - lastTime[i]) / halfLife)
                let m = mean[i]
                let v = variance[i]
                let s = Swift.max(v.squareRoot(), floors[i])
                let limit = count[i] >= warmup && clip > 0 ? clip * s : .infinity
                let dc = Swift.min(Swift.max(values[i] - m, -limit), limit)
                mean[i] = m + a * dc
                variance[i] = (1 - a) * (v + a * dc * dc)
                count[i] += 1
                lastTime[i] = t
            }
        }
        previousTick = t
    }
}

extension EWMAEstimator: Codable {
    private enum CodingKeys: String, CodingKey {
        case halfLife = "half_life_seconds", warmup, clip, mean, variance, count, lastTime = "last_time"
        case previousTick = "previous_tick"
    }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        halfLife = try c.decode(Double.self, forKey: .halfLife)
        warmup = try c.decode(Double.self, forKey: .warmup)
        clip = try c.decode(Double.self, forKey: .clip)
        mean = try c.decode(PackedDoubles.self, forKey: .mean).values
        variance = try c.decode(PackedDoubles.self, forKey: .variance).values
        count = try c.decode(PackedDoubles.self, forKey: .count).values
        lastTime = try c.decode(PackedDoubles.self, forKey: .lastTime).values
        previousTick = try c.decode(PackedDoubles.self, forKey: .previousTick).values.first ?? -.infinity
        try StateCheck.sameLength([mean.count, variance.count, count.count, lastTime.count], "ewma", c.codingPath)
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(halfLife, forKey: .halfLife)
        try c.encode(warmup, forKey: .warmup)
        try c.encode(clip, forKey: .clip)
        try c.encode(PackedDoubles(mean), forKey: .mean)
        try c.encode(PackedDoubles(variance), forKey: .variance)
        try c.encode(PackedDoubles(count), forKey: .count)
        try c.encode(PackedDoubles(lastTime), forKey: .lastTime)
        try c.encode(PackedDoubles([previousTick]), forKey: .previousTick)
    }
}
