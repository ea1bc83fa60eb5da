import FlatlineCore
import Testing

@testable import FlatlineIngest

@Suite("Sample validator")
struct SampleValidatorTests {
    static func labels(_ name: String, _ id: Int) throws -> LabelSet {
        try LabelSet(validating: [("__name__", name), ("id", "\(id)")])
    }

    /// The checks as a plain dictionary of each series' last timestamp: what the validator does,
    /// without its slots and place hints.
    struct Model {
        var maxSeries: Int?
        var staleAfter: Double
        var last: [LabelSet: Timestamp] = [:]
        var lastSweep: Timestamp?

        mutating func validate(_ samples: [Sample], scrapeTime: Timestamp) -> (valid: [Sample], drops: DropCounts) {
            if lastSweep == nil || scrapeTime.seconds - (lastSweep?.seconds ?? 0) >= staleAfter / 4 {
                lastSweep = scrapeTime
                let cutoff = scrapeTime.advanced(bySeconds: -staleAfter)
                last = last.filter { $0.value >= cutoff }
            }
            var valid: [Sample] = []
            var drops = DropCounts()
            let horizon = scrapeTime.advanced(bySeconds: 300)
            for sample in samples {
                if !sample.value.isFinite {
                    drops.add(.nonFinite)
                } else if sample.timestamp > horizon {
                    drops.add(.tooFarInFuture)
                } else if let previous = last[sample.labels] {
                    if sample.timestamp > previous {
                        last[sample.labels] = sample.timestamp
                        valid.append(sample)
                    } else {
                        drops.add(sample.timestamp == previous ? .duplicate : .outOfOrder)
                    }
                } else if let maxSeries, last.count >= maxSeries {
                    drops.add(.seriesLimit)
                } else {
                    last[sample.labels] = sample.timestamp
                    valid.append(sample)
                }
            }
            return (valid, drops)
        }
    }

    @Test(
        "values beyond ±1e150 are dropped as out_of_range (so a target's drop series and /metrics count them); 1e150 passes"
    )
    func outOfRange() throws {
        var validator = SampleValidator(maxSeries: 10, futureTolerance: 300, staleAfter: 600)
        let t = Timestamp(milliseconds: 1_700_000_000_000)
        let values: [Double] = [1e150, -1e150, 1e151, -1e300, 42]
        let samples = try values.enumerated().map {
            Sample(labels: try Self.labels("m", $0.offset), value: $0.element, timestamp: t)
        }
        let result = validator.validate(samples, scrapeTime: t)
        #expect(result.valid.map(\.value) == [1e150, -1e150, 42])
        #expect(result.drops[.outOfRange] == 2 && result.drops.total == 2)
        #expect(validator.drops[.outOfRange] == 2)
    }

    @Test("non-finite, future, repeated and backwards samples and series past the limit are dropped by reason")
    func drops() throws {
        var validator = SampleValidator(maxSeries: 2, futureTolerance: 300, staleAfter: 600)
        let t = Timestamp(milliseconds: 1_700_000_000_000)
        let a = try Self.labels("m", 1)
        let b = try Self.labels("m", 2)
        let c = try Self.labels("m", 3)
        let first = validator.validate(
            [
                Sample(labels: a, value: 1, timestamp: t), Sample(labels: b, value: .nan, timestamp: t),
                Sample(labels: b, value: 2, timestamp: t.advanced(bySeconds: 301)),
                Sample(labels: b, value: 2, timestamp: t), Sample(labels: c, value: 3, timestamp: t),
                Sample(labels: a, value: 1, timestamp: t),
            ],
            scrapeTime: t
        )
        #expect(first.valid.map(\.labels) == [a, b])
        #expect(first.drops[.nonFinite] == 1 && first.drops[.tooFarInFuture] == 1)
        #expect(first.drops[.seriesLimit] == 1 && first.drops[.duplicate] == 1)
        let later = t.advanced(bySeconds: 15)
        let second = validator.validate(
            [
                Sample(labels: b, value: 2, timestamp: later),
                Sample(labels: a, value: 1, timestamp: t.advanced(bySeconds: -1)),
            ],
            scrapeTime: later
        )
        #expect(second.valid.map(\.labels) == [b])
        #expect(second.drops[.outOfOrder] == 1)
        // Ten minutes on, a is stale and forgotten: c fits under the limit.
        let much = t.advanced(bySeconds: 615)
        let third = validator.validate(
            [Sample(labels: b, value: 2, timestamp: much), Sample(labels: c, value: 3, timestamp: much)],
            scrapeTime: much
        )
        #expect(third.valid.map(\.labels) == [b, c])
        #expect(validator.seriesCount == 2)
    }

    @Test(
        "scrapes whose series change order, go stale, come back, repeat, and small batches between: the same as a plain dictionary"
    )
    func sameAsModel() throws {
        var random = SplitMix64(seed: 7)
        let pool = try (0..<40).map { try Self.labels("m", $0) }
        var validator = SampleValidator(maxSeries: 30, futureTolerance: 300, staleAfter: 120)
        var model = Model(maxSeries: 30, staleAfter: 120)
        var time = Timestamp(milliseconds: 1_700_000_000_000)
        var order = Array(0..<25)
        for round in 0..<400 {
            time = time.advanced(bySeconds: round % 50 == 49 ? 200 : 15)
            if round % 23 == 0 { order.shuffle(using: &random) }
            if round % 31 == 0 { order = Array(order.dropFirst(3)) + (0..<3).map { _ in Int(random.next() % 40) } }
            var samples: [Sample] = []
            for id in order where random.next() % 10 != 0 {
                // Usually the label set the source keeps; sometimes an equal one built again.
                let labels = random.next() % 4 == 0 ? try Self.labels("m", id) : pool[id]
                let value = random.next() % 50 == 0 ? Double.nan : Double(id)
                let skew = random.next() % 40 == 0 ? -20.0 : random.next() % 40 == 0 ? 400 : 0
                samples.append(Sample(labels: labels, value: value, timestamp: time.advanced(bySeconds: skew)))
                if random.next() % 30 == 0 { samples.append(samples[samples.count - 1]) }
            }
            let got = validator.validate(samples, scrapeTime: time)
            let expected = model.validate(samples, scrapeTime: time)
            #expect(got.valid == expected.valid, "round \(round)")
            #expect(got.drops == expected.drops, "round \(round)")
            #expect(validator.seriesCount == model.last.count, "round \(round)")
            if round % 7 == 3 {
                // An event's small batch between two scrapes.
                let event = [
                    Sample(labels: pool[Int(random.next() % 40)], value: 1, timestamp: time.advanced(bySeconds: 1))
                ]
                let eventTime = time.advanced(bySeconds: 1)
                #expect(
                    validator.validate(event, scrapeTime: eventTime).valid
                        == model.validate(event, scrapeTime: eventTime).valid
                )
            }
        }
    }
}
