import Foundation
import Testing

@testable import FlatlineCore
@testable import FlatlineIngest

@Suite("Series files")
struct SeriesFileTests {
    static func parse(_ text: String, name: String = "s.csv", format: SeriesFile.Format? = nil) throws(SeriesFileError)
        -> SeriesFile
    {
        try SeriesFile.parse(Array(text.utf8), name: name, format: format)
    }

    @Test(
        "timestamps: calendar, RFC 3339 with offsets and fractions, Unix seconds and milliseconds",
        arguments: [
            ("2026-11-24 15:23:21", 1_795_533_801_000), ("2026-11-24T15:23:21Z", 1_795_533_801_000),
            ("2026-11-24T15:23:21.315Z", 1_795_533_801_315), ("2026-11-24T16:23:21+01:00", 1_795_533_801_000),
            ("2026-11-24 15:23:21.123456", 1_795_533_801_123), ("2026-11-24", 1_795_478_400_000),
            ("1795533801", 1_795_533_801_000), ("1795533801.5", 1_795_533_801_500),
            ("1795533801315", 1_795_533_801_315), ("1", 1000),
        ] as [(String, Int64)]
    )
    func timestamps(text: String, milliseconds: Int64) {
        #expect(NumberText.parseTimestamp(text) == Timestamp(milliseconds: milliseconds))
    }

    @Test(
        "impossible timestamps are refused",
        arguments: ["2026-02-30 00:00:00", "2026-13-01", "yesterday", "2026-11-24 25:00", ""]
    )
    func badTimestamps(text: String) {
        #expect(NumberText.parseTimestamp(text) == nil)
    }

    @Test("a CSV with a header: columns found by name, extra columns ignored, CRLF and quotes accepted")
    func csvColumns() throws {
        let file = try Self.parse("value,is_anomaly,\"timestamp\"\r\n1.5,0,1700000000\r\n\"2\",1,1700000060\r\n\n")
        #expect(file.format == .csv)
        #expect(file.series.count == 1)
        #expect(file.rows.map(\.value) == [1.5, 2])
        #expect(file.rows.map(file.timestampText) == ["1700000000", "1700000060"])
        #expect(file.rows[1].line == 3)
        #expect(file.rows.allSatisfy { $0.kind == .gauge })
    }

    @Test("a CSV without a header is read as data; an empty value is a missing sample")
    func headerless() throws {
        let file = try Self.parse("2026-01-01 00:00:00,1\n2026-01-01 00:05:00,\n2026-01-01 00:10:00,NaN\n")
        #expect(file.rows.count == 3)
        #expect(file.rows[1].value == nil)
        #expect(file.rows[2].value?.isNaN == true)
    }

    @Test(
        "malformed CSV names the file, the line and the reason",
        arguments: [
            ("timestamp,value\n1700000000,1\n1700000060,abc\n", 3, "value \"abc\" is not a number"),
            ("timestamp,value\nnoon,1\n", 2, "timestamp \"noon\""),
            ("timestamp,value\n1700000000,1,2\n", 2, "expected 2 fields"),
            ("timestamp,value\n1700000000,\"1\n", 2, "unterminated"), ("timestamp\n1700000000\n", 1, "two columns"),
        ] as [(String, Int, String)]
    )
    func csvErrors(text: String, line: Int, fragment: String) {
        do {
            _ = try Self.parse(text, name: "bad.csv")
            Issue.record("accepted")
        } catch {
            #expect(error.file == "bad.csv")
            #expect(error.line == line, "\(error)")
            #expect(error.reason.contains(fragment), "\(error)")
            #expect(error.description.hasPrefix("bad.csv:\(line): "))
        }
    }

    @Test("a file without usable data says so", arguments: ["", "timestamp,value\n", "timestamp,value\n1700000000,\n"])
    func noData(text: String) {
        do {
            _ = try Self.parse(text, name: "empty.csv")
            Issue.record("accepted")
        } catch {
            #expect(error.reason.contains("no usable data"), "\(error)")
        }
    }

    @Test("OpenMetrics with timestamps: many series, counters typed, formats told from names and content")
    func openMetrics() throws {
        let body = """
            # TYPE nats_in_msgs counter
            nats_in_msgs_total{server="a"} 10 1700000000
            nats_in_msgs_total{server="b"} 5 1700000000
            nats_in_msgs_total{server="a"} 25 1700000015.5
            # TYPE nats_connections gauge
            nats_connections{server="a"} 3 1700000000
            # EOF

            """
        for (name, format) in [("x.om", nil), ("x.txt", nil), ("x", SeriesFile.Format.openmetrics)]
            as [(String, SeriesFile.Format?)]
        {
            let file = try Self.parse(body, name: name, format: format)
            #expect(file.format == .openmetrics)
            #expect(
                file.series.map(\.description) == [
                    #"nats_in_msgs_total{server="a"}"#, #"nats_in_msgs_total{server="b"}"#,
                    #"nats_connections{server="a"}"#,
                ]
            )
            #expect(file.rows.map(\.series) == [0, 1, 0, 2])
            #expect(file.rows[2].timestamp == Timestamp(milliseconds: 1_700_000_015_500))
            #expect(file.timestampText(file.rows[2]) == "1700000015.5")
            #expect(file.rows.prefix(3).allSatisfy { $0.kind == .counter })
            #expect(file.rows[3].kind == .gauge)
        }
    }

    @Test("Prometheus text needs timestamps to replay; an unknown format lists the accepted ones")
    func exposition() throws {
        let text = try Self.parse("up{job=\"a\"} 1 1700000000000\nup{job=\"a\"} 0 1700000015000\n", name: "r.prom")
        #expect(text.format == .prometheus)
        #expect(text.rows[1].timestamp == Timestamp(milliseconds: 1_700_000_015_000))
        do {
            _ = try Self.parse("up 1\n", name: "r.prom")
            Issue.record("accepted a sample without timestamp")
        } catch {
            #expect(error.line == 1)
            #expect(error.reason.contains("no timestamp"))
        }
        do {
            _ = try Self.parse("%%%%\n", name: "mystery.bin")
            Issue.record("accepted an unknown format")
        } catch {
            #expect(error.reason.contains("csv, prometheus, openmetrics"), "\(error)")
        }
        #expect(throws: SeriesFileError.self) { try SeriesFile.load(path: "/nonexistent/file.csv") }
    }
}

@Suite("Number text")
struct NumberTextTests {
    /// What the C library reads, bit for bit (it reads every decimal correctly rounded).
    static func reference(_ text: String) -> UInt64 { strtod(text, nil).bitPattern }

    @Test(
        "decimals read as the C library reads them, exact or not, and what Prometheus refuses is refused",
        arguments: [
            ("0", true), ("-0", true), ("0.000", true), ("3.2", true), ("4.46667", true), ("1704067215", true),
            ("1e22", true), ("1e23", true), ("1.5e-22", true), ("1.5e-23", true), (".5", true), ("5.", true),
            ("+3", true), ("9007199254740992", true), ("9007199254740993", true),
            ("123456789012345678901234", true), ("0.1234567890123456789012", true), ("1e400", true),
            ("1e-400", true), ("00000000000000000000001.5", true), ("1e", false), ("1e+", false),
            ("--1", false), ("0x10", false), ("1_0", false), ("", false), (".", false), ("1.2.3", false),
            ("e5", false), ("-", false), ("+", false), ("-.", false), ("+.", false), ("-0.000", true),
        ] as [(String, Bool)]
    )
    func decimals(text: String, valid: Bool) {
        let parsed = NumberText.parseDouble(text)
        if valid {
            #expect(parsed?.bitPattern == Self.reference(text), "\(text)")
        } else {
            #expect(parsed == nil, "\(text)")
        }
    }

    @Test("Inf, Infinity and NaN in any case; NaN takes no sign")
    func words() {
        #expect(NumberText.parseDouble("Inf") == .infinity)
        #expect(NumberText.parseDouble("-inf") == -.infinity)
        #expect(NumberText.parseDouble("+Infinity") == .infinity)
        #expect(NumberText.parseDouble("NaN")?.isNaN == true)
        #expect(NumberText.parseDouble("nan")?.isNaN == true)
        #expect(NumberText.parseDouble("-NaN") == nil)
        #expect(NumberText.parseDouble("Infinit") == nil)
    }

    @Test("100,000 random decimals of every length, sign, point and exponent read as the C library reads them")
    func randomDecimals() {
        var generator = SplitMix64(seed: 20_261_204)
        for _ in 0..<100_000 {
            // A sign or none; the point anywhere, before the first digit and after the last too.
            var text = ["-", "+", "", ""][Int(generator.next() % 4)]
            let digits = Int(generator.next() % 24) + 1
            let point = Int(generator.next() % UInt64(digits + 2)) - 1
            for k in 0..<digits {
                if k == point { text += "." }
                text += String(generator.next() % 10)
            }
            if point == digits { text += "." }
            if generator.next() % 3 == 0 { text += "e" + String(Int(generator.next() % 80) - 40) }
            #expect(NumberText.parseDouble(text)?.bitPattern == Self.reference(text), "\(text)")
        }
    }

    @Test("integer milliseconds: digits only, no overflow")
    func digits() {
        func parse(_ text: String) -> Int64? {
            var text = text
            return text.withUTF8 { NumberText.parseDigits($0) }
        }
        #expect(parse("1700000000000") == 1_700_000_000_000)
        #expect(parse("9223372036854775807") == Int64.max)
        #expect(parse("9223372036854775808") == nil)
        #expect(parse("-5") == nil)
        #expect(parse("") == nil)
        #expect(parse("12a") == nil)
        // Eight at a time: every position of a non-digit in the first eight and after, and the
        // bytes next to the digits ('/', ':') and far from them.
        #expect(parse("12345678") == 12_345_678 && parse("00000000") == 0 && parse("99999999") == 99_999_999)
        #expect(parse("999999999999999999") == 999_999_999_999_999_999)
        for length in [8, 9, 13, 18] {
            for position in 0..<length {
                for bad in ["/", ":", " ", ".", "\u{00}", "\u{7F}", "a"] {
                    var text = Array(repeating: "7", count: length)
                    text[position] = bad
                    #expect(parse(text.joined()) == nil, "\(text.joined())")
                }
            }
        }
        // Against the same digits read one at a time, as Swift's Int64 reads them.
        var generator = SplitMix64(seed: 21)
        for _ in 0..<100_000 {
            let length = Int(generator.next() % 22) + 1
            var text = (0..<length).map { _ in String(generator.next() % 10) }.joined()
            if generator.next() % 4 == 0 {
                var bytes = Array(text.utf8)
                bytes[Int(generator.next() % UInt64(length))] = UInt8(truncatingIfNeeded: generator.next())
                text = String(decoding: bytes, as: UTF8.self)
            }
            let expected = text.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } ? Int64(text) : nil
            #expect(parse(text) == expected, "\(text)")
        }
    }
}
