/// The shortest decimal text that reads back as a `Double`, written into memory: the same text as
/// `Double.description` for every value, without building a `String`.
///
/// The digits are Ryū's (Adams, "Ryū: fast float-to-string conversion", PLDI 2018): the shortest
/// digit string inside the value's rounding interval, the one nearest the exact value when several
/// are that short, ties to even. The layout is `description`'s: plain decimal from 0.0001 up to
/// 2⁵³ (`0.001`, `42.0`, `123.25`), otherwise scientific with a signed exponent of at least two
/// digits (`9.999e-05`, `1e+16`, `5e-324`).
public enum ShortestDecimal {
    /// The most bytes `write` produces (`-2.2250738585072014e-308` is 24).
    public static let maximumLength = 24

    /// Writes `value`'s text at `buffer`, which holds at least `maximumLength` bytes, and returns
    /// how many bytes it wrote. NaN and the infinities are `description`'s `nan`, `inf`, `-inf`.
    public static func write(_ value: Double, to buffer: UnsafeMutablePointer<UInt8>) -> Int {
        if value.isNaN { return put("nan", at: buffer) }
        if value.isInfinite { return put(value < 0 ? "-inf" : "inf", at: buffer) }
        var count = 0
        if value.sign == .minus {
            buffer.initialize(to: UInt8(ascii: "-"))
            count = 1
        }
        let magnitude = value.magnitude
        if magnitude == 0 {
            return count + put("0.0", at: buffer + count)
        }
        let (digits, exponent) = shortest(magnitude)
        let length = digitCount(digits)
        // Where the decimal point goes, counted in digits from the first.
        let point = length + exponent
        var out = buffer + count
        if magnitude >= 0.0001 && magnitude <= 9_007_199_254_740_992 {
            if point <= 0 {
                out = copy("0.", to: out)
                for _ in 0 ..< -point {
                    out.initialize(to: UInt8(ascii: "0"))
                    out += 1
                }
                writeDigits(digits, length, to: out)
                out += length
            } else if point >= length {
                writeDigits(digits, length, to: out)
                out += length
                for _ in 0..<point - length {
                    out.initialize(to: UInt8(ascii: "0"))
                    out += 1
                }
                out = copy(".0", to: out)
            } else {
                // The fraction's digits written one place on, then the point in between.
                writeDigits(digits, length, to: out + 1)
                for k in 0..<point { (out + k).initialize(to: out[k + 1]) }
                (out + point).initialize(to: UInt8(ascii: "."))
                out += length + 1
            }
        } else {
            writeDigits(digits, length, to: out + 1)
            out.initialize(to: out[1])
            if length > 1 {
                (out + 1).initialize(to: UInt8(ascii: "."))
                out += length + 1
            } else {
                out += 1
            }
            let power = point - 1
            out = copy(power < 0 ? "e-" : "e+", to: out)
            let shown = power.magnitude
            if shown >= 100 {
                out.initialize(to: UInt8(ascii: "0") + UInt8(truncatingIfNeeded: shown / 100))
                out += 1
            }
            out.initialize(to: UInt8(ascii: "0") + UInt8(truncatingIfNeeded: shown / 10 % 10))
            (out + 1).initialize(to: UInt8(ascii: "0") + UInt8(truncatingIfNeeded: shown % 10))
            out += 2
        }
        return out - buffer
    }

    @inline(__always)
    private static func put(_ text: StaticString, at out: UnsafeMutablePointer<UInt8>) -> Int {
        out.initialize(from: text.utf8Start, count: text.utf8CodeUnitCount)
        return text.utf8CodeUnitCount
    }

    @inline(__always)
    private static func copy(_ text: StaticString, to out: UnsafeMutablePointer<UInt8>)
        -> UnsafeMutablePointer<UInt8>
    {
        out + put(text, at: out)
    }

    /// How many decimal digits `n` (below 10¹⁷, as Ryū's are) has, at least one.
    @inline(__always)
    private static func digitCount(_ n: UInt64) -> Int {
        // Most values take 15–17 digits: compare from the top.
        if n >= 10_000_000_000_000_000 { return 17 }
        if n >= 1_000_000_000_000_000 { return 16 }
        if n >= 100_000_000_000_000 { return 15 }
        var width = 1
        var bound: UInt64 = 10
        while n >= bound && width < 15 {
            width += 1
            bound &*= 10
        }
        return width
    }

    /// The text of every number from 00 to 99, two bytes each.
    private static let digitPairs: StaticString = """
        00010203040506070809101112131415161718192021222324252627282930313233343536373839\
        40414243444546474849505152535455565758596061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899
        """

    /// The two digits of `pair` (below 100) at `out`.
    @inline(__always)
    private static func writePair(_ pair: UInt32, to out: UnsafeMutablePointer<UInt8>) {
        let text = UnsafeRawPointer(digitPairs.utf8Start) + Int(truncatingIfNeeded: pair &* 2)
        UnsafeMutableRawPointer(out).storeBytes(of: text.loadUnaligned(as: UInt16.self), as: UInt16.self)
    }

    /// The `width` decimal digits of `n`, most significant first.
    @inline(__always)
    private static func writeDigits(_ n: UInt64, _ width: Int, to out: UnsafeMutablePointer<UInt8>) {
        var n = n
        var end = out + width
        // Eight digits at a time in 32 bits, two at a time, then the rest.
        while n >= 100_000_000 {
            let high = n / 100_000_000
            var low = UInt32(truncatingIfNeeded: n &- high &* 100_000_000)
            n = high
            for _ in 0..<4 {
                let rest = low / 100
                end -= 2
                writePair(low &- rest &* 100, to: end)
                low = rest
            }
        }
        var small = UInt32(truncatingIfNeeded: n)
        while small >= 100 {
            let rest = small / 100
            end -= 2
            writePair(small &- rest &* 100, to: end)
            small = rest
        }
        if small >= 10 {
            writePair(small, to: end - 2)
        } else {
            (end - 1).initialize(to: UInt8(ascii: "0") + UInt8(truncatingIfNeeded: small))
        }
    }

    // MARK: - Ryū

    /// The shortest `digits` with `digits × 10^exponent` inside the rounding interval of the
    /// positive finite `value`.
    static func shortest(_ value: Double) -> (digits: UInt64, exponent: Int) {
        let mantissaBits = value.significandBitPattern
        let exponentBits = Int(truncatingIfNeeded: value.exponentBitPattern)
        let e2: Int
        let m2: UInt64
        if exponentBits == 0 {
            e2 = 1 - 1023 - 52 - 2
            m2 = mantissaBits
        } else {
            e2 = exponentBits - 1023 - 52 - 2
            m2 = (1 << 52) | mantissaBits
        }
        let acceptBounds = m2 & 1 == 0
        let mv = 4 * m2
        let mmShift: UInt64 = mantissaBits != 0 || exponentBits <= 1 ? 1 : 0

        var vr: UInt64
        var vp: UInt64
        var vm: UInt64
        let e10: Int
        var vmIsTrailingZeros = false
        var vrIsTrailingZeros = false
        if e2 >= 0 {
            let q = log10Pow2(e2) - (e2 > 3 ? 1 : 0)
            e10 = q
            let k = 125 + pow5Bits(q) - 1
            let i = -e2 + q + k
            (vr, vp, vm) = multiplyShiftAll(m2, inverse: true, index: q, shift: i, mmShift: mmShift)
            if q <= 21 {
                if mv % 5 == 0 {
                    vrIsTrailingZeros = isMultipleOfPowerOfFive(mv, q)
                } else if acceptBounds {
                    vmIsTrailingZeros = isMultipleOfPowerOfFive(mv - 1 - mmShift, q)
                } else if isMultipleOfPowerOfFive(mv + 2, q) {
                    vp -= 1
                }
            }
        } else {
            let q = log10Pow5(-e2) - (-e2 > 1 ? 1 : 0)
            e10 = q + e2
            let i = -e2 - q
            let k = pow5Bits(i) - 125
            let j = q - k
            (vr, vp, vm) = multiplyShiftAll(m2, inverse: false, index: i, shift: j, mmShift: mmShift)
            if q <= 1 {
                vrIsTrailingZeros = true
                if acceptBounds {
                    vmIsTrailingZeros = mmShift == 1
                } else {
                    vp -= 1
                }
            } else if q < 63 {
                vrIsTrailingZeros = mv & ((1 << q) - 1) == 0
            }
        }

        var removed = 0
        let output: UInt64
        if vmIsTrailingZeros || vrIsTrailingZeros {
            var lastRemovedDigit: UInt64 = 0
            while vp / 10 > vm / 10 {
                vmIsTrailingZeros = vmIsTrailingZeros && vm % 10 == 0
                vrIsTrailingZeros = vrIsTrailingZeros && lastRemovedDigit == 0
                lastRemovedDigit = vr % 10
                vr /= 10
                vp /= 10
                vm /= 10
                removed += 1
            }
            if vmIsTrailingZeros {
                while vm % 10 == 0 {
                    vrIsTrailingZeros = vrIsTrailingZeros && lastRemovedDigit == 0
                    lastRemovedDigit = vr % 10
                    vr /= 10
                    vp /= 10
                    vm /= 10
                    removed += 1
                }
            }
            if vrIsTrailingZeros && lastRemovedDigit == 5 && vr % 2 == 0 {
                lastRemovedDigit = 4
            }
            let roundUp =
                (vr == vm && (!acceptBounds || !vmIsTrailingZeros)) || lastRemovedDigit >= 5
            output = vr + (roundUp ? 1 : 0)
        } else {
            var roundUp = false
            // Short outputs (a value read from text, say) drop many of the 17 digits: eight and
            // four at a time first. The count dropped is the same as one at a time (once a step
            // fails, every longer one does), and rounding looks only at the last digit dropped,
            // the first of the chunk.
            dropChunk(100_000_000, digits: 8, &vr, &vp, &vm, &removed, &roundUp)
            dropChunk(10_000, digits: 4, &vr, &vp, &vm, &removed, &roundUp)
            dropChunk(100, digits: 2, &vr, &vp, &vm, &removed, &roundUp)
            while vp / 10 > vm / 10 {
                roundUp = vr % 10 >= 5
                vr /= 10
                vp /= 10
                vm /= 10
                removed += 1
            }
            output = vr + (vr == vm || roundUp ? 1 : 0)
        }
        return (output, e10 + removed)
    }

    /// Drops `digits` digits (`divisor` = 10^digits) from the interval when its bounds still
    /// differ above them; `roundUp` then reads the top dropped digit of `vr`.
    @inline(__always)
    private static func dropChunk(
        _ divisor: UInt64,
        digits: Int,
        _ vr: inout UInt64,
        _ vp: inout UInt64,
        _ vm: inout UInt64,
        _ removed: inout Int,
        _ roundUp: inout Bool
    ) {
        let vpBy = vp / divisor
        let vmBy = vm / divisor
        guard vpBy > vmBy else { return }
        let vrBy = vr / divisor
        roundUp = vr &- divisor &* vrBy >= divisor / 2
        vr = vrBy
        vp = vpBy
        vm = vmBy
        removed += digits
    }

    /// ⌈log₂ 5^e⌉ for 0 ≤ e ≤ 3528 (the bit length of 5^e).
    @inline(__always)
    private static func pow5Bits(_ e: Int) -> Int { ((e * 1_217_359) >> 19) + 1 }

    /// ⌊log₁₀ 2^e⌋ for 0 ≤ e ≤ 1650.
    @inline(__always)
    private static func log10Pow2(_ e: Int) -> Int { (e * 78_913) >> 18 }

    /// ⌊log₁₀ 5^e⌋ for 0 ≤ e ≤ 2620.
    @inline(__always)
    private static func log10Pow5(_ e: Int) -> Int { (e * 732_923) >> 20 }

    @inline(__always)
    private static func isMultipleOfPowerOfFive(_ value: UInt64, _ p: Int) -> Bool {
        var value = value
        var count = 0
        while value % 5 == 0 {
            value /= 5
            count += 1
        }
        return count >= p
    }

    /// (4m, 4m + 2, 4m − 1 − mmShift) times the table's 125-bit power, shifted right by `shift`.
    @inline(__always)
    private static func multiplyShiftAll(
        _ m: UInt64,
        inverse: Bool,
        index: Int,
        shift: Int,
        mmShift: UInt64
    ) -> (UInt64, UInt64, UInt64) {
        let table = inverse ? inversePowersOfFive : powersOfFive
        return table.withUnsafeBufferPointer { words in
            let low = words[2 * index]
            let high = words[2 * index + 1]
            return (
                multiplyShift(4 * m, low, high, shift),
                multiplyShift(4 * m + 2, low, high, shift),
                multiplyShift(4 * m - 1 - mmShift, low, high, shift)
            )
        }
    }

    /// ⌊m × (high·2⁶⁴ + low) / 2^shift⌋ for 64 < shift < 128 (the result fits in 64 bits).
    @inline(__always)
    private static func multiplyShift(_ m: UInt64, _ low: UInt64, _ high: UInt64, _ shift: Int)
        -> UInt64
    {
        let b0 = m.multipliedFullWidth(by: low)
        let b2 = m.multipliedFullWidth(by: high)
        // (b0 >> 64) + b2, as 128 bits.
        let (sumLow, carry) = b2.low.addingReportingOverflow(b0.high)
        let sumHigh = b2.high &+ (carry ? 1 : 0)
        let s = shift - 64
        return (sumHigh << (64 - s)) | (sumLow >> s)
    }
}
