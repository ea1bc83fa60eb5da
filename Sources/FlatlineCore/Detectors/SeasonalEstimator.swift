/// Seasonal decomposition for many series at once: an exponentially weighted least-squares fit
/// of a level plus Fourier terms for each season, shared design, one LAPACK solve for all series.
///
/// Series of one source are sampled on one schedule, so they share the design row
/// `x(t) = [1, sin(2πk·t/P), cos(2πk·t/P) for each season P and harmonic k]` and the weighted
/// normal matrix `A = Σ w(t)·x·xᵀ`. Each series keeps only its own right-hand side
/// `b = Σ w(t)·x·y`: a tick adds `x·yᵀ` to all of them as one BLAS rank-1 update (`dger`), and a
/// refit solves `A·β = B` for every series with one Cholesky factorisation (`dpotrf`/`dpotrs`).
/// No raw history is kept. (The prediction `βᵀx` is a plain Swift loop: `flatline bench` measures
/// netlib's `dgemv` at half its speed for these short columns.)
///
/// Weights halve every `halfLife`. Samples enter the fit clipped at `clip` residual scales around
/// the expected value, so an anomaly cannot bend the fit; a missing sample enters as its
/// prediction, which keeps the shared `A` exact for every series. A new series starts as if its
/// whole history had been its first value. A season's terms join the fit after `minCycles` full
/// cycles; before that the model is a level model and ``mode(slot:)`` says so.
///
/// Residuals `y − xᵀβ` go through a rolling median/MAD window: `expected = xᵀβ + median`,
/// `scale = 1.4826·MAD`, `z = (y − expected) / scale`.
package struct SeasonalEstimator: Estimator {
    /// The seasons in the fit (periods ascending, harmonics limited below the Nyquist rate),
    /// a learned one included.
    package private(set) var seasons: [Season]
    package private(set) var halfLife: Double
    /// The nominal sampling interval, in seconds.
    package let step: Double
    /// Whether the half-life follows the seasons (it was not given).
    private let halfLifeFollowsSeasons: Bool
    package let minCycles: Double
    package let refitEvery: Int
    package let warmup: Int
    package let clip: Double
    /// Columns of the design: 1 + 2 × total harmonics.
    package private(set) var columns: Int
    /// BLAS/LAPACK, or the plain-Swift loops the benchmark compares them with.
    package var backend: KernelBackend = .blas

    // Shared state.
    private var gram: [Double]
    private var growth: Double = 1
    private var firstTick: Double = .nan
    private var previousTick: Double = .nan
    private var ticksSinceRefit = 0
    private var activeColumns = 1
    private(set) var refitFailures = 0

    // Per-series state, one column of `columns` values per slot.
    private var moments: [Double] = []
    private var coefficients: [Double] = []
    private var firstSeen: [Double] = []
    private var residuals: WindowBank
    private var learner: PeriodLearner?

    // Scratch, not state.
    private var design: [Double]
    private var fitInput: [Double] = []

    /// - Parameters:
    ///   - parameters: the seasonal parameters.
    ///   - step: the nominal sampling interval in seconds; harmonics faster than half the
    ///     sampling rate are dropped, and seasons with none left are dropped.
    package init(_ parameters: SeasonalParameters, step: Double) {
        var seasons: [Season] = []
        for season in parameters.seasons.sorted(by: { $0.period < $1.period }) {
            let nyquist = Int((season.period / (2 * step)).rounded(.up)) - 1
            let harmonics = Swift.min(season.harmonics, nyquist)
            if harmonics >= 1 { seasons.append(Season(period: season.period, harmonics: harmonics)) }
        }
        self.seasons = seasons
        self.step = step
        halfLifeFollowsSeasons = parameters.halfLife == nil
        halfLife = parameters.halfLife?.seconds(step: step) ?? Self.defaultHalfLife(seasons, step: step)
        learner = parameters.learnPeriod ? PeriodLearner(samples: parameters.learnSamples) : nil
        minCycles = parameters.minCycles
        refitEvery = parameters.refitEvery
        warmup = Swift.min(parameters.warmup, parameters.residualWindow)
        clip = parameters.clip
        columns = 1 + 2 * seasons.reduce(0) { $0 + $1.harmonics }
        gram = [Double](repeating: 0, count: columns * columns)
        design = [Double](repeating: 0, count: columns)
        residuals = WindowBank(window: parameters.residualWindow)
    }

    package var capacity: Int { firstSeen.count }

    package var bytesPerSeries: Int {
        (2 * columns + 1) * MemoryLayout<Double>.stride + residuals.bytesPerSeries
    }

    package mutating func reserve(capacity: Int) {
        guard capacity > firstSeen.count else { return }
        let extra = capacity - firstSeen.count
        moments.append(contentsOf: repeatElement(0, count: extra * columns))
        coefficients.append(contentsOf: repeatElement(0, count: extra * columns))
        firstSeen.append(contentsOf: repeatElement(.nan, count: extra))
        residuals.reserve(capacity: capacity)
        fitInput = [Double](repeating: 0, count: capacity)
    }

    package mutating func reset(slot: Int) {
        guard slot < firstSeen.count else { return }
        for k in 0..<columns {
            moments[slot * columns + k] = 0
            coefficients[slot * columns + k] = 0
        }
        firstSeen[slot] = .nan
        residuals.reset(slot: slot)
    }

    package func mode(slot: Int) -> String {
        guard slot < firstSeen.count, !firstSeen[slot].isNaN, !previousTick.isNaN else { return "level" }
        let age = previousTick - firstSeen[slot]
        let active = seasons.filter { age >= minCycles * $0.period && isActive($0) }
        guard !active.isEmpty else { return "level" }
        return "seasonal (" + active.map { DurationText.format(seconds: $0.period) }.joined(separator: ", ") + ")"
    }

    private func isActive(_ season: Season) -> Bool {
        !firstTick.isNaN && previousTick - firstTick >= minCycles * season.period
    }

    package mutating func update(
        time t: Double,
        values: UnsafeBufferPointer<Double>,
        floors: UnsafeBufferPointer<Double>,
        into out: inout Estimates
    ) {
        let n = Swift.min(values.count, firstSeen.count)
        if firstTick.isNaN { firstTick = t }
        if !previousTick.isNaN {
            growth *= _exp2((t - previousTick) / halfLife)
            if growth > 0x1p64 { rescale() }
        }
        previousTick = t
        fillDesign(t)

        let p = columns
        let warmup = warmup
        let clip = clip
        moments.withUnsafeMutableBufferPointer { moments in
            coefficients.withUnsafeMutableBufferPointer { coefficients in
                firstSeen.withUnsafeMutableBufferPointer { firstSeen in
                    fitInput.withUnsafeMutableBufferPointer { fitInput in
                        gram.withUnsafeBufferPointer { gram in
                            design.withUnsafeBufferPointer { x in
                                residuals.withCursor { cursor in
                                    out.withBuffers { outExpected, outScale, outZ in
                                        for i in 0..<n {
                                            let y = values[i]
                                            if firstSeen[i].isNaN {
                                                outExpected[i] = .nan
                                                outScale[i] = .nan
                                                outZ[i] = .nan
                                                guard !y.isNaN else {
                                                    fitInput[i] = 0
                                                    continue
                                                }
                                                // A new series: as if its whole history had been y.
                                                firstSeen[i] = t
                                                for k in 0..<p {
                                                    coefficients[i * p + k] = k == 0 ? y : 0
                                                    moments[i * p + k] = gram[k] * y
                                                }
                                                fitInput[i] = y
                                                continue
                                            }
                                            // The prediction βᵀx: plain Swift measured twice as fast as
                                            // netlib's dgemv for these short columns (flatline bench).
                                            let beta = coefficients.baseAddress.unsafelyUnwrapped + i &* p
                                            let yhat = Self.dot(beta, x.baseAddress.unsafelyUnwrapped, p)
                                            let filled = cursor.count(i)
                                            var expected = yhat
                                            var scale = Double.nan
                                            if filled >= warmup {
                                                let (m, s) = cursor.statistics(i, floor: floors[i])
                                                expected += m
                                                scale = s
                                            } else if filled > 0 {
                                                expected += SortedWindow.median(cursor.values(i), filled)
                                            }
                                            guard !y.isNaN else {
                                                outExpected[i] = .nan
                                                outScale[i] = .nan
                                                outZ[i] = .nan
                                                fitInput[i] = expected
                                                continue
                                            }
                                            outExpected[i] = expected
                                            outScale[i] = scale
                                            outZ[i] = (y - expected) / scale
                                            fitInput[i] =
                                                scale.isNaN
                                                ? y
                                                : Swift.min(
                                                    Swift.max(y, expected - clip * scale),
                                                    expected + clip * scale
                                                )
                                            cursor.push(i, y - yhat)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        for i in n..<Swift.min(out.capacity, firstSeen.count) { fitInput[i] = 0 }
        accumulate(n, weight: growth)
        if var learning = learner {
            learning.record(time: t, values: values)
            if learning.isReady {
                learner = nil
                learnPeriod(from: learning)
                return
            }
            learner = learning
        }
        ticksSinceRefit += 1
        let active = activeColumnCount()
        if active != activeColumns || ticksSinceRefit >= refitEvery {
            activeColumns = active
            refit()
        }
    }

    /// Twice the longest season, or 64 samples for a level model.
    static func defaultHalfLife(_ seasons: [Season], step: Double) -> Double {
        2 * (seasons.last?.period ?? (32 * step))
    }

    /// Adds the cycle the learner found, unless a configured season already describes it, and
    /// refits the whole model from the recorded samples.
    private mutating func learnPeriod(from learning: PeriodLearner) {
        guard firstSeen.count <= PeriodLearner.maximumSeries, let lag = learning.dominantPeriod() else { return }
        let period = lag * step
        for season in seasons {
            for h in 1...season.harmonics
            where abs(period - season.period / Double(h)) <= 0.05 * season.period / Double(h) {
                return
            }
        }
        let learned = Season(period: period, harmonics: Swift.max(1, Swift.min(4, Int((lag - 1) / 4))))
        seasons = (seasons + [learned]).sorted { $0.period < $1.period }
        if halfLifeFollowsSeasons { halfLife = Swift.max(halfLife, 8 * period) }
        columns = 1 + 2 * seasons.reduce(0) { $0 + $1.harmonics }
        let n = firstSeen.count
        gram = [Double](repeating: 0, count: columns * columns)
        moments = [Double](repeating: 0, count: columns * n)
        coefficients = [Double](repeating: 0, count: columns * n)
        design = [Double](repeating: 0, count: columns)
        growth = 1
        // Replay the recorded samples into the new design. A series absent from a tick enters
        // as its last value (its first value before it appeared), which keeps the shared
        // normal matrix exact for every series.
        let now = learning.times.last ?? previousTick
        var carried = [Double](repeating: .nan, count: n)
        for s in 0..<n {
            carried[s] = learning.rows.lazy.compactMap { s < $0.count && !$0[s].isNaN ? $0[s] : nil }.first ?? 0
        }
        let p = columns
        for (time, row) in zip(learning.times, learning.rows) {
            fillDesign(time)
            let w = _exp2(-(now - time) / halfLife)
            for s in 0..<n where s < row.count && !row[s].isNaN { carried[s] = row[s] }
            for j in 0..<p {
                for i in 0..<p { gram[j * p + i] += w * design[j] * design[i] }
            }
            for s in 0..<n {
                for k in 0..<p { moments[s * p + k] += w * design[k] * carried[s] }
            }
        }
        for s in 0..<n { residuals.reset(slot: s) }
        activeColumns = activeColumnCount()
        refit()
    }

    /// `Σ a[k]·b[k]` over `n` terms with four independent partial sums, so the additions overlap
    /// instead of waiting on each other.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, _ n: Int) -> Double {
        var s0 = 0.0
        var s1 = 0.0
        var s2 = 0.0
        var s3 = 0.0
        var k = 0
        while k &+ 4 <= n {
            s0 += a[k] * b[k]
            s1 += a[k &+ 1] * b[k &+ 1]
            s2 += a[k &+ 2] * b[k &+ 2]
            s3 += a[k &+ 3] * b[k &+ 3]
            k &+= 4
        }
        while k < n {
            s0 += a[k] * b[k]
            k &+= 1
        }
        return (s0 + s1) + (s2 + s3)
    }

    /// The fitted coefficients of `slot` (level, then sine and cosine per harmonic per season).
    package func coefficients(slot: Int) -> [Double] {
        Array(coefficients[(slot * columns)..<((slot + 1) * columns)])
    }

    /// The number of columns in the fit now (1 for the level model).
    package var activeColumnCountNow: Int { activeColumns }

    /// Refits now instead of at the next scheduled refit.
    package mutating func refitNow() {
        activeColumns = activeColumnCount()
        refit()
    }

    // MARK: Pieces of a tick

    private mutating func fillDesign(_ t: Double) {
        design[0] = 1
        var k = 1
        for season in seasons {
            let phase = t.truncatingRemainder(dividingBy: season.period) / season.period
            for h in 1...season.harmonics {
                let angle = 2 * Double.pi * Double(h) * phase
                design[k] = _sin(angle)
                design[k + 1] = _cos(angle)
                k += 2
            }
        }
    }

    /// `B += w·x·yᵀ` for all slots (`dger`) and `A += w·x·xᵀ`.
    private mutating func accumulate(_ n: Int, weight: Double) {
        let p = columns
        if n > 0 && backend == .swift {
            for i in 0..<n {
                let wy = weight * fitInput[i]
                for k in 0..<p { moments[i * p + k] += wy * design[k] }
            }
        } else if n > 0 {
            design.withUnsafeBufferPointer { x in
                fitInput.withUnsafeBufferPointer { y in
                    moments.withUnsafeMutableBufferPointer { b in
                        LinearAlgebra.Unchecked.ger(
                            m: Int32(p),
                            n: Int32(n),
                            alpha: weight,
                            x: x.baseAddress,
                            y: y.baseAddress,
                            a: b.baseAddress,
                            lda: Int32(p)
                        )
                    }
                }
            }
        }
        for j in 0..<p {
            let wx = weight * design[j]
            for i in 0..<p { gram[j * p + i] += wx * design[i] }
        }
    }

    private func activeColumnCount() -> Int {
        var active = 1
        for season in seasons where isActive(season) { active += 2 * season.harmonics }
        return active
    }

    /// Solves `A·β = B` for every slot over the active columns. On a failed factorisation the
    /// previous coefficients stay and the failure is counted.
    private mutating func refit() {
        ticksSinceRefit = 0
        let p = columns
        let pa = activeColumns
        let n = firstSeen.count
        guard n > 0 else { return }
        var factor = [Double](repeating: 0, count: pa * pa)
        var trace = 0.0
        for j in 0..<pa {
            for i in 0..<pa { factor[j * pa + i] = gram[j * p + i] }
            trace += gram[j * p + j]
        }
        guard trace > 0, trace.isFinite else { return }
        // A whisper of ridge keeps a degenerate column (a season the data cannot resolve) from
        // making A singular; it changes well-determined coefficients by ~1e-10 relative.
        let ridge = 1e-10 * trace / Double(pa)
        for j in 0..<pa { factor[j * pa + j] += ridge }
        let info =
            backend == .swift
            ? (PlainCholesky.factor(&factor, n: pa) ? 0 : 1)
            : factor.withUnsafeMutableBufferPointer { f in
                LinearAlgebra.Unchecked.potrf(n: Int32(pa), a: f.baseAddress, lda: Int32(pa))
            }
        guard info == 0 else {
            refitFailures += 1
            return
        }
        for i in 0..<n {
            for k in 0..<p { coefficients[i * p + k] = k < pa ? moments[i * p + k] : 0 }
        }
        if backend == .swift {
            PlainCholesky.solve(factor, n: pa, &coefficients, columns: n, leadingDimension: p)
            return
        }
        let solved = factor.withUnsafeBufferPointer { f in
            coefficients.withUnsafeMutableBufferPointer { b in
                LinearAlgebra.Unchecked.potrs(
                    n: Int32(pa),
                    nrhs: Int32(n),
                    a: f.baseAddress,
                    lda: Int32(pa),
                    b: b.baseAddress,
                    ldb: Int32(p)
                )
            }
        }
        if solved != 0 { refitFailures += 1 }
    }

    /// Divides all weights by the current growth so they stay far from overflow; the solution
    /// is unchanged because `A` and `B` scale together.
    private mutating func rescale() {
        let factor = 1 / growth
        for i in gram.indices { gram[i] *= factor }
        for i in moments.indices { moments[i] *= factor }
        growth = 1
    }
}

/// Where the seasonal fit's linear algebra runs.
package enum KernelBackend: Sendable, Hashable {
    /// BLAS (`dgemv`, `dger`) and LAPACK (`dpotrf`, `dpotrs`).
    case blas
    /// Plain Swift loops: the reference the benchmark measures BLAS against.
    case swift
}

/// Cholesky factorisation and solve in plain Swift, the reference for `dpotrf`/`dpotrs`.
package enum PlainCholesky {
    /// Factors symmetric positive definite `a` (`n` × `n`, column-major) in place into `U` with
    /// `A = UᵀU` in the upper triangle. Returns `false` on a non-positive pivot.
    package static func factor(_ a: inout [Double], n: Int) -> Bool {
        for j in 0..<n {
            var d = a[j * n + j]
            for k in 0..<j { d -= a[j * n + k] * a[j * n + k] }
            guard d > 0 else { return false }
            let ujj = d.squareRoot()
            a[j * n + j] = ujj
            for i in (j + 1)..<max(j + 1, n) {
                var s = a[i * n + j]
                for k in 0..<j { s -= a[j * n + k] * a[i * n + k] }
                a[i * n + j] = s / ujj
            }
        }
        return true
    }

    /// Solves `UᵀU·X = B` in place for `columns` right-hand sides stored with `leadingDimension`.
    package static func solve(_ u: [Double], n: Int, _ b: inout [Double], columns: Int, leadingDimension ld: Int) {
        for c in 0..<columns {
            let base = c * ld
            for i in 0..<n {  // Uᵀ z = b
                var s = b[base + i]
                for k in 0..<i { s -= u[i * n + k] * b[base + k] }
                b[base + i] = s / u[i * n + i]
            }
            for i in stride(from: n - 1, through: 0, by: -1) {  // U x = z
                var s = b[base + i]
                for k in (i + 1)..<max(i + 1, n) { s -= u[k * n + i] * b[base + k] }
                b[base + i] = s / u[i * n + i]
            }
        }
    }
}

extension SeasonalEstimator: Codable {
    private enum CodingKeys: String, CodingKey {
        case seasons, halfLife = "half_life_seconds", minCycles = "min_cycles", refitEvery = "refit_every"
        case step, halfLifeFollowsSeasons = "half_life_follows_seasons", learner
        case warmup, clip, gram, growth, firstTick = "first_tick", previousTick = "previous_tick"
        case ticksSinceRefit = "ticks_since_refit", activeColumns = "active_columns"
        case refitFailures = "refit_failures", moments, coefficients, firstSeen = "first_seen", residuals
    }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        seasons = try c.decode([Season].self, forKey: .seasons)
        halfLife = try c.decode(Double.self, forKey: .halfLife)
        step = try c.decode(Double.self, forKey: .step)
        halfLifeFollowsSeasons = try c.decode(Bool.self, forKey: .halfLifeFollowsSeasons)
        learner = try c.decodeIfPresent(PeriodLearner.self, forKey: .learner)
        minCycles = try c.decode(Double.self, forKey: .minCycles)
        refitEvery = try c.decode(Int.self, forKey: .refitEvery)
        warmup = try c.decode(Int.self, forKey: .warmup)
        clip = try c.decode(Double.self, forKey: .clip)
        columns = 1 + 2 * seasons.reduce(0) { $0 + $1.harmonics }
        gram = try c.decode(PackedDoubles.self, forKey: .gram).values
        let scalars = try c.decode(PackedDoubles.self, forKey: .growth).values
        try StateCheck.require(scalars.count == 3, "seasonal scalars malformed", c.codingPath)
        growth = scalars[0]
        firstTick = scalars[1]
        previousTick = scalars[2]
        ticksSinceRefit = try c.decode(Int.self, forKey: .ticksSinceRefit)
        activeColumns = try c.decode(Int.self, forKey: .activeColumns)
        refitFailures = try c.decode(Int.self, forKey: .refitFailures)
        moments = try c.decode(PackedDoubles.self, forKey: .moments).values
        coefficients = try c.decode(PackedDoubles.self, forKey: .coefficients).values
        firstSeen = try c.decode(PackedDoubles.self, forKey: .firstSeen).values
        residuals = try c.decode(WindowBank.self, forKey: .residuals)
        design = [Double](repeating: 0, count: columns)
        fitInput = [Double](repeating: 0, count: firstSeen.count)
        try StateCheck.require(
            gram.count == columns * columns,
            "seasonal normal matrix has the wrong size",
            c.codingPath
        )
        try StateCheck.require(
            activeColumns >= 1 && activeColumns <= columns,
            "active columns out of range",
            c.codingPath
        )
        try StateCheck.sameLength(
            [
                moments.count, coefficients.count, firstSeen.count * columns, residuals.capacity * columns,
            ],
            "seasonal",
            c.codingPath
        )
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(seasons, forKey: .seasons)
        try c.encode(halfLife, forKey: .halfLife)
        try c.encode(step, forKey: .step)
        try c.encode(halfLifeFollowsSeasons, forKey: .halfLifeFollowsSeasons)
        try c.encodeIfPresent(learner, forKey: .learner)
        try c.encode(minCycles, forKey: .minCycles)
        try c.encode(refitEvery, forKey: .refitEvery)
        try c.encode(warmup, forKey: .warmup)
        try c.encode(clip, forKey: .clip)
        try c.encode(PackedDoubles(gram), forKey: .gram)
        try c.encode(PackedDoubles([growth, firstTick, previousTick]), forKey: .growth)
        try c.encode(ticksSinceRefit, forKey: .ticksSinceRefit)
        try c.encode(activeColumns, forKey: .activeColumns)
        try c.encode(refitFailures, forKey: .refitFailures)
        try c.encode(PackedDoubles(moments), forKey: .moments)
        try c.encode(PackedDoubles(coefficients), forKey: .coefficients)
        try c.encode(PackedDoubles(firstSeen), forKey: .firstSeen)
        try c.encode(residuals, forKey: .residuals)
    }
}
