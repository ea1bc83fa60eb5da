import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineCore

/// The default detector on the classes of anomaly of the synthetic cases
/// (scripts/eval/make_anomaly_cases.py: a week and more at 10-minute steps, daily shape, each
/// case with its clean twin): the classes it is built for are flagged at their onset, and no
/// clean twin raises a flag.
@Suite("Anomaly classes")
struct AnomalyClassTests {
    struct Case {
        var name: String
        var first: Int
        var last: Int
    }

    static let directory = "Fixtures/anomaly-cases"
    /// The first two days (288 samples) are learning, as in scripts/eval/anomaly_cases.py.
    static let learning = 288

    static func cases() throws -> [Case] {
        let url = try #require(Bundle.module.url(forResource: "\(directory)/cases", withExtension: "csv"))
        return try String(contentsOf: url, encoding: .utf8).split(whereSeparator: \.isNewline).dropFirst().map { line in
            let f = line.split(separator: ",").map(String.init)
            return Case(name: f[0], first: try #require(Int(f[1])), last: try #require(Int(f[2])))
        }
    }

    /// The rows flagged anomalous by the default detector after its learning, 0-based.
    static func flags(_ file: String) throws -> [Int] {
        let url = try #require(Bundle.module.url(forResource: "\(directory)/\(file)", withExtension: "csv"))
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.locale = Locale(identifier: "en_US_POSIX")
        var detector = try Detector(DetectorConfiguration(), step: 600)
        var output = DetectorOutput()
        var flagged: [Int] = []
        let rows = try String(contentsOf: url, encoding: .utf8).split(whereSeparator: \.isNewline).dropFirst()
        for (k, row) in rows.enumerated() {
            let f = row.split(separator: ",", omittingEmptySubsequences: false)
            let time = try #require(formatter.date(from: String(f[0]))).timeIntervalSince1970
            let value = f.count > 1 && !f[1].isEmpty ? try #require(Double(String(f[1]))) : .nan
            detector.update(time: time, values: [value], into: &output)
            if output.anomaly[0] && k >= learning { flagged.append(k) }
        }
        return flagged
    }

    @Test(
        "flagged at the onset, within two samples: spikes, contextual spikes, level shifts, count bursts, a jump after a gap",
        arguments: ["point-global", "point-contextual", "level-shift", "count-burst", "gaps"]
    )
    func flaggedAtOnset(name: String) throws {
        let anomaly = try #require(try Self.cases().first { $0.name == name })
        let flags = try Self.flags(name)
        #expect(!flags.isEmpty)
        #expect(flags.contains { (anomaly.first...anomaly.first + 2).contains($0) }, "\(name): \(flags)")
        let elsewhere = flags.filter { !(anomaly.first...anomaly.last + 10).contains($0) }
        #expect(elsewhere.isEmpty, "\(name): flags outside the anomaly \(elsewhere)")
    }

    @Test("no clean twin raises a flag (denser-spikes' twin has spikes by design)")
    func cleanTwinsQuiet() throws {
        let cases = try Self.cases()
        #expect(cases.count == 12)
        for anomaly in cases where anomaly.name != "denser-spikes" {
            let flags = try Self.flags("\(anomaly.name)-clean")
            #expect(flags.isEmpty, "\(anomaly.name)-clean: \(flags)")
        }
    }
}
