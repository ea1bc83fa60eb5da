/// A floating-point type whose values pack as their IEEE 754 bit patterns.
package protocol PackableFloat: BinaryFloatingPoint, Sendable {
    associatedtype Bits: FixedWidthInteger & UnsignedInteger
    var bitPattern: Bits { get }
    init(bitPattern: Bits)
}

extension Double: PackableFloat {}
extension Float: PackableFloat {}

/// An array of floats that encodes as base64 of its little-endian IEEE 754 bit patterns.
///
/// Detector state must restore bit for bit (a replay split by a save and a restore gives the same
/// output as one straight run), including NaN for "no value", which JSON numbers cannot carry.
/// Base64 of the raw bits is exact, and about a third of the size of decimal text.
package struct PackedFloatingPoint<Element: PackableFloat>: Codable, Sendable, Hashable {
    package var values: [Element]

    package init(_ values: [Element]) {
        self.values = values
    }

    private static var width: Int { Element.Bits.bitWidth / 8 }

    package init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        let width = Self.width
        guard let bytes = Base64.decode(text), bytes.count % width == 0 else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not base64 of \(width)-byte floats")
            )
        }
        var values = [Element]()
        values.reserveCapacity(bytes.count / width)
        var i = 0
        while i < bytes.count {
            var bits: Element.Bits = 0
            for k in 0..<width { bits |= Element.Bits(bytes[i + k]) << (8 * k) }
            values.append(Element(bitPattern: bits))
            i += width
        }
        self.values = values
    }

    package func encode(to encoder: any Encoder) throws {
        let width = Self.width
        var bytes = [UInt8]()
        bytes.reserveCapacity(values.count * width)
        for value in values {
            let bits = value.bitPattern
            for k in 0..<width { bytes.append(UInt8(truncatingIfNeeded: bits >> (8 * k))) }
        }
        var container = encoder.singleValueContainer()
        try container.encode(Base64.encode(bytes))
    }
}

/// Doubles packed for state files.
package typealias PackedDoubles = PackedFloatingPoint<Double>
/// Floats packed for state files.
package typealias PackedFloats = PackedFloatingPoint<Float>

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

/// Little-endian binary records for state files: many small values as one base64 string instead
/// of a JSON node each (the series table of 100,000 series is a million nodes otherwise, and an
/// encoder holds them all at once).
package struct BinaryWriter {
    package private(set) var bytes: [UInt8] = []

    package init(capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    package mutating func integer<T: FixedWidthInteger>(_ value: T) {
        for k in 0..<(T.bitWidth / 8) { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * k))) }
    }

    /// A string as its UTF-8 length (32 bits) and bytes.
    package mutating func string(_ value: String) {
        integer(UInt32(value.utf8.count))
        bytes.append(contentsOf: value.utf8)
    }
}

/// Reads what ``BinaryWriter`` wrote; `nil` past the end.
package struct BinaryReader {
    private let bytes: [UInt8]
    private var offset = 0

    package init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    package var atEnd: Bool { offset == bytes.count }

    package mutating func integer<T: FixedWidthInteger>(_ type: T.Type = T.self) -> T? {
        let width = T.bitWidth / 8
        guard offset + width <= bytes.count else { return nil }
        var value: T = 0
        for k in 0..<width { value |= T(truncatingIfNeeded: bytes[offset + k]) << (8 * k) }
        offset += width
        return value
    }

    package mutating func string() -> String? {
        guard let count = integer(UInt32.self).map(Int.init), offset + count <= bytes.count else { return nil }
        defer { offset += count }
        return String(decoding: bytes[offset..<(offset + count)], as: UTF8.self)
    }
}
