/// Go's `time.Duration` text, as the NATS monitoring endpoints write `rtt`, `idle` and `uptime`:
/// `0s`, `312.5µs`, `1.5ms`, `2m3.004s`, `1h2m`, `3d4h` (the server's own day form), `-1s`.
enum GoDuration {
    /// Seconds, or `nil` when the text is not a duration.
    static func seconds(_ text: some StringProtocol) -> Double? {
        var text = String(text)
        return text.withUTF8 { seconds(utf8: $0) }
    }

    /// Seconds of a duration given as UTF-8 bytes, or `nil` when they are not a duration. Reads
    /// the bytes in place: `/connz` has two durations per connection.
    static func seconds(utf8 bytes: UnsafeBufferPointer<UInt8>) -> Double? {
        guard !bytes.isEmpty else { return nil }
        var i = 0
        var sign = 1.0
        if bytes[0] == UInt8(ascii: "-") || bytes[0] == UInt8(ascii: "+") {
            if bytes[0] == UInt8(ascii: "-") { sign = -1 }
            i = 1
        }
        if bytes.count == i + 1 && bytes[i] == UInt8(ascii: "0") { return 0 }
        var total = 0.0
        var parts = 0
        while i < bytes.count {
            let start = i
            while i < bytes.count, isNumberByte(bytes[i]) { i += 1 }
            guard i > start, let number = decimal(UnsafeBufferPointer(rebasing: bytes[start..<i])) else { return nil }
            let unitStart = i
            while i < bytes.count, !isNumberByte(bytes[i]) { i += 1 }
            guard let unit = unit(UnsafeBufferPointer(rebasing: bytes[unitStart..<i])) else { return nil }
            total += number * unit
            parts += 1
        }
        return parts > 0 ? sign * total : nil
    }

    private static func isNumberByte(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: ".")
    }

    /// Seconds per unit: `ns`, `us` (or `µs`, `μs`), `ms`, `s`, `m`, `h`, `d`, `y`.
    private static func unit(_ text: UnsafeBufferPointer<UInt8>) -> Double? {
        switch text.count {
        case 1:
            switch text[0] {
            case UInt8(ascii: "s"): return 1
            case UInt8(ascii: "m"): return 60
            case UInt8(ascii: "h"): return 3600
            case UInt8(ascii: "d"): return 86_400
            case UInt8(ascii: "y"): return 31_536_000
            default: return nil
            }
        case 2 where text[1] == UInt8(ascii: "s"):
            switch text[0] {
            case UInt8(ascii: "n"): return 1e-9
            case UInt8(ascii: "u"): return 1e-6
            case UInt8(ascii: "m"): return 1e-3
            default: return nil
            }
        case 3 where text[2] == UInt8(ascii: "s"):
            // µ (U+00B5, micro sign) and μ (U+03BC, Greek mu), as Go writes either.
            let micro = (text[0] == 0xC2 && text[1] == 0xB5) || (text[0] == 0xCE && text[1] == 0xBC)
            return micro ? 1e-6 : nil
        default:
            return nil
        }
    }

    /// Digits with at most one point. Up to 15 digits the value is the digits as a whole number,
    /// divided by a power of ten: both exact, so the quotient is correctly rounded, the same as
    /// `Double(String)`, which reads longer ones.
    private static func decimal(_ text: UnsafeBufferPointer<UInt8>) -> Double? {
        var mantissa: UInt64 = 0
        var digits = 0
        var fraction = 0
        var point = false
        for b in text {
            if b == UInt8(ascii: ".") {
                guard !point else { return nil }
                point = true
                continue
            }
            digits += 1
            if point { fraction += 1 }
            if digits <= 15 { mantissa = mantissa &* 10 &+ UInt64(b &- UInt8(ascii: "0")) }
        }
        guard digits > 0 else { return nil }
        guard digits <= 15 else { return Double(String(decoding: text, as: UTF8.self)) }
        return Double(mantissa) / powersOfTen[fraction]
    }

    private static let powersOfTen: [Double] = (0...15).map { k in (0..<k).reduce(1.0) { r, _ in r * 10 } }
}
