import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineCore

@Suite("State coding")
struct StateCodingTests {
    @Test("packed doubles and floats keep every bit, NaN and signed zero included")
    func packedBits() throws {
        let doubles: [Double] = [0, -0.0, .nan, -.infinity, .infinity, 0.1 + 0.2, .leastNonzeroMagnitude, -1e308]
        let decoded = try JSONDecoder().decode(PackedDoubles.self, from: JSONEncoder().encode(PackedDoubles(doubles)))
        #expect(decoded.values.map(\.bitPattern) == doubles.map(\.bitPattern))
        let floats: [Float] = [1, .nan, -0.0, 3.4e38]
        let decodedFloats = try JSONDecoder().decode(
            PackedFloats.self,
            from: JSONEncoder().encode(PackedFloats(floats))
        )
        #expect(decodedFloats.values.map(\.bitPattern) == floats.map(\.bitPattern))
        #expect(
            try JSONDecoder().decode(PackedDoubles.self, from: JSONEncoder().encode(PackedDoubles([]))).values.isEmpty
        )
    }

    @Test("base64 matches the RFC 4648 test vectors and refuses malformed text")
    func base64() {
        let vectors = [
            "": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=",
            "foobar": "Zm9vYmFy",
        ]
        for (plain, encoded) in vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(Base64.decode(encoded) == Array(plain.utf8))
        }
        for bad in ["Zg=", "Z===", "Zm9v!", "Zg==Zg=="] { #expect(Base64.decode(bad) == nil, "\(bad)") }
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(PackedDoubles.self, from: Data(#""Zg==""#.utf8))
        }
    }

    @Test("a detection bank round-trips, and a truncated one is refused, not crashed on")
    func bank() throws {
        var bank = try DetectionBank(configuration: DetectorConfiguration(), step: 15)
        let labels = try LabelSet(validating: [("__name__", "m")])
        for i in 0..<50 {
            _ = bank.process(
                time: Timestamp(milliseconds: Int64(i) * 15000),
                samples: [Sample(labels: labels, value: Double(i % 5), timestamp: Timestamp(milliseconds: 0))]
            )
        }
        let data = try TestSupport.canonicalJSON(bank)
        let restored = try JSONDecoder().decode(DetectionBank.self, from: data)
        #expect(try TestSupport.canonicalJSON(restored) == data)
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode(DetectionBank.self, from: data.prefix(data.count / 2))
        }
    }
}
