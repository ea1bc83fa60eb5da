import FlatlineCore
import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineIngest

/// Recordings: what is written reads back the same, plain and gzip; gzip files are real gzip
/// (Python reads them); broken files and lines are refused with the file and line named.
@Suite("Recordings of raw scrapes")
struct RecordingTests {
    static let time = Timestamp(milliseconds: 1_764_000_000_123)

    static func writeSample(to path: String) throws {
        let writer = try RecordingWriter(path: path)
        // A pretty-printed body with a string that holds spaces, quotes and a newline.
        let body =
            "{\n  \"server_id\": \"N1\",\n  \"now\": \"2025-11-24T16:00:00.5Z\",\n  \"note\": \"a \\\"b\\\"\\n c\",\n  \"in_msgs\": 12\n}\n"
        try writer.write(time: time, target: "127.0.0.1:8222", endpoint: "varz", json: Array(body.utf8))
        try writer.write(
            time: Timestamp(milliseconds: time.milliseconds + 1000),
            target: "127.0.0.1:9100",
            endpoint: "metrics",
            text: Array("# TYPE up gauge\nup{job=\"a\\\"b\"} 1\n".utf8),
            contentType: "text/plain; version=0.0.4"
        )
        try writer.write(
            time: Timestamp(milliseconds: time.milliseconds + 2000),
            target: "127.0.0.1:8222",
            endpoint: "connz",
            error: "connection refused"
        )
        #expect(writer.count == 3)
        try writer.close()
    }

    /// A gzip fixture's text, through another tool (gzip itself).
    static func readAllText(_ url: URL) throws -> String {
        let result = try TestSupport.run(URL(fileURLWithPath: "/bin/sh"), ["-c", "gzip -dc '\(url.path)'"])
        return result.standardOutput
    }

    static func readAll(_ path: String) throws -> [RecordedScrape] {
        let reader = try RecordingReader(path: path)
        var all: [RecordedScrape] = []
        while let scrape = try reader.next() { all.append(scrape) }
        return all
    }

    @Test("a recording reads back as written", arguments: ["scrapes.ndjson", "scrapes.ndjson.gz"])
    func roundTrip(name: String) throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file(name).path
        try Self.writeSample(to: path)
        let scrapes = try Self.readAll(path)
        try #require(scrapes.count == 3)

        let varz = scrapes[0]
        #expect(varz.line == 1)
        #expect(varz.time == Self.time)
        #expect(varz.target == "127.0.0.1:8222")
        #expect(varz.endpoint == "varz")
        let body = try #require(varz.body)
        #expect(varz.document.string(body, "note") == "a \"b\"\n c")
        #expect(varz.document.number(body, "in_msgs") == 12)
        #expect(varz.error == nil)

        let metrics = scrapes[1]
        #expect(metrics.contentType == "text/plain; version=0.0.4")
        #expect(metrics.body.flatMap { metrics.document.string($0) } == "# TYPE up gauge\nup{job=\"a\\\"b\"} 1\n")

        let failed = scrapes[2]
        #expect(failed.body == nil)
        #expect(failed.error == "connection refused")
        #expect(failed.line == 3)

        // One scrape per line, whatever the body's layout was.
        let raw = try Self.decompressed(path)
        #expect(raw.split(separator: "\n").count == 3)
    }

    @Test("a .gz recording is gzip another tool can read")
    func gzipIsReal() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("scrapes.ndjson.gz").path
        try Self.writeSample(to: path)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(bytes.prefix(2) == Data([0x1F, 0x8B]))
        let python = try TestSupport.run(
            URL(fileURLWithPath: "/usr/bin/env"),
            [
                "python3", "-c", "import gzip,json,sys; print(len([json.loads(l) for l in gzip.open(sys.argv[1])]))",
                path,
            ]
        )
        #expect(python.status == 0, "\(python.standardError)")
        #expect(python.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == "3")
    }

    @Test("the recorded scenario reads through, gzip and all")
    func scenarioFixture() throws {
        let url = try #require(
            Bundle.module.url(forResource: "Fixtures/nats/scenario-freeze-flood.ndjson", withExtension: "gz")
        )
        let scrapes = try Self.readAll(url.path)
        #expect(scrapes.count > 3000)
        var endpoints: [String: Int] = [:]
        for scrape in scrapes { endpoints[scrape.endpoint, default: 0] += 1 }
        #expect(endpoints["varz"] ?? 0 >= 290)
        #expect(endpoints["jsz"] == endpoints["varz"])
        #expect(zip(scrapes, scrapes.dropFirst()).allSatisfy { $0.time <= $1.time })
    }

    @Test("a gzip file cut off (a crash while recording) reads up to its last whole line and says where it was cut")
    func truncatedGzip() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let url = try #require(
            Bundle.module.url(forResource: "Fixtures/nats/scenario-freeze-flood.ndjson", withExtension: "gz")
        )
        let whole = try Data(contentsOf: url)
        let all = try Self.readAll(url.path)
        for fraction in [2, 3] {
            let cut = directory.file("cut-\(fraction).ndjson.gz")
            try whole.prefix(whole.count / fraction).write(to: cut)
            let reader = try RecordingReader(path: cut.path)
            var read: [RecordedScrape] = []
            while let scrape = try reader.next() { read.append(scrape) }
            // A prefix of the whole recording, line for line, and not all of it.
            #expect(!read.isEmpty && read.count < all.count)
            #expect(
                zip(read, all).allSatisfy { $0.line == $1.line && $0.endpoint == $1.endpoint && $0.time == $1.time }
            )
            let truncation = try #require(reader.truncation)
            #expect(truncation.file == cut.path && truncation.reason.contains("truncated"))
            #expect(truncation.line == read.count + 1, "cut at \(truncation.line) after \(read.count) lines")
        }
        // A plain file cut while its last line was being written: the whole lines are read.
        let plain = directory.file("cut.ndjson")
        let text = try Self.readAllText(url)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let cutText = lines.prefix(5).joined(separator: "\n") + "\n" + lines[5].prefix(40)
        try Data(cutText.utf8).write(to: plain)
        let plainReader = try RecordingReader(path: plain.path)
        var plainRead = 0
        while try plainReader.next() != nil { plainRead += 1 }
        #expect(plainRead == 5)
        let cutLine = try #require(plainReader.truncation)
        #expect(cutLine.line == 6 && cutLine.reason.contains("cut off"), "\(cutLine)")
        // A whole file has no truncation.
        let reader = try RecordingReader(path: url.path)
        while try reader.next() != nil {}
        #expect(reader.truncation == nil)
    }

    @Test(
        "bad lines are refused with the file and the line",
        arguments: [
            ("{\"ts\":\"2025-11-24T16:00:00Z\",\"endpoint\":\"varz\",\"body\":{", "invalid JSON"),
            ("[1,2]", "must be a JSON object"),
            ("{\"endpoint\":\"varz\",\"body\":{}}", "missing \"ts\""),
            ("{\"ts\":\"yesterday\",\"endpoint\":\"varz\",\"body\":{}}", "not an RFC 3339 time"),
            ("{\"ts\":\"2025-11-24T16:00:00Z\",\"body\":{}}", "missing \"endpoint\""),
            ("{\"ts\":\"2025-11-24T16:00:00Z\",\"endpoint\":\"varz\"}", "needs \"body\" or \"error\""),
        ]
    )
    func badLines(line: String, reason: String) throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let good = "{\"ts\":\"2025-11-24T16:00:00Z\",\"endpoint\":\"varz\",\"body\":{\"now\":\"x\"}}"
        let file = try directory.write("bad.ndjson", good + "\n\n" + line + "\n")
        #expect {
            _ = try Self.readAll(file.path)
        } throws: { error in
            guard let error = error as? RecordingError else { return false }
            return error.file == file.path && error.line == 3 && error.reason.contains(reason)
        }
    }

    @Test("a body that is not JSON is refused before it reaches the file")
    func writerChecksJSON() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let writer = try RecordingWriter(path: directory.file("w.ndjson").path)
        #expect(throws: RecordingError.self) {
            try writer.write(time: Self.time, target: nil, endpoint: "varz", json: Array("{\"a\":".utf8))
        }
        #expect(writer.count == 0)
        try writer.close()
    }

    static let durations: [(String, Double)] = [
        ("0s", 0), ("312.5µs", 312.5e-6), ("1.5ms", 1.5e-3), ("2m3.004s", 123.004), ("1h2m", 3720),
        ("3d4h", 3 * 86400 + 4 * 3600), ("-1s", -1), ("250ns", 250e-9), ("1.2us", 1.2e-6), ("312.5μs", 312.5e-6),
        ("0", 0), ("-0", 0), ("+2s", 2), (".5s", 0.5), ("5.s", 5), ("1y", 31_536_000),
    ]

    @Test("Go durations as the server writes them", arguments: durations)
    func goDurations(text: String, seconds: Double) {
        let parsed = GoDuration.seconds(text)
        #expect(parsed.map { TestSupport.close($0, seconds) } == true, "\(text) -> \(String(describing: parsed))")
    }

    @Test(
        "text that is not a Go duration",
        arguments: ["", "s", "1", "1x", "1.2.3s", "--1s", "-", "+", "1ss", "µs", "1.", ".s", "1\u{00B5}"]
    )
    func notGoDurations(text: String) {
        #expect(GoDuration.seconds(text) == nil)
    }

    @Test("a duration's number reads as Double(String) reads it, up to 15 digits and past them")
    func goDurationDigits() {
        var generator = SystemRandomNumberGenerator()
        for digits in 1...20 {
            for _ in 0..<200 {
                let text = String((0..<digits).map { _ in "0123456789".randomElement(using: &generator) ?? "0" })
                let point = Int.random(in: 0...digits, using: &generator)
                let number = String(text.prefix(point)) + "." + String(text.dropFirst(point))
                #expect(GoDuration.seconds(number + "s") == Double(number), "\(number)")
                #expect(GoDuration.seconds(number + "ms") == Double(number).map { $0 * 1e-3 }, "\(number)")
            }
        }
    }

    static func decompressed(_ path: String) throws -> String {
        let reader = try LineReader(path: path)
        var lines: [String] = []
        while let line = try reader.next() { lines.append(String(decoding: line, as: UTF8.self)) }
        return lines.joined(separator: "\n")
    }
}
