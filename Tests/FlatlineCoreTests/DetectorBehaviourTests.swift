import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineCore

/// Runs a detector over a matrix of ticks (rows) × series (columns).
struct Harness {
    var detector: Detector
    var output = DetectorOutput()
    var step: Double

    init(_ configuration: DetectorConfiguration, step: Double = 60) throws {
        detector = try Detector(configuration, step: step)
        self.step = step
    }

    /// Feeds one tick at index `i`; returns a copy of the output.
    @discardableResult
    mutating func tick(_ i: Int, _ values: [Double]) -> DetectorOutput {
        detector.update(time: 1_700_000_000 + Double(i) * step, values: values, into: &output)
        return output
    }
}

@Suite("Detector behaviour")
struct DetectorBehaviourTests {
    static let kinds = DetectorKind.allCases

    @Test(
        "calibrated scores are roughly uniform on pure noise",
        arguments: kinds.filter { $0 != .surprise }
    )
    func calibrationUniform(kind: DetectorKind) throws {
        var configuration = DetectorConfiguration(kind: kind)
        configuration.seasonal.seasons = []
        var harness = try Harness(configuration)
        let series = 20
        var rng = SplitMix64(seed: 7)
        var scores: [Double] = []
        for i in 0..<3000 {
            let out = harness.tick(i, (0..<series).map { _ in 100 + 5 * rng.normal() })
            if i >= 500 { scores.append(contentsOf: out.score) }
        }
        scores.sort()
        // Kolmogorov–Smirnov distance to the uniform distribution.
        var ks = 0.0
        for (k, s) in scores.enumerated() {
            ks = max(ks, abs(s - Double(k) / Double(scores.count)), abs(s - Double(k + 1) / Double(scores.count)))
        }
        #expect(ks < 0.05, "KS distance \(ks)")
        let tail = Double(scores.filter { $0 >= 0.99 }.count) / Double(scores.count)
        #expect(tail > 0.005 && tail < 0.02, "share of scores >= 0.99: \(tail)")
    }

    @Test("surprise on pure noise: a point of surprise L or more comes 10^-L times an hour", arguments: [1.0, 60])
    func surpriseRate(step: Double) throws {
        var harness = try Harness(DetectorConfiguration(kind: .surprise), step: step)
        let half = harness.detector.configuration.surprise.scoreHalf
        let series = 20
        let ticks = 20_000
        var rng = SplitMix64(seed: 11)
        var surprises: [Double] = []
        for i in 0..<ticks {
            let out = harness.tick(i, (0..<series).map { _ in 100 + 5 * rng.normal() })
            if i >= 1000 { surprises += out.score.map { $0 > 0 ? half * $0 / (1 - $0) : 0 } }
        }
        let hours = Double(surprises.count) * step / 3600
        // Levels whose expected count is large enough to measure: a few hundred points or more.
        let levels: [Double] = step == 1 ? [0.01, 0.5] : [0.25, 1, 2]
        for level in levels {
            let expected = hours * pow(10, -level)
            let seen = Double(surprises.filter { $0 >= level }.count)
            #expect(
                seen > expected / 2 && seen < expected * 2,
                "L >= \(level): \(seen) points in \(hours) h, expected \(expected)"
            )
        }
    }

    @Test("a series warms up before it scores, and an absent series gets no verdict")
    func coldStartAndMissing() throws {
        var harness = try Harness(DetectorConfiguration(kind: .ensemble))
        var rng = SplitMix64(seed: 1)
        var firstScored: Int?
        for i in 0..<100 {
            let out = harness.tick(i, [10 + rng.normal(), i % 3 == 0 ? .nan : 10 + rng.normal()])
            if firstScored == nil && !out.z[0].isNaN { firstScored = i }
            if i % 3 == 0 {
                #expect(out.z[1].isNaN)
                #expect(out.expected[1].isNaN)
                #expect(out.score[1] == 0)
                #expect(!out.anomaly[1])
            }
            if out.z[0].isNaN { #expect(out.score[0] == 0 && out.lower[0].isNaN) }
        }
        let first = try #require(firstScored)
        #expect(first >= 16 && first < 40, "first scored at \(first)")
    }

    @Test("a series' EWMA and rolling window do not depend on which other series are present")
    func independenceOfPresence() throws {
        for kind in [DetectorKind.ewma, .robust] {
            var together = try Harness(DetectorConfiguration(kind: kind))
            var alone = try Harness(DetectorConfiguration(kind: kind))
            var rng = SplitMix64(seed: 3)
            for i in 0..<400 {
                let a = 50 + rng.normal()
                let b = 20 + rng.normal()
                let bPresent = i % 5 != 2  // b skips some ticks: its own gaps, its own weights
                let both = together.tick(i, [a, bPresent ? b : .nan])
                if bPresent {
                    let solo = alone.tick(i, [b])
                    #expect(both.z[1].bitPattern == solo.z[0].bitPattern, "\(kind) at \(i)")
                    #expect(both.expected[1].bitPattern == solo.expected[0].bitPattern)
                }
            }
        }
    }

    static func seasonalSeries(spikes: Bool) -> [Double] {
        var rng = SplitMix64(seed: 11)
        return (0..<(8 * 288)).map { i in
            let phase = Double(i % 288) / 288
            var y = 100 + 20 * sin(2 * .pi * phase) + 5 * cos(4 * .pi * phase) + rng.normal()
            if spikes && i % 97 == 50 { y += 200 }
            return y
        }
    }

    static func fitSeasonal(_ values: [Double], clip: Double) -> [Double] {
        var parameters = SeasonalParameters()
        parameters.seasons = [Season(period: 86400, harmonics: 2)]
        parameters.clip = clip
        parameters.learnPeriod = false  // spikes every 97 samples would be a cycle of their own
        var estimator = SeasonalEstimator(parameters, step: 300)
        let t0 = 1_700_006_400.0 - 1_700_006_400.0.truncatingRemainder(dividingBy: 86400)
        _ = EstimatorReferenceTests.run(&estimator, times: values.indices.map { t0 + Double($0) * 300 }, values: values)
        estimator.refitNow()
        return estimator.coefficients(slot: 0)
    }

    @Test("the seasonal fit recovers known components of a synthetic series")
    func seasonalRecovers() {
        let beta = Self.fitSeasonal(Self.seasonalSeries(spikes: false), clip: 4)
        #expect(abs(beta[0] - 100) < 0.3, "level \(beta[0])")
        #expect(abs(beta[1] - 20) < 0.3, "sin 1 \(beta[1])")
        #expect(abs(beta[2]) < 0.3, "cos 1 \(beta[2])")
        #expect(abs(beta[3]) < 0.3, "sin 2 \(beta[3])")
        #expect(abs(beta[4] - 5) < 0.3, "cos 2 \(beta[4])")
    }

    @Test("injected spikes do not move the robust seasonal fit (they would move a plain one)")
    func seasonalRobust() {
        let clean = Self.fitSeasonal(Self.seasonalSeries(spikes: false), clip: 4)
        let robust = Self.fitSeasonal(Self.seasonalSeries(spikes: true), clip: 4)
        let plain = Self.fitSeasonal(Self.seasonalSeries(spikes: true), clip: 1e9)
        #expect(abs(robust[0] - clean[0]) < 0.2, "robust level moved by \(robust[0] - clean[0])")
        #expect(abs(plain[0] - clean[0]) > 1, "plain level moved by only \(plain[0] - clean[0])")
    }

    @Test("the ensemble follows the seasonal fit on a seasonal series")
    func ensembleWeights() throws {
        var configuration = DetectorConfiguration(kind: .ensemble)
        configuration.seasonal.seasons = [Season(period: 86400, harmonics: 2)]
        var ensemble = try Harness(configuration, step: 300)
        var ewma = try Harness(DetectorConfiguration(kind: .ewma), step: 300)
        var errors = (ensemble: 0.0, ewma: 0.0)
        for (i, y) in Self.seasonalSeries(spikes: false).enumerated() {
            let e = ensemble.tick(i, [y]).expected[0]
            let w = ewma.tick(i, [y]).expected[0]
            if i > 5 * 288 {
                errors.ensemble += abs(y - e)
                errors.ewma += abs(y - w)
            }
        }
        #expect(errors.ensemble < 0.5 * errors.ewma, "ensemble \(errors.ensemble) vs ewma \(errors.ewma)")
    }

    @Test("a level shift raises one anomaly, not one per point; a later spike raises another")
    func oneFlagPerBurst() throws {
        var harness = try Harness(DetectorConfiguration(kind: .ensemble))
        var rng = SplitMix64(seed: 5)
        var flags: [Int] = []
        for i in 0..<1200 {
            var y = 100 + rng.normal()
            if (600..<650).contains(i) { y += 30 }
            if i == 900 { y -= 40 }
            if harness.tick(i, [y]).anomaly[0] { flags.append(i) }
        }
        #expect(flags == [600, 900])
    }

    @Test("after an outage (two hours at 0) and the recovery, a spike hours later is still flagged")
    func spikeAfterOutage() throws {
        // The recovery's points are all anomalous; if each raised the tail index (as they did when
        // they were learned clipped at the threshold's |z|), the band would be 10^2 scales wide
        // hours later and the spike would score L ≈ 2.
        var harness = try Harness(DetectorConfiguration(kind: .surprise), step: 15)
        var rng = SplitMix64(seed: 3)
        let outage = 2000..<2460
        let spike = 4460
        var flags: [Int] = []
        var spikeScore = 0.0
        for i in 0..<4600 {
            var y = outage.contains(i) ? 0 : ((3000 + 100 * rng.normal()) * 100).rounded() / 100
            if i == spike { y = 20_000 }
            let out = harness.tick(i, [y])
            if out.anomaly[0] { flags.append(i) }
            if i == spike { spikeScore = out.score[0] }
        }
        #expect(flags.contains(spike), "flags: \(flags)")
        #expect(spikeScore >= 0.6, "the spike's score: \(spikeScore)")
        #expect(flags.filter { $0 > outage.upperBound + 300 && $0 < spike }.isEmpty, "flags: \(flags)")
    }

    @Test("a series stuck on one value is flagged soon after it sticks")
    func stuck() throws {
        var harness = try Harness(DetectorConfiguration(kind: .ensemble))
        var rng = SplitMix64(seed: 9)
        var flags: [Int] = []
        var last = 0.0
        for i in 0..<800 {
            let y = (500..<600).contains(i) ? last : 100 + rng.normal()
            last = y
            if harness.tick(i, [y]).anomaly[0] { flags.append(i) }
        }
        let first = try #require(flags.first)
        #expect(first > 500 && first <= 505, "flagged at \(flags)")
        #expect(flags.filter { $0 < 500 }.isEmpty)
    }

    @Test("a gauge that is 0 with the odd 1 does not page on every 1, but a 6 stands out")
    func sparseGauge() throws {
        var harness = try Harness(DetectorConfiguration(kind: .ensemble))
        var rng = SplitMix64(seed: 13)
        var flags: [Int] = []
        for i in 0..<3000 {
            var y = rng.uniform() < 0.03 ? 1.0 : 0.0
            if i == 2500 { y = 6 }
            if harness.tick(i, [y]).anomaly[0] { flags.append(i) }
        }
        #expect(flags.contains(2500))
        #expect(flags.filter { $0 > 300 && $0 != 2500 }.count <= 2, "flags: \(flags)")
    }

    @Test("a detector saved mid-stream and restored continues bit for bit", arguments: kinds)
    func saveRestore(kind: DetectorKind) throws {
        var configuration = DetectorConfiguration(kind: kind)
        configuration.seasonal.seasons = [Season(period: 3600, harmonics: 2)]
        var straight = try Harness(configuration)
        var rng = SplitMix64(seed: 21)
        var ticks: [[Double]] = []
        for i in 0..<600 {
            var row: [Double] = []
            for s in 0..<4 {
                let wave: Double = sin(Double(i) / 9)
                let value: Double = 10 * Double(s + 1) + wave + rng.normal()
                row.append(s == 3 && i % 7 == 0 ? .nan : value)
            }
            ticks.append(row)
        }
        var expected: [DetectorOutput] = []
        for (i, values) in ticks.enumerated() { expected.append(straight.tick(i, values)) }

        var first = try Harness(configuration)
        for i in 0..<300 { first.tick(i, ticks[i]) }
        let saved = try TestSupport.canonicalJSON(first.detector)
        var second = try Harness(configuration)
        second.detector = try JSONDecoder().decode(Detector.self, from: saved)
        #expect(try TestSupport.canonicalJSON(second.detector) == saved)
        for i in 300..<600 {
            let out = second.tick(i, ticks[i])
            let want = expected[i]
            for s in 0..<4 {
                #expect(out.expected[s].bitPattern == want.expected[s].bitPattern, "expected \(kind) \(i) \(s)")
                #expect(out.z[s].bitPattern == want.z[s].bitPattern)
                #expect(out.score[s].bitPattern == want.score[s].bitPattern)
                #expect(out.upper[s].bitPattern == want.upper[s].bitPattern)
                #expect(out.anomaly[s] == want.anomaly[s])
            }
        }
    }

    @Test("parameters out of range are refused with their key")
    func validation() {
        var configuration = DetectorConfiguration()
        configuration.seasonal.refitEvery = 0
        #expect(throws: ParameterError(key: "seasonal.refit_every", rule: "must be at least 1")) {
            try Detector(configuration, step: 15)
        }
        configuration = DetectorConfiguration()
        configuration.calibration.threshold = 1
        #expect(throws: ParameterError.self) { try Detector(configuration, step: 15) }
        #expect(throws: ParameterError(key: "step", rule: "must be a positive number of seconds")) {
            try Detector(DetectorConfiguration(), step: 0)
        }
    }

    @Test("detector configuration decodes from snake_case keys with defaults for the rest")
    func configurationCoding() throws {
        let json =
            #"{"kind":"seasonal","seasonal":{"seasons":[{"period":"1d","harmonics":2}],"half_life":"14d"},"calibration":{"min_z":5,"direction":"above"}}"#
        let configuration = try JSONDecoder().decode(DetectorConfiguration.self, from: Data(json.utf8))
        #expect(configuration.kind == .seasonal)
        #expect(configuration.seasonal.seasons == [Season(period: 86400, harmonics: 2)])
        #expect(configuration.seasonal.halfLife == .seconds(14 * 86400))
        #expect(configuration.calibration.minZ == 5)
        #expect(configuration.calibration.direction == .above)
        #expect(configuration.ewma == EWMAParameters())
        let round = try JSONDecoder().decode(DetectorConfiguration.self, from: JSONEncoder().encode(configuration))
        #expect(round == configuration)
        #expect(Horizon(parsing: "64 samples") == .samples(64))
        #expect(Horizon(parsing: "1h30m") == .seconds(5400))
        #expect(Horizon(parsing: "soon") == nil)
    }
}
