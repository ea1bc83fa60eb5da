/// Order statistics of a small sorted window kept in place: insert, replace the oldest value,
/// median and MAD, without sorting on every tick.
///
/// A replace is two binary searches and one shift of the elements between the old and the new
/// value's positions; the median is a lookup; the MAD is a binary search over the contiguous
/// blocks of the sorted window that hold the values closest to the median. Everything works on
/// a pointer to `count` sorted doubles, so a detector keeps one window per series in one flat
/// array and nothing allocates.
package enum SortedWindow {
    /// The first index in `s[0..<n]` whose element is not less than `x`.
    @inline(__always)
    package static func lowerBound(_ s: UnsafePointer<Double>, _ n: Int, _ x: Double) -> Int {
        var lo = 0
        var len = n
        while len > 0 {
            let half = len >> 1
            if s[lo + half] < x {
                lo += half + 1
                len -= half + 1
            } else {
                len = half
            }
        }
        return lo
    }

    /// The first index in `s[0..<n]` whose element is greater than `x`.
    @inline(__always)
    package static func upperBound(_ s: UnsafePointer<Double>, _ n: Int, _ x: Double) -> Int {
        var lo = 0
        var len = n
        while len > 0 {
            let half = len >> 1
            if s[lo + half] <= x {
                lo += half + 1
                len -= half + 1
            } else {
                len = half
            }
        }
        return lo
    }

    /// Inserts `x` into `s[0..<n]`; `s` must have room for `n + 1`.
    @inline(__always)
    package static func insert(_ s: UnsafeMutablePointer<Double>, _ n: Int, _ x: Double) {
        let p = upperBound(s, n, x)
        var j = n
        while j > p {
            s[j] = s[j - 1]
            j -= 1
        }
        s[p] = x
    }

    /// Replaces one element equal to `old` by `new`, keeping `s[0..<n]` sorted.
    ///
    /// - Returns: `false` when `old` is not in the window (state corruption); the window is then
    ///   left unchanged.
    @inline(__always)
    @discardableResult
    package static func replace(_ s: UnsafeMutablePointer<Double>, _ n: Int, old: Double, new: Double) -> Bool {
        let i = lowerBound(s, n, old)
        guard i < n, s[i] == old else { return false }
        if new > old {
            let q = upperBound(s, n, new)  // > i, because s[i] == old < new
            var j = i
            while j < q - 1 {
                s[j] = s[j + 1]
                j += 1
            }
            s[q - 1] = new
        } else if new < old {
            let q = lowerBound(s, n, new)  // <= i
            var j = i
            while j > q {
                s[j] = s[j - 1]
                j -= 1
            }
            s[q] = new
        }
        return true
    }

    /// The median of `s[0..<n]` (the mean of the middle two for even `n`); NaN when `n == 0`.
    @inline(__always)
    package static func median(_ s: UnsafePointer<Double>, _ n: Int) -> Double {
        guard n > 0 else { return .nan }
        let h = n >> 1
        return n & 1 == 1 ? s[h] : 0.5 * (s[h - 1] + s[h])
    }

    /// The `k`-th smallest (1-based) of `|s[i] − m|` over `s[0..<n]`.
    ///
    /// The `k` values closest to `m` form a contiguous block `s[a..<a+k]`, and the largest
    /// deviation in a block is `max(m − s[a], s[a+k−1] − m)`; the first term falls and the second
    /// rises with `a`, so a binary search finds the best block.
    @inline(__always)
    package static func kthDeviation(_ s: UnsafePointer<Double>, _ n: Int, _ m: Double, _ k: Int) -> Double {
        var lo = 0
        var hi = n - k  // candidate block starts: 0...n-k
        // First a with s[a+k-1] - m >= m - s[a].
        while lo < hi {
            let mid = (lo + hi) >> 1
            if s[mid + k - 1] - m >= m - s[mid] { hi = mid } else { lo = mid + 1 }
        }
        let a = lo
        var best = Swift.max(m - s[a], s[a + k - 1] - m)
        if a > 0 { best = Swift.min(best, Swift.max(m - s[a - 1], s[a + k - 2] - m)) }
        return best
    }

    /// The median absolute deviation from `m` (the median) over `s[0..<n]`, unscaled.
    @inline(__always)
    package static func mad(_ s: UnsafePointer<Double>, _ n: Int, median m: Double) -> Double {
        guard n > 0 else { return .nan }
        if n & 1 == 1 { return kthDeviation(s, n, m, (n + 1) >> 1) }
        let k = n >> 1
        return 0.5 * (kthDeviation(s, n, m, k) + kthDeviation(s, n, m, k + 1))
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
