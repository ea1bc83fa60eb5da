import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineCore

@Suite("Learned periods")
struct PeriodLearnerTests {
    static func series(_ count: Int, seed: UInt64, _ f: (Int, inout SplitMix64) -> Double) -> [Double] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { f($0, &rng) }
    }

    @Test("a cycle of 24.5 samples is found, between samples", arguments: [1 as UInt64, 2, 3])
    func findsCycle(seed: UInt64) throws {
        let values = Self.series(512, seed: seed) { i, rng in 100 + 10 * sin(2 * .pi * Double(i) / 24.5) + rng.normal()
        }
        let period = try #require(PeriodLearner.dominantPeriod([values]))
        #expect(abs(period - 24.5) < 0.3, "found \(period)")
    }

    @Test("noise, a random walk, a trend and a level shift have no period")
    func noPeriod() {
        let noise = Self.series(512, seed: 4) { _, rng in rng.normal() }
        var level = 0.0
        let walk = Self.series(512, seed: 5) { _, rng in
            level += rng.normal()
            return level
        }
        let trend = Self.series(512, seed: 6) { i, rng in Double(i) * 0.5 + rng.normal() }
        let shift = Self.series(512, seed: 7) { i, rng in (i < 300 ? 0 : 20) + rng.normal() }
        for (name, values) in [("noise", noise), ("walk", walk), ("trend", trend), ("shift", shift)] {
            #expect(PeriodLearner.dominantPeriod([values]) == nil, "\(name)")
        }
    }

    @Test("a series on index timestamps learns its cycle, and the fit then follows it")
    func seasonalLearns() throws {
        var parameters = SeasonalParameters()
        parameters.learnSamples = 256
        var estimator = SeasonalEstimator(parameters, step: 1)
        let values = Self.series(2000, seed: 8) { i, rng in 50 + 8 * sin(2 * .pi * Double(i) / 30) + 0.5 * rng.normal()
        }
        let results = EstimatorReferenceTests.run(
            &estimator,
            times: values.indices.map { Double($0 + 1) },
            values: values
        )
        let learned = try #require(estimator.seasons.first)  // shortest first: before 1d and 1w
        #expect(abs(learned.period - 30) < 0.3, "learned \(learned.period)")
        let errors = (1500..<2000).map { abs(results[$0].expected[0] - values[$0]) }
        #expect(errors.reduce(0, +) / Double(errors.count) < 1.0, "mean error after learning")
    }

    @Test("a cycle the configured seasons already describe is not learned twice")
    func knownSeason() {
        var parameters = SeasonalParameters()
        parameters.seasons = [Season(period: 3000, harmonics: 2)]
        parameters.learnSamples = 400
        var estimator = SeasonalEstimator(parameters, step: 60)
        let values = Self.series(600, seed: 9) { i, rng in 10 * sin(2 * .pi * Double(i) * 60 / 3000) + rng.normal() }
        _ = EstimatorReferenceTests.run(&estimator, times: values.indices.map { Double($0) * 60 }, values: values)
        #expect(estimator.seasons == [Season(period: 3000, harmonics: 2)])
    }
}
