/// One rolling window of the last `window` values per slot, each kept both in arrival order (a
/// ring, to know which value leaves) and sorted (for the median and MAD), in two flat arrays.
package struct WindowBank: Sendable, Hashable {
    /// Values per window.
    package let window: Int
    private var sorted: [Double] = []
    private var ring: [Double] = []
    private var fill: [Int32] = []
    private var head: [Int32] = []

    package init(window: Int) {
        self.window = window
    }

    package var capacity: Int { fill.count }

    package var bytesPerSeries: Int { 2 * window * MemoryLayout<Double>.stride + 2 * MemoryLayout<Int32>.stride }

    package mutating func reserve(capacity: Int) {
        guard capacity > fill.count else { return }
        let extra = capacity - fill.count
        sorted.append(contentsOf: repeatElement(0, count: extra * window))
        ring.append(contentsOf: repeatElement(0, count: extra * window))
        fill.append(contentsOf: repeatElement(0, count: extra))
        head.append(contentsOf: repeatElement(0, count: extra))
    }

    package mutating func reset(slot: Int) {
        guard slot < fill.count else { return }
        fill[slot] = 0
        head[slot] = 0
    }

    /// Values currently in `slot`'s window.
    package func count(slot: Int) -> Int { Int(fill[slot]) }

    /// Runs `body` with raw access to the windows, for a tick's loop over all slots.
    package mutating func withCursor<R>(_ body: (inout Cursor) -> R) -> R {
        let window = window
        return sorted.withUnsafeMutableBufferPointer { sorted in
            ring.withUnsafeMutableBufferPointer { ring in
                fill.withUnsafeMutableBufferPointer { fill in
                    head.withUnsafeMutableBufferPointer { head in
                        var cursor = Cursor(window: window, sorted: sorted, ring: ring, fill: fill, head: head)
                        return body(&cursor)
                    }
                }
            }
        }
    }

    /// Raw access to all windows during one tick. Never escapes ``withCursor(_:)``.
    package struct Cursor {
        let window: Int
        let sorted: UnsafeMutableBufferPointer<Double>
        let ring: UnsafeMutableBufferPointer<Double>
        let fill: UnsafeMutableBufferPointer<Int32>
        let head: UnsafeMutableBufferPointer<Int32>

        /// Values in `slot`'s window.
        @inline(__always)
        package func count(_ slot: Int) -> Int { Int(fill[slot]) }

        /// The sorted values of `slot`.
        @inline(__always)
        package func values(_ slot: Int) -> UnsafeMutablePointer<Double> {
            // The buffer is never empty when a slot exists (capacity × window elements).
            sorted.baseAddress.unsafelyUnwrapped + slot * window
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
            var sigma = 1.482_602_218_505_602 * SortedWindow.mad(s, n, median: m)
            if sigma == 0 {
                sigma = 1.253_314_137_315_500 * SortedWindow.meanAbsoluteDeviation(s, n, from: m)
            }
            return (m, Swift.max(sigma, floor))
        }

        /// Adds `x` to `slot`'s window, pushing out the oldest value when full.
        @inline(__always)
        package func push(_ slot: Int, _ x: Double) {
            let n = Int(fill[slot])
            let h = Int(head[slot])
            let base = slot * window
            let s = values(slot)
            if n < window {
                SortedWindow.insert(s, n, x)
                ring[base + h] = x
                fill[slot] = Int32(n + 1)
            } else {
                let old = ring[base + h]
                if !SortedWindow.replace(s, n, old: old, new: x) {
                    // The ring and the sorted copy disagree (never, unless state was tampered
                    // with): rebuild the sorted copy from the ring.
                    ring[base + h] = x
                    for k in 0..<n { s[k] = ring[base + k] }
                    var sortedCopy = Array(UnsafeBufferPointer(start: s, count: n))
                    sortedCopy.sort()
                    for k in 0..<n { s[k] = sortedCopy[k] }
                }
                ring[base + h] = x
            }
            head[slot] = Int32(h + 1 == window ? 0 : h + 1)
        }
    }
}

extension WindowBank: Codable {
    private enum CodingKeys: String, CodingKey { case window, sorted, ring, fill, head }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        window = try c.decode(Int.self, forKey: .window)
        sorted = try c.decode(PackedDoubles.self, forKey: .sorted).values
        ring = try c.decode(PackedDoubles.self, forKey: .ring).values
        fill = try c.decode([Int32].self, forKey: .fill)
        head = try c.decode([Int32].self, forKey: .head)
        try StateCheck.require(window >= 1, "window must be positive", c.codingPath)
        try StateCheck.sameLength([sorted.count, ring.count, fill.count * window, head.count * window], "window", c.codingPath)
        try StateCheck.require(
            fill.allSatisfy { $0 >= 0 && Int($0) <= window } && head.allSatisfy { $0 >= 0 && Int($0) < window },
            "window positions out of range",
            c.codingPath
        )
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(window, forKey: .window)
        try c.encode(PackedDoubles(sorted), forKey: .sorted)
        try c.encode(PackedDoubles(ring), forKey: .ring)
        try c.encode(fill, forKey: .fill)
        try c.encode(head, forKey: .head)
    }
}
