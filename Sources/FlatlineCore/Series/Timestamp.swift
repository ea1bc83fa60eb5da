/// A point in time as integer milliseconds since the Unix epoch (UTC), the resolution Prometheus uses.
///
/// Integer milliseconds keep replays exact: two samples taken at the same instant compare equal
/// on every machine, and no wall clock is ever read below the source.
public struct Timestamp: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var milliseconds: Int64

    /// Creates a timestamp from milliseconds since the epoch.
    public init(milliseconds: Int64) {
        self.milliseconds = milliseconds
    }

    /// Creates a timestamp from seconds since the epoch, rounded to the nearest millisecond.
    ///
    /// Returns `nil` when `seconds` is not finite or outside the range of ``Timestamp``.
    public init?(seconds: Double) {
        self.init(exactMilliseconds: seconds * 1000)
    }

    /// Seconds since the epoch.
    public var seconds: Double { Double(milliseconds) / 1000 }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.milliseconds < rhs.milliseconds }

    /// The earliest and latest representable times.
    public static let min = Timestamp(milliseconds: .min)
    public static let max = Timestamp(milliseconds: .max)

    /// Creates a timestamp from milliseconds given as a floating-point number, rounded; `nil` when
    /// it is not finite or outside the range of ``Timestamp`` (so hostile input never traps).
    public init?(exactMilliseconds ms: Double) {
        let rounded = ms.rounded()
        // Double(Int64.max) is 2⁶³, one past the range: compare strictly below it.
        guard rounded.isFinite, rounded >= -9_223_372_036_854_775_808.0, rounded < 9_223_372_036_854_775_808.0
        else { return nil }
        self.milliseconds = Int64(rounded)
    }

    /// The timestamp `seconds` later (or earlier, when negative), rounded to the millisecond, or
    /// `nil` when the result is outside the range of ``Timestamp`` or `seconds` is not finite.
    public func adding(seconds: Double) -> Timestamp? {
        guard let delta = Timestamp(exactMilliseconds: seconds * 1000) else { return nil }
        let (sum, overflow) = milliseconds.addingReportingOverflow(delta.milliseconds)
        return overflow ? nil : Timestamp(milliseconds: sum)
    }

    /// The timestamp `seconds` later (or earlier, when negative), rounded to the millisecond and
    /// saturated at ``min`` and ``max``: arithmetic on times never traps, whatever the input.
    /// NaN leaves the time unchanged.
    public func advanced(bySeconds seconds: Double) -> Timestamp {
        if let result = adding(seconds: seconds) { return result }
        if seconds.isNaN { return self }
        return seconds > 0 ? .max : .min
    }

    /// Seconds from `earlier` to this time (negative when `earlier` is later), computed without
    /// integer overflow.
    public func seconds(since earlier: Timestamp) -> Double {
        let (difference, overflow) = milliseconds.subtractingReportingOverflow(earlier.milliseconds)
        if !overflow { return Double(difference) / 1000 }
        return (Double(milliseconds) - Double(earlier.milliseconds)) / 1000
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-24T15:23:21.315Z`.
    public var description: String { CivilTime(milliseconds: milliseconds).rfc3339 }

    public init(from decoder: any Decoder) throws {
        milliseconds = try decoder.singleValueContainer().decode(Int64.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(milliseconds)
    }
}

/// Proleptic Gregorian calendar arithmetic in UTC, without Foundation, so formatting and
/// parsing give the same result on every platform.
package struct CivilTime: Sendable, Equatable {
    package var year: Int
    package var month: Int
    package var day: Int
    package var hour: Int
    package var minute: Int
    package var second: Int
    package var millisecond: Int

    package init(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, millisecond: Int) {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
        self.millisecond = millisecond
    }

    package init(milliseconds: Int64) {
        let (days, msOfDay) = Self.floorDivide(milliseconds, 86_400_000)
        let (y, m, d) = Self.civil(fromDays: days)
        year = y
        month = m
        day = d
        hour = Int(msOfDay / 3_600_000)
        minute = Int(msOfDay / 60_000 % 60)
        second = Int(msOfDay / 1000 % 60)
        millisecond = Int(msOfDay % 1000)
    }

    /// Milliseconds since the epoch of this civil time in UTC.
    package var milliseconds: Int64 {
        let days = Self.days(fromCivil: year, month, day)
        return days * 86_400_000 + Int64(hour) * 3_600_000 + Int64(minute) * 60_000 + Int64(second) * 1000
            + Int64(millisecond)
    }

    package var rfc3339: String {
        "\(Self.pad(year, 4))-\(Self.pad(month, 2))-\(Self.pad(day, 2))T\(Self.pad(hour, 2)):\(Self.pad(minute, 2)):"
            + "\(Self.pad(second, 2)).\(Self.pad(millisecond, 3))Z"
    }

    package static func isValid(year: Int, month: Int, day: Int) -> Bool {
        guard (1...12).contains(month), day >= 1 else { return false }
        let lengths = [31, isLeap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        return day <= lengths[month - 1]
    }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let s = String(value)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        var q = a / b
        var r = a % b
        if r < 0 {
            q -= 1
            r += b
        }
        return (q, r)
    }

    // Howard Hinnant's days_from_civil / civil_from_days.
    private static func days(fromCivil y0: Int, _ m: Int, _ d: Int) -> Int64 {
        let y = Int64(m <= 2 ? y0 - 1 : y0)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = Int64((m + 9) % 12)
        let doy = (153 * mp + 2) / 5 + Int64(d) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private static func civil(fromDays z0: Int64) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (Int(m <= 2 ? y + 1 : y), Int(m), Int(d))
    }
}

extension Timestamp {
    /// An RFC 3339 time (`2026-11-24T15:17:58.841Z`, `...+01:00`; also a space for `T` and no
    /// zone for UTC), to the millisecond; `nil` when it is not one.
    public init?(rfc3339 text: String) {
        guard let parsed = Self.parseCalendar(Array(text.utf8)) else { return nil }
        self = parsed
    }

    /// `YYYY-MM-DD`, then `T` or a space, `HH:MM[:SS[.fff…]]`, then nothing, `Z` or `±HH:MM`.
    package static func parseCalendar(_ b: [UInt8]) -> Timestamp? {
        func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
        var i = 0
        func number(_ digits: Int) -> Int? {
            guard i + digits <= b.count else { return nil }
            var v = 0
            for k in 0..<digits {
                guard isDigit(b[i + k]) else { return nil }
                v = v * 10 + Int(b[i + k] - UInt8(ascii: "0"))
            }
            i += digits
            return v
        }
        func expect(_ c: Character) -> Bool {
            guard i < b.count, b[i] == UInt8(ascii: c.unicodeScalars.first ?? " ") else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
            CivilTime.isValid(year: year, month: month, day: day)
        else { return nil }
        var hour = 0
        var minute = 0
        var second = 0
        var millisecond = 0
        if i < b.count {
            guard b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == UInt8(ascii: " ") else {
                return nil
            }
            i += 1
            guard let h = number(2), h < 24, expect(":"), let m = number(2), m < 60 else { return nil }
            hour = h
            minute = m
            if i < b.count, b[i] == UInt8(ascii: ":") {
                i += 1
                guard let s = number(2), s < 61 else { return nil }
                second = Swift.min(s, 59)
                if i < b.count, b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: ",") {
                    i += 1
                    var scale = 100
                    var digits = 0
                    while i < b.count, isDigit(b[i]) {
                        if scale > 0 {
                            millisecond += Int(b[i] - UInt8(ascii: "0")) * scale
                            scale /= 10
                        }
                        i += 1
                        digits += 1
                    }
                    guard digits > 0 else { return nil }
                }
            }
        }
        var offsetMinutes = 0
        if i < b.count {
            if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
                i += 1
            } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
                let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
                i += 1
                guard let oh = number(2), oh < 24 else { return nil }
                _ = expect(":")
                guard let om = number(2), om < 60 else { return nil }
                offsetMinutes = sign * (oh * 60 + om)
            } else {
                return nil
            }
        }
        guard i == b.count else { return nil }
        let civil = CivilTime(
            year: year,
            month: month,
            day: day,
            hour: hour,
            minute: minute,
            second: second,
            millisecond: millisecond
        )
        return Timestamp(milliseconds: civil.milliseconds - Int64(offsetMinutes) * 60_000)
    }
}
