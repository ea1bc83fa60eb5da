import Foundation
import Testing

@testable import FlatlineCore

@Suite("Shortest decimal")
struct ShortestDecimalTests {
    func text(_ value: Double) -> String {
        let bytes = [UInt8](unsafeUninitializedCapacity: ShortestDecimal.maximumLength) { buffer, count in
            guard let base = buffer.baseAddress else { return }
            count = ShortestDecimal.write(value, to: base)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Digits without leading or trailing zeros and the power of ten of the last one, from a
    /// decimal text such as `1.25e-07`, `0.001` or `120.0`.
    func normalised(_ text: Substring) -> (digits: String, exponent: Int)? {
        var mantissa = text
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = text[..<e]
            guard let power = Int(text[text.index(after: e)...]) else { return nil }
            exponent = power
        }
        var digits = ""
        var seenPoint = false
        for ch in mantissa {
            if ch == "." {
                seenPoint = true
            } else {
                digits.append(ch)
                if seenPoint { exponent -= 1 }
            }
        }
        while digits.hasPrefix("0") { digits.removeFirst() }
        while digits.hasSuffix("0") {
            digits.removeLast()
            exponent += 1
        }
        return (digits, exponent)
    }

    @Test("the digits are the shortest that read back, as Python's repr (an independent implementation) finds them")
    func againstPython() throws {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/shortest-decimal", withExtension: "csv"))
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").dropFirst()
        #expect(lines.count > 7000)
        for line in lines {
            let fields = line.split(separator: ",")
            let pattern = try #require(UInt64(fields[0], radix: 16))
            let value = Double(bitPattern: pattern)
            let expected = try #require(normalised(fields[1]))
            let (digits, exponent) = ShortestDecimal.shortest(value)
            let got = try #require(normalised(Substring(String(digits) + "e" + String(exponent))))
            #expect(got.digits == expected.digits && got.exponent == expected.exponent, "\(fields[1])")
            #expect(Double(text(value)) == value, "\(fields[1]) read back")
        }
    }

    @Test("the text is Double.description's, byte for byte")
    func againstDescription() {
        var values: [Double] = [
            0, -0.0, 1, -1, 0.1, 0.3, 1.0 / 3, 42, 123.25, 0.0001, 0.0001.nextDown, 0.001,
            9_007_199_254_740_992, 9_007_199_254_740_992.nextUp, 9_007_199_254_740_992.nextDown, 1e15, 1e16,
            1e21, 1e22, 1e23, .leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude,
            -.greatestFiniteMagnitude, 4_503_599_627_370_495.5, 1e15 + 0.5, 9.999e-05, 5e-05,
            .nan, -.nan, .signalingNaN, .infinity, -.infinity,
        ]
        var random = SplitMix64(seed: 6)
        for _ in 0..<100_000 {
            let value = Double(bitPattern: random.next())
            if value.isFinite { values.append(value) }
        }
        for _ in 0..<100_000 {
            values.append((random.uniform() - 0.5) * 2_000)
            values.append(Double(Int(truncatingIfNeeded: random.next() % 2_000_001) - 1_000_000) / 1_000)
        }
        // Decimals of every length from 1 to 17 significant digits at many scales: the digits
        // dropped from Ryū's 17 or 18 run from none to sixteen, so every way of dropping them
        // (eight, four, two and one at a time, and which of them comes last) is taken.
        for length in 1...17 {
            let low = pow(10, Double(length - 1))
            for _ in 0..<4_000 {
                let digits = (low + (random.uniform() * 9 * low).rounded(.down)).rounded(.down)
                let scale = Int(random.next() % 41) - 20
                values.append(Double("\(Int(digits))e\(scale)") ?? 0)
            }
        }
        for power in -330...310 {
            let p = pow(10, Double(power))
            values += [p, p.nextUp, p.nextDown, 7 * p, -3.5 * p]
        }
        var binary = 1.0
        for _ in 0..<1_100 {
            values += [binary, binary.nextUp, binary.nextDown, 1 / binary, (1 / binary).nextUp]
            binary *= 2
        }
        var mismatches: [String] = []
        for value in values {
            let written = text(value)
            if written != value.description { mismatches.append("\(value.description) written as \(written)") }
        }
        #expect(values.count > 300_000)
        #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
    }
}
