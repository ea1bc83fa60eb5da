import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineCore

/// The linear-time matcher behind label matchers: the same answers as a backtracking engine on
/// ordinary patterns, RE2's refusals, and no catastrophic case.
@Suite("Linear-time patterns")
struct LinearPatternTests {
    static let patterns = [
        "abc", "a.c", "a*", "a+b", "a?b?c?", "(ab)+", "(a|b)*c", "a{2,3}", "a{2}", "a{2,}", "[a-c]+", "[^a-c]+",
        "\\d+", "\\w+", "\\s*x\\s*", "[\\d.]+", "foo|bar|baz", "(?i)orders", "(?i:Or)ders", "ORDERS|(?i)payments",
        "x{,3}", "a.*z", ".*", "", "(?:ab|cd)e", "(?P<n>a)b", "[[:digit:]-]+", "a\\.b", "\\x41b",
        "\\x{263A}", "é+", "[é-ë]", "(a*)*b", "(a|ab)(c|bcd)", "(\\d{1,3}\\.){3}\\d{1,3}", "^abc$", "a|", "(|a)b",
        "[]a]", "[a-]", "[-a]", "Slow Consumer.*", "telemetry-.*-sub", "[\\W]", "[^\\d]+",
    ]
    static let texts = [
        "", "abc", "aac", "a", "aaa", "b", "ab", "abab", "abba", "aab", "aaab", "c", "abcc", "123", "1.2.3", "x",
        " x ", "foo", "bar", "qux", "ORDERS", "orders", "OrDeRs", "Orders", "ders", "payments", "PAYMENTS",
        "x{,3}", "az", "abcz", "abe", "cde", "ab e", "abcde", "a.b", "axb", "Ab", "☺", "éé", "ê", "b", "aab",
        "acd", "abcd", "192.168.1.10", "1.2.3.4.5", "]", "-", "a-", "Slow Consumer (Write Deadline)", "telemetry-x-sub",
        "\n", "a\nb", "_", "!",
    ]

    @Test("whole-text answers agree with Swift's Regex on ordinary patterns")
    func agreesWithRegex() throws {
        var compared = 0
        for pattern in Self.patterns {
            let linear = try LinearPattern(pattern)
            // Swift's Regex spells a few things differently; translate for the reference only.
            var reference = pattern.replacingOccurrences(of: "(?P<", with: "(?<")
            if reference == "x{,3}" { reference = "x\\{,3\\}" }
            if reference == "[]a]" { reference = "[\\]a]" }
            // RE2's classes are ASCII (\w, \d, [[:alpha:]]); Swift's are Unicode unless told.
            let regex = try Regex("^(?s:" + reference + ")$").asciiOnlyCharacterClasses()
            for text in Self.texts {
                let expected = (try? regex.wholeMatch(in: text)) != nil
                #expect(linear.matches(text) == expected, "\(pattern) on \(text.debugDescription)")
                compared += 1
            }
        }
        #expect(compared > 2000)
    }

    @Test("POSIX classes are ASCII, as RE2's")
    func posix() throws {
        let alpha = try LinearPattern("[[:alpha:]]+")
        #expect(alpha.matches("Orders") && !alpha.matches("éé") && !alpha.matches("a1"))
        #expect(try LinearPattern("[[:xdigit:]]{4}").matches("00fF"))
        #expect(!(try LinearPattern("[[:upper:]]").matches("a")))
    }

    @Test("patterns that make backtracking engines take exponential time answer at once", .timeLimit(.minutes(1)))
    func noCatastrophe() throws {
        let long = String(repeating: "a", count: 20_000) + "b"
        for pattern in ["(a+)+", "(a|a)*", "(a|aa)+", "a*a*a*a*a*a*a*a*c", "(a*)*", "(.*a){20}", "((a+)+)+c"] {
            #expect(try LinearPattern(pattern).matches(long) == false, "\(pattern)")
        }
        #expect(try LinearPattern("(a+)+b").matches(long))
    }

    @Test(
        "what RE2 refuses is refused with the reason",
        arguments: [
            ("a**", "nested repetition"), ("(ab", "missing )"), ("ab)", "unexpected )"), ("[ab", "missing ]"),
            ("a{1001}", "repeat count"), ("\\1", "back-references"), ("\\bfoo", "word boundaries"),
            ("\\p{L}", "Unicode classes"), ("(?=a)", "look-around"), ("*a", "missing argument"), ("a\\", "trailing"),
            ("\\q", "invalid escape"), ("[b-a]", "invalid range"),
        ]
    )
    func refusals(_ pattern: String, _ reason: String) {
        #expect(throws: PatternError.self) { try LinearPattern(pattern) }
        do {
            _ = try LinearPattern(pattern)
        } catch {
            #expect(error.reason.contains(reason), "\(pattern): \(error.reason)")
        }
    }

    @Test(
        "label matchers use it: a catastrophic silence or series filter cannot stall anything",
        .timeLimit(.minutes(1))
    )
    func labelMatchers() throws {
        let matcher = try LabelMatcher(parsing: #"client=~"(a+)+""#)
        #expect(!matcher.matches(["client": String(repeating: "a", count: 50_000) + "!"]))
        #expect(
            try LabelMatcher(parsing: #"reason=~"Slow Consumer.*""#).matches(["reason": "Slow Consumer (Pending Bytes)"]
            )
        )
        #expect(try LabelMatcher(parsing: #"x!~"a|b""#).matches([:]))
    }

    @Test("series selectors as Prometheus writes them: a metric name, braces, commas inside quotes")
    func selectors() throws {
        #expect(try LabelMatcher.selector("up") == [try LabelMatcher(name: "__name__", op: .equal, value: "up")])
        #expect(try LabelMatcher.selector(#"job="nats""#) == [try LabelMatcher(name: "job", op: .equal, value: "nats")])
        let full = try LabelMatcher.selector(#" m{reason=~"a,b|c", note="say \"x,y\"" , job!="z",} "#)
        #expect(
            full == [
                try LabelMatcher(name: "__name__", op: .equal, value: "m"),
                try LabelMatcher(name: "reason", op: .matches, value: "a,b|c"),
                try LabelMatcher(name: "note", op: .equal, value: #"say "x,y""#),
                try LabelMatcher(name: "job", op: .notEqual, value: "z"),
            ],
            "\(full)"
        )
        // PromQL's other strings: single quotes (escapes as in double quotes) and backticks (raw).
        #expect(
            try LabelMatcher.selector(#"up{job='nats', note='it\'s "x"', path=~`a\d+`}"#) == [
                try LabelMatcher(name: "__name__", op: .equal, value: "up"),
                try LabelMatcher(name: "job", op: .equal, value: "nats"),
                try LabelMatcher(name: "note", op: .equal, value: #"it's "x""#),
                try LabelMatcher(name: "path", op: .matches, value: #"a\d+"#),
            ]
        )
        for (bad, reason) in [
            (#"{job="a""#, "no closing }"), ("{}", "has no matcher"), (#"9m{a="b"}"#, "is not a metric name"),
            (#"{job}"#, "has no operator"),
        ] {
            let error = #expect(throws: PatternError.self) { try LabelMatcher.selector(bad) }
            #expect(error?.reason.contains(reason) == true, "\(bad): \(String(describing: error))")
        }
    }
}
