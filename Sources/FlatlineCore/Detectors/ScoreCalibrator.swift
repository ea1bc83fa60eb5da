/// Turns raw scores into calibrated scores in [0, 1] that mean the same on every series: the
/// weighted fraction of the series' own recent scores that were smaller than this one.
///
/// Each series keeps a compact sketch of its score history: 40 bins over |z| (0–2 in steps of
/// 0.5, then geometric steps of √2 up to ~3.7·10⁵, found from the float's exponent bits without a
/// logarithm), stored as decayed tail masses, 160 bytes per series. Old scores fade with a half-life; a standard-normal prior of `priorWeight` samples
/// seeds each new series so early scores already mean something. On pure noise the calibrated
/// score is uniform on [0, 1]; on a heavy-tailed series a z of 6 that happens every day scores
/// lower than on a quiet one.
package struct ScoreCalibrator: Sendable {
    package static let bins = 40
    /// Lower edges of the bins.
    package static let edges: [Double] = [0, 0.5, 1, 1.5] + (0..<(bins - 4)).map { 2 * _exp2(Double($0) / 2) }

    package let halfLife: Double
    package let priorWeight: Double
    package let direction: Direction

    /// Tail masses: `tails[slot * bins + b]` is the decayed weight of past scores ≥ `edges[b]`;
    /// `tails[slot * bins]` is the slot's total. 0 means the slot has no history yet.
    private var tails: [Float] = []
    private var growth: Double = 1
    private let growthPerTick: Double
    private let prior: [Double]

    /// - Parameters:
    ///   - halfLife: the history's half-life in samples.
    ///   - priorWeight: the prior's weight in samples.
    ///   - direction: which side of the band scores; one-sided scores are `max(±z, 0)`.
    package init(halfLife: Double, priorWeight: Double, direction: Direction) {
        self.halfLife = halfLife
        self.priorWeight = priorWeight
        self.direction = direction
        growthPerTick = _exp2(1 / halfLife)
        prior = Self.edges.map { e in
            let tail = _erfc(e / 2.0.squareRoot())  // P(|Z| >= e)
            return e == 0 ? 1 : (direction == .both ? tail : 0.5 * tail)
        }
    }

    package var capacity: Int { tails.count / Self.bins }

    package var bytesPerSeries: Int { Self.bins * MemoryLayout<Float>.stride }

    package mutating func reserve(capacity: Int) {
        guard capacity > self.capacity else { return }
        tails.append(contentsOf: repeatElement(0, count: (capacity - self.capacity) * Self.bins))
    }

    package mutating func reset(slot: Int) {
        guard slot < capacity else { return }
        for b in 0..<Self.bins { tails[slot * Self.bins + b] = 0 }
    }

    /// The score a raw z contributes in this calibrator's direction.
    @inline(__always)
    package func directional(_ z: Double) -> Double {
        switch direction {
        case .both: abs(z)
        case .above: Swift.max(z, 0)
        case .below: Swift.max(-z, 0)
        }
    }

    /// Starts a tick: older scores weigh less from now on.
    package mutating func beginTick() {
        growth *= growthPerTick
        if growth > 1e30 {
            let factor = Float(1 / growth)
            for i in tails.indices { tails[i] *= factor }
            growth = 1
        }
    }

    @inline(__always)
    static func bin(_ v: Double) -> Int {
        if v < 2 { return Swift.max(0, Int(v * 2)) }
        guard v < 1e300 else { return bins - 1 }
        let r = 0.5 * v  // >= 1: octave from the exponent, half-octave from the significand
        let j = 2 * Int(r.exponent) + (r.significand >= 1.414_213_562_373_095_1 ? 1 : 0)
        return Swift.min(bins - 1, 4 + j)
    }

    /// The calibrated score of directional score `v` for `slot`, against its history before `v`.
    package mutating func score(slot: Int, _ v: Double) -> Double { withCursor { $0.score(slot, v) } }

    /// The directional score at which `slot`'s calibrated score reaches `quantile`.
    package mutating func threshold(slot: Int, quantile: Double) -> Double {
        withCursor { $0.threshold(slot, quantile: quantile) }
    }

    /// Adds directional score `v` to `slot`'s history.
    package mutating func add(slot: Int, _ v: Double) { withCursor { $0.add(slot, v) } }

    /// Runs `body` with raw access to every slot's sketch, for a tick's loop.
    package mutating func withCursor<R>(_ body: (Cursor) -> R) -> R {
        let growth = growth
        let priorWeight = priorWeight
        return prior.withUnsafeBufferPointer { prior in
            Self.edges.withUnsafeBufferPointer { edges in
                tails.withUnsafeMutableBufferPointer { tails in
                    body(Cursor(tails: tails, edges: edges, prior: prior, weight: growth, priorWeight: priorWeight))
                }
            }
        }
    }

    /// Raw access to the sketches during one tick. Never escapes ``withCursor(_:)``.
    package struct Cursor {
        let tails: UnsafeMutableBufferPointer<Float>
        let edges: UnsafeBufferPointer<Double>
        let prior: UnsafeBufferPointer<Double>
        let weight: Double
        let priorWeight: Double

        @inline(__always)
        func base(_ slot: Int) -> UnsafeMutablePointer<Float> {
            // Never empty while a slot exists.
            let base = tails.baseAddress.unsafelyUnwrapped + slot &* ScoreCalibrator.bins
            if base[0] == 0 {
                // A new series starts from the standard-normal prior.
                for b in 0..<ScoreCalibrator.bins { base[b] = Float(weight * priorWeight * prior[b]) }
            }
            return base
        }

        /// The calibrated score of directional score `v` for `slot`, against its history before `v`.
        @inline(__always)
        package func score(_ slot: Int, _ v: Double) -> Double {
            let t = base(slot)
            let k = ScoreCalibrator.bin(v)
            let total = Double(t[0])
            let atK = Double(t[k])
            let last = k &+ 1 == ScoreCalibrator.bins
            let next = last ? 0 : Double(t[k &+ 1])
            let lo = edges[k]
            let fraction = last ? Swift.max(0, 1 - lo / v) : Swift.min(1, (v - lo) / (edges[k &+ 1] - lo))
            let below = total - atK + fraction * (atK - next)
            return total > 0 ? Swift.min(1, Swift.max(0, below / total)) : 0
        }

        /// The directional score at which `slot`'s calibrated score reaches `quantile`.
        @inline(__always)
        package func threshold(_ slot: Int, quantile: Double) -> Double {
            let t = base(slot)
            let target = Float((1 - quantile) * Double(t[0]))
            // The largest k with t[k] >= target (tails fall with k; t[0] = total >= target).
            var k = 0
            var len = ScoreCalibrator.bins
            while len > 1 {
                let half = len &>> 1
                k = t[k &+ half] >= target ? k &+ half : k
                len &-= half
            }
            let atK = Double(t[k])
            let next = k &+ 1 < ScoreCalibrator.bins ? Double(t[k &+ 1]) : 0
            let inBin = atK - next
            let fraction = inBin > 0 ? Swift.min(1, Swift.max(0, (atK - Double(target)) / inBin)) : 0
            let e = edges[k]
            if k &+ 1 < ScoreCalibrator.bins { return e + fraction * (edges[k &+ 1] - e) }
            return fraction < 1 ? e / (1 - fraction) : .infinity
        }

        /// Adds directional score `v` to `slot`'s history.
        @inline(__always)
        package func add(_ slot: Int, _ v: Double) {
            let t = base(slot)
            let k = ScoreCalibrator.bin(v)
            let w = Float(weight)
            for b in 0...k { t[b] += w }
        }
    }
}

extension ScoreCalibrator: Codable {
    private enum CodingKeys: String, CodingKey {
        case halfLife = "half_life_samples", priorWeight = "prior_weight", direction, tails, growth
    }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            halfLife: try c.decode(Double.self, forKey: .halfLife),
            priorWeight: try c.decode(Double.self, forKey: .priorWeight),
            direction: try c.decode(Direction.self, forKey: .direction)
        )
        tails = try c.decode(PackedFloats.self, forKey: .tails).values
        growth = try c.decode(PackedDoubles.self, forKey: .growth).values.first ?? 1
        try StateCheck.require(tails.count % Self.bins == 0, "calibrator sketch has the wrong size", c.codingPath)
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(halfLife, forKey: .halfLife)
        try c.encode(priorWeight, forKey: .priorWeight)
        try c.encode(direction, forKey: .direction)
        try c.encode(PackedFloats(tails), forKey: .tails)
        try c.encode(PackedDoubles([growth]), forKey: .growth)
    }
}

/// One alert per burst: a series is flagged on the first anomalous point, then stays in the burst
/// (flagging nothing more) until its score has been calm for `cooldown` samples.
package struct BurstSuppressor: Sendable, Codable {
    package var cooldown: Int32
    private var calm: [Int32] = []  // -1: not in a burst; otherwise calm samples so far

    package init(cooldown: Int) {
        self.cooldown = Int32(clamping: cooldown)
    }

    package var bytesPerSeries: Int { MemoryLayout<Int32>.stride }

    package mutating func reserve(capacity: Int) {
        guard capacity > calm.count else { return }
        calm.append(contentsOf: repeatElement(-1, count: capacity - calm.count))
    }

    package mutating func reset(slot: Int) {
        if slot < calm.count { calm[slot] = -1 }
    }

    /// Runs `body` with the burst state of every slot: negative when the slot is not in a burst.
    package func withStates<R>(_ body: (UnsafeBufferPointer<Int32>) -> R) -> R {
        calm.withUnsafeBufferPointer(body)
    }

    /// Whether `slot` is inside a burst.
    package func inBurst(slot: Int) -> Bool { calm[slot] >= 0 }

    package var capacity: Int { calm.count }

    /// Feeds one scored point; returns whether it starts a new burst.
    ///
    /// - Parameters:
    ///   - anomalous: the point crosses the thresholds.
    ///   - quiet: the point is calm enough to count towards the burst's end.
    @inline(__always)
    package mutating func step(slot: Int, anomalous: Bool, quiet: Bool) -> Bool {
        let c = calm[slot]
        if c < 0 {
            if anomalous {
                calm[slot] = 0
                return true
            }
            return false
        }
        if quiet {
            calm[slot] = c + 1 >= cooldown ? -1 : c + 1
        } else {
            calm[slot] = 0
        }
        return false
    }
}
