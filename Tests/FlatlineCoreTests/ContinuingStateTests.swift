import Foundation
import Testing

@testable import FlatlineCore

@Suite("A learned state under a new configuration")
struct ContinuingStateTests {
    /// A series at a steady level with small noise, then one spike: `(time, value)` for 15 s
    /// points, the spike last.
    static func series(points: Int = 400) -> [(Double, Double)] {
        var rng = SplitMix64(seed: 5)
        var out = (0..<points).map { (Double($0) * 15, 100 + rng.normal()) }
        out.append((Double(points) * 15, 100 + 40))
        return out
    }

    /// Runs `detector` through `points`, the output of the last.
    static func run(_ detector: inout Detector, _ points: ArraySlice<(Double, Double)>) -> DetectorOutput {
        var output = DetectorOutput()
        for (time, value) in points { detector.update(time: time, values: [value], into: &output) }
        return output
    }

    @Test("only the parameters a running detector learns with keep a state from going on, named by their key")
    func learningDifference() {
        let surprise = DetectorConfiguration()
        func changed(_ kind: DetectorKind = .surprise, _ change: (inout DetectorConfiguration) -> Void)
            -> String?
        {
            var c = DetectorConfiguration(kind: kind)
            change(&c)
            return c.learningDifference(from: DetectorConfiguration(kind: kind))?.key
        }
        #expect(surprise.learningDifference(from: surprise) == nil)
        // Judging parameters, and the sections of detectors that do not run: the state goes on.
        #expect(changed { $0.surprise.threshold = 5 } == nil)
        #expect(changed { $0.surprise.perHour = 0 } == nil)
        #expect(changed { $0.calibration.minDeviation = 3 } == nil)
        #expect(changed { $0.calibration.direction = .above } == nil)
        #expect(changed { $0.calibration.halfLife = .samples(10) } == nil)
        #expect(changed { $0.ewma.warmup = 3 } == nil)
        #expect(changed(.ewma) { $0.calibration.threshold = 0.99 } == nil)
        #expect(changed(.ewma) { $0.calibration.cooldown = 9 } == nil)
        #expect(changed(.ewma) { $0.surprise.shapeWeight = 0.05 } == nil)
        // What the series learned with.
        #expect(changed { $0.surprise.shapeWeight = 0.05 } == "surprise.shape_weight")
        #expect(changed { $0.surprise.seasonSlots = 48 } == "surprise.season_slots")
        #expect(changed { $0.floor.relative = 0.1 } == "floor.relative")
        #expect(changed(.ewma) { $0.calibration.halfLife = .samples(10) } == "calibration.half_life")
        #expect(changed(.ewma) { $0.calibration.direction = .above } == "calibration.direction")
        #expect(changed(.ensemble) { $0.robust.window = 32 } == "robust.window")
        #expect(changed(.robust) { $0.seasonal.refitEvery = 3 } == nil)
        #expect(DetectorConfiguration(kind: .ewma).learningDifference(from: surprise)?.key == "kind")
        var shape = surprise
        shape.surprise.shapeWeight = 0.05
        let difference = shape.learningDifference(from: surprise)
        #expect(difference?.saved == "0.01" && difference?.now == "0.05", "\(String(describing: difference))")
        // Seasons as `--seasons` writes them.
        var seasonal = DetectorConfiguration(kind: .seasonal)
        seasonal.seasonal.seasons = [Season(period: 86_400, harmonics: 2)]
        let seasons = seasonal.learningDifference(from: DetectorConfiguration(kind: .seasonal))
        #expect(seasons?.key == "seasonal.seasons")
        #expect(seasons?.saved == "[1d:4, 1w:3]" && seasons?.now == "[1d:2]", "\(String(describing: seasons))")
    }

    @Test("the keys it names are the configuration file's keys, judging keys too")
    func keysAreConfigurationKeys() throws {
        var every = DetectorConfiguration()
        every.seasonal.halfLife = .samples(100)  // (absent by default: not written)
        let encoded = try JSONEncoder().encode(every)
        let sections = try #require(try JSONSerialization.jsonObject(with: encoded) as? [String: Any])
        var keys: Set<String> = []
        for (section, value) in sections {
            guard let members = value as? [String: Any] else { continue }
            for key in members.keys { keys.insert(section + "." + key) }
        }
        #expect(Set(every.parameterKeys) == keys)
        for kind in DetectorKind.allCases {
            #expect(DetectorConfiguration.judgingKeys(for: kind).isSubset(of: keys))
        }
    }

    @Test("a surprise state goes on bit for bit, and judges with the new threshold")
    func surpriseThreshold() throws {
        let points = Self.series()
        var learned = try Detector(DetectorConfiguration(), step: 15)
        _ = Self.run(&learned, points.dropLast())
        var same = try #require(learned.continuing(as: DetectorConfiguration()))
        var strict = DetectorConfiguration()
        strict.surprise.threshold = 30
        var raised = try #require(learned.continuing(as: strict))
        #expect(raised.configuration.surprise.threshold == 30)
        var straight = learned
        let before = Self.run(&straight, points.suffix(1))
        let after = Self.run(&same, points.suffix(1))
        let judged = Self.run(&raised, points.suffix(1))
        #expect(before.anomaly == [true])
        #expect(after.score.map(\.bitPattern) == before.score.map(\.bitPattern))
        #expect(after.upper.map(\.bitPattern) == before.upper.map(\.bitPattern))
        // The same forecast and surprise; the band and the verdict follow the new threshold.
        #expect(judged.expected.map(\.bitPattern) == before.expected.map(\.bitPattern))
        #expect(judged.z.map(\.bitPattern) == before.z.map(\.bitPattern))
        #expect(judged.score.map(\.bitPattern) == before.score.map(\.bitPattern))
        #expect(judged.anomaly == [false])
        #expect(judged.upper[0] > before.upper[0])
        var shape = DetectorConfiguration()
        shape.surprise.shapeWeight = 0.05
        #expect(learned.continuing(as: shape) == nil)
        var invalid = DetectorConfiguration()
        invalid.calibration.cooldown = 0
        #expect(learned.continuing(as: invalid) == nil)
    }

    @Test("a calibrated state judges with the new threshold, margin and cooldown")
    func calibratedThreshold() throws {
        let points = Self.series()
        var learned = try Detector(DetectorConfiguration(kind: .ewma), step: 15)
        _ = Self.run(&learned, points.dropLast())
        var straight = learned
        #expect(Self.run(&straight, points.suffix(1)).anomaly == [true])
        var lenient = DetectorConfiguration(kind: .ewma)
        lenient.calibration.minZ = 50
        lenient.calibration.cooldown = 7
        var judged = try #require(learned.continuing(as: lenient))
        #expect(judged.configuration == lenient)
        let output = Self.run(&judged, points.suffix(1))
        #expect(output.anomaly == [false])
        #expect(output.z.map(\.bitPattern) == Self.run(&learned, points.suffix(1)).z.map(\.bitPattern))
    }
}
