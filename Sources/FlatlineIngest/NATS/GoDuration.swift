/// Go's `time.Duration` text, as the NATS monitoring endpoints write `rtt`, `idle` and `uptime`:
/// `0s`, `312.5µs`, `1.5ms`, `2m3.004s`, `1h2m`, `3d4h` (the server's own day form), `-1s`.
enum GoDuration {
    /// Seconds, or `nil` when the text is not a duration.
    static func seconds(_ text: some StringProtocol) -> Double? {
        var bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return nil }
        var sign = 1.0
        if bytes[0] == UInt8(ascii: "-") || bytes[0] == UInt8(ascii: "+") {
            if bytes[0] == UInt8(ascii: "-") { sign = -1 }
            bytes.removeFirst()
        }
        if bytes == Array("0".utf8) { return 0 }
        var i = 0
        var total = 0.0
        var parts = 0
        while i < bytes.count {
            let start = i
            while i < bytes.count,
                (bytes[i] >= UInt8(ascii: "0") && bytes[i] <= UInt8(ascii: "9")) || bytes[i] == UInt8(ascii: ".")
            {
                i += 1
            }
            guard i > start, let number = Double(String(decoding: bytes[start..<i], as: UTF8.self)) else { return nil }
            let unitStart = i
            while i < bytes.count, !(bytes[i] >= UInt8(ascii: "0") && bytes[i] <= UInt8(ascii: "9")),
                bytes[i] != UInt8(ascii: ".")
            {
                i += 1
            }
            let unit: Double
            switch String(decoding: bytes[unitStart..<i], as: UTF8.self) {
            case "ns": unit = 1e-9
            case "us", "µs", "μs": unit = 1e-6
            case "ms": unit = 1e-3
            case "s": unit = 1
            case "m": unit = 60
            case "h": unit = 3600
            case "d": unit = 86_400
            case "y": unit = 31_536_000
            default: return nil
            }
            total += number * unit
            parts += 1
        }
        return parts > 0 ? sign * total : nil
    }
}
