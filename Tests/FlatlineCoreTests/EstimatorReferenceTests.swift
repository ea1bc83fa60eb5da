import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineCore

/// Detectors against independent reference values (scripts/reference/make_core_fixtures.py).
@Suite("Estimators against numpy references")
struct EstimatorReferenceTests {
    /// Runs an estimator over one series, one tick per value, with a negligible floor.
    static func run<E: Estimator>(_ estimator: inout E, times: [Double], values: [Double]) -> [Estimates] {
        estimator.reserve(capacity: 1)
        var out = Estimates(capacity: 1)
        let floors = [1e-300]
        var results: [Estimates] = []
        for (t, x) in zip(times, values) {
            [x].withUnsafeBufferPointer { v in
                floors.withUnsafeBufferPointer { f in estimator.update(time: t, values: v, floors: f, into: &out) }
            }
            results.append(out)
        }
        return results
    }

    @Test("EWMA mean and variance over irregular timestamps equal the full weighted sums")
    func ewma() throws {
        let reference = try Reference.load().ewma
        var parameters = EWMAParameters()
        parameters.halfLife = .seconds(reference.half_life_seconds)
        parameters.warmup = 1
        parameters.clip = 0
        var estimator = EWMAEstimator(parameters, step: 10)
        let results = Self.run(&estimator, times: reference.t, values: reference.x)
        for (i, r) in results.enumerated() {
            guard let expected = reference.expected[i], let scale = reference.scale[i] else {
                #expect(r.expected[0].isNaN)
                continue
            }
            #expect(TestSupport.close(r.expected[0], expected, relative: 1e-12), "mean at \(i)")
            if scale > 0 {
                #expect(TestSupport.close(r.scale[0], scale, relative: 1e-9), "sd at \(i)")
                #expect(TestSupport.close(r.z[0], (reference.x[i] - expected) / scale, relative: 1e-9))
            }
        }
    }

    @Test("rolling median and MAD equal numpy's over the trailing window", arguments: ["odd", "even"])
    func rolling(parity: String) throws {
        let all = try Reference.load()
        let reference = parity == "odd" ? all.rolling_odd : all.rolling_even
        var parameters = RobustParameters()
        parameters.window = reference.window
        parameters.warmup = 3
        var estimator = RobustEstimator(parameters)
        let times = reference.x.indices.map { Double($0) * 15 }
        let results = Self.run(&estimator, times: times, values: reference.x)
        var compared = 0
        for (i, r) in results.enumerated() where i >= 3 {
            let median = try #require(reference.median[i])
            let scale = try #require(reference.scale[i])
            #expect(r.expected[0] == median, "median at \(i)")
            #expect(TestSupport.close(r.scale[0], scale, relative: 1e-12), "scale at \(i)")
            compared += 1
        }
        #expect(compared == reference.x.count - 3)
    }

    @Test("the seasonal fit's coefficients equal numpy's weighted least squares")
    func seasonalCoefficients() throws {
        let reference = try Reference.load().seasonal
        var parameters = SeasonalParameters()
        parameters.seasons = [Season(period: reference.period, harmonics: reference.harmonics)]
        parameters.halfLife = .seconds(reference.half_life_seconds)
        parameters.clip = 1e9  // this test checks the solve, not the clipping
        var estimator = SeasonalEstimator(parameters, step: reference.step)
        _ = Self.run(&estimator, times: reference.t, values: reference.y)
        estimator.refitNow()
        #expect(estimator.activeColumnCountNow == 1 + 2 * reference.harmonics)
        let fitted = estimator.coefficients(slot: 0)
        for (k, (got, want)) in zip(fitted, reference.coefficients).enumerated() {
            #expect(TestSupport.close(got, want, relative: 1e-8, absolute: 1e-8), "coefficient \(k)")
        }
    }
}

@Suite("Sorted window")
struct SortedWindowTests {
    @Test("insert and replace keep the window sorted; median and MAD equal the sorting reference")
    func randomised() {
        var rng = SplitMix64(seed: 42)
        for window in [1, 2, 5, 8, 64] {
            var ring: [Double] = []
            var sorted = [Double](repeating: 0, count: window)
            var head = 0
            for _ in 0..<500 {
                // Integers: plenty of ties.
                let x = Double(Int(rng.uniform() * 20))
                sorted.withUnsafeMutableBufferPointer { s in
                    let p = s.baseAddress.unsafelyUnwrapped
                    if ring.count < window {
                        SortedWindow.insert(p, ring.count, x)
                        ring.append(x)
                    } else {
                        #expect(SortedWindow.replace(p, window, old: ring[head], new: x))
                        ring[head] = x
                        head = (head + 1) % window
                    }
                }
                let n = ring.count
                #expect(Array(sorted.prefix(n)) == ring.sorted())
                sorted.withUnsafeBufferPointer { s in
                    let p = s.baseAddress.unsafelyUnwrapped
                    let m = SortedWindow.median(p, n)
                    #expect(m == ReferenceKernels.median(ring))
                    #expect(SortedWindow.mad(p, n, median: m) == ReferenceKernels.mad(ring))
                }
            }
        }
    }

    @Test("replacing a value that is not in the window is refused")
    func replaceMissing() {
        var s: [Double] = [1, 2, 3]
        s.withUnsafeMutableBufferPointer { p in
            #expect(!SortedWindow.replace(p.baseAddress.unsafelyUnwrapped, 3, old: 2.5, new: 0))
        }
        #expect(s == [1, 2, 3])
    }
}

/// The optimised estimators against the plain-Swift references `flatline bench` compares them with.
@Suite("Estimators against their plain-Swift references")
struct PlainReferenceTests {
    /// Runs two estimators side by side over the same ticks of `series` series with gaps.
    static func compare<A: Estimator, B: Estimator>(
        _ a: inout A,
        _ b: inout B,
        series: Int = 6,
        ticks: Int = 400,
        check: (Estimates, Estimates, Int) -> Void
    ) {
        a.reserve(capacity: series)
        b.reserve(capacity: series)
        var outA = Estimates(capacity: series)
        var outB = Estimates(capacity: series)
        var rng = SplitMix64(seed: 99)
        let floors = [Double](repeating: 1e-6, count: series)
        for t in 0..<ticks {
            let values = (0..<series).map { s in
                (s + t) % 7 == 3 ? Double.nan : Double(s * 10) + (rng.normal() * 4).rounded() / 2
            }
            values.withUnsafeBufferPointer { v in
                floors.withUnsafeBufferPointer { f in
                    a.update(time: Double(t) * 15, values: v, floors: f, into: &outA)
                    b.update(time: Double(t) * 15, values: v, floors: f, into: &outB)
                }
            }
            check(outA, outB, t)
        }
    }

    @Test("the vectorised EWMA equals the one-series-at-a-time reference")
    func ewma() {
        var fast = EWMAEstimator(EWMAParameters(), step: 15)
        var plain = ReferenceEstimators.EWMA(EWMAParameters(), step: 15)
        Self.compare(&fast, &plain) { a, b, t in
            for s in 0..<a.capacity {
                #expect(TestSupport.close(a.expected[s], b.expected[s], relative: 1e-12), "tick \(t) series \(s)")
                #expect(TestSupport.close(a.z[s], b.z[s], relative: 1e-9, absolute: 1e-9))
            }
        }
    }

    @Test("the incremental rolling window equals sorting every window")
    func robust() {
        for window in [5, 16, 64] {
            var parameters = RobustParameters()
            parameters.window = window
            var fast = RobustEstimator(parameters)
            var plain = ReferenceEstimators.Robust(parameters)
            Self.compare(&fast, &plain) { a, b, t in
                for s in 0..<a.capacity {
                    #expect(a.expected[s].bitPattern == b.expected[s].bitPattern, "median, window \(window) tick \(t)")
                    #expect(TestSupport.close(a.scale[s], b.scale[s], relative: 1e-12), "scale, window \(window)")
                }
            }
        }
    }

    @Test("the seasonal fit gives the same answers with BLAS/LAPACK and with plain Swift")
    func seasonalBackends() {
        var parameters = SeasonalParameters()
        parameters.seasons = [Season(period: 900, harmonics: 3)]
        var blas = SeasonalEstimator(parameters, step: 15)
        var swift = SeasonalEstimator(parameters, step: 15)
        swift.backend = .swift
        Self.compare(&blas, &swift) { a, b, t in
            for s in 0..<a.capacity {
                #expect(TestSupport.close(a.expected[s], b.expected[s], relative: 1e-9, absolute: 1e-9), "tick \(t)")
            }
        }
        #expect(blas.activeColumnCountNow == 7)
    }
}
