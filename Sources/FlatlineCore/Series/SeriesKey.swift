/// A stable 64-bit identity of a series: the FNV-1a fingerprint of its label set.
///
/// Stable across processes and machines (unlike Swift's seeded `Hasher`), so it can name a series
/// in saved state, in URLs and in alerts. Rendered as 16 lowercase hex digits like Alertmanager's
/// fingerprints.
public struct SeriesKey: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// The 64-bit fingerprint.
    public var rawValue: UInt64

    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    /// 16 lowercase hex digits.
    public var description: String {
        let hex = String(rawValue, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    public static func < (lhs: SeriesKey, rhs: SeriesKey) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The 64-bit FNV-1a hash, as Go's `hash/fnv` and Prometheus's `model` package compute it.
package struct FNV1a64: Sendable {
    package private(set) var value: UInt64 = 14_695_981_039_346_656_037

    package init() {}

    package mutating func add(byte: UInt8) {
        value ^= UInt64(byte)
        value &*= 1_099_511_628_211
    }

    package mutating func add(_ string: String) {
        for byte in string.utf8 { add(byte: byte) }
    }
}
