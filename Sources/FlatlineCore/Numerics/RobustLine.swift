/// A straight line fitted so that a few wild points do not pull it: Huber's M-estimator by
/// iteratively reweighted least squares, each step a weighted least-squares solve in LAPACK
/// (`dgelsd`). The same estimator as statsmodels' `RLM(y, [1, x], M=HuberT(1.345)).fit()`:
/// the scale is the median absolute residual over 0.6745, re-estimated at every step.
///
/// Used to forecast a backlog: a consumer's pending count rising along a line reaches its
/// limit at ``crossing(_:)``; one scrape's spike does not move the forecast much.
public struct RobustLine: Hashable, Sendable {
    /// The value at `x = 0`.
    public var intercept: Double
    /// The change of the value per unit of `x`.
    public var slope: Double
    /// The robust scale of the residuals (0 when more than half of the points lie on the line).
    public var scale: Double
    /// The reweighting steps taken.
    public var iterations: Int

    /// The line's value at `x`.
    public func value(at x: Double) -> Double { intercept + slope * x }

    /// The `x` at which the line reaches `level`, or `nil` when it never does (flat, or moving
    /// away from it).
    public func crossing(_ level: Double) -> Double? {
        guard slope != 0 else { return nil }
        let x = (level - intercept) / slope
        return x.isFinite ? x : nil
    }

    /// Huber's tuning constant: 95% efficiency on normal errors.
    public static let huberTuning = 1.345
    /// The median absolute deviation of a standard normal, which makes the MAD a consistent
    /// estimate of the standard deviation.
    static let madNormal = 0.6744897501960817

    /// Fits the line.
    ///
    /// - Parameters:
    ///   - x: the abscissae (times), at least two distinct.
    ///   - y: the values, as many as `x`.
    ///   - tuning: Huber's constant in units of the scale.
    ///   - maxIterations: the limit on reweighting steps.
    ///   - tolerance: stop when the coefficients change by less than this, relative to their size.
    /// - Throws: ``NumericsError`` for lengths that differ, fewer than two distinct `x`, or
    ///   non-finite input.
    public static func fit(
        x: [Double],
        y: [Double],
        tuning: Double = huberTuning,
        maxIterations: Int = 50,
        tolerance: Double = 1e-10
    ) throws(NumericsError) -> RobustLine {
        let routine = "RobustLine.fit"
        guard x.count == y.count else {
            throw NumericsError(.shapeMismatch, routine: routine, "x has \(x.count) values, y \(y.count)")
        }
        guard x.allSatisfy(\.isFinite), y.allSatisfy(\.isFinite) else {
            throw NumericsError(.nonFinite, routine: routine, "x or y holds NaN or an infinity")
        }
        guard let first = x.first, x.contains(where: { $0 != first }) else {
            throw NumericsError(.shapeMismatch, routine: routine, "a line needs at least two distinct x")
        }
        // Centre x for conditioning; the intercept is moved back at the end.
        let centre = x.reduce(0, +) / Double(x.count)
        let t = x.map { $0 - centre }
        var weights = [Double](repeating: 1, count: x.count)
        var (a, b) = try weightedLine(t, y, weights)
        var scale = mad(residuals(t, y, a, b))
        var iterations = 0
        while iterations < maxIterations && scale > 0 {
            let r = residuals(t, y, a, b)
            for i in r.indices {
                let u = abs(r[i] / scale)
                weights[i] = u <= tuning ? 1 : tuning / u
            }
            let (a2, b2) = try weightedLine(t, y, weights)
            iterations += 1
            let change = abs(a2 - a) + abs(b2 - b)
            let size = abs(a2) + abs(b2)
            a = a2
            b = b2
            scale = mad(residuals(t, y, a, b))
            if change <= tolerance * max(size, 1e-300) { break }
        }
        return RobustLine(intercept: a - b * centre, slope: b, scale: scale, iterations: iterations)
    }

    /// Weighted least squares of `y ≈ a + b·t`: rows scaled by `√w`, solved by `dgelsd`.
    private static func weightedLine(_ t: [Double], _ y: [Double], _ w: [Double]) throws(NumericsError)
        -> (Double, Double)
    {
        let m = t.count
        var design = Matrix(rows: m, columns: 2)
        var rhs = Matrix(rows: m, columns: 1)
        for i in 0..<m {
            let s = w[i].squareRoot()
            design[i, 0] = s
            design[i, 1] = s * t[i]
            rhs[i, 0] = s * y[i]
        }
        let solution = try LinearAlgebra.leastSquares(design, rhs).solution
        return (solution[0, 0], solution[1, 0])
    }

    private static func residuals(_ t: [Double], _ y: [Double], _ a: Double, _ b: Double) -> [Double] {
        var r = y
        for i in r.indices { r[i] -= a + b * t[i] }
        return r
    }

    /// The median absolute value over 0.6745 (statsmodels' `mad(r, center=0)`).
    private static func mad(_ r: [Double]) -> Double {
        let sorted = r.map(abs).sorted()
        let n = sorted.count
        let median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        return median / madNormal
    }
}
