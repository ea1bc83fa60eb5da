import FlatlineCore

/// Number and time text as the formats we read write it.
package enum NumberText {
    /// Go's `strconv.ParseFloat` on decimal text, as Prometheus uses it: digits with an optional
    /// fraction and exponent, `NaN`, `Inf`/`Infinity` with an optional sign, case-insensitive.
    /// Hex and `_` separators are rejected.
    package static func parseDouble(_ text: some StringProtocol) -> Double? {
        var text = String(text)
        return text.withUTF8 { parseDouble($0) }
    }

    /// ``parseDouble(_:)-(StringProtocol)`` on bytes. Correctly rounded: decimals of at most 19
    /// significant digits whose value and power of ten are exact doubles (most numbers in
    /// monitoring data) are one multiplication or division; the rest go to the C library.
    package static func parseDouble(_ b: UnsafeBufferPointer<UInt8>) -> Double? {
        // Most values: a sign, at most 19 digits with one point among them, nothing else. The
        // mantissa cannot overflow, every digit counts (leading zeros add nothing), and the
        // power of ten is the fraction's length: no per-digit bookkeeping, no bounds checks.
        if let base = b.baseAddress, b.count <= 21 {
            let count = b.count
            var i = 0
            var negative = false
            if count > 0, base[0] == UInt8(ascii: "-") || base[0] == UInt8(ascii: "+") {
                negative = base[0] == UInt8(ascii: "-")
                i = 1
            }
            var mantissa: UInt64 = 0
            var digits = appendDigits(base, from: &i, to: count, onto: &mantissa)
            var fraction = 0
            if i < count, base[i] == UInt8(ascii: ".") {
                i += 1
                fraction = appendDigits(base, from: &i, to: count, onto: &mantissa)
                digits += fraction
            }
            if i == count, digits > 0, digits <= 19 {
                if mantissa == 0 { return negative ? -0.0 : 0.0 }
                if mantissa <= 1 << 53 {
                    let m = Double(mantissa)
                    let value = fraction == 0 ? m : m / powersOfTen[fraction]
                    return negative ? -value : value
                }
            }
        }
        return parseAnyDouble(b)
    }

    /// Appends the decimal digits from `i` on (up to `count` or the first other byte) to
    /// `mantissa`, wrapping past 2⁶⁴ (the caller refuses more than 19 digits); `i` ends after them.
    /// Returns how many there were.
    @inline(__always)
    private static func appendDigits(
        _ base: UnsafePointer<UInt8>,
        from i: inout Int,
        to count: Int,
        onto mantissa: inout UInt64
    ) -> Int {
        let start = i
        while i < count {
            let d = base[i] &- UInt8(ascii: "0")
            if d > 9 { break }
            mantissa = mantissa &* 10 &+ UInt64(d)
            i += 1
        }
        return i - start
    }

    /// ``parseDouble(_:)-(UnsafeBufferPointer<UInt8>)`` for any text: long mantissas, exponents,
    /// `NaN` and `Inf`, and what is refused.
    private static func parseAnyDouble(_ b: UnsafeBufferPointer<UInt8>) -> Double? {
        let count = b.count
        guard count > 0 else { return nil }
        var i = 0
        var negative = false
        if b[0] == UInt8(ascii: "+") || b[0] == UInt8(ascii: "-") {
            negative = b[0] == UInt8(ascii: "-")
            i = 1
        }
        if i < count, b[i] | 0x20 == UInt8(ascii: "i") || b[i] | 0x20 == UInt8(ascii: "n") {
            if isWord(b, from: i, "inf") || isWord(b, from: i, "infinity") { return negative ? -.infinity : .infinity }
            if isWord(b, from: i, "nan") { return i == 0 ? .nan : nil }
            return nil
        }
        var mantissa: UInt64 = 0
        var significant = 0
        var exponent = 0
        var exact = true
        var digits = 0
        while i < count, isDigit(b[i]) {
            let d = UInt64(b[i] &- UInt8(ascii: "0"))
            if mantissa != 0 || d != 0 {
                if significant < 19 {
                    mantissa = mantissa &* 10 &+ d
                    significant += 1
                } else {
                    exact = false
                    exponent &+= 1
                }
            }
            i += 1
            digits += 1
        }
        if i < count, b[i] == UInt8(ascii: ".") {
            i += 1
            while i < count, isDigit(b[i]) {
                let d = UInt64(b[i] &- UInt8(ascii: "0"))
                if mantissa != 0 || d != 0 {
                    if significant < 19 {
                        mantissa = mantissa &* 10 &+ d
                        significant += 1
                        exponent &-= 1
                    } else {
                        exact = false
                    }
                } else {
                    exponent &-= 1
                }
                i += 1
                digits += 1
            }
        }
        guard digits > 0 else { return nil }
        if i < count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            var negativeExponent = false
            if i < count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
                negativeExponent = b[i] == UInt8(ascii: "-")
                i += 1
            }
            var written = 0
            var expDigits = 0
            while i < count, isDigit(b[i]) {
                // Past a few digits the value is 0 or infinite anyway: the C library decides.
                if written < 100_000 { written = written * 10 + Int(b[i] &- UInt8(ascii: "0")) }
                i += 1
                expDigits += 1
            }
            guard expDigits > 0 else { return nil }
            exponent &+= negativeExponent ? -written : written
        }
        guard i == count else { return nil }
        if mantissa == 0 && exact { return negative ? -0.0 : 0.0 }
        if exact, mantissa <= 1 << 53, exponent >= -22, exponent <= 22 {
            let m = Double(mantissa)
            let value = exponent < 0 ? m / powersOfTen[-exponent] : m * powersOfTen[exponent]
            return negative ? -value : value
        }
        return Double(String(decoding: b, as: UTF8.self))
    }

    /// 10⁰ … 10²², every one exact in a double.
    private static let powersOfTen: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ]

    /// Whether `b` from `start` to its end is `word`, ignoring ASCII case (`word` lowercase).
    @inline(__always)
    static func isWord(_ b: UnsafeBufferPointer<UInt8>, from start: Int, _ word: StaticString) -> Bool {
        guard b.count - start == word.utf8CodeUnitCount else { return false }
        return word.withUTF8Buffer { w in
            for k in 0..<w.count where b[start + k] | 0x20 != w[k] { return false }
            return true
        }
    }

    /// Unsigned decimal digits as an Int64; nil when empty, anything else is in it, or it overflows.
    /// Up to 18 digits (no overflow possible) the first eight are read at once (timestamps are
    /// 10 to 13 digits), the rest one by one.
    package static func parseDigits(_ b: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard !b.isEmpty else { return nil }
        guard let base = b.baseAddress, b.count <= 18 else { return parseDigitsChecked(b) }
        var value: UInt64 = 0
        var i = 0
        if b.count >= 8 {
            guard let eight = eightDigits(UInt64(littleEndian: UnsafeRawPointer(base).loadUnaligned(as: UInt64.self)))
            else { return nil }
            value = eight
            i = 8
        }
        while i < b.count {
            let d = b[i] &- UInt8(ascii: "0")
            guard d < 10 else { return nil }
            value = value &* 10 &+ UInt64(d)
            i += 1
        }
        return Int64(truncatingIfNeeded: value)
    }

    /// The value of eight ASCII digits loaded as a little-endian word (the first digit in the
    /// lowest byte); nil when a byte is not a digit. The usual SWAR steps: pairs, then fours, then
    /// the eight.
    @inline(__always)
    static func eightDigits(_ word: UInt64) -> UInt64? {
        // Every byte 0x30...0x39: its high nibble is 3, and adding 6 does not carry out of it.
        let high = word & 0xF0F0_F0F0_F0F0_F0F0
        let carried = (word &+ 0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0
        guard high | (carried >> 4) == 0x3333_3333_3333_3333 else { return nil }
        var v = word &- 0x3030_3030_3030_3030
        v = (v &* 10) &+ (v >> 8)
        let mask: UInt64 = 0x0000_00FF_0000_00FF
        v = (((v & mask) &* 0x000F_4240_0000_0064) &+ (((v >> 16) & mask) &* 0x0000_2710_0000_0001)) >> 32
        return v
    }

    /// ``parseDigits(_:)`` one digit at a time with overflow checks: any length.
    static func parseDigitsChecked(_ b: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard !b.isEmpty else { return nil }
        var value: Int64 = 0
        for byte in b {
            guard isDigit(byte) else { return nil }
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times.addingReportingOverflow(Int64(byte &- UInt8(ascii: "0")))
            guard !o1, !o2 else { return nil }
            value = sum
        }
        return value
    }

    /// A timestamp written as `YYYY-MM-DD HH:MM:SS[.fff]` (UTC), RFC 3339
    /// (`YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`), or Unix time in seconds (integer or decimal; values
    /// above 10¹¹ are taken as milliseconds).
    package static func parseTimestamp(_ text: some StringProtocol) -> Timestamp? {
        var text = String(text)
        return text.withUTF8 { parseTimestamp($0) }
    }

    /// ``parseTimestamp(_:)-(StringProtocol)`` on bytes.
    package static func parseTimestamp(_ t: UnsafeBufferPointer<UInt8>) -> Timestamp? {
        guard let first = t.first else { return nil }
        if isDigit(first) || first == UInt8(ascii: "-") || first == UInt8(ascii: "+") || first == UInt8(ascii: ".") {
            if t.count >= 10, t[4] == UInt8(ascii: "-") { return parseCalendar(Array(t)) }
            guard let seconds = parseDouble(t), seconds.isFinite else { return nil }
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
