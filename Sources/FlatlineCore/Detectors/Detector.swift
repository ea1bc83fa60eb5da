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
    public let configuration: DetectorConfiguration
    /// The nominal sampling interval in seconds the parameters were resolved against.
    public let step: Double

    private var estimator: AnyEstimator
    private var profile: SeriesProfile
    private var calibrator: ScoreCalibrator
    private var suppressor: BurstSuppressor
    private var estimates = Estimates()

    /// Creates a cold detector.
    ///
    /// - Parameters:
    ///   - configuration: which detector, with its parameters.
    ///   - step: the nominal sampling interval in seconds (the scrape interval, or the median
    ///     spacing of a recording); parameters given in samples resolve against it.
    /// - Throws: ``ParameterError`` for a parameter out of range or a step that is not positive.
    public init(_ configuration: DetectorConfiguration, step: Double) throws(ParameterError) {
        try configuration.validate()
        guard step.isFinite, step > 0 else { throw ParameterError(key: "step", rule: "must be a positive number of seconds") }
        self.configuration = configuration
        self.step = step
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
        estimator.bytesPerSeries + profile.bytesPerSeries + calibrator.bytesPerSeries + suppressor.bytesPerSeries
    }

    /// Grows to `capacity` slots; new slots start cold.
    public mutating func reserve(capacity: Int) {
        guard capacity > self.capacity else { return }
        estimator.reserve(capacity: capacity)
        profile.reserve(capacity: capacity)
        calibrator.reserve(capacity: capacity)
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
    ///     first when longer). Values must be finite or NaN.
    ///   - output: receives the verdicts, resized to ``capacity``.
    public mutating func update(time: Double, values: [Double], into output: inout DetectorOutput) {
        if values.count > capacity { reserve(capacity: values.count) }
        output.resize(capacity)
        let n = Swift.min(values.count, capacity)
        values.withUnsafeBufferPointer { values in
            suppressor.withStates { bursts in profile.update(values, bursts: bursts) }
            profile.floors.withUnsafeBufferPointer { floors in
                estimator.update(time: time, values: values, floors: floors, into: &estimates)
            }
        }
        calibrator.beginTick()
        let calibration = configuration.calibration
        for i in 0..<capacity {
            let z = i < n ? estimates.z[i] : .nan
            output.z[i] = z
            output.expected[i] = i < n ? estimates.expected[i] : .nan
            guard !z.isNaN else {
                output.lower[i] = .nan
                output.upper[i] = .nan
                output.score[i] = 0
                output.anomaly[i] = false
                output.inBurst[i] = suppressor.inBurst(slot: i)
                continue
            }
            let v = calibrator.directional(z)
            let score = calibrator.score(slot: i, v)
            let limit = Swift.max(
                calibration.minZ,
                calibration.margin * calibrator.threshold(slot: i, quantile: calibration.threshold)
            )
            let (lower, upper) = estimator.band(slot: i, threshold: limit, estimates: estimates)
            let deviation = abs(values[i] - estimates.expected[i])
            let stuck = isStuck(i)
            let anomalous = (v >= limit || stuck) && !(deviation < calibration.minDeviation && !stuck)
            output.anomaly[i] = suppressor.step(
                slot: i,
                anomalous: anomalous,
                quiet: v < calibration.exitRatio * limit && !stuck
            )
            output.inBurst[i] = suppressor.inBurst(slot: i)
            output.score[i] = score
            output.lower[i] = lower
            output.upper[i] = upper
            // The first point of a burst joins the history clipped at the threshold, so a
            // heavy-tailed series still learns how often it reaches its edge; the rest of the
            // burst stays out, so one flood cannot blunt the detector for weeks.
            if output.anomaly[i] {
                calibrator.add(slot: i, Swift.min(v, limit))
            } else if !output.inBurst[i] {
                calibrator.add(slot: i, v)
            }
        }
    }
}

extension Detector: Codable {
    private enum CodingKeys: String, CodingKey { case configuration, step, estimator, profile, calibrator, suppressor }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        configuration = try c.decode(DetectorConfiguration.self, forKey: .configuration)
        step = try c.decode(Double.self, forKey: .step)
        estimator = try c.decode(AnyEstimator.self, forKey: .estimator)
        profile = try c.decode(SeriesProfile.self, forKey: .profile)
        calibrator = try c.decode(ScoreCalibrator.self, forKey: .calibrator)
        suppressor = try c.decode(BurstSuppressor.self, forKey: .suppressor)
        try StateCheck.sameLength(
            [estimator.capacity, profile.capacity, calibrator.capacity, suppressor.capacity],
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
    /// Whether `slot` repeats one value for longer than its own history makes plausible.
    @inline(__always)
    func isStuck(_ slot: Int) -> Bool {
        let calibration = configuration.calibration
        guard calibration.stuckProbability > 0 else { return false }
        let (log10p, samples) = profile.stuckEvidence(slot)
        return samples >= calibration.stuckMinSamples && log10p < _log(calibration.stuckProbability) / _log(10)
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

    init(_ configuration: DetectorConfiguration, step: Double) {
        switch configuration.kind {
        case .ewma: ewma = EWMAEstimator(configuration.ewma, step: step)
        case .robust: robust = RobustEstimator(configuration.robust)
        case .seasonal: seasonal = SeasonalEstimator(configuration.seasonal, step: step)
        case .ensemble: ensemble = EnsembleEstimator(configuration, step: step)
        }
    }

    private var present: any Estimator {
        if let ewma { return ewma }
        if let robust { return robust }
        if let seasonal { return seasonal }
        if let ensemble { return ensemble }
        return EWMAEstimator(EWMAParameters(), step: 1)
    }

    var capacity: Int { present.capacity }

    var bytesPerSeries: Int { present.bytesPerSeries }

    func mode(slot: Int) -> String { present.mode(slot: slot) }

    @inline(__always)
    func band(slot: Int, threshold: Double, estimates: Estimates) -> (lower: Double, upper: Double) {
        let e = estimates.expected[slot]
        let s = estimates.scale[slot]
        return (e - threshold * s, e + threshold * s)
    }

    mutating func reserve(capacity: Int) {
        ewma?.reserve(capacity: capacity)
        robust?.reserve(capacity: capacity)
        seasonal?.reserve(capacity: capacity)
        ensemble?.reserve(capacity: capacity)
    }

    mutating func reset(slot: Int) {
        ewma?.reset(slot: slot)
        robust?.reset(slot: slot)
        seasonal?.reset(slot: slot)
        ensemble?.reset(slot: slot)
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
    private enum CodingKeys: String, CodingKey { case ewma, robust, seasonal, ensemble }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ewma = try c.decodeIfPresent(EWMAEstimator.self, forKey: .ewma)
        robust = try c.decodeIfPresent(RobustEstimator.self, forKey: .robust)
        seasonal = try c.decodeIfPresent(SeasonalEstimator.self, forKey: .seasonal)
        ensemble = try c.decodeIfPresent(EnsembleEstimator.self, forKey: .ensemble)
        let present = [ewma != nil, robust != nil, seasonal != nil, ensemble != nil].filter { $0 }.count
        try StateCheck.require(present == 1, "detector state must hold exactly one estimator", c.codingPath)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(ewma, forKey: .ewma)
        try c.encodeIfPresent(robust, forKey: .robust)
        try c.encodeIfPresent(seasonal, forKey: .seasonal)
        try c.encodeIfPresent(ensemble, forKey: .ensemble)
    }
}
