import FlatlineCore

/// Synthetic ticks for benchmarks: every series has its own level, daily amplitude and phase,
/// and noise, drawn once; a tick is a table lookup and a multiply-add per series, cheap next to
/// any detector, and deterministic.
struct TickSource {
    let series: Int
    let step: Double
    private let level: [Double]
    private let amplitude: [Double]
    private let phase: [Int]
    private let profile: [Double]
    private let noise: [Double]

    init(series: Int, step: Double, seed: UInt64 = 1) {
        self.series = series
        self.step = step
        var rng = SplitMix64(seed: seed)
        level = (0..<series).map { _ in 10 * (1 + 9 * rng.uniform()) * (1 + 99 * rng.uniform()) }
        amplitude = (0..<series).map { _ in 0.1 + 0.4 * rng.uniform() }
        let period = max(1, Int((86400 / step).rounded()))
        phase = (0..<series).map { _ in Int(rng.uniform() * Double(period)) }
        profile = (0..<period).map { k in (2 * Double.pi * Double(k) / Double(period)).sinApproximation }
        noise = (0..<(1 << 20)).map { _ in 0.03 * rng.normal() }
    }

    /// Fills `values` with tick `t` (values must hold `series` elements).
    func fill(_ t: Int, into values: inout [Double]) {
        let period = profile.count
        let mask = noise.count - 1
        let shift = (t &* 7919) & mask
        for i in 0..<series {
            let seasonal = profile[(phase[i] + t) % period]
            values[i] = level[i] * (1 + amplitude[i] * seasonal + noise[(i &+ shift) & mask])
        }
    }

    func time(_ t: Int) -> Double { 1_767_225_600 + Double(t) * step }
}

extension Double {
    /// sin(x) for table building; accuracy is irrelevant for synthetic data.
    fileprivate var sinApproximation: Double {
        var x = self.truncatingRemainder(dividingBy: 2 * .pi)
        if x > .pi { x -= 2 * .pi }
        if x < -.pi { x += 2 * .pi }
        // Bhaskara-style rational approximation, good to ~1e-3.
        let sign: Double = x < 0 ? -1 : 1
        let a = abs(x)
        return sign * 16 * a * (.pi - a) / (5 * .pi * .pi - 4 * a * (.pi - a))
    }
}
