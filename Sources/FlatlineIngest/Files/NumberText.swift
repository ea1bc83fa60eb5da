import FlatlineCore

/// Number and time text as the formats we read write it.
package enum NumberText {
    /// Go's `strconv.ParseFloat` on decimal text, as Prometheus uses it: digits with an optional
    /// fraction and exponent, `NaN`, `Inf`/`Infinity` with an optional sign, case-insensitive.
    /// Hex and `_` separators are rejected.
    package static func parseDouble(_ text: some StringProtocol) -> Double? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return nil }
        var i = 0
        var negative = false
        if bytes[0] == UInt8(ascii: "+") || bytes[0] == UInt8(ascii: "-") {
            negative = bytes[0] == UInt8(ascii: "-")
            i = 1
        }
        // Words only where one can begin (most values are digits: no String for them).
        if i < bytes.count, bytes[i] | 0x20 == UInt8(ascii: "i") || bytes[i] | 0x20 == UInt8(ascii: "n") {
            let word = String(decoding: bytes[i...], as: UTF8.self).lowercased()
            if word == "inf" || word == "infinity" { return negative ? -.infinity : .infinity }
            if word == "nan" { return i == 0 ? .nan : nil }
        }
        var digits = 0
        while i < bytes.count, isDigit(bytes[i]) {
            i += 1
            digits += 1
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            while i < bytes.count, isDigit(bytes[i]) {
                i += 1
                digits += 1
            }
        }
        guard digits > 0 else { return nil }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            var expDigits = 0
            while i < bytes.count, isDigit(bytes[i]) {
                i += 1
                expDigits += 1
            }
            guard expDigits > 0 else { return nil }
        }
        guard i == bytes.count else { return nil }
        return Double(text)
    }

    /// A timestamp written as `YYYY-MM-DD HH:MM:SS[.fff]` (UTC), RFC 3339
    /// (`YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`), or Unix time in seconds (integer or decimal; values
    /// above 10¹¹ are taken as milliseconds).
    package static func parseTimestamp(_ text: some StringProtocol) -> Timestamp? {
        let t = text.utf8
        guard let first = t.first else { return nil }
        if isDigit(first) || first == UInt8(ascii: "-") || first == UInt8(ascii: "+") || first == UInt8(ascii: ".") {
            if t.count >= 10, Array(t)[4] == UInt8(ascii: "-") { return parseCalendar(Array(t)) }
            guard let seconds = parseDouble(text), seconds.isFinite else { return nil }
            // Out of range (`1e19`) is no time at all, never a trap.
            return abs(seconds) > 1e11 ? Timestamp(exactMilliseconds: seconds) : Timestamp(seconds: seconds)
        }
        return nil
    }

    /// `YYYY-MM-DD`, then `T` or a space, `HH:MM[:SS[.fff…]]`, then nothing, `Z` or `±HH:MM`.
    static func parseCalendar(_ b: [UInt8]) -> Timestamp? { Timestamp.parseCalendar(b) }

    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
}
