/// The default detector: how surprising each point is, as the expected number of such points per
/// hour on this series, from two forecasts and a tail learned on the series' own errors.
///
/// Per series, per point:
///
/// 1. **Two forecasts of the next value.** A *slow* level: an EWMA (weight `slowWeight`) whose
///    update is clipped at `clip` scales, so one spike cannot drag it; after `shiftRun` points in
///    a row beyond `clip` scales on the same side (a shift that persists) it jumps to the new
///    level. A *fast* level: an EWMA with weight `fastWeight`, nearly "the last value". Each
///    has its own scale: 1.2533 × the EW mean absolute error (errors clipped at `scaleClip`
///    scales; weight `max(scaleWeight, 1/k)` for the k-th, so the first ones average plainly),
///    never below `quantumFloor` × the series' resolution (the smallest step between two values
///    seen: 1 for counts).
/// 2. **The onset rule.** The point's z is the smaller in size of the two forecasts' z: a point
///    is surprising only when neither the baseline nor "about the previous value" explains it.
///    A spike scores at its first point; a level shift scores at its onset and then stops.
/// 3. **A tail of its own.** `-log10 p` of |z| under the series' error distribution: a Pareto
///    (Hill) tail above `tailStart` scales, with the rate of exceedance *clusters* (runs count
///    once) learned at `rateWeight` per point and the tail index at `shapeWeight` per
///    exceedance; below it a normal shape scaled to meet the tail. A series that is
///    heavy-tailed by nature learns that its big deviations are ordinary.
/// 4. **Per hour.** The surprise `L = -log10 p + perHour × log10(step / 1 h)`: the expected
///    number of such points per hour is `10^-L`, so one threshold means the same alert rate on
///    a series scraped every second and one sampled hourly. The score is `L / (L + scoreHalf)`
///    (0 when L ≤ 0), in [0, 1), finely resolved in the tail.
///
/// 5. **A daily channel.** The same two forecasts and a tail of their own on the value less a
///    daily profile (`seasonSlots` slots, learned clipped, `seasonWeight` a day); after
///    `seasonCycles` days, and while its scale is below `seasonGain` of the plain one, the
///    channel that finds the point more surprising (less `seasonPenalty`) speaks.
///
/// The tail index learns only the exceedances below the |z| of the threshold: the points of an
/// incident do not teach the tail that incidents are ordinary, and a run of anomalous points
/// (a recovery after an outage) cannot ratchet the index up.
///
/// State per series: 17 doubles and 7 small integers and flags side by side (152 bytes) and the
/// daily profile (96 × 6 bytes), about 730 bytes; per point O(1). Chosen on Microsoft's cloud
/// monitoring corpus with NAB's scoring (see the README's "Detection quality").
package struct SurpriseDetector: Sendable {
    package private(set) var parameters: SurpriseParameters

    /// One channel's levels, scales and tail (the plain one and the deseasonalized one).
    struct Channel: Sendable {
        var slow = Double.nan
        var fast = Double.nan
        var slowError = 0.0
        var fastError = 0.0
        var rate: Double
        var shape: Double
    }

    /// Everything a series keeps but its daily profile, side by side: a point reads and writes
    /// nearly all of it, so one series is two or three cache lines, not one line in each of 24
    /// columns. (152 bytes: no padding.)
    struct Slot: Sendable {
        var previous = Double.nan
        var quantum = Double.infinity
        var logStep = Double.nan
        var lastTime = Double.nan
        var seasonStart = Double.nan
        var raw: Channel
        var des: Channel
        /// Points seen (saturating; a `Double` in the state file, as it was).
        var count: UInt32 = 0
        var run: Int32 = 0
        var runD: Int32 = 0
        var side: Int8 = 0
        var sideD: Int8 = 0
        var inCluster = false
        var inClusterD = false

        init(_ p: SurpriseParameters) {
            raw = Channel(rate: p.priorRate, shape: p.priorShape)
            des = raw
        }
    }

    private var slots: [Slot] = []
    // The daily profile: `seasonSlots` values and visit counts per series, series after series.
    private var profile: [Float] = []
    private var visits: [UInt16] = []
    /// The last argument and result of the functions every series of a tick calls with the
    /// same argument (the time since the last tick, the step): a repeat is not computed again.
    /// Not state: the same results whether it hits or not.
    private var memo = Memo()

    /// `-log10` of the two-sided normal tail at `tailStart`, where the two shapes meet.
    package let bodyAtTail: Double

    package init(_ parameters: SurpriseParameters) {
        self.parameters = parameters
        bodyAtTail = Self.normalTail(parameters.tailStart)
    }

    package var capacity: Int { slots.count }

    /// Judges from now on with the threshold, per-hour weight and score scale of `other`; what
    /// the series learned stays (the other parameters must be this detector's).
    package mutating func judge(with other: SurpriseParameters) {
        parameters.threshold = other.threshold
        parameters.perHour = other.perHour
        parameters.scoreHalf = other.scoreHalf
    }

    package var bytesPerSeries: Int {
        MemoryLayout<Slot>.stride
            + parameters.seasonSlots * (MemoryLayout<Float>.stride + MemoryLayout<UInt16>.stride)
    }

    package mutating func reserve(capacity: Int) {
        guard capacity > self.capacity else { return }
        let extra = capacity - self.capacity
        slots += repeatElement(Slot(parameters), count: extra)
        profile += repeatElement(0, count: extra * parameters.seasonSlots)
        visits += repeatElement(0, count: extra * parameters.seasonSlots)
    }

    package mutating func reset(slot: Int) {
        guard slot < capacity else { return }
        slots[slot] = Slot(parameters)
        let width = parameters.seasonSlots
        for k in (slot * width)..<((slot + 1) * width) {
            profile[k] = 0
            visits[k] = 0
        }
    }

    /// `-log10 P(|Z| > a)` for a standard normal Z, stable far into the tail.
    @inline(__always)
    static func normalTail(_ a: Double) -> Double {
        if a < 8 { return -_log(_erfc(a * 0.707_106_781_186_547_6)) / 2.302_585_092_994_046 }
        let x = a * 0.707_106_781_186_547_6
        return (x * x + _log(x * 1.772_453_850_905_516)) / 2.302_585_092_994_046
    }

    /// What one point gave.
    package struct Point {
        /// The forecast of the forecaster that explains the point better.
        var expected: Double
        /// That forecaster's scale.
        var scale: Double
        /// (value − expected) / scale.
        var z: Double
        /// The surprise L (NaN while warming up).
        var surprise: Double
        /// `-log10` of the exceedance rate and the tail index the point was scored with, and
        /// the per-hour term: what the band's edge is computed from.
        var rateLog: Double
        var tailIndex: Double
        var perTime: Double
        /// Subtracted from the tail's `-log10 p` (the seasonal channel's penalty).
        var penalty = 0.0
    }

    /// One channel's two forecasts of a value: their scales, errors and z.
    struct Forecasts {
        var slowScale: Double
        var fastScale: Double
        var slowError: Double
        var fastError: Double
        var slowZ: Double
        var fastZ: Double

        /// The onset rule: the z of the forecast that explains the value better.
        var useFast: Bool { abs(fastZ) < abs(slowZ) }
        var z: Double { useFast ? fastZ : slowZ }

        @inline(__always)
        init(_ x: Double, slow: Double, fast: Double, slowMean: Double, fastMean: Double, floor: Double) {
            slowScale = Swift.max(1.253_314_137_315_500 * slowMean, floor)
            fastScale = Swift.max(1.253_314_137_315_500 * fastMean, floor)
            slowError = x - slow
            fastError = x - fast
            slowZ = Self.z(slowError, slowScale)
            fastZ = Self.z(fastError, fastScale)
        }

        @inline(__always)
        static func z(_ error: Double, _ scale: Double) -> Double {
            scale > 0 ? error / scale : (error == 0 ? 0 : (error > 0 ? SurpriseDetector.bigZ : -SurpriseDetector.bigZ))
        }
    }

    /// `-log10 p` of |z| = `a` under a tail of exceedance rate `rate` and index `shape`.
    @inline(__always)
    private static func tail(
        _ a: Double,
        rate: Double,
        shape: Double,
        _ parameters: SurpriseParameters,
        bodyAtTail: Double
    ) -> (lp: Double, rateLog: Double, index: Double) {
        let rateLog = -_log(rate) / 2.302_585_092_994_046
        let index = Swift.max(shape, parameters.minShape)
        if a <= parameters.tailStart { return (Self.normalTail(a) * rateLog / bodyAtTail, rateLog, index) }
        return (rateLog + _log(a / parameters.tailStart) / 2.302_585_092_994_046 / index, rateLog, index)
    }

    /// Learns |z| = `a` into a tail: exceedance clusters (runs count once) and the Hill index.
    /// The index learns `a` clipped at the |z| where the tail `before` reaches `target` (the
    /// threshold): an incident's points are learned as just anomalous, so incidents cannot teach
    /// the tail that they are ordinary. (The clip is computed only for an exceedance, the one
    /// point that uses it. Static, like ``learnLevels(_:_:weight:_:slow:fast:slowMean:fastMean:run:side:)``:
    /// a method of `self` given `&self.column[i]` would copy `self`, and with it every column.)
    @inline(__always)
    private static func learnTail(
        _ a: Double,
        _ before: (lp: Double, rateLog: Double, index: Double),
        target: Double,
        _ parameters: SurpriseParameters,
        rate: inout Double,
        shape: inout Double,
        inCluster: inout Bool
    ) {
        var start = 0.0
        if a > parameters.tailStart {
            if !inCluster {
                inCluster = true
                start = 1
            }
            let cap = Self.tailCap(
                rateLog: before.rateLog,
                index: before.index,
                target: target,
                tailStart: parameters.tailStart
            )
            // A point the tail already calls anomalous does not move the index (as SPOT leaves
            // its alarms out of the fit): otherwise each anomalous point, even clipped at the
            // threshold's |z|, would raise the index and with it that |z| (a ratchet).
            if a < cap {
                shape += parameters.shapeWeight * (_log(a / parameters.tailStart) - shape)
            }
        } else {
            inCluster = false
        }
        rate += parameters.rateWeight * (start - rate)
    }

    /// Learns `x` into a channel's two levels and scales (with weight `w` for the scales).
    @inline(__always)
    private static func learnLevels(
        _ x: Double,
        _ f: Forecasts,
        weight w: Double,
        _ p: SurpriseParameters,
        slow: inout Double,
        fast: inout Double,
        slowMean: inout Double,
        fastMean: inout Double,
        run: inout Int32,
        side: inout Int8
    ) {
        if abs(f.slowZ) > p.clip {
            let s: Int8 = f.slowZ > 0 ? 1 : -1
            if s == side {
                run += 1
            } else {
                side = s
                run = 1
            }
        } else {
            run = 0
            side = 0
        }
        let newFast = fast + p.fastWeight * f.fastError
        if p.shiftRun > 0 && run >= Int32(clamping: p.shiftRun) {
            // A shift that persists: the slow level takes the new one.
            slow = newFast
            run = 0
            side = 0
        } else {
            let limit = f.slowScale > 0 ? p.clip * f.slowScale : Double.infinity
            slow += p.slowWeight * Swift.min(Swift.max(f.slowError, -limit), limit)
        }
        fast = newFast
        let kS = f.slowScale > 0 ? p.scaleClip * f.slowScale : Double.infinity
        let kF = f.fastScale > 0 ? p.scaleClip * f.fastScale : Double.infinity
        slowMean += w * (Swift.min(abs(f.slowError), kS) - slowMean)
        fastMean += w * (Swift.min(abs(f.fastError), kF) - fastMean)
    }

    /// The daily profile's slots a period (0: no channel: no period, or too few points in one)
    /// and the slot of `time`, for a series sampled every `step`.
    @inline(__always)
    private static func phase(time: Double, step: Double, _ p: SurpriseParameters) -> (slots: Int, phase: Int) {
        guard p.seasonPeriod > 0 else { return (0, 0) }
        let slotCount = Swift.min(Int(saturating: p.seasonPeriod / step + 0.5), p.seasonSlots)
        guard slotCount >= p.seasonMinPoints else { return (0, 0) }
        var offset = time.truncatingRemainder(dividingBy: p.seasonPeriod)
        if offset < 0 { offset += p.seasonPeriod }
        return (slotCount, Swift.min(Int(offset / p.seasonPeriod * Double(slotCount)), slotCount - 1))
    }

    /// What a point without a value (or before the second one) gives.
    private static let noPoint = Point(
        expected: .nan,
        scale: .nan,
        z: .nan,
        surprise: .nan,
        rateLog: .nan,
        tailIndex: .nan,
        perTime: 0
    )

    /// `max(weight, 1 / n)` for n ≥ 1, without the division once n × weight ≥ 2 (then 1/n is
    /// at most half the weight, so the result is the weight, the same double as with it).
    @inline(__always)
    private static func atLeast(_ weight: Double, oneOver n: Double) -> Double {
        n * weight >= 2 ? weight : Swift.max(weight, 1 / n)
    }

    /// A point that is not scored (warming up) but has a forecast.
    @inline(__always)
    private static func unscored(expected: Double) -> Point {
        var point = noPoint
        point.expected = expected
        return point
    }

    /// Scores a tick: `values[i]` (NaN or absent: no value) for every slot, into `points`.
    package mutating func update(time: Double, values: [Double], into points: inout [Point]) {
        let capacity = self.capacity
        if points.count != capacity { points = [Point](repeating: Self.noPoint, count: capacity) }
        let n = Swift.min(values.count, capacity)
        let p = parameters
        let body = bodyAtTail
        var memo = self.memo
        // One exclusive access to each array for the whole tick (no uniqueness check per point).
        slots.withUnsafeMutableBufferPointer { slots in
            profile.withUnsafeMutableBufferPointer { profile in
                visits.withUnsafeMutableBufferPointer { visits in
                    values.withUnsafeBufferPointer { values in
                        points.withUnsafeMutableBufferPointer { points in
                            for i in 0..<capacity {
                                points[i] = Self.update(
                                    &slots[i],
                                    profile: profile,
                                    visits: visits,
                                    at: i * p.seasonSlots,
                                    time: time,
                                    value: i < n ? values[i] : .nan,
                                    p,
                                    bodyAtTail: body,
                                    memo: &memo
                                )
                            }
                        }
                    }
                }
            }
        }
        self.memo = memo
    }

    /// Scores `value` at `time` for `slot` against the state before it, then learns from it.
    /// NaN: the series has no value now (the clock still moves); the result is NaN.
    package mutating func update(slot i: Int, time: Double, value x: Double) -> Point {
        let p = parameters
        let body = bodyAtTail
        var memo = self.memo
        var slot = slots[i]
        let point = profile.withUnsafeMutableBufferPointer { profile in
            visits.withUnsafeMutableBufferPointer { visits in
                Self.update(
                    &slot,
                    profile: profile,
                    visits: visits,
                    at: i * p.seasonSlots,
                    time: time,
                    value: x,
                    p,
                    bodyAtTail: body,
                    memo: &memo
                )
            }
        }
        slots[i] = slot
        self.memo = memo
        return point
    }

    /// One point of one series: `s` its state, its daily profile at `profile[base...]`.
    /// (Static, on the state in place: a method of `self` would reach every column through
    /// `self` and check each array's uniqueness at every access.)
    @inline(__always)
    private static func update(
        _ s: inout Slot,
        profile: UnsafeMutableBufferPointer<Float>,
        visits: UnsafeMutableBufferPointer<UInt16>,
        at base: Int,
        time: Double,
        value x: Double,
        _ p: SurpriseParameters,
        bodyAtTail body: Double,
        memo: inout Memo
    ) -> Point {
        let previousTime = s.lastTime
        if !previousTime.isNaN {
            let d = time - previousTime
            if d > 0 {
                let ld = memo.log(d) { x, _ in _log(x) }
                let current = s.logStep
                s.logStep =
                    current.isNaN
                    ? ld : current + p.stepWeight * Swift.min(Swift.max(ld - current, -Self.ln4), Self.ln4)
            }
        }
        s.lastTime = time
        guard !x.isNaN else { return Self.noPoint }
        let n = Double(s.count)
        if n == 0 {
            s.raw.slow = x
            s.raw.fast = x
            s.des.slow = x
            s.des.fast = x
            s.previous = x
            s.seasonStart = time
            s.count = 1
            return Self.unscored(expected: x)
        }
        let ls = s.logStep
        let step = ls.isNaN ? 3600 : memo.exp(ls) { x, _ in _exp(x) }
        // The daily profile's slot for this time, when the series has enough points a cycle.
        let (slotCount, phase) = memo.phase(time, step) { time, step in Self.phase(time: time, step: step, p) }
        let seasonal = slotCount > 0
        let profileIndex = base + phase
        let seasonalValue = seasonal ? Double(profile[profileIndex]) : 0
        // 1. The forecasts of both channels, the onset rule.
        let q = s.quantum
        let floor = q.isFinite ? p.quantumFloor * q : 0
        let raw = Forecasts(
            x,
            slow: s.raw.slow,
            fast: s.raw.fast,
            slowMean: s.raw.slowError,
            fastMean: s.raw.fastError,
            floor: floor
        )
        let xd = x - seasonalValue
        let des = Forecasts(
            xd,
            slow: s.des.slow,
            fast: s.des.fast,
            slowMean: s.des.slowError,
            fastMean: s.des.fastError,
            floor: floor
        )
        let cycles = (time - s.seasonStart) / p.seasonPeriod
        let useSeasonal = seasonal && cycles >= p.seasonCycles && des.slowScale < p.seasonGain * raw.slowScale
        // 2. The surprise of each channel, from its tail as it was before this point.
        let perTime = p.perHour * memo.logPerHour(step / 3600) { x, _ in _log(x) } / 2.302_585_092_994_046
        let core = Self.tail(abs(raw.z), rate: s.raw.rate, shape: s.raw.shape, p, bodyAtTail: body)
        let warm = n >= Double(p.warmup)
        if warm {
            Self.learnTail(
                abs(raw.z),
                core,
                target: p.threshold - perTime,
                p,
                rate: &s.raw.rate,
                shape: &s.raw.shape,
                inCluster: &s.inCluster
            )
        }
        var lp = core.lp
        var chosen = (
            expected: raw.useFast ? s.raw.fast : s.raw.slow, scale: raw.useFast ? raw.fastScale : raw.slowScale
        )
        var z = raw.z
        var rateLog = core.rateLog
        var index = core.index
        var penalty = 0.0
        if useSeasonal {
            let other = Self.tail(abs(des.z), rate: s.des.rate, shape: s.des.shape, p, bodyAtTail: body)
            Self.learnTail(
                abs(des.z),
                other,
                target: p.threshold - perTime + p.seasonPenalty,
                p,
                rate: &s.des.rate,
                shape: &s.des.shape,
                inCluster: &s.inClusterD
            )
            if other.lp - p.seasonPenalty > lp {
                // The daily profile tells more: its forecast, its scale, its tail (less the
                // penalty for looking twice).
                lp = other.lp - p.seasonPenalty
                chosen = (
                    expected: (des.useFast ? s.des.fast : s.des.slow) + seasonalValue,
                    scale: des.useFast ? des.fastScale : des.slowScale
                )
                z = des.z
                rateLog = other.rateLog
                index = other.index
                penalty = p.seasonPenalty
            }
        }
        // Learn: the resolution, both channels' levels and scales, the daily profile.
        let d = abs(x - s.previous)
        if d > 0 && d < q { s.quantum = d }
        s.previous = x
        let w = Self.atLeast(p.scaleWeight, oneOver: n)
        Self.learnLevels(
            x,
            raw,
            weight: w,
            p,
            slow: &s.raw.slow,
            fast: &s.raw.fast,
            slowMean: &s.raw.slowError,
            fastMean: &s.raw.fastError,
            run: &s.run,
            side: &s.side
        )
        if seasonal {
            let slowBefore = s.des.slow
            Self.learnLevels(
                xd,
                des,
                weight: w,
                p,
                slow: &s.des.slow,
                fast: &s.des.fast,
                slowMean: &s.des.slowError,
                fastMean: &s.des.fastError,
                run: &s.runD,
                side: &s.sideD
            )
            // The profile learns the value less the deseasonalized level, clipped, at `seasonWeight`
            // a cycle however many points each slot gets.
            let residual = x - slowBefore - seasonalValue
            let limit = des.slowScale > 0 ? p.clip * des.slowScale : Double.infinity
            let weight = memo.profileWeight(step, Double(slotCount)) { step, slotCount in
                let perCycle = p.seasonPeriod / (step * slotCount)
                return perCycle <= 1 ? p.seasonWeight : 1 - _pow(1 - p.seasonWeight, 1 / perCycle)
            }
            let seen = visits[profileIndex]
            let g = Self.atLeast(weight, oneOver: Double(seen) + 1)
            profile[profileIndex] = Float(seasonalValue + g * Swift.min(Swift.max(residual, -limit), limit))
            if seen < UInt16.max { visits[profileIndex] = seen + 1 }
        }
        if s.count < UInt32.max { s.count += 1 }
        guard warm else { return Self.unscored(expected: chosen.expected) }
        // 4. Per hour (perTime above).
        return Point(
            expected: chosen.expected,
            scale: chosen.scale,
            z: z,
            surprise: lp + perTime,
            rateLog: rateLog,
            tailIndex: index,
            perTime: perTime,
            penalty: penalty
        )
    }

    /// The |z| beyond which the tail `(rateLog, index)` gives `-log10 p` over `target`, for the
    /// index's learning: infinite when the target is within the normal body (nothing to clip).
    @inline(__always)
    private static func tailCap(rateLog: Double, index: Double, target: Double, tailStart: Double) -> Double {
        guard target >= rateLog, rateLog > 0 else { return .infinity }
        return tailStart * _exp(Swift.min((target - rateLog) * index * 2.302_585_092_994_046, 700))
    }

    /// The |z| at which a point of this state reaches surprise `threshold`: the band's half-width
    /// in scales. Inverts the tail exactly and the normal body from a table.
    package func limit(_ point: Point, threshold: Double) -> Double {
        Self.limit(point, threshold: threshold, tailStart: parameters.tailStart, bodyAtTail: bodyAtTail)
    }

    /// ``limit(_:threshold:)`` without the detector (no copy of its state in a loop over it).
    @inline(__always)
    package static func limit(_ point: Point, threshold: Double, tailStart: Double, bodyAtTail: Double) -> Double {
        let target = threshold - point.perTime + point.penalty
        guard target > 0, point.rateLog > 0 else { return 0 }
        if target >= point.rateLog {
            let exponent = (target - point.rateLog) * point.tailIndex * 2.302_585_092_994_046
            return tailStart * _exp(Swift.min(exponent, 700))
        }
        return inverseNormalTail(target * bodyAtTail / point.rateLog)
    }

    /// `a` with `normalTail(a) == g`, for g in [0, normalTail(8)], by bisection (the band is
    /// drawn, never decided on, so a few ulps do not matter; 40 steps reach 1e-11).
    static func inverseNormalTail(_ g: Double) -> Double {
        guard g > 0 else { return 0 }
        var lo = 0.0
        var hi = 40.0
        for _ in 0..<40 {
            let mid = 0.5 * (lo + hi)
            if normalTail(mid) < g { lo = mid } else { hi = mid }
        }
        return 0.5 * (lo + hi)
    }

    package func mode(slot: Int) -> String { "level" }

    /// One remembered call per function (see ``memo``).
    struct Memo: Sendable {
        var log = LastCall()
        var logPerHour = LastCall()
        var exp = LastCall()
        var profileWeight = LastCall()
        var phase = LastPhase()
    }

    /// ``phase(time:step:_:)``'s last arguments and result (the same for every series of a tick
    /// sampled alike).
    struct LastPhase: Sendable {
        private var argument = (Double.nan, Double.nan)
        private var result = (slots: 0, phase: 0)

        @inline(__always)
        mutating func callAsFunction(
            _ time: Double,
            _ step: Double,
            _ f: (Double, Double) -> (slots: Int, phase: Int)
        ) -> (slots: Int, phase: Int) {
            if time != argument.0 || step != argument.1 {
                argument = (time, step)
                result = f(time, step)
            }
            return result
        }
    }

    /// A pure function's last argument and result.
    struct LastCall: Sendable {
        private var argument = (Double.nan, Double.nan)
        private var result = Double.nan

        @inline(__always)
        mutating func callAsFunction(_ x: Double, _ y: Double = 0, _ f: (Double, Double) -> Double) -> Double {
            if x != argument.0 || y != argument.1 {
                argument = (x, y)
                result = f(x, y)
            }
            return result
        }
    }

    static let bigZ = 1e6
    static let ln4 = 1.386_294_361_119_890_6
}

/// Parameters of the surprise detector (``SurpriseDetector``): every rate is per point.
public struct SurpriseParameters: Hashable, Sendable {
    /// EWMA weight of the slow level.
    public var slowWeight = 0.02
    /// EW weight of the mean absolute error behind both scales.
    public var scaleWeight = 0.02
    /// EWMA weight of the fast level (nearly "the last value").
    public var fastWeight = 0.7
    /// The slow level's update is clipped at this many scales; a point beyond it counts towards
    /// a shift.
    public var clip = 3.0
    /// Errors enter the scales clipped at this many scales.
    public var scaleClip = 3.0
    /// Points in a row beyond `clip` on the same side that move the slow level to the new one
    /// (0: never).
    public var shiftRun = 12
    /// The scale's floor in units of the series' resolution.
    public var quantumFloor = 1.0
    /// Points before the first score.
    public var warmup = 10
    /// Where the tail begins, in scales.
    public var tailStart = 3.0
    /// Weight of the exceedance-cluster rate, per point.
    public var rateWeight = 0.001
    /// The cluster rate a new series starts from.
    public var priorRate = 0.005
    /// Weight of the tail index, per exceedance.
    public var shapeWeight = 0.01
    /// The tail index a new series starts from.
    public var priorShape = 0.2
    /// The smallest tail index used (the lightest tail believed: it caps how fast the surprise
    /// grows with |z|).
    public var minShape = 0.05
    /// Weight of the per-hour term: 1 makes the surprise "per hour" on every step; 0 per point.
    public var perHour = 1.0
    /// The surprise at which the score is one half.
    public var scoreHalf = 2.0
    /// EW weight of the sampling-step estimate.
    public var stepWeight = 0.05
    /// The surprise at or above which a point is anomalous (flags, the band's edge): 3 is once
    /// in a thousand hours of the series.
    public var threshold = 3.0
    /// The seasonal channel's period in seconds (one day; 0 turns the channel off).
    public var seasonPeriod = 86_400.0
    /// Slots of the profile a series keeps for one period (15 minutes each for a day).
    public var seasonSlots = 96
    /// How much of the profile one period renews.
    public var seasonWeight = 0.1
    /// Periods seen before the channel may score.
    public var seasonCycles = 2.0
    /// The channel scores only while its forecast's scale is below this fraction of the plain
    /// one's: a daily shape that explains most of the series' movement.
    public var seasonGain = 0.5
    /// Subtracted from the channel's surprise: the cost of looking at the point twice.
    public var seasonPenalty = 0.3
    /// The fewest points a period must hold for the channel (no daily profile of hourly sums
    /// taken every 6 hours).
    public var seasonMinPoints = 8

    public init() {}
}

extension SurpriseDetector: Codable {
    private enum CodingKeys: String, CodingKey {
        case parameters, count, previous, quantum, slow, fast, slowError = "slow_error", fastError = "fast_error"
        case rate, shape, logStep = "log_step", lastTime = "last_time", run, side, inCluster = "in_cluster"
        case seasonStart = "season_start", slowD = "slow_d", fastD = "fast_d", slowErrorD = "slow_error_d"
        case fastErrorD = "fast_error_d", rateD = "rate_d", shapeD = "shape_d", runD = "run_d", sideD = "side_d"
        case inClusterD = "in_cluster_d", profile, visits
    }

    /// The keys of the plain and the deseasonalized channel's numbers: slow, fast, their
    /// errors, rate, shape.
    private static let channelKeys: [[CodingKeys]] = [
        [.slow, .fast, .slowError, .fastError, .rate, .shape],
        [.slowD, .fastD, .slowErrorD, .fastErrorD, .rateD, .shapeD],
    ]

    // The state file keeps one packed column per number, as before the numbers of a series
    // were kept side by side: files written by either layout read the same.
    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(try c.decode(SurpriseParameters.self, forKey: .parameters))
        func doubles(_ key: CodingKeys) throws -> [Double] { try c.decode(PackedDoubles.self, forKey: key).values }
        let count = try doubles(.count)
        let previous = try doubles(.previous)
        let quantum = try doubles(.quantum)
        let logStep = try doubles(.logStep)
        let lastTime = try doubles(.lastTime)
        let seasonStart = try doubles(.seasonStart)
        let channels = try Self.channelKeys.map { try $0.map(doubles) }
        // Small integers and flags travel as doubles too: one packed form for everything.
        let run = try doubles(.run)
        let side = try doubles(.side)
        let inCluster = try doubles(.inCluster)
        let runD = try doubles(.runD)
        let sideD = try doubles(.sideD)
        let inClusterD = try doubles(.inClusterD)
        profile = try c.decode(PackedFloats.self, forKey: .profile).values
        visits = try c.decode(PackedFloats.self, forKey: .visits).values.map {
            UInt16(clamping: Int(saturating: Double($0)))
        }
        let columns =
            [count, previous, quantum, logStep, lastTime, seasonStart, run, side, inCluster]
            + [runD, sideD, inClusterD] + channels[0] + channels[1]
        try StateCheck.sameLength(columns.map(\.count), "surprise detector", c.codingPath)
        try StateCheck.require(
            profile.count == count.count * parameters.seasonSlots && visits.count == profile.count,
            "surprise detector's daily profile has the wrong size",
            c.codingPath
        )
        func channel(_ k: Int, _ i: Int) -> Channel {
            let columns = channels[k]
            return Channel(
                slow: columns[0][i],
                fast: columns[1][i],
                slowError: columns[2][i],
                fastError: columns[3][i],
                rate: columns[4][i],
                shape: columns[5][i]
            )
        }
        func sign(_ x: Double) -> Int8 { x > 0 ? 1 : x < 0 ? -1 : 0 }
        slots = (0..<count.count).map { i in
            var slot = Slot(parameters)
            slot.count = count[i] > 0 ? UInt32(clamping: Int(saturating: count[i])) : 0
            slot.previous = previous[i]
            slot.quantum = quantum[i]
            slot.logStep = logStep[i]
            slot.lastTime = lastTime[i]
            slot.seasonStart = seasonStart[i]
            slot.raw = channel(0, i)
            slot.des = channel(1, i)
            slot.run = Int32(clamping: Int(saturating: run[i]))
            slot.runD = Int32(clamping: Int(saturating: runD[i]))
            slot.side = sign(side[i])
            slot.sideD = sign(sideD[i])
            slot.inCluster = inCluster[i] != 0
            slot.inClusterD = inClusterD[i] != 0
            return slot
        }
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        func column(_ value: (Slot) -> Double, _ key: CodingKeys) throws {
            try c.encode(PackedDoubles(slots.map(value)), forKey: key)
        }
        try c.encode(parameters, forKey: .parameters)
        try column({ Double($0.count) }, .count)
        try column(\.previous, .previous)
        try column(\.quantum, .quantum)
        // A channel's six numbers, in the order of `channelKeys`.
        func channel(_ channel: KeyPath<Slot, Channel>, _ keys: [CodingKeys]) throws {
            let fields: [KeyPath<Channel, Double>] = [\.slow, \.fast, \.slowError, \.fastError, \.rate, \.shape]
            for (field, key) in zip(fields, keys) { try column({ $0[keyPath: channel][keyPath: field] }, key) }
        }
        try channel(\.raw, Self.channelKeys[0])
        try column(\.logStep, .logStep)
        try column(\.lastTime, .lastTime)
        try column({ Double($0.run) }, .run)
        try column({ Double($0.side) }, .side)
        try column({ $0.inCluster ? 1 : 0 }, .inCluster)
        try column(\.seasonStart, .seasonStart)
        try channel(\.des, Self.channelKeys[1])
        try column({ Double($0.runD) }, .runD)
        try column({ Double($0.sideD) }, .sideD)
        try column({ $0.inClusterD ? 1 : 0 }, .inClusterD)
        try c.encode(PackedFloats(profile), forKey: .profile)
        try c.encode(PackedFloats(visits.map(Float.init)), forKey: .visits)
    }
}

extension SurpriseParameters: Codable {
    private enum CodingKeys: String, CodingKey {
        case slowWeight = "slow_weight", scaleWeight = "scale_weight", fastWeight = "fast_weight", clip
        case scaleClip = "scale_clip", shiftRun = "shift_run", quantumFloor = "quantum_floor", warmup
        case tailStart = "tail_start", rateWeight = "rate_weight", priorRate = "prior_rate"
        case shapeWeight = "shape_weight", priorShape = "prior_shape", minShape = "min_shape", perHour = "per_hour"
        case scoreHalf = "score_half", stepWeight = "step_weight", threshold
        case seasonPeriod = "season_period", seasonSlots = "season_slots", seasonWeight = "season_weight"
        case seasonCycles = "season_cycles", seasonGain = "season_gain", seasonPenalty = "season_penalty"
        case seasonMinPoints = "season_min_points"
    }

    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        slowWeight = try c.decodeIfPresent(Double.self, forKey: .slowWeight) ?? slowWeight
        scaleWeight = try c.decodeIfPresent(Double.self, forKey: .scaleWeight) ?? scaleWeight
        fastWeight = try c.decodeIfPresent(Double.self, forKey: .fastWeight) ?? fastWeight
        clip = try c.decodeIfPresent(Double.self, forKey: .clip) ?? clip
        scaleClip = try c.decodeIfPresent(Double.self, forKey: .scaleClip) ?? scaleClip
        shiftRun = try c.decodeIfPresent(Int.self, forKey: .shiftRun) ?? shiftRun
        quantumFloor = try c.decodeIfPresent(Double.self, forKey: .quantumFloor) ?? quantumFloor
        warmup = try c.decodeIfPresent(Int.self, forKey: .warmup) ?? warmup
        tailStart = try c.decodeIfPresent(Double.self, forKey: .tailStart) ?? tailStart
        rateWeight = try c.decodeIfPresent(Double.self, forKey: .rateWeight) ?? rateWeight
        priorRate = try c.decodeIfPresent(Double.self, forKey: .priorRate) ?? priorRate
        shapeWeight = try c.decodeIfPresent(Double.self, forKey: .shapeWeight) ?? shapeWeight
        priorShape = try c.decodeIfPresent(Double.self, forKey: .priorShape) ?? priorShape
        minShape = try c.decodeIfPresent(Double.self, forKey: .minShape) ?? minShape
        perHour = try c.decodeIfPresent(Double.self, forKey: .perHour) ?? perHour
        scoreHalf = try c.decodeIfPresent(Double.self, forKey: .scoreHalf) ?? scoreHalf
        stepWeight = try c.decodeIfPresent(Double.self, forKey: .stepWeight) ?? stepWeight
        threshold = try c.decodeIfPresent(Double.self, forKey: .threshold) ?? threshold
        seasonPeriod = try c.decodeIfPresent(Double.self, forKey: .seasonPeriod) ?? seasonPeriod
        seasonSlots = try c.decodeIfPresent(Int.self, forKey: .seasonSlots) ?? seasonSlots
        seasonWeight = try c.decodeIfPresent(Double.self, forKey: .seasonWeight) ?? seasonWeight
        seasonCycles = try c.decodeIfPresent(Double.self, forKey: .seasonCycles) ?? seasonCycles
        seasonGain = try c.decodeIfPresent(Double.self, forKey: .seasonGain) ?? seasonGain
        seasonPenalty = try c.decodeIfPresent(Double.self, forKey: .seasonPenalty) ?? seasonPenalty
        seasonMinPoints = try c.decodeIfPresent(Int.self, forKey: .seasonMinPoints) ?? seasonMinPoints
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(slowWeight, forKey: .slowWeight)
        try c.encode(scaleWeight, forKey: .scaleWeight)
        try c.encode(fastWeight, forKey: .fastWeight)
        try c.encode(clip, forKey: .clip)
        try c.encode(scaleClip, forKey: .scaleClip)
        try c.encode(shiftRun, forKey: .shiftRun)
        try c.encode(quantumFloor, forKey: .quantumFloor)
        try c.encode(warmup, forKey: .warmup)
        try c.encode(tailStart, forKey: .tailStart)
        try c.encode(rateWeight, forKey: .rateWeight)
        try c.encode(priorRate, forKey: .priorRate)
        try c.encode(shapeWeight, forKey: .shapeWeight)
        try c.encode(priorShape, forKey: .priorShape)
        try c.encode(minShape, forKey: .minShape)
        try c.encode(perHour, forKey: .perHour)
        try c.encode(scoreHalf, forKey: .scoreHalf)
        try c.encode(stepWeight, forKey: .stepWeight)
        try c.encode(threshold, forKey: .threshold)
        try c.encode(seasonPeriod, forKey: .seasonPeriod)
        try c.encode(seasonSlots, forKey: .seasonSlots)
        try c.encode(seasonWeight, forKey: .seasonWeight)
        try c.encode(seasonCycles, forKey: .seasonCycles)
        try c.encode(seasonGain, forKey: .seasonGain)
        try c.encode(seasonPenalty, forKey: .seasonPenalty)
        try c.encode(seasonMinPoints, forKey: .seasonMinPoints)
    }
}
