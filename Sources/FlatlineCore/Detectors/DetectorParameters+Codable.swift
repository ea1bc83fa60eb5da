// Codable forms of the detector parameters, with the snake_case keys used in model files and in
// saved state. Every key is optional when decoding: an absent key keeps its default.

extension EWMAParameters: Codable {
    private enum CodingKeys: String, CodingKey { case halfLife = "half_life", warmup, clip }

    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        halfLife = try c.decodeIfPresent(Horizon.self, forKey: .halfLife) ?? halfLife
        warmup = try c.decodeIfPresent(Int.self, forKey: .warmup) ?? warmup
        clip = try c.decodeIfPresent(Double.self, forKey: .clip) ?? clip
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(halfLife, forKey: .halfLife)
        try c.encode(warmup, forKey: .warmup)
        try c.encode(clip, forKey: .clip)
    }
}

extension RobustParameters: Codable {
    private enum CodingKeys: String, CodingKey { case window, warmup }

    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        window = try c.decodeIfPresent(Int.self, forKey: .window) ?? window
        warmup = try c.decodeIfPresent(Int.self, forKey: .warmup) ?? warmup
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(window, forKey: .window)
        try c.encode(warmup, forKey: .warmup)
    }
}

extension Season: Codable {
    private enum CodingKeys: String, CodingKey { case period, harmonics }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let text = try c.decode(String.self, forKey: .period)
        guard let seconds = DurationText.parse(text), seconds > 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: .period,
                in: c,
                debugDescription: "\"\(text)\" is not a duration such as 1d or 1w"
            )
        }
        self.init(period: seconds, harmonics: try c.decodeIfPresent(Int.self, forKey: .harmonics) ?? 3)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(DurationText.format(seconds: period), forKey: .period)
        try c.encode(harmonics, forKey: .harmonics)
    }
}

extension SeasonalParameters: Codable {
    private enum CodingKeys: String, CodingKey {
        case seasons, halfLife = "half_life", minCycles = "min_cycles", refitEvery = "refit_every"
        case residualWindow = "residual_window", warmup, clip, learnPeriod = "learn_period"
        case learnSamples = "learn_samples"
    }

    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        seasons = try c.decodeIfPresent([Season].self, forKey: .seasons) ?? seasons
        halfLife = try c.decodeIfPresent(Horizon.self, forKey: .halfLife) ?? halfLife
        minCycles = try c.decodeIfPresent(Double.self, forKey: .minCycles) ?? minCycles
        refitEvery = try c.decodeIfPresent(Int.self, forKey: .refitEvery) ?? refitEvery
        residualWindow = try c.decodeIfPresent(Int.self, forKey: .residualWindow) ?? residualWindow
        warmup = try c.decodeIfPresent(Int.self, forKey: .warmup) ?? warmup
        clip = try c.decodeIfPresent(Double.self, forKey: .clip) ?? clip
        learnPeriod = try c.decodeIfPresent(Bool.self, forKey: .learnPeriod) ?? learnPeriod
        learnSamples = try c.decodeIfPresent(Int.self, forKey: .learnSamples) ?? learnSamples
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(seasons, forKey: .seasons)
        try c.encodeIfPresent(halfLife, forKey: .halfLife)
        try c.encode(minCycles, forKey: .minCycles)
        try c.encode(refitEvery, forKey: .refitEvery)
        try c.encode(residualWindow, forKey: .residualWindow)
        try c.encode(warmup, forKey: .warmup)
        try c.encode(clip, forKey: .clip)
        try c.encode(learnPeriod, forKey: .learnPeriod)
        try c.encode(learnSamples, forKey: .learnSamples)
    }
}

extension EnsembleParameters: Codable {
    private enum CodingKeys: String, CodingKey { case halfLife = "half_life", warmup }

    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        halfLife = try c.decodeIfPresent(Horizon.self, forKey: .halfLife) ?? halfLife
        warmup = try c.decodeIfPresent(Int.self, forKey: .warmup) ?? warmup
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(halfLife, forKey: .halfLife)
        try c.encode(warmup, forKey: .warmup)
    }
}

extension ScaleFloor: Codable {
    private enum CodingKeys: String, CodingKey {
        case relative, absolute, longTerm = "long_term", longTermHalfLife = "long_term_half_life", quantum
    }

    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        relative = try c.decodeIfPresent(Double.self, forKey: .relative) ?? relative
        absolute = try c.decodeIfPresent(Double.self, forKey: .absolute) ?? absolute
        longTerm = try c.decodeIfPresent(Double.self, forKey: .longTerm) ?? longTerm
        longTermHalfLife = try c.decodeIfPresent(Horizon.self, forKey: .longTermHalfLife) ?? longTermHalfLife
        quantum = try c.decodeIfPresent(Double.self, forKey: .quantum) ?? quantum
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(relative, forKey: .relative)
        try c.encode(absolute, forKey: .absolute)
        try c.encode(longTerm, forKey: .longTerm)
        try c.encode(longTermHalfLife, forKey: .longTermHalfLife)
        try c.encode(quantum, forKey: .quantum)
    }
}

extension CalibrationParameters: Codable {
    private enum CodingKeys: String, CodingKey {
        case halfLife = "half_life", priorWeight = "prior_weight", threshold, margin, minZ = "min_z"
        case minDeviation = "min_deviation", direction, exitRatio = "exit_ratio", cooldown
        case stuckProbability = "stuck_probability", stuckMinSamples = "stuck_min_samples"
    }

    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        halfLife = try c.decodeIfPresent(Horizon.self, forKey: .halfLife) ?? halfLife
        priorWeight = try c.decodeIfPresent(Double.self, forKey: .priorWeight) ?? priorWeight
        threshold = try c.decodeIfPresent(Double.self, forKey: .threshold) ?? threshold
        margin = try c.decodeIfPresent(Double.self, forKey: .margin) ?? margin
        minZ = try c.decodeIfPresent(Double.self, forKey: .minZ) ?? minZ
        minDeviation = try c.decodeIfPresent(Double.self, forKey: .minDeviation) ?? minDeviation
        direction = try c.decodeIfPresent(Direction.self, forKey: .direction) ?? direction
        exitRatio = try c.decodeIfPresent(Double.self, forKey: .exitRatio) ?? exitRatio
        cooldown = try c.decodeIfPresent(Int.self, forKey: .cooldown) ?? cooldown
        stuckProbability = try c.decodeIfPresent(Double.self, forKey: .stuckProbability) ?? stuckProbability
        stuckMinSamples = try c.decodeIfPresent(Double.self, forKey: .stuckMinSamples) ?? stuckMinSamples
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(halfLife, forKey: .halfLife)
        try c.encode(priorWeight, forKey: .priorWeight)
        try c.encode(threshold, forKey: .threshold)
        try c.encode(margin, forKey: .margin)
        try c.encode(minZ, forKey: .minZ)
        try c.encode(minDeviation, forKey: .minDeviation)
        try c.encode(direction, forKey: .direction)
        try c.encode(exitRatio, forKey: .exitRatio)
        try c.encode(cooldown, forKey: .cooldown)
        try c.encode(stuckProbability, forKey: .stuckProbability)
        try c.encode(stuckMinSamples, forKey: .stuckMinSamples)
    }
}

extension DetectorConfiguration: Codable {
    private enum CodingKeys: String, CodingKey {
        case kind, ewma, robust, seasonal, ensemble, surprise, floor, calibration
    }

    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decodeIfPresent(DetectorKind.self, forKey: .kind) ?? kind
        ewma = try c.decodeIfPresent(EWMAParameters.self, forKey: .ewma) ?? ewma
        robust = try c.decodeIfPresent(RobustParameters.self, forKey: .robust) ?? robust
        seasonal = try c.decodeIfPresent(SeasonalParameters.self, forKey: .seasonal) ?? seasonal
        ensemble = try c.decodeIfPresent(EnsembleParameters.self, forKey: .ensemble) ?? ensemble
        surprise = try c.decodeIfPresent(SurpriseParameters.self, forKey: .surprise) ?? surprise
        floor = try c.decodeIfPresent(ScaleFloor.self, forKey: .floor) ?? floor
        calibration = try c.decodeIfPresent(CalibrationParameters.self, forKey: .calibration) ?? calibration
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(ewma, forKey: .ewma)
        try c.encode(robust, forKey: .robust)
        try c.encode(seasonal, forKey: .seasonal)
        try c.encode(ensemble, forKey: .ensemble)
        try c.encode(surprise, forKey: .surprise)
        try c.encode(floor, forKey: .floor)
        try c.encode(calibration, forKey: .calibration)
    }
}
