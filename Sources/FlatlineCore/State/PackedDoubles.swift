/// A `[Double]` that encodes as base64 of its little-endian IEEE 754 bit patterns.
///
/// Detector state must restore bit for bit (a replay split by a save and a restore gives the same
/// output as one straight run), including NaN for "no value", which JSON numbers cannot carry.
/// Base64 of the raw bits is exact, and about a third of the size of decimal text.
package struct PackedDoubles: Codable, Sendable, Hashable {
    package var values: [Double]

    package init(_ values: [Double]) {
        self.values = values
    }

    package init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let bytes = Base64.decode(text), bytes.count % 8 == 0 else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not base64 of 8-byte doubles")
            )
        }
        var values = [Double]()
        values.reserveCapacity(bytes.count / 8)
        var i = 0
        while i < bytes.count {
            var bits: UInt64 = 0
            for k in 0..<8 { bits |= UInt64(bytes[i + k]) << (8 * UInt64(k)) }
            values.append(Double(bitPattern: bits))
            i += 8
        }
        self.values = values
    }

    package func encode(to encoder: any Encoder) throws {
        var bytes = [UInt8]()
        bytes.reserveCapacity(values.count * 8)
        for value in values {
            let bits = value.bitPattern
            for k in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(k)))) }
        }
        var container = encoder.singleValueContainer()
        try container.encode(Base64.encode(bytes))
    }
}

/// A `[Float]` that encodes as base64 of its little-endian bit patterns (see ``PackedDoubles``).
package struct PackedFloats: Codable, Sendable, Hashable {
    package var values: [Float]

    package init(_ values: [Float]) {
        self.values = values
    }

    package init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let bytes = Base64.decode(text), bytes.count % 4 == 0 else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not base64 of 4-byte floats")
            )
        }
        var values = [Float]()
        values.reserveCapacity(bytes.count / 4)
        var i = 0
        while i < bytes.count {
            var bits: UInt32 = 0
            for k in 0..<4 { bits |= UInt32(bytes[i + k]) << (8 * UInt32(k)) }
            values.append(Float(bitPattern: bits))
            i += 4
        }
        self.values = values
    }

    package func encode(to encoder: any Encoder) throws {
        var bytes = [UInt8]()
        bytes.reserveCapacity(values.count * 4)
        for value in values {
            let bits = value.bitPattern
            for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt32(k)))) }
        }
        var container = encoder.singleValueContainer()
        try container.encode(Base64.encode(bytes))
    }
}

/// Standard base64 (RFC 4648, with padding).
package enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    package static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 2 < bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
            out.append(alphabet[Int(n & 63)])
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(UInt8(ascii: "="))
            out.append(UInt8(ascii: "="))
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
            out.append(UInt8(ascii: "="))
        }
        return String(decoding: out, as: UTF8.self)
    }

    package static func decode(_ text: String) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(input.count / 4 * 3)
        var i = 0
        while i < input.count {
            var n: UInt32 = 0
            var padding = 0
            for k in 0..<4 {
                let c = input[i + k]
                if c == UInt8(ascii: "=") {
                    guard i + 4 == input.count, k >= 2 else { return nil }
                    padding += 1
                    n <<= 6
                    continue
                }
                guard padding == 0 else { return nil }
                let v = reverse[Int(c)]
                guard v != 0xFF else { return nil }
                n = n << 6 | UInt32(v)
            }
            out.append(UInt8(n >> 16 & 0xFF))
            if padding < 2 { out.append(UInt8(n >> 8 & 0xFF)) }
            if padding < 1 { out.append(UInt8(n & 0xFF)) }
            i += 4
        }
        return out
    }
}
