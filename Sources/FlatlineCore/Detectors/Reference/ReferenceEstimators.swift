/// Plain-Swift reference estimators, written for clarity: one struct per series, every weight
/// computed on its own, every window sorted on every tick. The tests check the optimised
/// estimators against them, and `flatline bench` reports each optimised estimator's speed as a
/// ratio to its reference in the same run.
package enum ReferenceEstimators {}

extension ReferenceEstimators {
    /// EWMA, one series at a time, `α` from each series' own gap.
    package struct EWMA: Estimator {
        struct State: Codable, Sendable {
            var mean = 0.0
            var variance = 0.0
            var count = 0.0
            var lastTime = -Double.infinity
        }

        let halfLife: Double
        let warmup: Double
        let clip: Double
        var series: [State] = []

        package init(_ parameters: EWMAParameters, step: Double) {
            halfLife = parameters.halfLife.seconds(step: step)
            warmup = Double(parameters.warmup)
            clip = parameters.clip
        }

        package var capacity: Int { series.count }
        package var bytesPerSeries: Int { MemoryLayout<State>.stride }
        package mutating func reserve(capacity: Int) {
            if capacity > series.count { series += Array(repeating: State(), count: capacity - series.count) }
        }
        package mutating func reset(slot: Int) { series[slot] = State() }

        package mutating func update(
            time t: Double,
            values: UnsafeBufferPointer<Double>,
            floors: UnsafeBufferPointer<Double>,
            into out: inout Estimates
        ) {
            for i in 0..<Swift.min(values.count, series.count) {
                var s = series[i]
                let x = values[i]
                let ready = s.count >= warmup
                let scale = Swift.max(s.variance.squareRoot(), floors[i])
                out.expected[i] = x.isNaN || s.count == 0 ? .nan : s.mean
                out.scale[i] = ready ? scale : .nan
                out.z[i] = !x.isNaN && ready ? (x - s.mean) / scale : .nan
                guard !x.isNaN else { continue }
                if s.count == 0 {
                    s.mean = x
                    s.variance = 0
                } else {
                    let a = 1 - _exp2(-(t - s.lastTime) / halfLife)
                    let limit = ready && clip > 0 ? clip * scale : .infinity
                    let d = Swift.min(Swift.max(x - s.mean, -limit), limit)
                    s.mean += a * d
                    s.variance = (1 - a) * (s.variance + a * d * d)
                }
                s.count += 1
                s.lastTime = t
                series[i] = s
            }
        }
    }

    /// Rolling median and MAD, sorting a copy of each window on every tick.
    package struct Robust: Estimator {
        let window: Int
        let warmup: Int
        var windows: [[Double]] = []

        package init(_ parameters: RobustParameters) {
            window = parameters.window
            warmup = Swift.min(parameters.warmup, parameters.window)
        }

        package var capacity: Int { windows.count }
        package var bytesPerSeries: Int { window * MemoryLayout<Double>.stride }
        package mutating func reserve(capacity: Int) {
            if capacity > windows.count { windows += Array(repeating: [], count: capacity - windows.count) }
        }
        package mutating func reset(slot: Int) { windows[slot] = [] }

        package mutating func update(
            time: Double,
            values: UnsafeBufferPointer<Double>,
            floors: UnsafeBufferPointer<Double>,
            into out: inout Estimates
        ) {
            for i in 0..<Swift.min(values.count, windows.count) {
                let x = values[i]
                guard !x.isNaN else {
                    out.expected[i] = .nan
                    out.scale[i] = .nan
                    out.z[i] = .nan
                    continue
                }
                let w = windows[i]
                if w.count >= warmup {
                    let m = ReferenceKernels.median(w)
                    var sigma = 1.482_602_218_505_602 * ReferenceKernels.mad(w)
                    if sigma == 0 {
                        sigma = 1.253_314_137_315_500 * w.reduce(0) { $0 + abs($1 - m) } / Double(w.count)
                    }
                    let s = Swift.max(sigma, floors[i])
                    out.expected[i] = m
                    out.scale[i] = s
                    out.z[i] = (x - m) / s
                } else {
                    out.expected[i] = w.isEmpty ? .nan : ReferenceKernels.median(w)
                    out.scale[i] = .nan
                    out.z[i] = .nan
                }
                windows[i].append(x)
                if windows[i].count > window { windows[i].removeFirst() }
            }
        }
    }
}

extension ReferenceEstimators.EWMA: Codable {}
extension ReferenceEstimators.Robust: Codable {}
