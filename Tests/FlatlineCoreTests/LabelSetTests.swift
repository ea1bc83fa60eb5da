import Foundation
import Testing

@testable import FlatlineCore

@Suite("Label sets")
struct LabelSetTests {
    @Test("labels are sorted by name and empty values dropped")
    func sortedAndEmptyDropped() throws {
        let labels = try LabelSet(validating: [("zone", "b"), ("__name__", "up"), ("app", "x"), ("empty", "")])
        #expect(labels.labels.map(\.name) == ["__name__", "app", "zone"])
        #expect(labels.metricName == "up")
        #expect(labels["zone"] == "b")
        #expect(labels["empty"] == nil)
        #expect(labels["missing"] == nil)
    }

    @Test(
        "invalid names are rejected with the name",
        arguments: [
            ("0abc", LabelError.Code.invalidLabelName), ("a-b", .invalidLabelName), ("", .invalidLabelName),
            ("é", .invalidLabelName),
        ]
    )
    func invalidNames(name: String, code: LabelError.Code) {
        #expect(throws: LabelError(code, name: name)) { try LabelSet(validating: [(name, "v")]) }
    }

    @Test("sets that differ only in a label's name are different keys and hash apart; equal sets are one")
    func namesTellApart() throws {
        let a = try LabelSet(validating: [("__name__", "up"), ("job", "x")])
        let b = try LabelSet(validating: [("__name__", "up"), ("zone", "x")])
        let c = try LabelSet(validating: [("job", "x"), ("__name__", "up")])
        #expect(a != b)
        #expect(a == c && a.hashValue == c.hashValue)
        let table: [LabelSet: Int] = [a: 1, b: 2]
        #expect(table[c] == 1 && table[b] == 2 && table.count == 2)
        #expect(Set([a, b, c]).count == 2)
        // Names count in the hash: a target whose series differ only in their label names must
        // not put every series in one bucket (each lookup would read them all).
        let sameValues = try (0..<200).map { try LabelSet(validating: [("__name__", "m"), ("a\($0)", "x")]) }
        #expect(Set(sameValues.map(\.hashValue)).count == sameValues.count)
    }

    @Test("a label set's storage address is where its labels live, shared by copies, for prefetching only")
    func storageAddress() throws {
        let a = try LabelSet(validating: [("__name__", "up"), ("job", "x")])
        let copy = a
        let b = try LabelSet(validating: [("__name__", "up"), ("job", "x")])
        #expect(a.storageAddress != 0)
        #expect(copy.storageAddress == a.storageAddress)
        // An equal set built anew is another object: another address.
        #expect(b.storageAddress != a.storageAddress)
        // The address is the storage object's start: its elements come 32 bytes after.
        let elements = a.labels.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        #expect(elements &- a.storageAddress == 32)
        // A prefetch of any address (none, a label set, one past the end of memory) neither
        // faults nor changes the label set.
        for address in [0, a.storageAddress, UInt.max, 1] { LabelSet.prefetch(storageAt: address) }
        #expect(a == b && a.metricName == "up")
    }

    @Test("an invalid metric name and a repeated name are rejected")
    func invalidMetricAndDuplicate() {
        #expect(throws: LabelError(.invalidMetricName, name: "1up")) { try LabelSet(validating: [("__name__", "1up")]) }
        #expect(throws: LabelError(.duplicateLabelName, name: "a")) {
            try LabelSet(validating: [("a", "1"), ("a", "2")])
        }
        #expect(LabelSet.isValidMetricName("nats:in_msgs:rate5m"))
    }

    @Test("Prometheus notation escapes backslash, quote and newline")
    func notation() throws {
        let labels = try LabelSet(validating: [("__name__", "m"), ("b", "x\"y\\z\nw"), ("a", "1")])
        #expect(labels.description == #"m{a="1",b="x\"y\\z\nw"}"#)
        #expect(try LabelSet(validating: [("__name__", "up")]).description == "up")
        #expect(try LabelSet(validating: [("job", "x")]).description == #"{job="x"}"#)
    }

    @Test("fingerprints match Alertmanager's for the same labels")
    func alertmanagerFingerprints() throws {
        // Captured from Alertmanager 0.25 (shared/fixtures/alertmanager/webhook-v4-example.json).
        let url = try #require(Bundle.module.url(forResource: "Fixtures/webhook-v4-example", withExtension: "json"))
        struct Payload: Decodable {
            struct Alert: Decodable {
                var labels: [String: String]
                var fingerprint: String
            }
            var alerts: [Alert]
        }
        let payload = try JSONDecoder().decode(Payload.self, from: Data(contentsOf: url))
        #expect(!payload.alerts.isEmpty)
        for alert in payload.alerts {
            #expect(try LabelSet(validating: alert.labels).fingerprint.description == alert.fingerprint)
        }
        #expect(LabelSet().fingerprint.rawValue == 14_695_981_039_346_656_037)
    }

    @Test("label sets encode as a JSON object and decode back")
    func codable() throws {
        let labels = try LabelSet(validating: [("__name__", "m"), ("a", "1")])
        let data = try JSONEncoder().encode(labels)
        #expect(try JSONDecoder().decode(LabelSet.self, from: data) == labels)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(LabelSet.self, from: Data(#"{"1a":"x"}"#.utf8)) }
    }

    @Test("timestamps render as RFC 3339 in UTC and survive the calendar round trip")
    func timestamps() {
        #expect(Timestamp(milliseconds: 1_764_000_201_315).description == "2025-11-24T16:03:21.315Z")
        #expect(Timestamp(milliseconds: -1).description == "1969-12-31T23:59:59.999Z")
        for ms: Int64 in [0, 951_782_400_000, 4_102_444_800_123, -86_400_001] {
            #expect(CivilTime(milliseconds: ms).milliseconds == ms)
        }
        #expect(Timestamp(seconds: .nan) == nil)
    }
}
