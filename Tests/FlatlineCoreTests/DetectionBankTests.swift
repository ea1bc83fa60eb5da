import Foundation
import Testing

@testable import FlatlineCore

@Suite("Detection bank")
struct DetectionBankTests {
    static func sample(_ name: String, _ value: Double, kind: MetricKind = .gauge, cid: String = "1") throws -> Sample {
        Sample(
            labels: try LabelSet(validating: [("__name__", name), ("cid", cid)]),
            value: value,
            timestamp: Timestamp(milliseconds: 0),
            kind: kind
        )
    }

    static func at(_ i: Int) -> Timestamp { Timestamp(milliseconds: 1_700_000_000_000 + Int64(i) * 15000) }

    @Test("bad samples are dropped and counted by reason; the rest are scored")
    func drops() throws {
        var bank = try DetectionBank(configuration: DetectorConfiguration(), step: 15, maxSeries: 2)
        let verdicts = bank.process(
            time: Self.at(0),
            samples: [
                try Self.sample("a", 1), try Self.sample("a", 2), try Self.sample("b", .nan),
                try Self.sample("b", 3), try Self.sample("c", 4),
            ]
        )
        #expect(verdicts[0].point != nil)
        #expect(verdicts[1] == .dropped(.duplicate))
        #expect(verdicts[2] == .dropped(.nonFinite))
        #expect(verdicts[3].point != nil)
        #expect(verdicts[4] == .dropped(.seriesLimit))
        let late = bank.process(time: Self.at(-1), samples: [try Self.sample("a", 1)])
        #expect(late == [.dropped(.outOfOrder)])
        #expect(bank.drops[.duplicate] == 1 && bank.drops[.nonFinite] == 1 && bank.drops[.seriesLimit] == 1)
        #expect(bank.drops[.outOfOrder] == 1)
        #expect(bank.drops.total == 4)
    }

    @Test("a counter is scored as its rate; its first sample waits, a reset is counted")
    func counters() throws {
        var bank = try DetectionBank(configuration: DetectorConfiguration(kind: .ewma), step: 15)
        var values: [Double?] = []
        for (i, total) in [100.0, 130, 160, 10, 40].enumerated() {
            let v = bank.process(time: Self.at(i), samples: [try Self.sample("in_msgs", total, kind: .counter)])
            values.append(v[0].point?.value)
        }
        #expect(values == [nil, 2, 2, 10.0 / 15, 2])
        #expect(bank.counterResets == 1)
    }

    @Test("series not seen for stale_after leave the store and their slot starts cold for a newcomer")
    func staleSeries() throws {
        var bank = try DetectionBank(configuration: DetectorConfiguration(kind: .ewma), step: 15, staleAfter: 60)
        for i in 0..<40 {
            var samples = [try Self.sample("m", 5, cid: "a")]
            if i < 20 { samples.append(try Self.sample("m", 50, cid: "b")) }
            if i >= 30 { samples.append(try Self.sample("m", 500, cid: "c")) }
            let verdicts = bank.process(time: Self.at(i), samples: samples)
            if i == 30 {
                // "c" took "b"'s slot and knows nothing of "b": no score yet, no expectation of 50.
                let c = try #require(verdicts[1].point)
                #expect(c.slot == 1)
                #expect(c.z.isNaN)
            }
        }
        #expect(bank.store.count == 2)
        #expect(bank.store.capacity == 2)
    }
}
