import Testing

@testable import FlatlineDaemon

/// Replay writes its numbers as `Double.description` does (the output is compared byte for byte
/// between versions); zero and whole numbers take a path of their own, which must give the same
/// text.
@Suite("Replay's number text")
struct ReplayNumberTextTests {
    static func written(_ value: Double) -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        let count = bytes.withUnsafeMutableBufferPointer { buffer -> Int in
            guard let base = buffer.baseAddress else { return 0 }
            var out = ByteWriter(base)
            out.append(number: value, empty: "-")
            return out.count
        }
        return String(decoding: bytes[..<count], as: UTF8.self)
    }

    @Test("zero, whole numbers up to and past 10¹⁵, fractions and extremes read as their description")
    func sameAsDescription() {
        var values: [Double] = [0, -0.0, 1, -1, 9, 10, 99, 100, 42, -42, 1e14, 1e15 - 1, -(1e15 - 1), 1e15, 1e15 + 2]
        values += [9_007_199_254_740_992, 1e16, 1e300, 0.5, -0.25, 1e-300, .leastNonzeroMagnitude]
        values += [.greatestFiniteMagnitude, 123_456_789, 0.1 + 0.2, 2.5e-7, 999_999_999_999_999]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let whole = Double(Int64.random(in: -2_000_000_000_000_000...2_000_000_000_000_000, using: &generator))
            values.append(whole)
            values.append(whole / 1000)
            values.append(Double(Int.random(in: -100...100, using: &generator)))
            values.append(Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &generator)))
        }
        var mismatches: [String] = []
        for value in values where value.isFinite && Self.written(value) != value.description {
            mismatches.append("\(value.description) written as \(Self.written(value))")
        }
        #expect(mismatches.count == 0, "first: \(mismatches.prefix(5))")
        #expect(Self.written(0) == "0.0")
        #expect(Self.written(-0.0) == "-0.0")
        #expect(Self.written(.nan) == "-")
        #expect(Self.written(-.infinity) == "-")
    }
}
