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

    @Test(
        "values beyond ±1e150 (a gauge, a counter's jump) are dropped as out_of_range; every detector flags the next spike",
        arguments: DetectorKind.allCases
    )
    func hugeValues(kind: DetectorKind) throws {
        // Unchecked, ±1e160 or ±1e300 while a series warmed up left ewma, seasonal and ensemble
        // with an infinite variance (or a mean of 1e287) for good: nothing was flagged again.
        var bank = try DetectionBank(configuration: DetectorConfiguration(kind: kind), step: 15)
        var rng = SplitMix64(seed: 21)
        let hostile: [Int: Double] = [2: 1e300, 3: -1e160, 1500: 1e160, 1501: -1e160, 1502: -1e300, 1503: 1e151]
        // At the bound itself a value is scored.
        let bound = try Self.sample("edge", 1e150)
        let spike = 4400
        var flags: [Int] = []
        var misplaced: [(Int, Double)] = []
        var counter = 0.0
        for i in 0..<4500 {
            var y = 100 + 5 * rng.normal()
            if let h = hostile[i] { y = h }
            if i == spike { y = 160 }
            counter += i == 1600 ? 1e160 : 1000
            let verdicts = bank.process(
                time: Self.at(i),
                samples: [try Self.sample("level", y), try Self.sample("total", counter, kind: .counter), bound]
            )
            #expect(verdicts[2].point != nil, "\(kind) at \(i): 1e150 is \(verdicts[2])")
            if i == 1600 {
                #expect(verdicts[1] == .dropped(.outOfRange), "\(kind): the counter's jump is \(verdicts[1])")
            }
            if hostile[i] != nil {
                #expect(verdicts[0] == .dropped(.outOfRange), "\(kind) at \(i): \(verdicts[0])")
                continue
            }
            let point = try #require(verdicts[0].point, "\(kind) at \(i): \(verdicts[0])")
            if point.anomaly { flags.append(i) }
            if i > 2000 && !(abs(point.expected - 100) < 30) { misplaced.append((i, point.expected)) }
        }
        #expect(bank.drops[.outOfRange] == hostile.count + 1, "\(kind): \(bank.drops.counts)")
        #expect(misplaced.isEmpty, "\(kind): \(misplaced.count) ticks expected far off, first \(misplaced.prefix(1))")
        #expect(flags.contains(spike), "\(kind) flags: \(flags.filter { $0 > 1600 })")
        #expect(flags.filter { $0 > 3000 && $0 != spike }.count <= 3, "\(kind) flags: \(flags.filter { $0 > 3000 })")
    }

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

    @Test(
        "a counter's restart is not scored (its interval's rate is unknown), and flags nothing; the rates after it are",
        arguments: DetectorKind.allCases
    )
    func counterRestart(kind: DetectorKind) throws {
        var bank = try DetectionBank(configuration: DetectorConfiguration(kind: kind), step: 15)
        var rng = SplitMix64(seed: 8)
        var total = 0.0
        var flags: [Int] = []
        var verdictAtRestart: SampleVerdict?
        for i in 0..<600 {
            // 100 messages a second; the server restarts 10 s into the interval before tick 400
            // and counts from zero: that interval counted 5 s of traffic.
            let increase = 15 * 100 * (1 + 0.02 * rng.normal())
            total = i == 400 ? increase / 3 : total + increase
            let v = bank.process(time: Self.at(i), samples: [try Self.sample("in_msgs", total, kind: .counter)])
            if i == 400 { verdictAtRestart = v[0] }
            if i == 401 { #expect(v[0].point != nil, "\(kind): the rate after the restart is \(v[0])") }
            if v[0].point?.anomaly == true { flags.append(i) }
        }
        #expect(bank.counterResets == 1)
        #expect(verdictAtRestart == .pending(slot: 0), "\(kind): \(String(describing: verdictAtRestart))")
        #expect(flags.filter { $0 >= 400 }.isEmpty, "\(kind) flags: \(flags)")
    }

    @Test("a counter is scored as its rate; its first sample and its restart wait, a reset is counted")
    func counters() throws {
        var bank = try DetectionBank(configuration: DetectorConfiguration(kind: .ewma), step: 15)
        var values: [Double?] = []
        for (i, total) in [100.0, 130, 160, 10, 40].enumerated() {
            let v = bank.process(time: Self.at(i), samples: [try Self.sample("in_msgs", total, kind: .counter)])
            values.append(v[0].point?.value)
        }
        #expect(values == [nil, 2, 2, nil, 2])
        #expect(bank.counterResets == 1)
    }

    @Test("samples found by their place in the last tick get the verdicts of samples looked up by their labels")
    func placeHints() throws {
        // One bank finds series where the last tick had them (when they are there), one by
        // their labels alone: series come and go, go stale, are shuffled, repeat within a tick.
        var hinted = try DetectionBank(configuration: DetectorConfiguration(), step: 15, staleAfter: 120)
        var looked = try DetectionBank(configuration: DetectorConfiguration(), step: 15, staleAfter: 120)
        looked.placeHints = false
        var generator = UInt64(3)
        func next(_ n: Int) -> Int {
            generator = generator &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: (generator >> 33) % UInt64(n))
        }
        var verdicts: [SampleVerdict] = []
        var hits = 0
        for i in 0..<300 {
            var samples: [Sample] = []
            for cid in 0..<40 where !(cid % 7 == 3 && (i / 20) % 2 == 1) && !(cid >= 30 && i > 150 && i < 200) {
                let kind: MetricKind = cid % 3 == 0 ? .counter : .gauge
                let value = kind == .counter ? Double(i * (cid + 1)) : 10 + Double(next(100)) / 10
                samples.append(try Self.sample("m", value, kind: kind, cid: "\(cid)"))
            }
            if i % 25 == 0 {
                var random = SeededGenerator(seed: UInt64(i))
                samples.shuffle(using: &random)
            }
            if i % 40 == 5 { samples.insert(samples[next(samples.count)], at: next(samples.count)) }
            if i % 33 == 0 { samples.removeFirst(next(5)) }
            let viaPlace = hinted.process(time: Self.at(i), samples: samples)
            verdicts = looked.process(time: Self.at(i), samples: samples)
            // As text: a verdict with a NaN band is not equal to itself.
            let same = "\(viaPlace)" == "\(verdicts)"
            let first = zip(viaPlace, verdicts).enumerated().first { "\($0.element.0)" != "\($0.element.1)" }
            #expect(same, "tick \(i): \(String(describing: first))")
            hits += viaPlace.count
        }
        #expect(hits > 10_000)
        #expect(hinted.store.count == looked.store.count)
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

/// A small deterministic random number generator for shuffles.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state ^ (state >> 29)
    }
}
