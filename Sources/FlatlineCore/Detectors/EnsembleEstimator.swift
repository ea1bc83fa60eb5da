/// The default detector: EWMA, robust z and seasonal run side by side, and their forecasts are
/// combined by how well each has been doing on this series.
///
/// For every series the ensemble keeps each detector's recent mean absolute error `errₖ`
/// (exponentially weighted over `halfLife` samples). Its expected value is the weighted mean of
/// the detectors' expected values with weights `1 / errₖ²`, so on a series with a daily cycle the
/// seasonal fit carries the forecast while the level models only chase the cycle, and on a flat
/// series all three count alike. Its scale is the robust scale of its own recent errors
/// (1.2533 × their exponentially weighted mean absolute value, each error clipped at four scales
/// so one spike cannot blow the band up), never below the series' floor; `z = (x − expected) /
/// scale`. The band is `expected ± T·scale` at the calibrated threshold `T`.
///
/// One detector alone fools itself in known ways: EWMA chases a level shift within a few
/// half-lives, the rolling median ignores the time of day, the seasonal fit needs two cycles.
/// Weighting by recent accuracy lets each one lead where it is right.
package struct EnsembleEstimator: Estimator {
    package var ewma: EWMAEstimator
    package var robust: RobustEstimator
    package var seasonal: SeasonalEstimator
    package let alpha: Double
    package let warmup: Double
    private var parts = [Estimates(), Estimates(), Estimates()]
    // Per series: the three detectors' mean absolute errors, the ensemble's own mean absolute
    // error, and how many errors it has seen.
    private var errors: [Double] = []
    private var ownError: [Double] = []
    private var count: [Double] = []

    package init(_ configuration: DetectorConfiguration, step: Double) {
        ewma = EWMAEstimator(configuration.ewma, step: step)
        robust = RobustEstimator(configuration.robust)
        seasonal = SeasonalEstimator(configuration.seasonal, step: step)
        alpha = 1 - _exp2(-1 / configuration.ensemble.halfLife.samples(step: step))
        warmup = Double(configuration.ensemble.warmup)
    }

    package var capacity: Int { ewma.capacity }

    package var bytesPerSeries: Int {
        ewma.bytesPerSeries + robust.bytesPerSeries + seasonal.bytesPerSeries + 5 * MemoryLayout<Double>.stride
    }

    package mutating func reserve(capacity: Int) {
        guard capacity > self.capacity else { return }
        let extra = capacity - self.capacity
        ewma.reserve(capacity: capacity)
        robust.reserve(capacity: capacity)
        seasonal.reserve(capacity: capacity)
        for k in parts.indices where parts[k].capacity < capacity { parts[k].resize(capacity) }
        errors.append(contentsOf: repeatElement(.nan, count: 3 * extra))
        ownError.append(contentsOf: repeatElement(0, count: extra))
        count.append(contentsOf: repeatElement(0, count: extra))
    }

    package mutating func reset(slot: Int) {
        ewma.reset(slot: slot)
        robust.reset(slot: slot)
        seasonal.reset(slot: slot)
        guard slot < count.count else { return }
        for k in 0..<3 { errors[3 * slot + k] = .nan }
        ownError[slot] = 0
        count[slot] = 0
    }

    package func mode(slot: Int) -> String { seasonal.mode(slot: slot) }

    package mutating func update(
        time: Double,
        values: UnsafeBufferPointer<Double>,
        floors: UnsafeBufferPointer<Double>,
        into out: inout Estimates
    ) {
        ewma.update(time: time, values: values, floors: floors, into: &parts[0])
        robust.update(time: time, values: values, floors: floors, into: &parts[1])
        seasonal.update(time: time, values: values, floors: floors, into: &parts[2])
        let n = Swift.min(values.count, capacity)
        let alpha = alpha
        let warmup = warmup
        for i in 0..<n {
            // The combined forecast, from the detectors' forecasts made before this value.
            var weighted = 0.0
            var total = 0.0
            var plain = 0.0
            var available = 0.0
            for k in 0..<3 {
                let e = parts[k].expected[i]
                guard !e.isNaN else { continue }
                plain += e
                available += 1
                let err = errors[3 * i + k]
                if !err.isNaN {
                    let w = 1 / (err * err + 1e-300)
                    weighted += w * e
                    total += w
                }
            }
            let expected = total > 0 ? weighted / total : (available > 0 ? plain / available : .nan)
            let x = values[i]
            let c = count[i]
            let scale = Swift.max(1.253_314_137_315_500 * ownError[i], floors[i])
            out.expected[i] = x.isNaN ? .nan : expected
            out.scale[i] = c >= warmup ? scale : .nan
            out.z[i] = !x.isNaN && c >= warmup && !expected.isNaN ? (x - expected) / scale : .nan
            guard !x.isNaN, !expected.isNaN else { continue }
            // Learn: each detector's error and the ensemble's own, clipped at four scales once warm.
            for k in 0..<3 {
                let e = parts[k].expected[i]
                guard !e.isNaN else { continue }
                let err = errors[3 * i + k]
                let d = abs(x - e)
                if err.isNaN {
                    errors[3 * i + k] = d
                } else {
                    errors[3 * i + k] = err + alpha * (Swift.min(d, 4 * Swift.max(err, floors[i])) - err)
                }
            }
            let d = abs(x - expected)
            let own = ownError[i]
            let clipped = c >= warmup ? Swift.min(d, 4 * scale) : d
            ownError[i] = c == 0 ? d : own + alpha * (clipped - own)
            count[i] = c + 1
        }
    }
}

extension EnsembleEstimator: Codable {
    private enum CodingKeys: String, CodingKey {
        case ewma, robust, seasonal, alpha, warmup, errors, ownError = "own_error", count
    }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ewma = try c.decode(EWMAEstimator.self, forKey: .ewma)
        robust = try c.decode(RobustEstimator.self, forKey: .robust)
        seasonal = try c.decode(SeasonalEstimator.self, forKey: .seasonal)
        alpha = try c.decode(Double.self, forKey: .alpha)
        warmup = try c.decode(Double.self, forKey: .warmup)
        errors = try c.decode(PackedDoubles.self, forKey: .errors).values
        ownError = try c.decode(PackedDoubles.self, forKey: .ownError).values
        count = try c.decode(PackedDoubles.self, forKey: .count).values
        try StateCheck.sameLength(
            [ewma.capacity, robust.capacity, seasonal.capacity, errors.count / 3, ownError.count, count.count],
            "ensemble",
            c.codingPath
        )
        for k in parts.indices { parts[k].resize(ewma.capacity) }
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(ewma, forKey: .ewma)
        try c.encode(robust, forKey: .robust)
        try c.encode(seasonal, forKey: .seasonal)
        try c.encode(alpha, forKey: .alpha)
        try c.encode(warmup, forKey: .warmup)
        try c.encode(PackedDoubles(errors), forKey: .errors)
        try c.encode(PackedDoubles(ownError), forKey: .ownError)
        try c.encode(PackedDoubles(count), forKey: .count)
    }
}
