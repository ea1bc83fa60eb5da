import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineCore

/// RobustLine against statsmodels' RLM with Huber's norm
/// (scripts/reference/make_robust_line_fixture.py).
@Suite("Robust line")
struct RobustLineTests {
    struct Fixture: Decodable {
        struct Case: Decodable {
            var name: String
            var x: [Double]
            var y: [Double]
            var intercept: Double
            var slope: Double
            var scale: Double
            var ols_intercept: Double
            var ols_slope: Double
        }
        var cases: [Case]
    }

    static func cases() throws -> [Fixture.Case] {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/robust-line", withExtension: "json"))
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url)).cases
    }

    @Test("coefficients equal statsmodels' RLM(HuberT) on every reference case")
    func matchesStatsmodels() throws {
        let cases = try Self.cases()
        #expect(cases.count == 3)
        for c in cases {
            let line = try RobustLine.fit(x: c.x, y: c.y, maxIterations: 200, tolerance: 1e-13)
            #expect(TestSupport.close(line.slope, c.slope, relative: 1e-7, absolute: 1e-9), "\(c.name): \(line)")
            #expect(
                TestSupport.close(line.intercept, c.intercept, relative: 1e-7, absolute: 1e-7),
                "\(c.name): \(line)"
            )
            #expect(TestSupport.close(line.scale, c.scale, relative: 1e-4), "\(c.name): \(line)")
            // Outliers pull least squares, not the robust line: it is nearer the truth here.
            if c.name.hasPrefix("rising") {
                #expect(abs(line.slope - 12) < abs(c.ols_slope - 12))
            }
        }
    }

    @Test("a perfect line is recovered exactly and its crossing is where a hand computes it")
    func perfectLine() throws {
        let x = (0..<10).map(Double.init)
        let line = try RobustLine.fit(x: x, y: x.map { 3 + 2 * $0 })
        #expect(TestSupport.close(line.slope, 2, relative: 1e-12))
        #expect(TestSupport.close(line.intercept, 3, relative: 1e-12))
        #expect(line.scale < 1e-9)
        // 3 + 2x = 1003 at x = 500.
        #expect(TestSupport.close(try #require(line.crossing(1003)), 500, relative: 1e-12))
        let flat = try RobustLine.fit(x: x, y: x.map { _ in 7 })
        #expect(abs(flat.slope) < 1e-12 && TestSupport.close(flat.intercept, 7, relative: 1e-12))
        #expect(RobustLine(intercept: 7, slope: 0, scale: 0, iterations: 0).crossing(100) == nil)
    }

    @Test("bad input is refused with the reason")
    func badInput() {
        #expect(throws: NumericsError.self) { try RobustLine.fit(x: [1, 2], y: [1]) }
        #expect(throws: NumericsError.self) { try RobustLine.fit(x: [1, 1, 1], y: [1, 2, 3]) }
        #expect(throws: NumericsError.self) { try RobustLine.fit(x: [1, 2], y: [1, .nan]) }
    }
}

@Suite("Label matchers")
struct LabelMatcherTests {
    @Test(
        "parse and match as Alertmanager does",
        arguments: [
            ("severity=\"critical\"", ["severity": "critical"], true),
            ("severity = critical", ["severity": "critical"], true),
            ("severity!=\"critical\"", ["severity": "critical"], false),
            ("severity!=\"critical\"", [:], true),
            ("stream=~\"ORD.*\"", ["stream": "ORDERS"], true),
            ("stream=~\"ORD\"", ["stream": "ORDERS"], false),  // anchored
            ("stream!~\"ORD.*\"", ["stream": "ORDERS"], false),
            ("reason=\"\"", [:], true),  // absent is empty
            ("reason=\"\"", ["reason": "Slow Consumer"], false),
            ("note=\"say \\\"hi\\\"\"", ["note": "say \"hi\""], true),
        ] as [(String, [String: String], Bool)]
    )
    func matching(text: String, labels: [String: String], expected: Bool) throws {
        let matcher = try LabelMatcher(parsing: text)
        #expect(matcher.matches(labels) == expected)
        // The printed form parses back to the same matcher.
        #expect(try LabelMatcher(parsing: matcher.description) == matcher)
    }

    @Test("bad matchers are refused with the reason", arguments: ["severity", "1x=\"a\"", "a=~\"(\"", "a=\"open"])
    func bad(text: String) {
        #expect(throws: PatternError.self) { try LabelMatcher(parsing: text) }
    }
}
