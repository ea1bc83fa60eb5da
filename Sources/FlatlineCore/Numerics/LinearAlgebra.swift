import CLAPACK

/// Thin, checked Swift wrappers over BLAS and LAPACK (Debian's netlib `libblas` and `liblapacke`).
///
/// Every public function checks shapes, finiteness and the 32-bit size range before it calls C,
/// so a LAPACK `info < 0` can only mean a bug here and is reported as one. Only netlib-compatible
/// routines are used (no `daxpby`, no `openblas_*`), so OpenBLAS can be swapped in through
/// Debian's alternatives without a rebuild.
///
/// The ``Unchecked`` variants skip the finiteness scans for hot paths whose callers guarantee
/// finite operands (the detectors sanitise every tick before it reaches a kernel).
public enum LinearAlgebra {
    /// Whether a matrix operand is used as is or transposed.
    public enum Transpose: Sendable {
        case none, transpose
    }

    // MARK: Level 1

    /// The dot product `xᵀy` (`ddot`).
    /// - Throws: ``NumericsError`` on different lengths or non-finite input.
    public static func dot(_ x: [Double], _ y: [Double]) throws(NumericsError) -> Double {
        let routine = "ddot"
        guard x.count == y.count else { throw lengthMismatch(routine, "x", x.count, "y", y.count) }
        let n = try int32(x.count, routine)
        try finite(x, "x", routine)
        try finite(y, "y", routine)
        return x.withUnsafeBufferPointer { xp in
            y.withUnsafeBufferPointer { yp in cblas_ddot(n, xp.baseAddress, 1, yp.baseAddress, 1) }
        }
    }

    /// `y ← alpha·x + y` (`daxpy`).
    /// - Throws: ``NumericsError`` on different lengths or non-finite input.
    public static func axpy(_ alpha: Double, _ x: [Double], _ y: inout [Double]) throws(NumericsError) {
        let routine = "daxpy"
        guard x.count == y.count else { throw lengthMismatch(routine, "x", x.count, "y", y.count) }
        let n = try int32(x.count, routine)
        try finite([alpha], "alpha", routine)
        try finite(x, "x", routine)
        try finite(y, "y", routine)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in cblas_daxpy(n, alpha, xp.baseAddress, 1, yp.baseAddress, 1) }
        }
    }

    /// `x ← alpha·x` (`dscal`).
    /// - Throws: ``NumericsError`` on non-finite input.
    public static func scale(_ alpha: Double, _ x: inout [Double]) throws(NumericsError) {
        let routine = "dscal"
        let n = try int32(x.count, routine)
        try finite([alpha], "alpha", routine)
        try finite(x, "x", routine)
        x.withUnsafeMutableBufferPointer { xp in cblas_dscal(n, alpha, xp.baseAddress, 1) }
    }

    // MARK: Level 2

    /// `y ← alpha·op(A)·x + beta·y` (`dgemv`), with `op(A)` = `A` or `Aᵀ`.
    /// - Throws: ``NumericsError`` on shapes that do not fit or non-finite input.
    public static func gemv(
        _ transpose: Transpose,
        alpha: Double,
        _ a: Matrix,
        _ x: [Double],
        beta: Double,
        _ y: inout [Double]
    ) throws(NumericsError) {
        let routine = "dgemv"
        let (inLength, outLength) = transpose == .none ? (a.columns, a.rows) : (a.rows, a.columns)
        guard x.count == inLength else { throw lengthMismatch(routine, "x", x.count, "op(A) columns", inLength) }
        guard y.count == outLength else { throw lengthMismatch(routine, "y", y.count, "op(A) rows", outLength) }
        let m = try int32(a.rows, routine)
        let n = try int32(a.columns, routine)
        try finite([alpha, beta], "alpha/beta", routine)
        try finite(a.storage, "A", routine)
        try finite(x, "x", routine)
        if beta != 0 { try finite(y, "y", routine) }
        if a.rows == 0 || a.columns == 0 {
            // Reference BLAS returns without touching y when A is empty; the product is 0, so
            // the result is beta·y.
            for i in y.indices { y[i] = beta == 0 ? 0 : beta * y[i] }
            return
        }
        a.storage.withUnsafeBufferPointer { ap in
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    Unchecked.gemv(
                        transpose,
                        m: m,
                        n: n,
                        alpha: alpha,
                        a: ap.baseAddress,
                        lda: max(1, m),
                        x: xp.baseAddress,
                        beta: beta,
                        y: yp.baseAddress
                    )
                }
            }
        }
    }

    /// The rank-1 update `A ← alpha·x·yᵀ + A` (`dger`).
    /// - Throws: ``NumericsError`` on shapes that do not fit or non-finite input.
    public static func rankOneUpdate(
        alpha: Double,
        _ x: [Double],
        _ y: [Double],
        _ a: inout Matrix
    ) throws(NumericsError) {
        let routine = "dger"
        guard x.count == a.rows else { throw lengthMismatch(routine, "x", x.count, "A rows", a.rows) }
        guard y.count == a.columns else { throw lengthMismatch(routine, "y", y.count, "A columns", a.columns) }
        let m = try int32(a.rows, routine)
        let n = try int32(a.columns, routine)
        try finite([alpha], "alpha", routine)
        try finite(x, "x", routine)
        try finite(y, "y", routine)
        try finite(a.storage, "A", routine)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeBufferPointer { yp in
                a.storage.withUnsafeMutableBufferPointer { ap in
                    Unchecked.ger(
                        m: m,
                        n: n,
                        alpha: alpha,
                        x: xp.baseAddress,
                        y: yp.baseAddress,
                        a: ap.baseAddress,
                        lda: max(1, m)
                    )
                }
            }
        }
    }

    /// The symmetric rank-1 update `A ← alpha·x·xᵀ + A` (`dsyr`) on the upper triangle, then
    /// mirrored so the whole matrix stays symmetric.
    /// - Throws: ``NumericsError`` when `A` is not square with `x.count` rows or on non-finite input.
    public static func symmetricRankOneUpdate(alpha: Double, _ x: [Double], _ a: inout Matrix) throws(NumericsError) {
        let routine = "dsyr"
        guard a.rows == a.columns else { throw NumericsError(.shapeMismatch, routine: routine, "A is not square") }
        guard x.count == a.rows else { throw lengthMismatch(routine, "x", x.count, "A rows", a.rows) }
        let n = try int32(a.rows, routine)
        try finite([alpha], "alpha", routine)
        try finite(x, "x", routine)
        try finite(a.storage, "A", routine)
        x.withUnsafeBufferPointer { xp in
            a.storage.withUnsafeMutableBufferPointer { ap in
                cblas_dsyr(CblasColMajor, CblasUpper, n, alpha, xp.baseAddress, 1, ap.baseAddress, max(1, n))
            }
        }
        for j in 0..<a.columns {
            for i in (j + 1)..<max(j + 1, a.rows) { a[i, j] = a[j, i] }
        }
    }

    // MARK: LAPACK

    /// Solves `A·X = B` for symmetric positive definite `A` by Cholesky factorisation (`dposv`),
    /// all right-hand sides (the columns of `B`) at once. `B` is overwritten with `X`.
    ///
    /// - Throws: ``NumericsError`` with ``NumericsError/Code/notPositiveDefinite`` when a pivot is
    ///   not positive, and on shapes that do not fit or non-finite input.
    public static func choleskySolve(_ a: Matrix, _ b: inout Matrix) throws(NumericsError) {
        let routine = "dposv"
        guard a.rows == a.columns else { throw NumericsError(.shapeMismatch, routine: routine, "A is not square") }
        guard b.rows == a.rows else { throw lengthMismatch(routine, "B rows", b.rows, "A rows", a.rows) }
        let n = try int32(a.rows, routine)
        let nrhs = try int32(b.columns, routine)
        try finite(a.storage, "A", routine)
        try finite(b.storage, "B", routine)
        var factor = a.storage
        let info = factor.withUnsafeMutableBufferPointer { ap in
            b.storage.withUnsafeMutableBufferPointer { bp in
                Unchecked.posv(n: n, nrhs: nrhs, a: ap.baseAddress, lda: max(1, n), b: bp.baseAddress, ldb: max(1, n))
            }
        }
        try check(info, routine)
    }

    /// The solution of a linear least-squares problem.
    public struct LeastSquaresSolution: Hashable, Sendable {
        /// The minimum-norm solution `X` (`A.columns` × `B.columns`).
        public var solution: Matrix
        /// The effective rank of `A` at the requested `rcond`.
        public var rank: Int
        /// The singular values of `A`, largest first.
        public var singularValues: [Double]
    }

    /// Minimises `‖A·X − B‖` column by column through the SVD (`dgelsd`), all right-hand sides at
    /// once. Singular values below `rcond` times the largest count as zero, so nearly collinear
    /// columns give a bounded minimum-norm answer and a reduced ``LeastSquaresSolution/rank``
    /// instead of huge coefficients.
    ///
    /// - Parameters:
    ///   - a: the design matrix, `m` × `n`.
    ///   - b: the right-hand sides, `m` × `nrhs`.
    ///   - rcond: the relative threshold for singular values; negative means machine precision.
    /// - Throws: ``NumericsError`` on shapes that do not fit, non-finite input, or an SVD that
    ///   does not converge.
    public static func leastSquares(_ a: Matrix, _ b: Matrix, rcond: Double = 1e-12) throws(NumericsError)
        -> LeastSquaresSolution
    {
        let routine = "dgelsd"
        guard b.rows == a.rows else { throw lengthMismatch(routine, "B rows", b.rows, "A rows", a.rows) }
        let m = try int32(a.rows, routine)
        let n = try int32(a.columns, routine)
        let nrhs = try int32(b.columns, routine)
        try finite(a.storage, "A", routine)
        try finite(b.storage, "B", routine)
        try finite([rcond], "rcond", routine)
        let ldb = max(1, a.rows, a.columns)
        // dgelsd overwrites B with the solution in its first n rows; give it room for max(m, n).
        var work = [Double](repeating: 0, count: ldb * b.columns)
        for j in 0..<b.columns {
            for i in 0..<b.rows { work[j * ldb + i] = b[i, j] }
        }
        var aCopy = a.storage
        var singular = [Double](repeating: 0, count: max(1, min(a.rows, a.columns)))
        var rank: Int32 = 0
        let info = aCopy.withUnsafeMutableBufferPointer { ap in
            work.withUnsafeMutableBufferPointer { bp in
                singular.withUnsafeMutableBufferPointer { sp in
                    LAPACKE_dgelsd(
                        LAPACK_COL_MAJOR,
                        m,
                        n,
                        nrhs,
                        ap.baseAddress,
                        max(1, m),
                        bp.baseAddress,
                        Int32(ldb),
                        sp.baseAddress,
                        rcond,
                        &rank
                    )
                }
            }
        }
        try check(info, routine)
        var solution = Matrix(rows: a.columns, columns: b.columns)
        for j in 0..<b.columns {
            for i in 0..<a.columns { solution[i, j] = work[j * ldb + i] }
        }
        return LeastSquaresSolution(
            solution: solution,
            rank: Int(rank),
            singularValues: Array(singular.prefix(min(a.rows, a.columns)))
        )
    }

    // MARK: Unchecked kernels for hot paths

    /// Raw BLAS/LAPACK calls on pointers. Callers guarantee shapes, finiteness and sizes; the
    /// pointers never escape the call.
    package enum Unchecked {
        /// `y ← alpha·op(A)·x + beta·y`; `A` is `m` × `n` column-major with leading dimension `lda`.
        @inline(__always)
        package static func gemv(
            _ transpose: Transpose,
            m: Int32,
            n: Int32,
            alpha: Double,
            a: UnsafePointer<Double>?,
            lda: Int32,
            x: UnsafePointer<Double>?,
            beta: Double,
            y: UnsafeMutablePointer<Double>?
        ) {
            cblas_dgemv(
                CblasColMajor,
                transpose == .none ? CblasNoTrans : CblasTrans,
                m,
                n,
                alpha,
                a,
                lda,
                x,
                1,
                beta,
                y,
                1
            )
        }

        /// `A ← alpha·x·yᵀ + A`; `A` is `m` × `n` column-major with leading dimension `lda`.
        @inline(__always)
        package static func ger(
            m: Int32,
            n: Int32,
            alpha: Double,
            x: UnsafePointer<Double>?,
            y: UnsafePointer<Double>?,
            a: UnsafeMutablePointer<Double>?,
            lda: Int32
        ) {
            cblas_dger(CblasColMajor, m, n, alpha, x, 1, y, 1, a, lda)
        }

        /// Cholesky solve of `A·X = B` in place; returns LAPACK's `info`.
        @inline(__always)
        package static func posv(
            n: Int32,
            nrhs: Int32,
            a: UnsafeMutablePointer<Double>?,
            lda: Int32,
            b: UnsafeMutablePointer<Double>?,
            ldb: Int32
        ) -> Int32 {
            LAPACKE_dposv(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "U")), n, nrhs, a, lda, b, ldb)
        }

        /// Cholesky factorisation `A = UᵀU` in place (upper triangle); returns LAPACK's `info`.
        @inline(__always)
        package static func potrf(n: Int32, a: UnsafeMutablePointer<Double>?, lda: Int32) -> Int32 {
            LAPACKE_dpotrf(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "U")), n, a, lda)
        }

        /// Solves `A·X = B` in place from a factor computed by ``potrf(n:a:lda:)``.
        @inline(__always)
        package static func potrs(
            n: Int32,
            nrhs: Int32,
            a: UnsafePointer<Double>?,
            lda: Int32,
            b: UnsafeMutablePointer<Double>?,
            ldb: Int32
        ) -> Int32 {
            LAPACKE_dpotrs(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "U")), n, nrhs, a, lda, b, ldb)
        }
    }

    // MARK: Checks

    package static func int32(_ value: Int, _ routine: String) throws(NumericsError) -> Int32 {
        guard value >= 0, value <= Int(Int32.max) else {
            throw NumericsError(
                .sizeOutOfRange,
                routine: routine,
                "dimension \(value) does not fit a 32-bit BLAS integer"
            )
        }
        return Int32(value)
    }

    package static func finite(_ values: [Double], _ name: String, _ routine: String) throws(NumericsError) {
        if let index = values.firstIndex(where: { !$0.isFinite }) {
            throw NumericsError(.nonFinite, routine: routine, "\(name)[\(index)] is \(values[index])")
        }
    }

    package static func check(_ info: Int32, _ routine: String) throws(NumericsError) {
        if info < 0 {
            throw NumericsError(.illegalArgument, routine: routine, "argument \(-info) was rejected (info = \(info))")
        }
        if info > 0 {
            switch routine {
            case "dposv", "dpotrf":
                throw NumericsError(
                    .notPositiveDefinite,
                    routine: routine,
                    "the leading minor of order \(info) is not positive (info = \(info))"
                )
            default:
                throw NumericsError(.noConvergence, routine: routine, "the algorithm did not converge (info = \(info))")
            }
        }
    }

    private static func lengthMismatch(_ routine: String, _ a: String, _ na: Int, _ b: String, _ nb: Int)
        -> NumericsError
    {
        NumericsError(.shapeMismatch, routine: routine, "\(a) has \(na) elements but \(b) is \(nb)")
    }
}
