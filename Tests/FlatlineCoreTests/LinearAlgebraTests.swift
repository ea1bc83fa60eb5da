import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineCore

struct Reference: Decodable {
    struct EWMA: Decodable {
        var half_life_seconds: Double
        var t: [Double]
        var x: [Double]
        var expected: [Double?]
        var scale: [Double?]
    }
    struct Rolling: Decodable {
        var window: Int
        var x: [Double]
        var median: [Double?]
        var scale: [Double?]
    }
    struct LeastSquares: Decodable {
        var a: [[Double]]
        var b: [[Double]]
        var solution: [[Double]]
        var rank: Int
        var singular_values: [Double]
        var spd: [[Double]]
        var rhs: [[Double]]
        var spd_solution: [[Double]]
    }
    struct Seasonal: Decodable {
        var step: Double
        var period: Double
        var harmonics: Int
        var half_life_seconds: Double
        var t: [Double]
        var y: [Double]
        var coefficients: [Double]
    }
    var ewma: EWMA
    var rolling_odd: Rolling
    var rolling_even: Rolling
    var lstsq: LeastSquares
    var seasonal: Seasonal

    static func load() throws -> Reference {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/reference", withExtension: "json"))
        return try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
    }
}

@Suite("BLAS and LAPACK wrappers")
struct LinearAlgebraTests {
    static func random(_ count: Int, seed: UInt64) -> [Double] { Synthetic.noise(count: count, seed: seed) }

    @Test("level 1 and 2 kernels agree with the plain-Swift references", arguments: [0, 1, 3, 7, 64, 1001])
    func kernelsMatchReferences(n: Int) throws {
        let x = Self.random(n, seed: 1)
        let y = Self.random(n, seed: 2)
        #expect(TestSupport.close(try LinearAlgebra.dot(x, y), ReferenceKernels.dot(x, y), relative: 1e-12))

        var blas = y
        var plain = y
        try LinearAlgebra.axpy(0.75, x, &blas)
        ReferenceKernels.axpy(0.75, x, &plain)
        #expect(zip(blas, plain).allSatisfy { TestSupport.close($0, $1, relative: 1e-14) })

        let rows = max(1, n / 3)
        let a = try Matrix(rows: rows, columns: n, columnMajor: Self.random(rows * n, seed: 3))
        for transpose in [LinearAlgebra.Transpose.none, .transpose] {
            let input = transpose == .none ? x : Self.random(rows, seed: 4)
            var out1 = [Double](repeating: 1, count: transpose == .none ? rows : n)
            var out2 = out1
            try LinearAlgebra.gemv(transpose, alpha: 2, a, input, beta: 0.5, &out1)
            ReferenceKernels.gemv(transpose, alpha: 2, a, input, beta: 0.5, &out2)
            #expect(zip(out1, out2).allSatisfy { TestSupport.close($0, $1, relative: 1e-10, absolute: 1e-10) })
        }

        var m1 = a
        var m2 = a
        let u = Self.random(rows, seed: 5)
        try LinearAlgebra.rankOneUpdate(alpha: -1.5, u, x, &m1)
        ReferenceKernels.rankOneUpdate(alpha: -1.5, u, x, &m2)
        #expect(zip(m1.storage, m2.storage).allSatisfy { TestSupport.close($0, $1, relative: 1e-13, absolute: 1e-13) })
    }

    @Test("the symmetric rank-1 update keeps the matrix symmetric")
    func symmetricUpdate() throws {
        var a = Matrix.identity(4)
        try LinearAlgebra.symmetricRankOneUpdate(alpha: 2, [1, 2, 3, 4], &a)
        #expect(a[0, 0] == 3)
        #expect(a[3, 1] == 16)
        #expect(a[1, 3] == 16)
        #expect(a == a.transposed)
    }

    @Test("least squares (dgelsd) and Cholesky (dposv) agree with numpy")
    func lapackAgainstNumpy() throws {
        let reference = try Reference.load().lstsq
        let a = try Matrix(rowMajor: reference.a)
        let b = try Matrix(rowMajor: reference.b)
        let solution = try LinearAlgebra.leastSquares(a, b)
        #expect(solution.rank == reference.rank)
        let expected = try Matrix(rowMajor: reference.solution)
        #expect(
            zip(solution.solution.storage, expected.storage).allSatisfy { TestSupport.close($0, $1, relative: 1e-10) }
        )
        #expect(zip(solution.singularValues, reference.singular_values).allSatisfy { TestSupport.close($0, $1) })

        var rhs = try Matrix(rowMajor: reference.rhs)
        try LinearAlgebra.choleskySolve(try Matrix(rowMajor: reference.spd), &rhs)
        let spdSolution = try Matrix(rowMajor: reference.spd_solution)
        #expect(zip(rhs.storage, spdSolution.storage).allSatisfy { TestSupport.close($0, $1, relative: 1e-10) })

        // The plain-Swift reference agrees too.
        var plain = try Matrix(rowMajor: reference.rhs)
        #expect(ReferenceKernels.choleskySolve(try Matrix(rowMajor: reference.spd), &plain))
        #expect(zip(rhs.storage, plain.storage).allSatisfy { TestSupport.close($0, $1, relative: 1e-10) })
        let normal = try #require(ReferenceKernels.leastSquares(a, b))
        #expect(zip(normal.storage, expected.storage).allSatisfy { TestSupport.close($0, $1, relative: 1e-8) })
    }

    @Test("a fit with a single line: hand-computed values")
    func lineFit() throws {
        // y = 2 + 3x through (0,2), (1,5), (2,8) with noise-free data; then a noisy fit
        // (x = 0..4, y = 2.1, 4.9, 8.2, 10.8, 14.1): x̄ = 2, ȳ = 8.02, Sxy = 29.9, Sxx = 10, so
        // slope 2.99 and intercept 8.02 − 2·2.99 = 2.04, by hand.
        let exact = try LinearAlgebra.leastSquares(
            try Matrix(rowMajor: [[1, 0], [1, 1], [1, 2]]),
            try Matrix(rowMajor: [[2], [5], [8]])
        )
        #expect(TestSupport.close(exact.solution[0, 0], 2, relative: 1e-12))
        #expect(TestSupport.close(exact.solution[1, 0], 3, relative: 1e-12))
        let noisy = try LinearAlgebra.leastSquares(
            try Matrix(rowMajor: [[1, 0], [1, 1], [1, 2], [1, 3], [1, 4]]),
            try Matrix(rowMajor: [[2.1], [4.9], [8.2], [10.8], [14.1]])
        )
        #expect(TestSupport.close(noisy.solution[0, 0], 2.04, relative: 1e-12))
        #expect(TestSupport.close(noisy.solution[1, 0], 2.99, relative: 1e-12))
    }

    @Test("bad input becomes a typed error naming the routine, never a LAPACK message")
    func errors() throws {
        #expect(throws: NumericsError.self) { try LinearAlgebra.dot([1, 2], [1]) }
        do {
            _ = try LinearAlgebra.dot([1, .nan], [1, 2])
            Issue.record("NaN accepted")
        } catch {
            #expect(error.code == .nonFinite)
            #expect(error.routine == "ddot")
            #expect(error.description.contains("x[1]"))
        }
        do {
            var b = Matrix(rows: 2, columns: 1, repeating: 1)
            try LinearAlgebra.choleskySolve(try Matrix(rowMajor: [[1, 2], [2, 1]]), &b)
            Issue.record("an indefinite matrix was accepted")
        } catch {
            #expect(error.code == .notPositiveDefinite)
            #expect(error.routine == "dposv")
            #expect(error.message.contains("order 2"))
        }
        var wrong = Matrix(rows: 3, columns: 1)
        #expect(throws: NumericsError.self) { try LinearAlgebra.choleskySolve(Matrix.identity(2), &wrong) }
        #expect(throws: NumericsError.self) { try Matrix(rows: 2, columns: 2, columnMajor: [1]) }
        // Identical x values make the line fit rank deficient: dgelsd reports rank 1, not garbage.
        let deficient = try LinearAlgebra.leastSquares(
            try Matrix(rowMajor: [[1, 2], [1, 2], [1, 2]]),
            try Matrix(rowMajor: [[1], [2], [3]])
        )
        #expect(deficient.rank == 1)
        #expect(deficient.solution.isFinite)
        #expect(throws: NumericsError.self) { try LinearAlgebra.int32(Int(Int32.max) + 1, "test") }
    }
}
