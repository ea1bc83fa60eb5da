/// What a detector says about every slot of one tick.
///
/// Column-wise, one array per field, `capacity` long. For a slot absent from the tick `expected`,
/// `lower`, `upper` and `z` are NaN, `score` is 0 and `anomaly` is false. While a series warms up
/// its band and `z` are NaN and its score is 0.
public struct DetectorOutput: Sendable {
    /// The value the model expected.
    public var expected: [Double] = []
    /// The lower edge of the normal band at the anomaly threshold.
    public var lower: [Double] = []
    /// The upper edge of the normal band at the anomaly threshold.
    public var upper: [Double] = []
    /// The raw signed score: standard deviations from the expected value.
    public var z: [Double] = []
    /// The calibrated score in [0, 1]: the fraction of the series' own recent scores below this one.
    public var score: [Double] = []
    /// Whether this point starts an anomalous burst (one flag per burst).
    public var anomaly: [Bool] = []
    /// Whether the series is inside an anomalous burst (flagged now or earlier and not yet calm).
    public var inBurst: [Bool] = []

    public init() {}

    /// The number of slots.
    public var capacity: Int { score.count }

    mutating func withBuffers<R>(
        _ body: (
            UnsafeMutableBufferPointer<Double>, UnsafeMutableBufferPointer<Double>, UnsafeMutableBufferPointer<Double>,
            UnsafeMutableBufferPointer<Double>, UnsafeMutableBufferPointer<Double>, UnsafeMutableBufferPointer<Bool>,
            UnsafeMutableBufferPointer<Bool>
        ) -> R
    ) -> R {
        expected.withUnsafeMutableBufferPointer { e in
            lower.withUnsafeMutableBufferPointer { l in
                upper.withUnsafeMutableBufferPointer { u in
                    z.withUnsafeMutableBufferPointer { z in
                        score.withUnsafeMutableBufferPointer { s in
                            anomaly.withUnsafeMutableBufferPointer { a in
                                inBurst.withUnsafeMutableBufferPointer { b in body(e, l, u, z, s, a, b) }
                            }
                        }
                    }
                }
            }
        }
    }

    mutating func resize(_ capacity: Int) {
        guard capacity != score.count else { return }
        expected = [Double](repeating: .nan, count: capacity)
        lower = [Double](repeating: .nan, count: capacity)
        upper = [Double](repeating: .nan, count: capacity)
        z = [Double](repeating: .nan, count: capacity)
        score = [Double](repeating: 0, count: capacity)
        anomaly = [Bool](repeating: false, count: capacity)
        inBurst = [Bool](repeating: false, count: capacity)
    }
}

/// A streaming anomaly detector over the slots of one source: an estimator (EWMA, robust z,
/// seasonal or the ensemble), a per-series score calibrator and burst suppression.
///
/// For every point it gives the expected value, the band, the raw z, a calibrated score in
/// [0, 1] and an anomaly flag. A point is anomalous when its calibrated score reaches
/// `calibration.threshold`, its |z| reaches `calibration.minZ` (both in `calibration.direction`)
/// and it is at least `calibration.minDeviation` from the expected value; only the first point of
/// a burst is flagged. The band is drawn at the z where both thresholds are met, so a point
/// outside the band is exactly a point that crosses them. A burst's first score joins the
/// series' history clipped at the threshold and the rest of the burst stays out, so an incident
/// cannot teach the detector that incidents are normal.
///
/// The detector never reads a clock: time comes with each tick.
public struct Detector: Sendable {
    /// The configuration it was built from.
    public internal(set) var configuration: DetectorConfiguration
    /// The nominal sampling interval in seconds the parameters were resolved against.
    public let step: Double

    var estimator: AnyEstimator
    private var profile: SeriesProfile
    private var calibrator: ScoreCalibrator
    var suppressor: BurstSuppressor
    private var estimates = Estimates()
    /// The surprise detector's points of the last tick (scratch, not state).
    private var surprisePoints: [SurpriseDetector.Point] = []
    /// `log10` of the calibration's stuck probability (-inf for none), worked out once rather
    /// than at every tick.
    var stuckLog10: Double

    static func stuckLog10(_ calibration: CalibrationParameters) -> Double {
        calibration.stuckProbability > 0 ? _log(calibration.stuckProbability) / _log(10) : -.infinity
    }

    /// Creates a cold detector.
    ///
    /// - Parameters:
    ///   - configuration: which detector, with its parameters.
    ///   - step: the nominal sampling interval in seconds (the scrape interval, or the median
    ///     spacing of a recording); parameters given in samples resolve against it.
    /// - Throws: ``ParameterError`` for a parameter out of range or a step that is not positive.
    public init(_ configuration: DetectorConfiguration, step: Double) throws(ParameterError) {
        try configuration.validate()
        guard step.isFinite, step > 0 else {
            throw ParameterError(key: "step", rule: "must be a positive number of seconds")
        }
        self.configuration = configuration
        self.step = step
        stuckLog10 = Self.stuckLog10(configuration.calibration)
        estimator = AnyEstimator(configuration, step: step)
        profile = SeriesProfile(configuration.floor, step: step)
        let calibration = configuration.calibration
        calibrator = ScoreCalibrator(
            halfLife: calibration.halfLife.samples(step: step),
            priorWeight: calibration.priorWeight,
            direction: calibration.direction
        )
        suppressor = BurstSuppressor(cooldown: calibration.cooldown)
    }

    /// The number of slots.
    public var capacity: Int { estimator.capacity }

    /// Bytes of state one series costs (all detectors, the calibrator and the burst state).
    public var bytesPerSeries: Int {
        estimator.bytesPerSeries + profile.bytesPerSeries + (usesCalibrator ? calibrator.bytesPerSeries : 0)
            + suppressor.bytesPerSeries
    }

    /// Whether scores come from the score calibrator (every kind but `surprise`, which has its own tail).
    private var usesCalibrator: Bool { estimator.surprise == nil }

    /// Grows to `capacity` slots; new slots start cold.
    public mutating func reserve(capacity: Int) {
        guard capacity > self.capacity else { return }
        estimator.reserve(capacity: capacity)
        profile.reserve(capacity: capacity)
        if usesCalibrator { calibrator.reserve(capacity: capacity) }
        suppressor.reserve(capacity: capacity)
        estimates.resize(capacity)
    }

    /// Forgets `slot` (its series went away; a new one will take the slot).
    public mutating func reset(slot: Int) {
        estimator.reset(slot: slot)
        profile.reset(slot: slot)
        calibrator.reset(slot: slot)
        suppressor.reset(slot: slot)
    }

    /// How the model sees `slot` now: `level`, or `seasonal (1d, 1w)` once seasons are fitted.
    public func mode(slot: Int) -> String { estimator.mode(slot: slot) }

    /// Scores one tick and learns from it.
    ///
    /// - Parameters:
    ///   - time: seconds since the epoch; must increase from tick to tick (the caller enforces it).
    ///   - values: one value per slot, NaN where the series is absent; ``capacity`` long (grown
    ///     first when longer). Values must be NaN or within ±``DetectionBank/maxMagnitude``
    ///     (the bank drops others: a larger one's square overflows the statistics).
    ///   - output: receives the verdicts, resized to ``capacity``.
    public mutating func update(time: Double, values: [Double], into output: inout DetectorOutput) {
        if values.count > self.capacity { reserve(capacity: values.count) }
        output.resize(self.capacity)
        if estimator.surprise != nil {
            updateSurprise(time: time, values: values, into: &output)
            return
        }
        let n = Swift.min(values.count, self.capacity)
        values.withUnsafeBufferPointer { values in
            suppressor.withStates { bursts in profile.update(values, bursts: bursts) }
            profile.floors.withUnsafeBufferPointer { floors in
                estimator.update(time: time, values: values, floors: floors, into: &estimates)
            }
        }
        calibrator.beginTick()
        let calibration = configuration.calibration
        let stuckLog10 = stuckLog10
        let slots = self.capacity
        let seriesProfile = profile
        values.withUnsafeBufferPointer { values in
            estimates.withBuffers { expected, scales, zs in
                output.withBuffers { outExpected, outLower, outUpper, outZ, outScore, outAnomaly, outBurst in
                    calibrator.withCursor { calibrator in
                        for i in 0..<slots {
                            let z = i < n ? zs[i] : .nan
                            outZ[i] = z
                            outExpected[i] = i < n ? expected[i] : .nan
                            guard !z.isNaN else {
                                outLower[i] = .nan
                                outUpper[i] = .nan
                                outScore[i] = 0
                                outAnomaly[i] = false
                                outBurst[i] = suppressor.inBurst(slot: i)
                                continue
                            }
                            let v = Self.directional(z, calibration.direction)
                            let score = calibrator.score(i, v)
                            let limit = Swift.max(
                                calibration.minZ,
                                calibration.margin * calibrator.threshold(i, quantile: calibration.threshold)
                            )
                            let lower = expected[i] - limit * scales[i]
                            let upper = expected[i] + limit * scales[i]
                            let deviation = abs(values[i] - expected[i])
                            let stuck = Self.isStuck(seriesProfile, i, stuckLog10, calibration.stuckMinSamples)
                            let anomalous = (v >= limit || stuck) && !(deviation < calibration.minDeviation && !stuck)
                            let flagged = suppressor.step(
                                slot: i,
                                anomalous: anomalous,
                                quiet: v < calibration.exitRatio * limit && !stuck
                            )
                            let inBurst = suppressor.inBurst(slot: i)
                            outAnomaly[i] = flagged
                            outBurst[i] = inBurst
                            outScore[i] = score
                            outLower[i] = lower
                            outUpper[i] = upper
                            // The first point of a burst joins the history clipped at the threshold, so a
                            // heavy-tailed series still learns how often it reaches its edge; the rest of
                            // the burst stays out, so one flood cannot blunt the detector for weeks.
                            if flagged {
                                calibrator.add(i, Swift.min(v, limit))
                            } else if !inBurst {
                                calibrator.add(i, v)
                            }
                        }
                    }
                }
            }
        }
    }
}

extension Detector: Codable {
    private enum CodingKeys: String, CodingKey { case configuration, step, estimator, profile, calibrator, suppressor }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        configuration = try c.decode(DetectorConfiguration.self, forKey: .configuration)
        stuckLog10 = Self.stuckLog10(configuration.calibration)
        step = try c.decode(Double.self, forKey: .step)
        estimator = try c.decode(AnyEstimator.self, forKey: .estimator)
        profile = try c.decode(SeriesProfile.self, forKey: .profile)
        calibrator = try c.decode(ScoreCalibrator.self, forKey: .calibrator)
        suppressor = try c.decode(BurstSuppressor.self, forKey: .suppressor)
        try StateCheck.sameLength(
            [estimator.capacity, profile.capacity, suppressor.capacity]
                + (estimator.surprise == nil ? [calibrator.capacity] : []),
            "detector",
            c.codingPath
        )
        estimates.resize(estimator.capacity)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(configuration, forKey: .configuration)
        try c.encode(step, forKey: .step)
        try c.encode(estimator, forKey: .estimator)
        try c.encode(profile, forKey: .profile)
        try c.encode(calibrator, forKey: .calibrator)
        try c.encode(suppressor, forKey: .suppressor)
    }
}

extension Detector {
    /// A tick through the surprise detector: its own forecasts, tail and per-hour surprise;
    /// the burst suppression, stuck detection, direction and minimum deviation as for the others.
    private mutating func updateSurprise(time: Double, values: [Double], into output: inout DetectorOutput) {
        guard let parameters = estimator.surprise?.parameters, let slots = estimator.surprise?.capacity,
            let bodyAtTail = estimator.surprise?.bodyAtTail
        else { return }
        let n = Swift.min(values.count, slots)
        values.withUnsafeBufferPointer { values in
            suppressor.withStates { bursts in profile.update(values, bursts: bursts) }
        }
        let calibration = configuration.calibration
        let threshold = parameters.threshold
        let half = parameters.scoreHalf
        let tailStart = parameters.tailStart
        let stuckLog10 = stuckLog10
        let seriesProfile = profile
        // Every slot's point first, in place (no closure holds the detector: a captured copy
        // would copy its columns), then the flags.
        estimator.surprise?.update(time: time, values: values, into: &surprisePoints)
        let points = surprisePoints
        output.withBuffers { outExpected, outLower, outUpper, outZ, outScore, outAnomaly, outBurst in
            for i in 0..<Swift.min(slots, points.count) {
                let x = i < n ? values[i] : .nan
                let point = points[i]
                outZ[i] = point.z
                outExpected[i] = x.isNaN ? .nan : point.expected
                guard !point.surprise.isNaN else {
                    outLower[i] = .nan
                    outUpper[i] = .nan
                    outScore[i] = 0
                    outAnomaly[i] = false
                    outBurst[i] = suppressor.inBurst(slot: i)
                    continue
                }
                // A deviation on the side that does not count is no surprise.
                let counts = Self.directional(point.z, calibration.direction) > 0 || point.z == 0
                let level = counts ? point.surprise : -.infinity
                let limit = SurpriseDetector.limit(
                    point,
                    threshold: threshold,
                    tailStart: tailStart,
                    bodyAtTail: bodyAtTail
                )
                outLower[i] = point.expected - limit * point.scale
                outUpper[i] = point.expected + limit * point.scale
                outScore[i] = level > 0 ? level / (level + half) : 0
                let deviation = abs(x - point.expected)
                let stuck = Self.isStuck(seriesProfile, i, stuckLog10, calibration.stuckMinSamples)
                let anomalous = (level >= threshold || stuck) && !(deviation < calibration.minDeviation && !stuck)
                let flagged = suppressor.step(
                    slot: i,
                    anomalous: anomalous,
                    quiet: level < calibration.exitRatio * threshold && !stuck
                )
                outAnomaly[i] = flagged
                outBurst[i] = suppressor.inBurst(slot: i)
            }
        }
    }

    /// Whether `slot` repeats one value for longer than its own history makes plausible.
    @inline(__always)
    static func isStuck(_ profile: SeriesProfile, _ slot: Int, _ log10Limit: Double, _ minSamples: Double) -> Bool {
        guard log10Limit > -.infinity else { return false }
        let (log10p, samples) = profile.stuckEvidence(slot)
        return samples >= minSamples && log10p < log10Limit
    }

    /// The score a raw z contributes in `direction`.
    @inline(__always)
    static func directional(_ z: Double, _ direction: Direction) -> Double {
        switch direction {
        case .both: abs(z)
        case .above: Swift.max(z, 0)
        case .below: Swift.max(-z, 0)
        }
    }
}

/// The estimator of a detector. Exactly one of the four is present; keeping them as optionals
/// (rather than an enum with payloads) lets every call mutate the estimator in place, without
/// copying its arrays, and without existential dispatch in the hot loop.
struct AnyEstimator: Sendable {
    var ewma: EWMAEstimator?
    var robust: RobustEstimator?
    var seasonal: SeasonalEstimator?
    var ensemble: EnsembleEstimator?
    /// The surprise detector scores on its own (its own tail, no calibrator): ``Detector``
    /// takes its path when this is present.
    var surprise: SurpriseDetector?

    init(_ configuration: DetectorConfiguration, step: Double) {
        switch configuration.kind {
        case .ewma: ewma = EWMAEstimator(configuration.ewma, step: step)
        case .robust: robust = RobustEstimator(configuration.robust)
        case .seasonal: seasonal = SeasonalEstimator(configuration.seasonal, step: step)
        case .ensemble: ensemble = EnsembleEstimator(configuration, step: step)
        case .surprise: surprise = SurpriseDetector(configuration.surprise)
        }
        capacity = measuredCapacity
    }

    private var present: any Estimator {
        if let ewma { return ewma }
        if let robust { return robust }
        if let seasonal { return seasonal }
        if let ensemble { return ensemble }
        return EWMAEstimator(EWMAParameters(), step: 1)
    }

    /// The present estimator's slots. Read several times a tick, so kept, not asked: reading
    /// it through the optionals copied the estimator (about 1.5 KB) at every read, which on a
    /// bank of one series was a fair part of each sample's time.
    private(set) var capacity = 0

    /// The present estimator's slots, asked of it (when they may have changed).
    private var measuredCapacity: Int { surprise?.capacity ?? present.capacity }

    var bytesPerSeries: Int { surprise?.bytesPerSeries ?? present.bytesPerSeries }

    func mode(slot: Int) -> String { surprise?.mode(slot: slot) ?? present.mode(slot: slot) }

    /// The surprise detector judges with the threshold, per-hour weight and score scale of
    /// `parameters` from now on (the other kinds keep no judging parameter).
    mutating func judge(with parameters: SurpriseParameters) {
        surprise?.judge(with: parameters)
    }

    mutating func reserve(capacity: Int) {
        ewma?.reserve(capacity: capacity)
        robust?.reserve(capacity: capacity)
        seasonal?.reserve(capacity: capacity)
        ensemble?.reserve(capacity: capacity)
        surprise?.reserve(capacity: capacity)
        self.capacity = measuredCapacity
    }

    mutating func reset(slot: Int) {
        ewma?.reset(slot: slot)
        robust?.reset(slot: slot)
        seasonal?.reset(slot: slot)
        ensemble?.reset(slot: slot)
        surprise?.reset(slot: slot)
    }

    mutating func update(
        time: Double,
        values: UnsafeBufferPointer<Double>,
        floors: UnsafeBufferPointer<Double>,
        into out: inout Estimates
    ) {
        ewma?.update(time: time, values: values, floors: floors, into: &out)
        robust?.update(time: time, values: values, floors: floors, into: &out)
        seasonal?.update(time: time, values: values, floors: floors, into: &out)
        ensemble?.update(time: time, values: values, floors: floors, into: &out)
    }
}

extension AnyEstimator: Codable {
    private enum CodingKeys: String, CodingKey { case ewma, robust, seasonal, ensemble, surprise }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ewma = try c.decodeIfPresent(EWMAEstimator.self, forKey: .ewma)
        robust = try c.decodeIfPresent(RobustEstimator.self, forKey: .robust)
        seasonal = try c.decodeIfPresent(SeasonalEstimator.self, forKey: .seasonal)
        ensemble = try c.decodeIfPresent(EnsembleEstimator.self, forKey: .ensemble)
        surprise = try c.decodeIfPresent(SurpriseDetector.self, forKey: .surprise)
        capacity = measuredCapacity
        let present = [ewma != nil, robust != nil, seasonal != nil, ensemble != nil, surprise != nil].filter { $0 }
            .count
        try StateCheck.require(present == 1, "detector state must hold exactly one estimator", c.codingPath)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(ewma, forKey: .ewma)
        try c.encodeIfPresent(robust, forKey: .robust)
        try c.encodeIfPresent(seasonal, forKey: .seasonal)
        try c.encodeIfPresent(ensemble, forKey: .ensemble)
        try c.encodeIfPresent(surprise, forKey: .surprise)
    }
}
