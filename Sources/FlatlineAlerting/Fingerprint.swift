/// An alert's identity: a hash of its label set, computed as Alertmanager (Prometheus'
/// `model.LabelSet.Fingerprint`) computes it, so Flatline's fingerprints match the ones
/// Alertmanager shows and sends for the same labels. Annotations do not count.
public struct AlertFingerprint: Hashable, Sendable, Comparable, Codable, CustomStringConvertible {
    public var value: UInt64

    public init(value: UInt64) {
        self.value = value
    }

    /// FNV-1a (64 bit) over the labels sorted by name: name, 0xFF, value, 0xFF for each.
    public init(labels: [String: String]) {
        var hash: UInt64 = 14_695_981_039_346_656_037
        func add(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash = hash &* 1_099_511_628_211
        }
        for name in labels.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            for byte in name.utf8 { add(byte) }
            add(0xFF)
            for byte in (labels[name] ?? "").utf8 { add(byte) }
            add(0xFF)
        }
        value = hash
    }

    /// Sixteen lowercase hex digits, as in the webhook payload and the API.
    public var description: String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    public static func < (lhs: AlertFingerprint, rhs: AlertFingerprint) -> Bool { lhs.value < rhs.value }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard text.count == 16, let value = UInt64(text, radix: 16) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "\"\(text)\" is not a 16-digit fingerprint")
            )
        }
        self.value = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
