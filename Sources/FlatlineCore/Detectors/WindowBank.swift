/// One rolling window of the last `window` values per slot, kept sorted (for the median and MAD)
/// with each value's age beside it (to know which value leaves), in flat arrays.
///
/// A push finds the oldest value's position by its age (a vectorised scan of `window` bytes, no
/// search through the doubles), then shifts the values between it and the new value's place.
/// Per slot: `9 × window + 5` bytes.
package struct WindowBank: Sendable {
    /// The most values a window can hold: ages are bytes, and the `window` ages in a window must
    /// differ modulo 256.
    package static let maximumWindow = 255

    /// Values per window.
    package let window: Int
    /// Bytes of ages per slot: `window` rounded up to whole 16-byte vectors.
    private let ageStride: Int
    private var sorted: [Double] = []
    private var ages: [UInt8] = []
    private var fill: [Int32] = []
    private var clock: [UInt8] = []
    // Where each window's MAD block was last found: a starting point for the next search, not
    // state (any start gives the same answer), so it is neither saved nor compared.
    private var hints: [UInt8] = []

    package init(window: Int) {
        self.window = Swift.min(Swift.max(window, 1), Self.maximumWindow)
        ageStride = (self.window + 15) & ~15
    }

    package var capacity: Int { fill.count }

    package var bytesPerSeries: Int {
        window * MemoryLayout<Double>.stride + ageStride + MemoryLayout<Int32>.stride + 1
    }

    package mutating func reserve(capacity: Int) {
        guard capacity > fill.count else { return }
        let extra = capacity - fill.count
        sorted.append(contentsOf: repeatElement(0, count: extra * window))
        ages.append(contentsOf: repeatElement(0, count: extra * ageStride))
        fill.append(contentsOf: repeatElement(0, count: extra))
        clock.append(contentsOf: repeatElement(0, count: extra))
        hints.append(contentsOf: repeatElement(0, count: extra))
    }

    package mutating func reset(slot: Int) {
        guard slot < fill.count else { return }
        fill[slot] = 0
        clock[slot] = 0
    }

    /// Values currently in `slot`'s window.
    package func count(slot: Int) -> Int { Int(fill[slot]) }

    /// Runs `body` with raw access to the windows, for a tick's loop over all slots.
    package mutating func withCursor<R>(_ body: (inout Cursor) -> R) -> R {
        let window = window
        let ageStride = ageStride
        return sorted.withUnsafeMutableBufferPointer { sorted in
            ages.withUnsafeMutableBufferPointer { ages in
                fill.withUnsafeMutableBufferPointer { fill in
                    clock.withUnsafeMutableBufferPointer { clock in
                        hints.withUnsafeMutableBufferPointer { hints in
                            var cursor = Cursor(
                                window: window,
                                ageStride: ageStride,
                                sorted: sorted,
                                ages: ages,
                                fill: fill,
                                clock: clock,
                                hints: hints
                            )
                            return body(&cursor)
                        }
                    }
                }
            }
        }
    }

    /// Raw access to all windows during one tick. Never escapes ``withCursor(_:)``.
    package struct Cursor {
        let window: Int
        let ageStride: Int
        let sorted: UnsafeMutableBufferPointer<Double>
        let ages: UnsafeMutableBufferPointer<UInt8>
        let fill: UnsafeMutableBufferPointer<Int32>
        let clock: UnsafeMutableBufferPointer<UInt8>
        let hints: UnsafeMutableBufferPointer<UInt8>

        /// Values in `slot`'s window.
        @inline(__always)
        package func count(_ slot: Int) -> Int { Int(fill[slot]) }

        /// The sorted values of `slot`.
        @inline(__always)
        package func values(_ slot: Int) -> UnsafeMutablePointer<Double> {
            // The buffer is never empty when a slot exists (capacity × window elements).
            sorted.baseAddress.unsafelyUnwrapped + slot &* window
        }

        @inline(__always)
        func agesOf(_ slot: Int) -> UnsafeMutablePointer<UInt8> {
            ages.baseAddress.unsafelyUnwrapped + slot &* ageStride
        }

        /// The position of the value whose age is `age` in a full window: the ages of a window
        /// are distinct, so one lane of the vector compare matches. Lanes past the window count
        /// as position 0, which only a match at position 0 also gives.
        @inline(__always)
        func position(ofAge age: UInt8, in a: UnsafeMutablePointer<UInt8>) -> Int {
            let target = SIMD16<UInt8>(repeating: age)
            var found = SIMD16<UInt8>(repeating: 0)
            var lanes = SIMD16<UInt8>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
            var chunk = 0
            while chunk < window {
                let v = UnsafeRawPointer(a + chunk).loadUnaligned(as: SIMD16<UInt8>.self)
                let valid = lanes .< SIMD16<UInt8>(repeating: UInt8(truncatingIfNeeded: window))
                found.replace(with: lanes, where: (v .== target) .& valid)
                lanes &+= 16
                chunk &+= 16
            }
            return Int(found.max())
        }

        /// The median and robust scale of `slot`'s window.
        ///
        /// The scale is `1.4826 × MAD` (the standard deviation for normal data). When the MAD is 0
        /// (more than half the window holds one value, as NATS gauges like `num_pending` do), it is
        /// `1.2533 ×` the mean absolute deviation (likewise σ for normal data); and never below
        /// `floor`.
        @inline(__always)
        package func statistics(_ slot: Int, floor: Double) -> (median: Double, scale: Double) {
            let n = count(slot)
            let s = UnsafePointer(values(slot))
            let m = SortedWindow.median(s, n)
            var hint = Int(hints[slot])
            var sigma = 1.482_602_218_505_602 * SortedWindow.mad(s, n, median: m, hint: &hint)
            hints[slot] = UInt8(truncatingIfNeeded: hint)
            if sigma == 0 {
                sigma = 1.253_314_137_315_500 * SortedWindow.meanAbsoluteDeviation(s, n, from: m)
            }
            return (m, Swift.max(sigma, floor))
        }

        /// Adds `x` to `slot`'s window, pushing out the oldest value when full.
        @inline(__always)
        package func push(_ slot: Int, _ x: Double) {
            let n = Int(fill[slot])
            let now = clock[slot]
            let s = values(slot)
            let a = agesOf(slot)
            var j: Int
            if n < window {
                j = n
                while j > 0 && s[j &- 1] > x {
                    s[j] = s[j &- 1]
                    a[j] = a[j &- 1]
                    j &-= 1
                }
                fill[slot] = Int32(truncatingIfNeeded: n &+ 1)
            } else {
                // The oldest value went in `window` pushes ago; ages differ modulo 256.
                j = position(ofAge: now &- UInt8(truncatingIfNeeded: window), in: a)
                if x > s[j] {
                    while j &+ 1 < n && s[j &+ 1] < x {
                        s[j] = s[j &+ 1]
                        a[j] = a[j &+ 1]
                        j &+= 1
                    }
                } else {
                    while j > 0 && s[j &- 1] > x {
                        s[j] = s[j &- 1]
                        a[j] = a[j &- 1]
                        j &-= 1
                    }
                }
            }
            s[j] = x
            a[j] = now
            clock[slot] = now &+ 1
        }
    }
}

extension WindowBank: Codable {
    private enum CodingKeys: String, CodingKey { case window, sorted, ages, fill, clock }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        window = try c.decode(Int.self, forKey: .window)
        ageStride = (window + 15) & ~15
        sorted = try c.decode(PackedDoubles.self, forKey: .sorted).values
        guard let ageBytes = Base64.decode(try c.decode(String.self, forKey: .ages)),
            let clockBytes = Base64.decode(try c.decode(String.self, forKey: .clock))
        else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: c.codingPath, debugDescription: "window ages are not base64")
            )
        }
        ages = ageBytes
        clock = clockBytes
        fill = try c.decode([Int32].self, forKey: .fill)
        hints = [UInt8](repeating: 0, count: fill.count)
        try StateCheck.require(window >= 1 && window <= Self.maximumWindow, "window size out of range", c.codingPath)
        try StateCheck.sameLength(
            [sorted.count, ages.count / ageStride * window, fill.count * window, clock.count * window],
            "window",
            c.codingPath
        )
        try StateCheck.require(
            fill.allSatisfy { $0 >= 0 && Int($0) <= window },
            "window fill out of range",
            c.codingPath
        )
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(window, forKey: .window)
        try c.encode(PackedDoubles(sorted), forKey: .sorted)
        try c.encode(Base64.encode(ages), forKey: .ages)
        try c.encode(fill, forKey: .fill)
        try c.encode(Base64.encode(clock), forKey: .clock)
    }
}
