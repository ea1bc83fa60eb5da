// Which detector parameters a learned state depends on, and which only judge its points: a state
// learned under one configuration goes on under another that learns alike (a new threshold does
// not cost a week of baselines and daily profiles).

extension DetectorConfiguration {
    /// The parameters that only judge a point (whether it is an anomaly, its score, its band)
    /// and leave what a series has learned as it is, by configuration key. A state learned with
    /// other values of these goes on with the configured ones.
    ///
    /// `surprise.threshold` and `surprise.per_hour` also decide which exceedances the tail index
    /// learns (those below the threshold), but a state learned with other values is still a
    /// state of the same meaning; `calibration.direction` judges for `surprise` and is learned
    /// by the score calibrator of every other kind.
    public static func judgingKeys(for kind: DetectorKind) -> Set<String> {
        var keys: Set<String> = [
            "calibration.threshold", "calibration.margin", "calibration.min_z", "calibration.min_deviation",
            "calibration.exit_ratio", "calibration.cooldown", "calibration.stuck_probability",
            "calibration.stuck_min_samples",
        ]
        if kind == .surprise {
            keys.formUnion(["surprise.threshold", "surprise.per_hour", "surprise.score_half", "calibration.direction"])
        }
        return keys
    }

    /// The sections (configuration keys) a detector of `kind` learns with.
    static func learningSections(for kind: DetectorKind) -> Set<String> {
        switch kind {
        case .ewma: ["ewma", "floor", "calibration"]
        case .robust: ["robust", "floor", "calibration"]
        case .seasonal: ["seasonal", "floor", "calibration"]
        case .ensemble: ["ewma", "robust", "seasonal", "ensemble", "floor", "calibration"]
        // The surprise detector has its own tail: no score calibrator learns.
        case .surprise: ["surprise", "floor"]
        }
    }

    /// What keeps a state learned under `saved` from going on under this configuration: the
    /// first key (`kind`, `surprise.shape_weight`, ...) whose value differs and that a detector
    /// of this kind learns with; `nil` when it can go on (only judging parameters differ, see
    /// ``judgingKeys(for:)``, or parameters of detectors this kind does not run).
    public func learningDifference(from saved: DetectorConfiguration) -> (key: String, saved: String, now: String)? {
        guard kind == saved.kind else { return ("kind", saved.kind.rawValue, kind.rawValue) }
        let sections = Self.learningSections(for: kind)
        let judging = Self.judgingKeys(for: kind)
        for ((section, mine), (_, theirs)) in zip(parameterSections, saved.parameterSections)
        where sections.contains(section) {
            for (name, value, savedValue) in Self.fields(mine, theirs) {
                let key = section + "." + name
                if !judging.contains(key) && value != savedValue { return (key, savedValue, value) }
            }
        }
        return nil
    }

    /// Every parameter's configuration key (`surprise.shape_weight`), as this type names them.
    var parameterKeys: [String] {
        parameterSections.flatMap { section, value in
            Self.fields(value, value).map { section + "." + $0.0 }
        }
    }

    /// Each section of parameters with its configuration key, in the order of the file format.
    private var parameterSections: [(String, Any)] {
        [
            ("ewma", ewma), ("robust", robust), ("seasonal", seasonal), ("ensemble", ensemble),
            ("surprise", surprise), ("floor", floor), ("calibration", calibration),
        ]
    }

    /// The fields of two values of one parameter type, by configuration key (the snake_case
    /// of the property's name, as every parameter's coding key is), each value as text: a cold
    /// path, once per restored state.
    private static func fields(_ a: Any, _ b: Any) -> [(String, String, String)] {
        let theirs = Mirror(reflecting: b).children.map { String(describing: $0.value) }
        return Mirror(reflecting: a).children.enumerated().compactMap { index, child in
            guard let label = child.label, index < theirs.count else { return nil }
            return (snakeCase(label), String(describing: child.value), theirs[index])
        }
    }

    private static func snakeCase(_ name: String) -> String {
        var out = ""
        for character in name {
            if character.isUppercase {
                out += "_" + character.lowercased()
            } else {
                out.append(character)
            }
        }
        return out
    }
}

extension Detector {
    /// This detector's learned state under `configuration`, with its judging parameters (see
    /// ``DetectorConfiguration/judgingKeys(for:)``); `nil` when `configuration` learns otherwise
    /// (``DetectorConfiguration/learningDifference(from:)``) or is not valid.
    public func continuing(as configuration: DetectorConfiguration) -> Detector? {
        guard configuration.learningDifference(from: self.configuration) == nil,
            (try? configuration.validate()) != nil
        else { return nil }
        var next = self
        next.configuration = configuration
        next.stuckLog10 = Self.stuckLog10(configuration.calibration)
        next.suppressor.cooldown = Int32(clamping: configuration.calibration.cooldown)
        next.estimator.judge(with: configuration.surprise)
        return next
    }
}
