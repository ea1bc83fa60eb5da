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
