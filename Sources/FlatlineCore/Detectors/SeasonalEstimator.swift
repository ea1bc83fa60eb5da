/// Seasonal decomposition for many series at once: an exponentially weighted least-squares fit
/// of a level plus Fourier terms for each season, shared design, one LAPACK solve for all series.
///
/// Series of one source are sampled on one schedule, so they share the design row
/// `x(t) = [1, sin(2πk·t/P), cos(2πk·t/P) for each season P and harmonic k]` and the weighted
/// normal matrix `A = Σ w(t)·x·xᵀ`. Each series keeps only its own right-hand side
/// `b = Σ w(t)·x·y`: a tick adds `x·yᵀ` to all of them as one BLAS rank-1 update (`dger`), and a
/// refit solves `A·β = B` for every series with one Cholesky factorisation (`dpotrf`/`dpotrs`).
/// No raw history is kept.
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
    /// The seasons in the fit (periods ascending, harmonics limited below the Nyquist rate).
    package let seasons: [Season]
    package let halfLife: Double
    package let minCycles: Double
    package let refitEvery: Int
    package let warmup: Int
    package let clip: Double
    /// Columns of the design: 1 + 2 × total harmonics.
    package let columns: Int

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

    // Scratch, not state.
    private var design: [Double]
    private var prediction: [Double] = []
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
        let longest = seasons.last?.period ?? (64 * step)
        halfLife = parameters.halfLife?.seconds(step: step) ?? (2 * longest)
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
        prediction = [Double](repeating: 0, count: capacity)
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
        predict(n)

        let p = columns
        let warmup = warmup
        let clip = clip
        let growth = growth
        moments.withUnsafeMutableBufferPointer { moments in
            coefficients.withUnsafeMutableBufferPointer { coefficients in
                firstSeen.withUnsafeMutableBufferPointer { firstSeen in
                    prediction.withUnsafeBufferPointer { prediction in
                        fitInput.withUnsafeMutableBufferPointer { fitInput in
                            gram.withUnsafeBufferPointer { gram in
                                residuals.withCursor { cursor in
                                    for i in 0..<n {
                                        let y = values[i]
                                        let yhat = prediction[i]
                                        if firstSeen[i].isNaN {
                                            out.expected[i] = .nan
                                            out.scale[i] = .nan
                                            out.z[i] = .nan
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
                                            out.expected[i] = .nan
                                            out.scale[i] = .nan
                                            out.z[i] = .nan
                                            fitInput[i] = expected
                                            continue
                                        }
                                        out.expected[i] = expected
                                        out.scale[i] = scale
                                        out.z[i] = (y - expected) / scale
                                        fitInput[i] =
                                            scale.isNaN
                                            ? y : Swift.min(Swift.max(y, expected - clip * scale), expected + clip * scale)
                                        cursor.push(i, y - yhat)
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
        ticksSinceRefit += 1
        let active = activeColumnCount()
        if active != activeColumns || ticksSinceRefit >= refitEvery {
            activeColumns = active
            refit()
        }
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

    /// `prediction = βᵀ·x` for all slots (`dgemv`).
    private mutating func predict(_ n: Int) {
        guard n > 0 else { return }
        let p = Int32(columns)
        coefficients.withUnsafeBufferPointer { beta in
            design.withUnsafeBufferPointer { x in
                prediction.withUnsafeMutableBufferPointer { y in
                    LinearAlgebra.Unchecked.gemv(
                        .transpose,
                        m: p,
                        n: Int32(n),
                        alpha: 1,
                        a: beta.baseAddress,
                        lda: p,
                        x: x.baseAddress,
                        beta: 0,
                        y: y.baseAddress
                    )
                }
            }
        }
    }

    /// `B += w·x·yᵀ` for all slots (`dger`) and `A += w·x·xᵀ`.
    private mutating func accumulate(_ n: Int, weight: Double) {
        let p = columns
        if n > 0 {
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
        let info = factor.withUnsafeMutableBufferPointer { f in
            LinearAlgebra.Unchecked.potrf(n: Int32(pa), a: f.baseAddress, lda: Int32(pa))
        }
        guard info == 0 else {
            refitFailures += 1
            return
        }
        for i in 0..<n {
            for k in 0..<p { coefficients[i * p + k] = k < pa ? moments[i * p + k] : 0 }
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

extension SeasonalEstimator: Codable {
    private enum CodingKeys: String, CodingKey {
        case seasons, halfLife = "half_life_seconds", minCycles = "min_cycles", refitEvery = "refit_every"
        case warmup, clip, gram, growth, firstTick = "first_tick", previousTick = "previous_tick"
        case ticksSinceRefit = "ticks_since_refit", activeColumns = "active_columns"
        case refitFailures = "refit_failures", moments, coefficients, firstSeen = "first_seen", residuals
    }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        seasons = try c.decode([Season].self, forKey: .seasons)
        halfLife = try c.decode(Double.self, forKey: .halfLife)
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
        prediction = [Double](repeating: 0, count: firstSeen.count)
        fitInput = [Double](repeating: 0, count: firstSeen.count)
        try StateCheck.require(gram.count == columns * columns, "seasonal normal matrix has the wrong size", c.codingPath)
        try StateCheck.require(activeColumns >= 1 && activeColumns <= columns, "active columns out of range", c.codingPath)
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
