/// Plain-Swift implementations of every kernel, written for clarity, not speed.
///
/// The tests compare the BLAS/LAPACK wrappers against them, and `flatline bench` reports each
/// kernel's throughput as a ratio to its reference in the same run.
package enum ReferenceKernels {
    package static func dot(_ x: [Double], _ y: [Double]) -> Double {
        var s = 0.0
        for i in x.indices { s += x[i] * y[i] }
        return s
    }

    package static func axpy(_ alpha: Double, _ x: [Double], _ y: inout [Double]) {
        for i in x.indices { y[i] += alpha * x[i] }
    }

    package static func gemv(
        _ transpose: LinearAlgebra.Transpose,
        alpha: Double,
        _ a: Matrix,
        _ x: [Double],
        beta: Double,
        _ y: inout [Double]
    ) {
        switch transpose {
        case .none:
            for i in 0..<a.rows {
                var s = 0.0
                for j in 0..<a.columns { s += a[i, j] * x[j] }
                y[i] = alpha * s + (beta == 0 ? 0 : beta * y[i])
            }
        case .transpose:
            for j in 0..<a.columns {
                var s = 0.0
                for i in 0..<a.rows { s += a[i, j] * x[i] }
                y[j] = alpha * s + (beta == 0 ? 0 : beta * y[j])
            }
        }
    }

    package static func rankOneUpdate(alpha: Double, _ x: [Double], _ y: [Double], _ a: inout Matrix) {
        for j in 0..<a.columns {
            for i in 0..<a.rows { a[i, j] += alpha * x[i] * y[j] }
        }
    }

    /// Cholesky factorisation and two triangular solves, column by column.
    package static func choleskySolve(_ a: Matrix, _ b: inout Matrix) -> Bool {
        let n = a.rows
        var l = Matrix(rows: n, columns: n)
        for j in 0..<n {
            var d = a[j, j]
            for k in 0..<j { d -= l[j, k] * l[j, k] }
            guard d > 0 else { return false }
            let ljj = d.squareRoot()
            l[j, j] = ljj
            for i in (j + 1)..<max(j + 1, n) {
                var s = a[i, j]
                for k in 0..<j { s -= l[i, k] * l[j, k] }
                l[i, j] = s / ljj
            }
        }
        for c in 0..<b.columns {
            var z = [Double](repeating: 0, count: n)
            for i in 0..<n {
                var s = b[i, c]
                for k in 0..<i { s -= l[i, k] * z[k] }
                z[i] = s / l[i, i]
            }
            for i in stride(from: n - 1, through: 0, by: -1) {
                var s = z[i]
                for k in (i + 1)..<max(i + 1, n) { s -= l[k, i] * b[k, c] }
                b[i, c] = s / l[i, i]
            }
        }
        return true
    }

    /// Least squares through the normal equations `AᵀA·X = AᵀB` (full column rank only).
    package static func leastSquares(_ a: Matrix, _ b: Matrix) -> Matrix? {
        var ata = Matrix(rows: a.columns, columns: a.columns)
        for i in 0..<a.columns {
            for j in 0..<a.columns {
                var s = 0.0
                for r in 0..<a.rows { s += a[r, i] * a[r, j] }
                ata[i, j] = s
            }
        }
        var atb = Matrix(rows: a.columns, columns: b.columns)
        for i in 0..<a.columns {
            for c in 0..<b.columns {
                var s = 0.0
                for r in 0..<a.rows { s += a[r, i] * b[r, c] }
                atb[i, c] = s
            }
        }
        return choleskySolve(ata, &atb) ? atb : nil
    }

    /// The median of `values` by sorting (the mean of the two middle values for an even count).
    package static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// The median absolute deviation from the median, unscaled.
    package static func mad(_ values: [Double]) -> Double {
        let m = median(values)
        return median(values.map { abs($0 - m) })
    }
}
