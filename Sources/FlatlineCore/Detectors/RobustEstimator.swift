/// Rolling median and MAD over the last `window` samples of each series.
///
/// `expected` is the window's median, `scale` is `1.4826 × MAD` (the standard deviation for
/// normal data) with the fallbacks described in ``WindowBank/Cursor/statistics(_:floor:)``, and
/// `z = (x − median) / scale` against the window before `x` enters it. The window is kept sorted
/// incrementally: a tick costs two binary searches and a short shift per series, not a sort.
package struct RobustEstimator: Estimator {
    package let warmup: Int
    private var windows: WindowBank

    package init(_ parameters: RobustParameters) {
        warmup = Swift.min(parameters.warmup, parameters.window)
        windows = WindowBank(window: parameters.window)
    }

    package var capacity: Int { windows.capacity }

    package var bytesPerSeries: Int { windows.bytesPerSeries }

    package mutating func reserve(capacity: Int) { windows.reserve(capacity: capacity) }

    package mutating func reset(slot: Int) { windows.reset(slot: slot) }

    package mutating func update(
        time: Double,
        values: UnsafeBufferPointer<Double>,
        floors: UnsafeBufferPointer<Double>,
        into out: inout Estimates
    ) {
        let n = Swift.min(values.count, windows.capacity)
        let warmup = warmup
        windows.withCursor { cursor in
            out.withBuffers { expected, scale, z in
                for i in 0..<n {
                    let x = values[i]
                    guard !x.isNaN else {
                        expected[i] = .nan
                        scale[i] = .nan
                        z[i] = .nan
                        continue
                    }
                    if cursor.count(i) >= warmup {
                        let (m, s) = cursor.statistics(i, floor: floors[i])
                        expected[i] = m
                        scale[i] = s
                        z[i] = (x - m) / s
                    } else {
                        expected[i] =
                            cursor.count(i) > 0 ? SortedWindow.median(cursor.values(i), cursor.count(i)) : .nan
                        scale[i] = .nan
                        z[i] = .nan
                    }
                    cursor.push(i, x)
                }
            }
        }
    }
}

extension RobustEstimator: Codable {
    private enum CodingKeys: String, CodingKey { case warmup, windows }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        warmup = try c.decode(Int.self, forKey: .warmup)
        windows = try c.decode(WindowBank.self, forKey: .windows)
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(warmup, forKey: .warmup)
        try c.encode(windows, forKey: .windows)
    }
}
