/// Which way a deviation must go to count as an anomaly.
public enum Direction: String, Hashable, Sendable, Codable, CaseIterable {
    /// Only values above the expected band.
    case above
    /// Only values below the expected band.
    case below
    /// Either side.
    case both
}

/// The detectors Flatline ships.
public enum DetectorKind: String, Hashable, Sendable, Codable, CaseIterable {
    /// Exponentially weighted mean and variance.
    case ewma
    /// Rolling median and MAD.
    case robust
    /// Fourier seasons fitted by weighted least squares, residuals scored robustly.
    case seasonal
    /// A majority vote of the three.
    case ensemble
    /// Two-speed levels, the onset rule and a tail of the series' own, scored per hour (the
    /// default; see ``SurpriseParameters``).
    case surprise
}

/// Parameters of the EWMA detector.
public struct EWMAParameters: Hashable, Sendable {
    /// How fast the mean and variance forget: the weight of a sample halves after this long.
    public var halfLife: Horizon = .samples(16)
    /// Samples seen before the detector may score.
    public var warmup: Int = 16
    /// Deviations beyond `clip` standard deviations enter the update clipped at that size, so one
    /// spike cannot drag the mean; 0 turns clipping off.
    public var clip: Double = 4

    public init() {}
}

/// Parameters of the robust z-score detector.
public struct RobustParameters: Hashable, Sendable {
    /// Samples in the rolling window.
    public var window: Int = 64
    /// Samples seen before the detector may score.
    public var warmup: Int = 16

    public init() {}
}

/// One seasonal component: a period and how many Fourier harmonics describe its shape.
public struct Season: Hashable, Sendable {
    /// The period, e.g. one day.
    public var period: Double
    /// Sine/cosine pairs: 1 is a pure sinusoid, more allow sharper daily shapes.
    public var harmonics: Int

    /// - Parameters:
    ///   - period: seconds per cycle.
    ///   - harmonics: sine/cosine pairs.
    public init(period: Double, harmonics: Int) {
        self.period = period
        self.harmonics = harmonics
    }

    /// One day, four harmonics.
    public static let daily = Season(period: 86400, harmonics: 4)
    /// One week, three harmonics.
    public static let weekly = Season(period: 604_800, harmonics: 3)
}

/// Parameters of the seasonal detector.
public struct SeasonalParameters: Hashable, Sendable {
    /// The seasons to fit.
    public var seasons: [Season] = [.daily, .weekly]
    /// How fast the fit forgets; `nil` means twice the longest period.
    public var halfLife: Horizon? = nil
    /// Cycles of a season that must be seen before its terms enter the fit (0 fits every season
    /// from the first sample, for benchmarks and backfills).
    public var minCycles: Double = 2
    /// Samples between two least-squares refits (one LAPACK solve for all series).
    public var refitEvery: Int = 16
    /// Samples in the rolling window that scores the residuals.
    public var residualWindow: Int = 64
    /// Samples seen before the detector may score.
    public var warmup: Int = 16
    /// Samples enter the fit clipped at this many residual standard deviations, so an anomaly
    /// cannot bend the fit.
    public var clip: Double = 4
    /// Whether a source of at most 16 series learns a cycle of its own from its first
    /// ``learnSamples`` samples, when it has one the seasons above do not describe.
    public var learnPeriod: Bool = true
    /// Samples seen before the period is decided (cycles up to a third of this are found).
    public var learnSamples: Int = 512

    public init() {}
}

/// Parameters of the ensemble's combination.
public struct EnsembleParameters: Hashable, Sendable {
    /// How fast each detector's recent error, and the ensemble's own, forget.
    public var halfLife: Horizon = .samples(32)
    /// Samples the ensemble's own error needs before it may score.
    public var warmup: Int = 16

    public init() {}
}

/// The smallest scale a detector will divide by, so flat, sparse and quantised series do not
/// give meaningless scores.
///
/// Per series, the floor is the largest of: `absolute`; `relative` × the series' last value;
/// `longTerm` × its long-term noise (0.886 × the exponentially weighted mean of |xₜ − xₜ₋₁| over
/// `longTermHalfLife`, which is σ for white noise); and `quantum` × its resolution (the smallest
/// step between two consecutive distinct values ever seen: 1 for counts). The last two keep a
/// gauge that is 0 most of the time and 1 now and then from scoring every 1 as a catastrophe
/// after a quiet hour, while a jump to 6 still stands out.
public struct ScaleFloor: Hashable, Sendable {
    /// A fraction of the series' level.
    public var relative: Double = 1e-3
    /// An absolute minimum.
    public var absolute: Double = 1e-9
    /// A fraction of the series' long-term noise.
    public var longTerm: Double = 0.5
    /// The half-life of the long-term noise estimate.
    public var longTermHalfLife: Horizon = .samples(1024)
    /// A fraction of the series' resolution.
    public var quantum: Double = 0.5

    public init() {}
}

/// How raw scores become calibrated scores and anomaly flags.
public struct CalibrationParameters: Hashable, Sendable {
    /// How fast a series' score history forgets.
    public var halfLife: Horizon = .samples(4096)
    /// Weight, in samples, of the standard-normal prior the score history starts from.
    public var priorWeight: Double = 64
    /// The calibrated score at or above which a point is anomalous.
    public var threshold: Double = 0.999
    /// How far beyond the series' own `threshold` quantile of |z| a point must go: the threshold
    /// z is `margin` × that quantile (a heavy-tailed series that reaches its 99.9th percentile
    /// every thousand points does not page every thousand points).
    public var margin: Double = 1.3
    /// The raw |z| a point needs as well, whatever its calibrated score.
    public var minZ: Double = 4
    /// The absolute deviation from the expected value a point needs as well (in the series' unit).
    public var minDeviation: Double = 0
    /// Which side of the band counts.
    public var direction: Direction = .both
    /// A burst ends when |z| stays below `exitRatio` × the threshold z for ``cooldown`` samples.
    public var exitRatio: Double = 0.5
    /// Calm samples that end a burst.
    public var cooldown: Int = 4
    /// A run of identical values is anomalous (the series is stuck) when the series' own repeat
    /// rate makes it less likely than this; 0 turns stuck detection off.
    public var stuckProbability: Double = 1e-6
    /// Samples a series' repeat rate must rest on before a run can count as stuck.
    public var stuckMinSamples: Double = 64

    public init() {}
}

/// Everything that defines a detector: which one, and all its parameters.
public struct DetectorConfiguration: Hashable, Sendable {
    /// Which detector.
    public var kind: DetectorKind = .surprise
    /// EWMA parameters (used by `ewma` and `ensemble`).
    public var ewma = EWMAParameters()
    /// Robust z parameters (used by `robust` and `ensemble`).
    public var robust = RobustParameters()
    /// Seasonal parameters (used by `seasonal` and `ensemble`).
    public var seasonal = SeasonalParameters()
    /// How the ensemble combines the three.
    public var ensemble = EnsembleParameters()
    /// The surprise detector's parameters (used by `surprise`).
    public var surprise = SurpriseParameters()
    /// The scale floor of every detector.
    public var floor = ScaleFloor()
    /// Calibration and burst suppression.
    public var calibration = CalibrationParameters()

    public init(kind: DetectorKind = .surprise) {
        self.kind = kind
    }

    /// Checks every parameter.
    /// - Throws: ``ParameterError`` naming the first bad key (e.g. `seasonal.refit_every`).
    public func validate() throws(ParameterError) {
        func require(_ ok: Bool, _ key: String, _ rule: String) throws(ParameterError) {
            if !ok { throw ParameterError(key: key, rule: rule) }
        }
        try require(ewma.halfLife.isPositiveFinite, "ewma.half_life", "must be a positive duration or sample count")
        try require(ewma.warmup >= 1, "ewma.warmup", "must be at least 1")
        try require(ewma.clip >= 0 && ewma.clip.isFinite, "ewma.clip", "must be 0 (off) or positive")
        try require(robust.window >= 3 && robust.window <= 255, "robust.window", "must be between 3 and 255")
        try require(robust.warmup >= 3, "robust.warmup", "must be at least 3")
        try require(
            seasonal.seasons.allSatisfy { $0.period.isFinite && $0.period > 0 },
            "seasonal.seasons",
            "every period must be positive"
        )
        try require(
            seasonal.seasons.allSatisfy { $0.harmonics >= 1 && $0.harmonics <= 32 },
            "seasonal.seasons",
            "harmonics must be between 1 and 32"
        )
        try require(seasonal.halfLife?.isPositiveFinite ?? true, "seasonal.half_life", "must be positive")
        try require(
            seasonal.minCycles >= 0 && seasonal.minCycles.isFinite,
            "seasonal.min_cycles",
            "must not be negative"
        )
        try require(seasonal.refitEvery >= 1, "seasonal.refit_every", "must be at least 1")
        try require(
            seasonal.residualWindow >= 3 && seasonal.residualWindow <= 255,
            "seasonal.residual_window",
            "must be between 3 and 255"
        )
        try require(seasonal.warmup >= 3, "seasonal.warmup", "must be at least 3")
        try require(seasonal.clip > 0 && seasonal.clip.isFinite, "seasonal.clip", "must be positive")
        try require(seasonal.learnSamples >= 24, "seasonal.learn_samples", "must be at least 24")
        try require(ensemble.halfLife.isPositiveFinite, "ensemble.half_life", "must be positive")
        try surprise.validate()
        try require(ensemble.warmup >= 1, "ensemble.warmup", "must be at least 1")
        try require(floor.relative >= 0 && floor.relative.isFinite, "floor.relative", "must not be negative")
        try require(floor.absolute > 0 && floor.absolute.isFinite, "floor.absolute", "must be positive")
        try require(floor.longTerm >= 0 && floor.longTerm.isFinite, "floor.long_term", "must not be negative")
        try require(floor.quantum >= 0 && floor.quantum.isFinite, "floor.quantum", "must not be negative")
        try require(floor.longTermHalfLife.isPositiveFinite, "floor.long_term_half_life", "must be positive")
        try require(calibration.halfLife.isPositiveFinite, "calibration.half_life", "must be positive")
        try require(
            calibration.priorWeight > 0 && calibration.priorWeight.isFinite,
            "calibration.prior_weight",
            "must be positive"
        )
        try require(
            calibration.threshold > 0 && calibration.threshold < 1,
            "calibration.threshold",
            "must be between 0 and 1 (exclusive)"
        )
        try require(calibration.minZ >= 0 && calibration.minZ.isFinite, "calibration.min_z", "must not be negative")
        try require(calibration.margin >= 1 && calibration.margin.isFinite, "calibration.margin", "must be at least 1")
        try require(
            calibration.minDeviation >= 0 && calibration.minDeviation.isFinite,
            "calibration.min_deviation",
            "must not be negative"
        )
        try require(
            calibration.exitRatio > 0 && calibration.exitRatio <= 1,
            "calibration.exit_ratio",
            "must be in (0, 1]"
        )
        try require(calibration.cooldown >= 1, "calibration.cooldown", "must be at least 1")
        try require(
            calibration.stuckProbability >= 0 && calibration.stuckProbability < 1,
            "calibration.stuck_probability",
            "must be in [0, 1)"
        )
        try require(
            calibration.stuckMinSamples >= 0 && calibration.stuckMinSamples.isFinite,
            "calibration.stuck_min_samples",
            "must not be negative"
        )
    }
}

/// A detector parameter is out of its range.
public struct ParameterError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The parameter, in configuration notation (`seasonal.refit_every`).
    public var key: String
    /// The rule it breaks.
    public var rule: String

    public init(key: String, rule: String) {
        self.key = key
        self.rule = rule
    }

    public var description: String { "\(key) \(rule)" }
}

extension SurpriseParameters {
    /// Checks every parameter.
    /// - Throws: ``ParameterError`` naming the first bad key (e.g. `surprise.fast_weight`).
    public func validate() throws(ParameterError) {
        func require(_ ok: Bool, _ key: String, _ rule: String) throws(ParameterError) {
            if !ok { throw ParameterError(key: "surprise." + key, rule: rule) }
        }
        func weight(_ value: Double, _ key: String) throws(ParameterError) {
            try require(value > 0 && value <= 1, key, "must be in (0, 1]")
        }
        try weight(slowWeight, "slow_weight")
        try weight(scaleWeight, "scale_weight")
        try weight(fastWeight, "fast_weight")
        try weight(rateWeight, "rate_weight")
        try weight(shapeWeight, "shape_weight")
        try weight(stepWeight, "step_weight")
        try require(clip > 0 && clip.isFinite, "clip", "must be positive")
        try require(scaleClip > 0 && scaleClip.isFinite, "scale_clip", "must be positive")
        try require(shiftRun >= 0 && shiftRun <= 1_000_000, "shift_run", "must be from 0 to 1000000")
        try require(quantumFloor >= 0 && quantumFloor.isFinite, "quantum_floor", "must not be negative")
        try require(warmup >= 1 && warmup <= 1_000_000, "warmup", "must be from 1 to 1000000")
        try require(tailStart > 0 && tailStart <= 30, "tail_start", "must be in (0, 30]")
        try require(priorRate > 0 && priorRate < 1, "prior_rate", "must be in (0, 1)")
        try require(priorShape > 0 && priorShape.isFinite, "prior_shape", "must be positive")
        try require(minShape > 0 && minShape.isFinite, "min_shape", "must be positive")
        try require(perHour >= 0 && perHour.isFinite, "per_hour", "must not be negative")
        try require(scoreHalf > 0 && scoreHalf.isFinite, "score_half", "must be positive")
        try require(threshold >= -3 && threshold <= 30, "threshold", "must be from -3 to 30")
        try require(seasonPeriod >= 0 && seasonPeriod.isFinite, "season_period", "must be 0 (off) or positive")
        try require(seasonSlots >= 1 && seasonSlots <= 1440, "season_slots", "must be from 1 to 1440")
        try require(seasonWeight > 0 && seasonWeight < 1, "season_weight", "must be in (0, 1)")
        try require(seasonCycles >= 0 && seasonCycles.isFinite, "season_cycles", "must not be negative")
        try require(seasonGain > 0 && seasonGain <= 1, "season_gain", "must be in (0, 1]")
        try require(seasonPenalty >= 0 && seasonPenalty.isFinite, "season_penalty", "must not be negative")
        try require(seasonMinPoints >= 2, "season_min_points", "must be at least 2")
    }
}

extension Season: CustomStringConvertible {
    /// As `--seasons` takes it: `1d:4`.
    public var description: String { DurationText.format(seconds: period) + ":\(harmonics)" }
}
