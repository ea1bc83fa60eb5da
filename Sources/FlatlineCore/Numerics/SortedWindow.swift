/// Order statistics of a small sorted window kept in place: insert, replace the oldest value,
/// median and MAD, without sorting on every tick.
///
/// A replace is one branch-free binary search and one shift of the elements between the old and
/// the new value's positions; the median is a lookup; the MAD is a branch-free binary search
/// over the contiguous blocks of the sorted window that hold the values closest to the median. Everything works on
/// a pointer to `count` sorted doubles, so a detector keeps one window per series in one flat
/// array and nothing allocates.
package enum SortedWindow {
    /// The first index in `s[0..<n]` whose element is not less than `x`.
    ///
    /// Branch-free: a fixed number of halvings with a conditional move each, so the unpredictable
    /// comparisons of a binary search cost no mispredictions.
    @inline(__always)
    package static func lowerBound(_ s: UnsafePointer<Double>, _ n: Int, _ x: Double) -> Int {
        guard n > 0 else { return 0 }
        var base = 0
        var len = n
        while len > 1 {
            let half = len &>> 1
            base &+= half & negative(s[base &+ half] - x)
            len &-= half
        }
        return base &+ (1 & negative(s[base] - x))
    }

    /// All ones when `d` is negative (its sign bit is set), else zero: integer arithmetic on the
    /// bits, which the compiler cannot turn back into an unpredictable branch the way it does a
    /// select on a comparison. Window values are finite, so the sign of a difference is the
    /// comparison (±0 differ only for equal values, which are interchangeable).
    @inline(__always)
    static func negative(_ d: Double) -> Int {
        Int(bitPattern: UInt(truncatingIfNeeded: d.bitPattern)) &>> 63
    }

    /// The first index in `s[0..<n]` whose element is greater than `x` (branch-free).
    @inline(__always)
    package static func upperBound(_ s: UnsafePointer<Double>, _ n: Int, _ x: Double) -> Int {
        guard n > 0 else { return 0 }
        var base = 0
        var len = n
        while len > 1 {
            let half = len &>> 1
            base &+= half & ~negative(x - s[base &+ half])
            len &-= half
        }
        return base &+ (1 & ~negative(x - s[base]))
    }

    /// Inserts `x` into `s[0..<n]`; `s` must have room for `n + 1`.
    @inline(__always)
    package static func insert(_ s: UnsafeMutablePointer<Double>, _ n: Int, _ x: Double) {
        var j = n
        while j > 0 && s[j - 1] > x {
            s[j] = s[j - 1]
            j -= 1
        }
        s[j] = x
    }

    /// Replaces one element equal to `old` by `new`, keeping `s[0..<n]` sorted: one branch-free
    /// search for `old`, then a shift towards `new`'s place.
    ///
    /// - Returns: `false` when `old` is not in the window (state corruption); the window is then
    ///   left unchanged.
    @inline(__always)
    @discardableResult
    package static func replace(_ s: UnsafeMutablePointer<Double>, _ n: Int, old: Double, new: Double) -> Bool {
        let i = lowerBound(s, n, old)
        guard i < n, s[i] == old else { return false }
        var j = i
        if new > old {
            while j + 1 < n && s[j + 1] < new {
                s[j] = s[j + 1]
                j += 1
            }
        } else {
            while j > 0 && s[j - 1] > new {
                s[j] = s[j - 1]
                j -= 1
            }
        }
        s[j] = new
        return true
    }

    /// The median of `s[0..<n]` (the mean of the middle two for even `n`); NaN when `n == 0`.
    @inline(__always)
    package static func median(_ s: UnsafePointer<Double>, _ n: Int) -> Double {
        guard n > 0 else { return .nan }
        let h = n >> 1
        return n & 1 == 1 ? s[h] : 0.5 * (s[h - 1] + s[h])
    }

    /// The start of the contiguous block of `k` values closest to `m` in `s[0..<n]`.
    ///
    /// The largest deviation in the block starting at `a` is `max(m − s[a], s[a+k−1] − m)`; the
    /// first term falls and the second rises with `a`, so the best block is at the first `a`
    /// where `s[a+k−1] + s[a] ≥ 2m`, or the one before it. Branch-free search.
    @inline(__always)
    package static func closestBlock(_ s: UnsafePointer<Double>, _ n: Int, _ m: Double, _ k: Int) -> Int {
        let twice = 2 * m
        let last = s + (k &- 1)  // last[a] is the block's last element
        var base = 0
        var len = n &- k &+ 1
        while len > 1 {
            let half = len &>> 1
            let a = base &+ half
            base &+= half & negative(last[a] + s[a] - twice)
            len &-= half
        }
        var a = base &+ (1 & negative(last[base] + s[base] - twice))
        if a > n - k { a = n - k }
        if a > 0 && Swift.max(m - s[a - 1], s[a + k - 2] - m) < Swift.max(m - s[a], s[a + k - 1] - m) { a -= 1 }
        return a
    }

    /// ``closestBlock(_:_:_:_:)`` by walking from `hint`, the answer for a nearby window (the last
    /// tick's): the window changed by one value, so the answer moves by a step or two, and the
    /// walk finds the same block as the search in a fraction of its dependent loads.
    @inline(__always)
    package static func closestBlock(_ s: UnsafePointer<Double>, _ n: Int, _ m: Double, _ k: Int, hint: Int) -> Int {
        let twice = 2 * m
        let last = s + (k &- 1)
        let top = n &- k
        var a = Swift.min(Swift.max(hint, 0), top)
        // The first a with last[a] + s[a] >= 2m (the predicate only grows with a).
        if last[a] + s[a] >= twice {
            while a > 0 && last[a &- 1] + s[a &- 1] >= twice { a &-= 1 }
        } else {
            while a < top && last[a] + s[a] < twice { a &+= 1 }
        }
        if a > 0 && Swift.max(m - s[a - 1], s[a + k - 2] - m) < Swift.max(m - s[a], s[a + k - 1] - m) { a -= 1 }
        return a
    }

    /// ``mad(_:_:median:)`` with a starting point for the block search, updated to this window's
    /// block for the next call.
    @inline(__always)
    package static func mad(_ s: UnsafePointer<Double>, _ n: Int, median m: Double, hint: inout Int) -> Double {
        guard n > 0 else { return .nan }
        if n & 1 == 1 {
            let k = (n &+ 1) &>> 1
            let a = closestBlock(s, n, m, k, hint: hint)
            hint = a
            return Swift.max(m - s[a], s[a &+ k &- 1] - m)
        }
        let k = n &>> 1
        let a = closestBlock(s, n, m, k, hint: hint)
        hint = a
        let kth = Swift.max(m - s[a], s[a &+ k &- 1] - m)
        let left = a > 0 ? abs(m - s[a &- 1]) : .infinity
        let right = a &+ k < n ? abs(s[a &+ k] - m) : .infinity
        return 0.5 * (kth + Swift.min(left, right))
    }

    /// The `k`-th smallest (1-based) of `|s[i] − m|` over `s[0..<n]`.
    @inline(__always)
    package static func kthDeviation(_ s: UnsafePointer<Double>, _ n: Int, _ m: Double, _ k: Int) -> Double {
        let a = closestBlock(s, n, m, k)
        return Swift.max(m - s[a], s[a + k - 1] - m)
    }

    /// The median absolute deviation from `m` (the median) over `s[0..<n]`, unscaled.
    ///
    /// For even `n` it is the mean of the `n/2`-th and `(n/2+1)`-th smallest deviations; the
    /// latter is the nearer neighbour of the block holding the former, so one search gives both.
    @inline(__always)
    package static func mad(_ s: UnsafePointer<Double>, _ n: Int, median m: Double) -> Double {
        guard n > 0 else { return .nan }
        if n & 1 == 1 { return kthDeviation(s, n, m, (n + 1) >> 1) }
        let k = n >> 1
        let a = closestBlock(s, n, m, k)
        let kth = Swift.max(m - s[a], s[a + k - 1] - m)
        let left = a > 0 ? abs(m - s[a - 1]) : .infinity
        let right = a + k < n ? abs(s[a + k] - m) : .infinity
        return 0.5 * (kth + Swift.min(left, right))
    }

    /// The mean absolute deviation from `m` over `s[0..<n]`.
    package static func meanAbsoluteDeviation(_ s: UnsafePointer<Double>, _ n: Int, from m: Double) -> Double {
        var total = 0.0
        for i in 0..<n { total += abs(s[i] - m) }
        return n > 0 ? total / Double(n) : .nan
    }

    /// The smallest positive gap between neighbouring values of `s[0..<n]`: the series' resolution
    /// (1 for integer counts); 0 when all values are equal.
    package static func resolution(_ s: UnsafePointer<Double>, _ n: Int) -> Double {
        var best = Double.infinity
        var i = 1
        while i < n {
            let gap = s[i] - s[i - 1]
            if gap > 0 && gap < best { best = gap }
            i += 1
        }
        return best.isFinite ? best : 0
    }
}
