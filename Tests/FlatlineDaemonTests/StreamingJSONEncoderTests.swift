import FlatlineCore
import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineDaemon

/// The state files' streaming writer: what it writes is the JSON Foundation's encoder writes (as
/// parsed documents), and decodes back to the same value.
@Suite("Streaming JSON encoder")
struct StreamingJSONEncoderTests {
    struct Shape: Codable, Equatable {
        struct Inner: Codable, Equatable {
            var name: String
            var values: [Double?]
        }

        var text: String
        var number: Double
        var small: Float
        var integers: [Int64]
        var flag: Bool
        var missing: Int?
        var inner: Inner
        var list: [Inner]
        var map: [String: [Int]]
        var empty: [String]
        var emptyMap: [String: Int]
        var nested: [[Int]]
    }

    static func streamed(_ value: some Encodable) throws -> Data {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let file = directory.file("out.json")
        _ = FileManager.default.createFile(atPath: file.path, contents: nil)
        let handle = try FileHandle(forWritingTo: file)
        try StreamingJSONEncoder().encode(value, to: handle)
        try handle.close()
        return try Data(contentsOf: file)
    }

    static func same(_ a: Data, _ b: Data) throws -> Bool {
        // Both parsed, then written again the same way: equal documents give equal bytes.
        func canonical(_ data: Data) throws -> Data {
            let object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed])
        }
        return try canonical(a) == canonical(b)
    }

    @Test("nested objects, arrays, optionals, dictionaries and escapes read as Foundation's output does")
    func shapes() throws {
        let value = Shape(
            text: "quote \" backslash \\ newline \n tab \t bell \u{07} ünïcode ✓",
            number: 0.1 + 0.2,
            small: 1.5e-7,
            integers: [0, -1, Int64.max, Int64.min],
            flag: true,
            missing: nil,
            inner: Shape.Inner(name: "a", values: [1, nil, -2.5e300]),
            list: [Shape.Inner(name: "b", values: []), Shape.Inner(name: "c", values: [nil])],
            map: ["x": [1, 2], "y\"": []],
            empty: [],
            emptyMap: [:],
            nested: [[], [1], [2, 3]]
        )
        let data = try Self.streamed(value)
        #expect(try Self.same(data, JSONEncoder().encode(value)), "\(String(decoding: data, as: UTF8.self))")
        #expect(try JSONDecoder().decode(Shape.self, from: data) == value)
        #expect(try Self.same(Self.streamed(["top", "level"]), JSONEncoder().encode(["top", "level"])))
        #expect(try Self.same(Self.streamed(42), Data("42".utf8)))
    }

    @Test("a detection bank streams to the same document, and restores to the same state")
    func bank() throws {
        var bank = try DetectionBank(configuration: DetectorConfiguration(), step: 15)
        for i in 0..<40 {
            let samples = try (0..<30).map { k in
                Sample(
                    labels: try LabelSet(validating: [("__name__", "m\(k % 3)"), ("cid", "\(k)\"\n")]),
                    value: Double((i * 7 + k) % 11),
                    timestamp: Timestamp(milliseconds: 0),
                    kind: k % 2 == 0 ? .counter : .gauge
                )
            }
            _ = bank.process(time: Timestamp(milliseconds: Int64(i) * 15000), samples: samples)
        }
        let data = try Self.streamed(bank)
        #expect(try Self.same(data, JSONEncoder().encode(bank)))
        let restored = try JSONDecoder().decode(DetectionBank.self, from: data)
        #expect(try TestSupport.canonicalJSON(restored) == TestSupport.canonicalJSON(bank))
    }

    @Test("numbers JSON cannot carry are written as Prometheus' strings, read back by a lenient decoder")
    func nonFinite() throws {
        struct Holder: Codable, Equatable { var x: Double, y: Double, z: Float }
        let data = try Self.streamed(["a": Holder(x: .infinity, y: -.infinity, z: .infinity)])
        #expect(String(decoding: data, as: UTF8.self).contains(#""x":"+Inf""#))
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "+Inf",
            negativeInfinity: "-Inf",
            nan: "NaN"
        )
        #expect(
            try decoder.decode([String: Holder].self, from: data) == [
                "a": Holder(x: .infinity, y: -.infinity, z: .infinity)
            ]
        )
    }
}
