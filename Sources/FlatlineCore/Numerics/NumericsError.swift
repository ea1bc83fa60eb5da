/// A numeric kernel refused its input or a BLAS/LAPACK routine reported a failure.
public struct NumericsError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: Hashable, Sendable {
            case shapeMismatch, nonFinite, sizeOutOfRange, illegalArgument, notPositiveDefinite, noConvergence
        }
        fileprivate var base: Base
        /// Operand dimensions do not fit together.
        public static let shapeMismatch = Code(base: .shapeMismatch)
        /// An operand holds NaN or an infinity.
        public static let nonFinite = Code(base: .nonFinite)
        /// A dimension does not fit the 32-bit integers BLAS and LAPACK take.
        public static let sizeOutOfRange = Code(base: .sizeOutOfRange)
        /// LAPACK rejected an argument (`info < 0`): a bug in the caller, reported with the index.
        public static let illegalArgument = Code(base: .illegalArgument)
        /// A Cholesky factorisation met a non-positive pivot: the matrix is not positive definite.
        public static let notPositiveDefinite = Code(base: .notPositiveDefinite)
        /// An iterative routine (the SVD in `dgelsd`) did not converge.
        public static let noConvergence = Code(base: .noConvergence)

        public var description: String {
            switch base {
            case .shapeMismatch: "shape mismatch"
            case .nonFinite: "non-finite input"
            case .sizeOutOfRange: "size out of range"
            case .illegalArgument: "illegal argument"
            case .notPositiveDefinite: "not positive definite"
            case .noConvergence: "no convergence"
            }
        }
    }

    /// What went wrong.
    public var code: Code
    /// The routine that failed, e.g. `dposv` or `gemv`.
    public var routine: String
    /// Details: which operand, which sizes, which LAPACK `info`.
    public var message: String

    public init(_ code: Code, routine: String, _ message: String) {
        self.code = code
        self.routine = routine
        self.message = message
    }

    public var description: String { "\(routine): \(code): \(message)" }
}
