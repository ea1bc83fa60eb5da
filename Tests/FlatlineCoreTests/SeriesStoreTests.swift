import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineCore

@Suite("Series store")
struct SeriesStoreTests {
    func labels(_ name: String, _ cid: String) throws -> LabelSet {
        try LabelSet(validating: [("__name__", name), ("cid", cid)])
    }

    @Test("a series keeps its slot; new series get new slots")
    func slots() throws {
        var store = SeriesStore()
        let t = Timestamp(milliseconds: 1000)
        let a = try store.slot(for: labels("m", "1"), kind: .gauge, at: t)
        let b = try store.slot(for: labels("m", "2"), kind: .counter, at: t)
        let again = try store.slot(for: labels("m", "1"), kind: .gauge, at: t.advanced(bySeconds: 15))
        #expect(a == (0, true))
        #expect(b == (1, true))
        #expect(again == (0, false))
        #expect(store.entry(at: 0)?.lastSeen == t.advanced(bySeconds: 15))
        #expect(store.entry(at: 1)?.kind == .counter)
        #expect(store.count == 2)
    }

    @Test("stale series free their slots, and the lowest free slot is reused first")
    func recycling() throws {
        var store = SeriesStore()
        let t0 = Timestamp(milliseconds: 0)
        for cid in 0..<4 { _ = try store.slot(for: labels("m", "\(cid)"), kind: .gauge, at: t0) }
        let later = t0.advanced(bySeconds: 600)
        _ = try store.slot(for: labels("m", "2"), kind: .gauge, at: later)
        let freed = store.sweep(notSeenSince: t0.advanced(bySeconds: 300))
        #expect(freed == [0, 1, 3])
        #expect(store.count == 1)
        #expect(store.slot(of: try labels("m", "0")) == nil)
        #expect(try store.slot(for: labels("m", "9"), kind: .gauge, at: later) == (0, true))
        #expect(try store.slot(for: labels("m", "8"), kind: .gauge, at: later) == (1, true))
        #expect(store.capacity == 4)
        // Interned strings of forgotten series are released: "0", "1", "3" are gone.
        #expect(store.internedStrings == 6)  // __name__, m, cid, 2, 9, 8
    }

    @Test("a hint gives the slot the lookup gives: right, wrong, freed, reused or out of range")
    func hints() throws {
        var store = SeriesStore()
        let t0 = Timestamp(milliseconds: 0)
        for cid in 0..<4 { _ = try store.slot(for: labels("m", "\(cid)"), kind: .gauge, at: t0) }
        let t1 = t0.advanced(bySeconds: 15)
        // Right: found there, and marked seen.
        #expect(try store.slot(for: labels("m", "2"), kind: .gauge, at: t1, hint: 2) == (2, false))
        #expect(store.entry(at: 2)?.lastSeen == t1)
        // Wrong, negative, past the end: the lookup's answer.
        #expect(try store.slot(for: labels("m", "2"), kind: .gauge, at: t1, hint: 1) == (2, false))
        #expect(try store.slot(for: labels("m", "3"), kind: .gauge, at: t1, hint: -7) == (3, false))
        #expect(try store.slot(for: labels("m", "3"), kind: .gauge, at: t1, hint: 1 << 40) == (3, false))
        // A new series hinted at a live slot of another gets a slot of its own.
        #expect(try store.slot(for: labels("m", "9"), kind: .gauge, at: t1, hint: 0) == (4, true))
        // Freed, then taken by another series: a hint there is not the old series.
        let t2 = t0.advanced(bySeconds: 600)
        for cid in ["2", "3", "9"] { _ = try store.slot(for: labels("m", cid), kind: .gauge, at: t2) }
        #expect(store.sweep(notSeenSince: t0.advanced(bySeconds: 300)) == [0, 1])
        #expect(try store.slot(for: labels("m", "0"), kind: .gauge, at: t2, hint: 0) == (0, true))
        #expect(try store.slot(for: labels("m", "7"), kind: .gauge, at: t2, hint: 0) == (1, true))
        #expect(store.count == 5)
    }

    @Test("a new series beyond max_series is refused with the limit and the series")
    func cardinalityLimit() throws {
        var store = SeriesStore(maxSeries: 2)
        let t = Timestamp(milliseconds: 0)
        _ = try store.slot(for: labels("m", "1"), kind: .gauge, at: t)
        _ = try store.slot(for: labels("m", "2"), kind: .gauge, at: t)
        #expect(throws: SeriesStoreError(kind: .seriesLimit, limit: 2, labels: try labels("m", "3"))) {
            try store.slot(for: labels("m", "3"), kind: .gauge, at: t)
        }
        #expect(try store.slot(for: labels("m", "1"), kind: .gauge, at: t).isNew == false)
    }

    @Test("the store round-trips through JSON with its slots and free list")
    func codable() throws {
        var store = SeriesStore(maxSeries: 10)
        let t = Timestamp(milliseconds: 0)
        for cid in 0..<3 { _ = try store.slot(for: labels("m", "\(cid)"), kind: .counter, at: t) }
        _ = store.sweep(notSeenSince: t.advanced(bySeconds: 1))
        _ = try store.slot(for: labels("m", "x"), kind: .gauge, at: t.advanced(bySeconds: 2))
        var restored = try JSONDecoder().decode(SeriesStore.self, from: JSONEncoder().encode(store))
        #expect(restored.capacity == store.capacity)
        #expect(restored.slot(of: try labels("m", "x")) == 0)
        #expect(try restored.slot(for: labels("m", "y"), kind: .gauge, at: t) == (1, true))
        let corrupt =
            #"{"capacity":1,"series":[{"slot":4,"labels":{"a":"b"},"kind":"gauge","firstSeen":0,"lastSeen":0}]}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(SeriesStore.self, from: Data(corrupt.utf8)) }
        // The series table is one packed string, not a JSON object per series.
        let text = String(decoding: try JSONEncoder().encode(store), as: UTF8.self)
        #expect(text.contains("\"table\":\"") && !text.contains("\"series\""), "\(text)")
        // A table cut short is refused with a reason, not crashed on.
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let table = try #require(object["table"] as? String)
        var cut = object
        cut["table"] = String(table.prefix(table.count / 2 / 4 * 4))
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(SeriesStore.self, from: JSONSerialization.data(withJSONObject: cut))
        }
    }

    @Test("state files written before the series table was packed still load")
    func legacyTable() throws {
        // The layout of earlier versions: one object per series, labels as a JSON object.
        let legacy = """
            {"capacity":3,"maxSeries":10,"series":[
              {"slot":0,"labels":{"__name__":"m","cid":"7"},"kind":"counter","firstSeen":1000,"lastSeen":5000},
              {"slot":2,"labels":{"__name__":"g"},"kind":"gauge","firstSeen":2000,"lastSeen":6000}]}
            """
        var store = try JSONDecoder().decode(SeriesStore.self, from: Data(legacy.utf8))
        #expect(store.capacity == 3 && store.count == 2)
        #expect(store.slot(of: try labels("m", "7")) == 0)
        let gauge = try LabelSet(validating: [("__name__", "g")])
        #expect(try store.slot(for: gauge, kind: .gauge, at: Timestamp(milliseconds: 0)) == (2, false))
        // And it writes the new layout, which reads back to the same series.
        let again = try JSONDecoder().decode(SeriesStore.self, from: JSONEncoder().encode(store))
        #expect(again.liveSlots.map(\.slot) == store.liveSlots.map(\.slot))
        #expect(again.liveSlots.map(\.entry.labels) == store.liveSlots.map(\.entry.labels))
        #expect(
            again.liveSlots.map(\.entry.firstSeen) == [Timestamp(milliseconds: 1000), Timestamp(milliseconds: 2000)]
        )
        #expect(again.liveSlots.map(\.entry.kind) == [.counter, .gauge])
    }
}

@Suite("Counter rates")
struct CounterRatesTests {
    @Test("a counter becomes a per-second rate; the first sample gives none")
    func rates() {
        var rates = CounterRates()
        let t = Timestamp(milliseconds: 1_000_000)
        #expect(rates.observe(100, at: t, slot: 0) == .first)
        #expect(rates.observe(130, at: t.advanced(bySeconds: 15), slot: 0) == .rate(2))
        #expect(rates.observe(130, at: t.advanced(bySeconds: 30), slot: 0) == .rate(0))
    }

    @Test("a decrease is a reset: the new value is the increase since it")
    func reset() {
        var rates = CounterRates()
        let t = Timestamp(milliseconds: 0)
        _ = rates.observe(1000, at: t, slot: 3)
        #expect(rates.observe(45, at: t.advanced(bySeconds: 15), slot: 3) == .reset(rate: 3))
        #expect(rates.observe(75, at: t.advanced(bySeconds: 30), slot: 3) == .rate(2))
    }

    @Test("a gap longer than the maximum gives no rate and restarts from the new value")
    func gap() {
        var rates = CounterRates(maxGap: 60)
        let t = Timestamp(milliseconds: 0)
        _ = rates.observe(10, at: t, slot: 0)
        #expect(rates.observe(500, at: t.advanced(bySeconds: 120), slot: 0) == .gap(seconds: 120))
        #expect(rates.observe(530, at: t.advanced(bySeconds: 135), slot: 0) == .rate(2))
    }

    @Test("an observation that is not newer is ignored, and a reset slot starts over")
    func notNewerAndReset() {
        var rates = CounterRates()
        let t = Timestamp(milliseconds: 5000)
        _ = rates.observe(10, at: t, slot: 0)
        #expect(rates.observe(20, at: t, slot: 0) == .notNewer)
        #expect(rates.observe(20, at: t.advanced(bySeconds: -1), slot: 0) == .notNewer)
        #expect(rates.observe(25, at: t.advanced(bySeconds: 5), slot: 0) == .rate(3))
        rates.reset(slot: 0)
        #expect(rates.observe(1, at: t.advanced(bySeconds: 10), slot: 0) == .first)
    }

    @Test("state round-trips through JSON bit for bit")
    func codable() throws {
        var rates = CounterRates(maxGap: 30)
        _ = rates.observe(0.1 + 0.2, at: Timestamp(milliseconds: 1), slot: 2)
        let encoded = try TestSupport.canonicalJSON(rates)
        let restored = try JSONDecoder().decode(CounterRates.self, from: encoded)
        #expect(try TestSupport.canonicalJSON(restored) == encoded)
        var a = rates
        var b = restored
        let t = Timestamp(milliseconds: 15_001)
        #expect(a.observe(3.3, at: t, slot: 2) == b.observe(3.3, at: t, slot: 2))
    }

    @Test("state written before the times were packed still loads, and continues the same")
    func legacyTimes() throws {
        // lastValue [NaN, 12.5] as packed doubles; lastTime as a JSON array with a null.
        let legacy = #"{"maxGap":30,"lastValue":"AAAAAAAA+H8AAAAAAAApQA==","lastTime":[null,10000]}"#
        var rates = try JSONDecoder().decode(CounterRates.self, from: Data(legacy.utf8))
        #expect(rates.observe(42.5, at: Timestamp(milliseconds: 20_000), slot: 1) == .rate(3))
        #expect(rates.observe(1, at: Timestamp(milliseconds: 20_000), slot: 0) == .first)
        let text = String(decoding: try JSONEncoder().encode(rates), as: UTF8.self)
        #expect(text.contains("lastTimeMilliseconds") && !text.contains("\"lastTime\""), "\(text)")
    }
}
