import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineCore

/// The surprise detector against a scalar re-implementation of its documented rules in Python
/// (scripts/reference/make_surprise_fixture.py): per point, the expected value, the scale, z,
/// the surprise L and the band's half-width.
@Suite("Surprise detector reference")
struct SurpriseReferenceTests {
    struct Fixture: Decodable {
        struct Case: Decodable {
            var name: String
            var times: [Double]
            var values: [Double?]
            var expected: [Double?]
            var scale: [Double?]
            var z: [Double?]
            var surprise: [Double?]
            var limit: [Double?]
        }
        var threshold: Double
        var cases: [Case]
    }

    static func fixture() throws -> Fixture {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/surprise-reference", withExtension: "json"))
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    static func same(_ swift: Double, _ reference: Double?) -> Bool {
        guard let reference else { return swift.isNaN }
        return TestSupport.close(swift, reference, relative: 1e-9, absolute: 1e-9)
    }

    @Test("every point of every case equals the reference: expected, scale, z, surprise, band")
    func matchesReference() throws {
        let fixture = try Self.fixture()
        #expect(fixture.cases.count == 4)
        for c in fixture.cases {
            var detector = SurpriseDetector(SurpriseParameters())
            detector.reserve(capacity: 1)
            var mismatches: [String] = []
            var scored = 0
            for (k, time) in c.times.enumerated() {
                let point = detector.update(slot: 0, time: time, value: c.values[k] ?? .nan)
                let limit = point.surprise.isNaN ? Double.nan : detector.limit(point, threshold: fixture.threshold)
                let pairs: [(String, Double, Double?)] = [
                    ("expected", point.expected, c.expected[k]), ("scale", point.scale, c.scale[k]),
                    ("z", point.z, c.z[k]), ("surprise", point.surprise, c.surprise[k]),
                    ("limit", limit, c.limit[k]),
                ]
                for (name, swift, reference) in pairs where !Self.same(swift, reference) {
                    mismatches.append("\(k) \(name): \(swift) vs \(reference ?? .nan)")
                }
                if !point.surprise.isNaN { scored += 1 }
            }
            #expect(mismatches.isEmpty, "\(c.name): \(mismatches.prefix(5))")
            #expect(scored > c.times.count / 2, "\(c.name)")
        }
    }

    @Test("the cases exercise what they are for: the daily channel, the resolution, the big z")
    func casesCoverTheRules() throws {
        let cases = try Self.fixture().cases
        // A spike on day four of the daily case, the burst of the counts and the step of the
        // flat series reach the threshold; nothing else in them does.
        for c in cases where c.name != "irregular 10 s with gaps" {
            let over = c.surprise.enumerated().filter { ($0.element ?? -.infinity) >= 3 }.map(\.offset)
            #expect(over.count == 1, "\(c.name): \(over)")
        }
    }
}
