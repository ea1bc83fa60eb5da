import Foundation
import Testing

@testable import FlatlineCore
@testable import FlatlineIngest

@Suite("Exposition parser")
struct ExpositionParserTests {
    struct Case: Sendable, CustomStringConvertible {
        var file: String
        var up: Bool
        var lastError: String
        var description: String { file }
    }

    /// Every corner-case file with what Prometheus 2.42 did with it (EXPECTED-prometheus-2.42.tsv).
    static let cases: [Case] = {
        guard
            let url = Bundle.module.url(
                forResource: "Fixtures/exposition/EXPECTED-prometheus-2.42",
                withExtension: "tsv"
            ),
            let text = try? String(contentsOf: url, encoding: .utf8)
        else { return [] }
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            let file = String(fields[0].split(separator: " ")[0])
            return Case(file: file, up: fields[1] == "up", lastError: fields.count > 2 ? String(fields[2]) : "")
        }
    }()

    static func bytes(_ file: String) throws -> [UInt8] {
        let name = (file as NSString).deletingPathExtension
        let ext = (file as NSString).pathExtension
        let url = try #require(Bundle.module.url(forResource: "Fixtures/exposition/\(name)", withExtension: ext))
        return [UInt8](try Data(contentsOf: url))
    }

    @Test("the table covers every exposition file in the fixtures")
    func tableIsComplete() throws {
        let directory = try #require(Bundle.module.url(forResource: "Fixtures/exposition", withExtension: nil))
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".prom") || $0.hasSuffix(".om") }
        #expect(Set(files) == Set(Self.cases.map(\.file)))
        #expect(files.count == 29)
    }

    @Test("each corner case is accepted or rejected as Prometheus 2.42 did", arguments: cases)
    func behavesLikePrometheus(_ c: Case) throws {
        let format: ExpositionFormat = c.file.hasSuffix(".om") ? .openMetrics : .text
        let input = try Self.bytes(c.file)
        if c.up {
            #expect(throws: Never.self) { try ExpositionParser(format: format).parse(input) }
        } else {
            #expect(throws: ExpositionError.self) { try ExpositionParser(format: format).parse(input) }
        }
    }

    @Test("Windows line endings are refused as Prometheus refuses them, and the error says so")
    func carriageReturnNamed() throws {
        for (format, body) in [
            (ExpositionFormat.text, "x 1\r\n"), (.text, "# TYPE x counter\r\nx 1\r\n"),
            (.openMetrics, "# TYPE x gauge\r\nx 1\r\n# EOF\r\n"),
        ] {
            let error = #expect(throws: ExpositionError.self) {
                try ExpositionParser(format: format).parse(Array(body.utf8))
            }
            #expect(error?.line == 1, "\(body.debugDescription): \(String(describing: error))")
            #expect(
                error?.reason.contains("the line ends in a carriage return") == true,
                "\(String(describing: error))"
            )
        }
        // The same error without the carriage return says nothing of line endings.
        let plain = #expect(throws: ExpositionError.self) {
            try ExpositionParser(format: .text).parse(Array("x one\n".utf8))
        }
        #expect(plain?.reason.contains("carriage return") == false, "\(String(describing: plain))")
    }

    @Test("series remembered by their bytes (replay) read exactly as parsed afresh, corner cases and repeats included")
    func internedSeries() throws {
        func same(_ a: [ExposedSample], _ b: [ExposedSample]) -> Bool {
            a.count == b.count
                && zip(a, b).allSatisfy {
                    $0.labels == $1.labels && $0.value.bitPattern == $1.value.bitPattern && $0.timestamp == $1.timestamp
                        && $0.kind == $1.kind && $0.type == $1.type && $0.line == $1.line
                }
        }
        // Every corner case twice over (its series repeat), accepted or refused alike.
        for c in Self.cases {
            let format: ExpositionFormat = c.file.hasSuffix(".om") ? .openMetrics : .text
            var input = try Self.bytes(c.file)
            if format == .text { input += input }
            let plain = Result { () throws(ExpositionError) in try ExpositionParser(format: format).parse(input) }
            let interned = Result { () throws(ExpositionError) in
                try ExpositionParser(format: format, internSeries: true).parse(input)
            }
            switch (plain, interned) {
            case (.success(let a), .success(let b)): #expect(same(a, b), "\(c.file)")
            case (.failure(let a), .failure(let b)): #expect(a == b, "\(c.file)")
            default: Issue.record("\(c.file): \(plain) vs \(interned)")
            }
        }
        // Quotes, escapes and braces inside values; a repeat whose value is bad fails as before;
        // a TYPE declared between repeats still classifies the later samples; a series whose bytes
        // begin another's (`b`, `b{}`, `b_total`) is told apart.
        let text = #"""
            a{x="}",y="q\"}"} 1 1000
            a{x="}",y="q\"}"} 2 2000
            b 3
            b{} 3.5
            # TYPE b_total counter
            b_total 4
            b_total 5
            a{x="}",y="q\"}"}  6
            """# + "\n"
        let plain = try ExpositionParser(format: .text).parse(Array(text.utf8))
        let interned = try ExpositionParser(format: .text, internSeries: true).parse(Array(text.utf8))
        #expect(same(plain, interned))
        #expect(interned.count == 7 && interned[0].labels["y"] == "q\"}" && interned[6].value == 6)
        #expect(interned[3].labels == interned[2].labels && interned[4].labels["__name__"] == "b_total")
        let bad = Array((text + #"a{x="}",y="q\"}"} seven"# + "\n").utf8)
        #expect(throws: ExpositionError(line: 9, reason: "invalid value \"seven\"")) {
            try ExpositionParser(format: .text, internSeries: true).parse(bad)
        }
    }

    @Test("values, escapes, NaN and infinities of the valid text file")
    func validText() throws {
        let samples = try ExpositionParser(format: .text).parse(Self.bytes("valid-0.0.4.prom"))
        #expect(samples.count == 20)
        let inMsgs = samples[0]
        #expect(inMsgs.labels.description == #"gnatsd_varz_in_msgs{cluster="east",server_id="NABC"}"#)
        #expect(inMsgs.value == 1.234e6)
        #expect(inMsgs.type == .counter)
        #expect(inMsgs.kind == .counter)
        #expect(samples[1].labels["note"] == "quote \" backslash \\ newline \n end")
        #expect(samples[1].kind == .gauge)
        #expect(samples[2].value.isNaN)
        #expect(samples[3].value == .infinity)
        #expect(samples[4].value == -.infinity)
        #expect(samples[5].value == -1.5e-3)
        #expect(samples[7].labels["kind"] == "trailing_comma")
        #expect(samples[2].type == .untyped)
        let byName = Dictionary(grouping: samples, by: { $0.labels.metricName })
        #expect(byName["nats_empty_braces"]?.first?.value == 1)
        #expect(byName["nats_latency_seconds_count"]?.first?.kind == .counter)
        #expect(byName["nats_latency_seconds_bucket"]?.count == 3)
        #expect(byName["nats_rtt_seconds"]?.allSatisfy { $0.kind == .gauge && $0.type == .summary } == true)
        #expect(byName["nats_rtt_seconds_sum"]?.first?.kind == .counter)
        #expect(byName["nats_untyped_thing"]?.first?.line == 29)
    }

    @Test("OpenMetrics: units, counters, histograms and exemplars")
    func openMetrics() throws {
        let samples = try ExpositionParser(format: .openMetrics).parse(Self.bytes("good.om"))
        let byName = Dictionary(grouping: samples, by: { $0.labels.metricName })
        #expect(byName["nats_in_msgs_messages_total"]?.first?.kind == .counter)
        #expect(byName["nats_in_msgs_messages_created"]?.first?.kind == .gauge)
        #expect(byName["nats_up"]?.first?.type == .gauge)
        let buckets = try #require(byName["nats_lat_seconds_bucket"])
        #expect(buckets.map { $0.labels["le"] } == ["0.005", "0.1", "+Inf"])
        #expect(buckets.allSatisfy { $0.kind == .counter })
        #expect(buckets[1].value == 5)  // the exemplar after it is ignored
    }

    @Test("timestamps: milliseconds in text, seconds in OpenMetrics")
    func timestamps() throws {
        let text = try ExpositionParser(format: .text).parse(Self.bytes("old-ts.prom"))
        #expect(text[0].timestamp == Timestamp(milliseconds: 1_700_000_000_000))
        #expect(text[0].timestampText == "1700000000000")
        let om = try ExpositionParser(format: .openMetrics).parse(Self.bytes("ts-seconds.om"))
        #expect(om[0].timestamp == Timestamp(milliseconds: 1_700_000_000_000))
    }

    @Test("OpenMetrics whole seconds of any length, signs, fractions and exponents: the time the decimal reading gives")
    func wholeSecondTimestamps() throws {
        var random = SplitMix64(seed: 12)
        var texts = [
            "0", "7", "000000000001", "999999999999", "1000000000000", "0001700000000", "1700000000.5",
            "1.7e9", "+1700000000", "-5", "1700000000.000",
        ]
        for digits in 1...15 {
            for _ in 0..<200 {
                var text = ""
                for _ in 0..<digits { text.append(Character(String(random.next() % 10))) }
                texts.append(text)
            }
        }
        var body = "# TYPE m gauge\n"
        for text in texts { body += "m 1 \(text)\n" }
        body += "# EOF\n"
        let samples = try ExpositionParser(format: .openMetrics).parse(Array(body.utf8))
        #expect(samples.count == texts.count)
        for (sample, text) in zip(samples, texts) {
            let seconds = try #require(Double(text))
            #expect(sample.timestamp == Timestamp(seconds: seconds), "\(text)")
        }
    }

    @Test("label values read straight from the line or through escapes; duplicate names among few labels and many")
    func labelValuesAndDuplicates() throws {
        func parse(_ line: String) throws(ExpositionError) -> [ExposedSample] {
            try ExpositionParser(format: .text).parse(Array((line + "\n").utf8))
        }
        let plain = try parse(#"m{a="café",b="",c="x\\y\"z",d="naïve \n"} 1"#)
        #expect(plain.first?.labels["a"] == "café")
        #expect(plain.first?.labels["b"] == nil)
        #expect(plain.first?.labels["c"] == #"x\y"z"#)
        #expect(plain.first?.labels["d"] == "naïve \n")
        // Invalid UTF-8 with no escape (read straight) and after one (read byte by byte).
        for bytes in [[0x22, 0xFF, 0x22], [0x22, 0x5C, 0x6E, 0xC3, 0x22]] as [[UInt8]] {
            let line = Array("m{a=".utf8) + bytes + Array("} 1\n".utf8)
            #expect(throws: ExpositionError(line: 1, reason: "invalid UTF-8 in the value of label a")) {
                try ExpositionParser(format: .text).parse(line)
            }
        }
        // A name repeated among the first labels, as __name__, or past the scan's limit.
        let many = (0..<40).map { "l\($0)=\"v\"" }
        for (labels, name) in [
            (["a=\"1\"", "b=\"2\"", "a=\"3\""], "a"), (["__name__=\"n\""], "__name__"),
            (many + ["l3=\"w\""], "l3"), (many + ["l39=\"w\""], "l39"), (many + ["__name__=\"n\""], "__name__"),
        ] {
            #expect(throws: ExpositionError(line: 1, reason: "label name \"\(name)\" is not unique")) {
                try parse("m{\(labels.joined(separator: ","))} 1")
            }
        }
        let wide = try parse("m{\(many.joined(separator: ","))} 1")
        #expect(wide.first?.labels.count == 41 && wide.first?.labels["l39"] == "v")
        // An exemplar's labels: `__name__` is taken there too.
        for exemplar in [#"{__name__="x"}"#, "{\(many.joined(separator: ",")),__name__=\"x\"}"] {
            let body = Array("# TYPE c counter\nc_total 1 # \(exemplar) 1\n# EOF\n".utf8)
            #expect(throws: ExpositionError(line: 2, reason: "label name \"__name__\" is not unique")) {
                try ExpositionParser(format: .openMetrics).parse(body)
            }
        }
        let exemplified = Array("# TYPE c counter\nc_total 1 # {trace_id=\"a\"} 1\n# EOF\n".utf8)
        #expect(try ExpositionParser(format: .openMetrics).parse(exemplified).first?.value == 1)
    }

    @Test("duplicate series are all returned, in order, so consumers can keep the first")
    func duplicates() throws {
        let samples = try ExpositionParser(format: .text).parse(Self.bytes("duplicate.prom"))
        #expect(samples.map(\.value) == [1, 2])
    }

    @Test(
        "errors name the line and the reason",
        arguments: [
            ("crlf.prom", 1, "invalid value"), ("dup-label.prom", 1, "not unique"),
            ("float-ts.prom", 1, "integer milliseconds"),
            ("bad-utf8.prom", 1, "UTF-8"), ("leading-tab.prom", 2, "whitespace"), ("after-eof.om", 2, "after # EOF"),
            ("no-eof.om", 0, "# EOF"), ("trailing-comma.om", 1, "trailing comma"), ("blank-line.om", 2, "blank"),
        ]
    )
    func errorMessages(file: String, line: Int, fragment: String) throws {
        let format: ExpositionFormat = file.hasSuffix(".om") ? .openMetrics : .text
        let input = try Self.bytes(file)
        do {
            _ = try ExpositionParser(format: format).parse(input)
            Issue.record("\(file) was accepted")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.reason.contains(fragment), "\(error)")
        }
    }

    @Test("a UNIT that is not the name's suffix is rejected in OpenMetrics")
    func unitSuffix() {
        let body = "# TYPE x_seconds gauge\n# UNIT x_seconds bytes\nx_seconds 1\n# EOF\n"
        #expect(throws: ExpositionError.self) { try ExpositionParser(format: .openMetrics).parse(Array(body.utf8)) }
    }

    @Test("the Accept header prefers OpenMetrics like Prometheus, and Content-Type picks the parser")
    func negotiation() {
        #expect(ExpositionFormat.acceptHeader.hasPrefix("application/openmetrics-text;version=1.0.0"))
        #expect(
            ExpositionFormat(contentType: "application/openmetrics-text; version=1.0.0; charset=utf-8") == .openMetrics
        )
        #expect(ExpositionFormat(contentType: "text/plain; version=0.0.4") == .text)
        #expect(ExpositionFormat(contentType: nil) == .text)
    }
}

/// A target's successive scrapes: series the last body had are taken from memory, and must be
/// exactly what parsing them again gives.
@Suite("Exposition bodies of one target, scrape after scrape")
struct SeriesMemoryTests {
    static let time = Timestamp(milliseconds: 1_700_000_000_000)

    /// The samples of `bodies` in turn through one extractor, and each through a fresh one.
    static func both(_ bodies: [String], targetLabels: [String: String] = ["job": "j", "instance": "t:1"]) throws
        -> (remembered: [[Sample]], fresh: [[Sample]])
    {
        var extractor = TargetExtractor(kind: .prometheus, targetLabels: targetLabels)
        var remembered: [[Sample]] = []
        var fresh: [[Sample]] = []
        for body in bodies {
            remembered.append(try extractor.samples(exposition: Array(body.utf8), contentType: nil, scrapeTime: time))
            var once = TargetExtractor(kind: .prometheus, targetLabels: targetLabels)
            fresh.append(try once.samples(exposition: Array(body.utf8), contentType: nil, scrapeTime: time))
        }
        return (remembered, fresh)
    }

    @Test("the same body again, a series gone and back, a new one, a changed value: as parsed afresh")
    func sameAsFresh() throws {
        let bodies = [
            "a{x=\"1\"} 1\na{x=\"2\"} 2\nb 3\n",
            "a{x=\"1\"} 1\na{x=\"2\"} 2\nb 3\n",
            "a{x=\"2\"} 5\nc{y=\"é\"} 1\n",
            "a{x=\"1\"} 7\nb 3\nc{y=\"é\"} 1\n",
        ]
        let (remembered, fresh) = try Self.both(bodies)
        #expect(remembered == fresh)
        #expect(
            remembered[3].map(\.labels.description) == [
                #"a{instance="t:1",job="j",x="1"}"#, #"b{instance="t:1",job="j"}"#,
                #"c{instance="t:1",job="j",y="é"}"#,
            ]
        )
    }

    @Test("a family's type changes between scrapes: the remembered series follows each body's declarations")
    func typeChanges() throws {
        let bodies = [
            "# TYPE req gauge\nreq_total 1\n",
            "# TYPE req counter\nreq_total 2\n",
            "req_total 3\n",
            "# TYPE req_total gauge\nreq_total 4\n",
        ]
        let (remembered, fresh) = try Self.both(bodies)
        #expect(remembered == fresh)
        // A gauge family's _total is a gauge; undeclared, _total is a counter.
        #expect(remembered.map { $0[0].kind } == [.gauge, .counter, .counter, .gauge])
    }

    @Test("a label the target also sets stays exported_ on every scrape")
    func exportedLabels() throws {
        let bodies = ["m{job=\"inner\"} 1\n", "m{job=\"inner\"} 2\n"]
        let (remembered, fresh) = try Self.both(bodies)
        #expect(remembered == fresh)
        #expect(remembered[1][0].labels["exported_job"] == "inner")
        #expect(remembered[1][0].labels["job"] == "j")
    }

    @Test("a bad body between good ones fails alone; the next good one is read whole")
    func badBodyBetween() throws {
        var extractor = TargetExtractor(kind: .prometheus, targetLabels: ["job": "j", "instance": "t:1"])
        let good = Array("a{x=\"1\"} 1\nb 2\n".utf8)
        let first = try extractor.samples(exposition: good, contentType: nil, scrapeTime: Self.time)
        #expect(throws: ExtractionError.self) {
            try extractor.samples(
                exposition: Array("a{x=\"1\"} 1\nb{ 2\n".utf8),
                contentType: nil,
                scrapeTime: Self.time
            )
        }
        #expect(try extractor.samples(exposition: good, contentType: nil, scrapeTime: Self.time) == first)
    }

    @Test(
        "series in a changing order, left out, repeated, new, as prefixes of each other and with spaces in values: as parsed afresh, and only the last body's series are kept"
    )
    func shuffledBodies() throws {
        let pool = [
            "a", "a{x=\"1\"}", "a{x=\"1 2\"}", "a{x=\"1\",y=\"2\"}", "ab", "b{path=\"/x y\"}",
            "c{e=\"\\\"\"}", "a_total", "d{x=\"é\"}", "d{x=\"e\u{301}\"}",
        ]
        var random = SplitMix64(seed: 18)
        var bodies: [String] = []
        var kept: [Int] = []
        for round in 0..<60 {
            // Mostly the same order as the round before; sometimes shuffled, thinned or doubled.
            var order = round % 7 == 0 ? pool.indices.shuffled(using: &random) : Array(pool.indices)
            order = order.filter { _ in random.next() % 5 != 0 }
            if round % 5 == 0, let first = order.first { order.insert(first, at: order.count / 2) }
            let declare = round % 9 == 4 ? "# TYPE a_total gauge\n" : ""
            bodies.append(declare + order.map { "\(pool[$0]) \(round)\n" }.joined())
            kept.append(Set(order).count)
        }
        let (remembered, fresh) = try Self.both(bodies)
        #expect(remembered == fresh)

        var memory = SeriesMemory(base: [], limit: 100)
        for (body, count) in zip(bodies, kept) {
            try ExpositionParser(format: .text).parseRaw(Array(body.utf8), memory: &memory) { _, _ in }
            #expect(memory.count == count)
        }
    }

    @Test("memory keeps at most its limit of series a body; the rest are parsed every time")
    func limit() throws {
        var memory = SeriesMemory(base: [], limit: 2)
        let body = Array("a 1\nb 2\nc 3\nd 4\n".utf8)
        for _ in 0..<3 {
            var names: [String] = []
            try ExpositionParser(format: .text).parseRaw(body, memory: &memory) { _, new in
                if let new { names.append(new.name) }
            }
            #expect(names == ["a", "b", "c", "d"])
            #expect(memory.count == 2)
        }
    }
}
