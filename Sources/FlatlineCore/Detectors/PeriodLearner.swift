/// Finds a series' own cycle, when it has one that the configured seasons do not describe: the
/// first samples are kept, and the lag with the strongest autocorrelation peak becomes a season.
///
/// A lag counts as a period when the autocorrelation of the linearly detrended values, averaged
/// over the series, has a local maximum there of at least 0.3 that rises at least 0.3 above the
/// lowest value at a shorter lag (a cycle dips before it repeats; a random walk or a level shift
/// only decays). Of the peaks within 90 % of the highest, the shortest lag wins, so a cycle is
/// not mistaken for its double.
package struct PeriodLearner: Sendable {
    /// Samples collected before deciding.
    package let samples: Int
    /// The most series a bank may have for its period to be learned: the shared design would
    /// otherwise impose one series' cycle on thousands.
    package static let maximumSeries = 16

    private(set) var times: [Double] = []
    private(set) var rows: [[Double]] = []

    package init(samples: Int) {
        self.samples = samples
    }

    /// Whether enough ticks have been recorded.
    package var isReady: Bool { rows.count >= samples }

    /// Records one tick's values of the first ``maximumSeries`` slots.
    package mutating func record(time: Double, values: UnsafeBufferPointer<Double>) {
        times.append(time)
        rows.append(Array(values.prefix(Self.maximumSeries)))
    }

    /// The dominant period in samples over the recorded ticks, or `nil`.
    package func dominantPeriod(minimumLag: Int = 4) -> Double? {
        let width = rows.map(\.count).max() ?? 0
        guard width > 0 else { return nil }
        let series = (0..<width).map { s in rows.map { s < $0.count ? $0[s] : .nan } }
        return Self.dominantPeriod(series, minimumLag: minimumLag)
    }

    /// The dominant period in samples of `series` (each a sequence of values, NaN where absent),
    /// refined between samples by a parabola through the peak and its neighbours: a cycle of
    /// 38.4 samples fitted as 38 would drift half a cycle out of phase in 50 cycles.
    package static func dominantPeriod(_ series: [[Double]], minimumLag: Int = 4) -> Double? {
        guard let length = series.first?.count, length >= 3 * minimumLag else { return nil }
        let maximumLag = length / 3
        var average = [Double](repeating: 0, count: maximumLag + 1)
        var used = 0
        for values in series {
            guard let r = autocorrelation(values, maximumLag: maximumLag) else { continue }
            for k in 0...maximumLag { average[k] += r[k] }
            used += 1
        }
        guard used > 0 else { return nil }
        for k in average.indices { average[k] /= Double(used) }
        var peaks: [(lag: Int, value: Double)] = []
        var lowest = average[0]
        for k in 1..<maximumLag {
            lowest = Swift.min(lowest, average[k])
            guard k >= minimumLag, average[k] >= average[k - 1], average[k] > average[k + 1] else { continue }
            if average[k] >= 0.3 && average[k] - lowest >= 0.3 { peaks.append((k, average[k])) }
        }
        guard let best = peaks.map(\.value).max(), let k = peaks.first(where: { $0.value >= 0.9 * best })?.lag else {
            return nil
        }
        let (a, b, c) = (average[k - 1], average[k], average[k + 1])
        let curvature = a - 2 * b + c
        let shift = curvature < 0 ? Swift.min(0.5, Swift.max(-0.5, 0.5 * (a - c) / curvature)) : 0
        return Double(k) + shift
    }

    /// The autocorrelation at lags 0...maximumLag of `values` after filling gaps with the
    /// previous value and removing a least-squares line; `nil` for too few or constant values.
    static func autocorrelation(_ values: [Double], maximumLag: Int) -> [Double]? {
        var filled = values
        var last = Double.nan
        for i in filled.indices {
            if filled[i].isNaN { filled[i] = last } else { last = filled[i] }
        }
        guard let start = filled.firstIndex(where: { !$0.isNaN }) else { return nil }
        let y = Array(filled[start...])
        let n = y.count
        guard n > 3 * maximumLag / 2, n >= 8 else { return nil }
        let meanX = Double(n - 1) / 2
        let meanY = y.reduce(0, +) / Double(n)
        var sxy = 0.0
        var sxx = 0.0
        for (i, v) in y.enumerated() {
            sxy += (Double(i) - meanX) * (v - meanY)
            sxx += (Double(i) - meanX) * (Double(i) - meanX)
        }
        let slope = sxx > 0 ? sxy / sxx : 0
        let d = y.enumerated().map { $0.element - meanY - slope * (Double($0.offset) - meanX) }
        let c0 = d.reduce(0) { $0 + $1 * $1 }
        guard c0 > 0 else { return nil }
        return (0...maximumLag).map { k in
            var c = 0.0
            for i in 0..<(n - k) { c += d[i] * d[i + k] }
            return c / c0
        }
    }
}

extension PeriodLearner: Codable {
    private enum CodingKeys: String, CodingKey { case samples, times, rows }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        samples = try c.decode(Int.self, forKey: .samples)
        times = try c.decode(PackedDoubles.self, forKey: .times).values
        rows = try c.decode([PackedDoubles].self, forKey: .rows).map(\.values)
        try StateCheck.require(times.count == rows.count, "period learner rows and times differ", c.codingPath)
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(samples, forKey: .samples)
        try c.encode(PackedDoubles(times), forKey: .times)
        try c.encode(rows.map(PackedDoubles.init), forKey: .rows)
    }
}
