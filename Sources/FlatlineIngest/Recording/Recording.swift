import FlatlineCore

/// One scrape as a recording keeps it: when, which target and endpoint, and the body as the target
/// returned it (JSON for NATS endpoints, exposition text for Prometheus ones), or the error.
///
/// A recording is NDJSON, one scrape a line:
/// `{"ts": "2026-11-24T15:23:21.315Z", "target": "127.0.0.1:8222", "endpoint": "varz", "body": {...}}`.
/// Exposition bodies are strings, with `"content_type"`; a failed scrape has `"error"` instead of
/// a body. `ts` is when the scrape started; detectors use the body's own clock where it has one.
public struct RecordedScrape: Sendable {
    /// The 1-based line in the recording.
    public var line: Int
    /// When the scrape was sent.
    public var time: Timestamp
    /// The target (`host:port`), or `nil` in recordings of a single target.
    public var target: String?
    /// `varz`, `connz`, `jsz`... or `metrics` for a Prometheus endpoint; `scrape` for the line
    /// the recorder writes after each round of a target (its `up`, duration and sample counts).
    public var endpoint: String
    /// The page of a paged scrape (`/connz` with more connections than the page limit), from 1.
    public var page: Int
    /// The whole line, parsed.
    public var document: JSONDocument
    /// The body's node in ``document``, when the scrape succeeded.
    public var body: Int?
    /// The `Content-Type` of an exposition body.
    public var contentType: String?
    /// Why the scrape failed, when it did.
    public var error: String?
}

/// Reads a recording line by line (plain or gzip).
public final class RecordingReader {
    private let lines: LineReader
    /// A line read past the end of a scrape's pages, for the next ``nextScrape()``.
    private var lookahead: RecordedScrape?
    /// The file, for messages.
    public var path: String { lines.path }
    /// Set when the file ended early (a gzip stream cut off): everything before the cut was read.
    public var truncation: RecordingError? { lines.truncation }

    /// Opens a recording.
    /// - Throws: ``RecordingError`` when the file cannot be opened.
    public init(path: String) throws(RecordingError) {
        lines = try LineReader(path: path)
    }

    /// The next scrape with all its pages: a line and the later pages (`page` > 1, same
    /// endpoint and target) that follow it directly; `nil` at the end.
    /// - Throws: ``RecordingError`` as ``next()`` does.
    public func nextScrape() throws(RecordingError) -> [RecordedScrape]? {
        var next = lookahead
        lookahead = nil
        if next == nil { next = try self.next() }
        guard let first = next else { return nil }
        var pages = [first]
        while let following = try self.next() {
            if following.page > 1, following.endpoint == first.endpoint, following.target == first.target {
                pages.append(following)
            } else {
                lookahead = following
                break
            }
        }
        return pages
    }

    /// The next line's scrape, or `nil` at the end. Blank lines are skipped. Mixed with
    /// ``nextScrape()`` it does not see the line that one read ahead.
    /// - Throws: ``RecordingError`` naming the line: not JSON, or a required key missing.
    public func next() throws(RecordingError) -> RecordedScrape? {
        while let raw = try lines.next() {
            if raw.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let line = lines.lineNumber
            let document: JSONDocument
            do {
                document = try JSONDocument(parsing: Array(raw))
            } catch {
                // The last line of a plain file cut off by a crash: what came before is whole.
                if lines.unterminated && lines.truncation == nil {
                    lines.cutLastLine()
                    return nil
                }
                throw RecordingError(file: path, line: line, reason: "\(error)")
            }
            let root = document.root
            guard document.kind(root) == .object else {
                throw RecordingError(file: path, line: line, reason: "a recorded scrape must be a JSON object")
            }
            guard let tsText = document.string(root, "ts") else {
                throw RecordingError(file: path, line: line, reason: "missing \"ts\" (the scrape time, RFC 3339)")
            }
            guard let time = NumberText.parseTimestamp(tsText) else {
                throw RecordingError(file: path, line: line, reason: "\"ts\": \"\(tsText)\" is not an RFC 3339 time")
            }
            guard let endpoint = document.string(root, "endpoint"), !endpoint.isEmpty else {
                throw RecordingError(file: path, line: line, reason: "missing \"endpoint\"")
            }
            let body = document.member(root, "body")
            let error = document.string(root, "error")
            guard body != nil || error != nil else {
                throw RecordingError(file: path, line: line, reason: "a recorded scrape needs \"body\" or \"error\"")
            }
            return RecordedScrape(
                line: line,
                time: time,
                target: document.string(root, "target"),
                endpoint: endpoint,
                page: document.number(root, "page").flatMap { Int(exactly: $0) } ?? 1,
                document: document,
                body: body,
                contentType: document.string(root, "content_type"),
                error: error
            )
        }
        return nil
    }
}

/// Writes a recording (gzip when the name ends in `.gz`), one scrape a line.
public final class RecordingWriter {
    private let writer: CompressedWriter
    /// The file.
    public var path: String { writer.path }
    /// Scrapes written so far.
    public private(set) var count = 0

    /// Creates (or truncates) the file.
    /// - Throws: ``RecordingError`` when it cannot be created.
    public init(path: String) throws(RecordingError) {
        writer = try CompressedWriter(path: path)
    }

    /// Writes a JSON body (compacted onto one line; the JSON is checked first).
    /// - Throws: ``RecordingError`` when writing fails, or the body is not JSON.
    public func write(
        time: Timestamp,
        target: String?,
        labels: [String: String] = [:],
        endpoint: String,
        page: Int = 1,
        json body: [UInt8]
    ) throws(RecordingError) {
        let document: JSONDocument
        do {
            document = try JSONDocument(parsing: body)
        } catch {
            throw RecordingError(file: path, line: count + 1, reason: "\(endpoint) body is not JSON: \(error)")
        }
        try write(time: time, target: target, labels: labels, endpoint: endpoint, page: page, document: document)
    }

    /// Writes a body already parsed (so it is not parsed again), compacted onto one line.
    /// - Throws: ``RecordingError`` when writing fails.
    public func write(
        time: Timestamp,
        target: String?,
        labels: [String: String] = [:],
        endpoint: String,
        page: Int = 1,
        document: JSONDocument
    ) throws(RecordingError) {
        var line = header(time: time, target: target, labels: labels, endpoint: endpoint, page: page)
        line += Array(#","body":"#.utf8)
        JSONText.appendCompacted(document.bytes, to: &line)
        line += Array("}\n".utf8)
        try writer.write(line)
        count += 1
    }

    /// Writes an exposition body (kept as a JSON string) with its content type.
    public func write(
        time: Timestamp,
        target: String?,
        labels: [String: String] = [:],
        endpoint: String,
        text body: [UInt8],
        contentType: String?
    ) throws(RecordingError) {
        var line = header(time: time, target: target, labels: labels, endpoint: endpoint, page: 1)
        if let contentType {
            line += Array(#","content_type":"#.utf8)
            JSONText.appendString(contentType, to: &line)
        }
        line += Array(#","body":"#.utf8)
        JSONText.appendString(String(decoding: body, as: UTF8.self), to: &line)
        line += Array("}\n".utf8)
        try writer.write(line)
        count += 1
    }

    /// Writes a failed scrape.
    public func write(
        time: Timestamp,
        target: String?,
        labels: [String: String] = [:],
        endpoint: String,
        error: String
    ) throws(RecordingError) {
        var line = header(time: time, target: target, labels: labels, endpoint: endpoint, page: 1)
        line += Array(#","error":"#.utf8)
        JSONText.appendString(error, to: &line)
        line += Array("}\n".utf8)
        try writer.write(line)
        count += 1
    }

    /// Makes everything written so far readable (a gzip flush point).
    public func flush() throws(RecordingError) { try writer.flush() }

    /// Finishes the file.
    public func close() throws(RecordingError) { try writer.close() }

    /// Writes the health of a round of scrapes of one target (`endpoint` `"scrape"`).
    public func write(
        time: Timestamp,
        target: String?,
        labels: [String: String] = [:],
        health: ScrapeHealth
    ) throws(RecordingError) {
        var line = header(time: time, target: target, labels: labels, endpoint: "scrape", page: 1)
        line += Array(#","body":{"up":"#.utf8)
        line += Array((health.up ? "1" : "0").utf8)
        line += Array(#","duration_seconds":"#.utf8)
        line += Array((health.durationSeconds.isFinite ? health.durationSeconds : 0).description.utf8)
        line += Array(
            #","samples_scraped":\#(health.samplesScraped),"samples_dropped":\#(health.samplesDropped)}}"#.utf8
        )
        line += Array("\n".utf8)
        try writer.write(line)
        count += 1
    }

    private func header(time: Timestamp, target: String?, labels: [String: String], endpoint: String, page: Int)
        -> [UInt8]
    {
        var line = Array(#"{"ts":"#.utf8)
        JSONText.appendString(time.description, to: &line)
        if let target {
            line += Array(#","target":"#.utf8)
            JSONText.appendString(target, to: &line)
        }
        if !labels.isEmpty {
            line += Array(#","labels":{"#.utf8)
            for (k, (name, value)) in labels.sorted(by: { $0.key < $1.key }).enumerated() {
                if k > 0 { line.append(UInt8(ascii: ",")) }
                JSONText.appendString(name, to: &line)
                line.append(UInt8(ascii: ":"))
                JSONText.appendString(value, to: &line)
            }
            line.append(UInt8(ascii: "}"))
        }
        line += Array(#","endpoint":"#.utf8)
        JSONText.appendString(endpoint, to: &line)
        if page > 1 { line += Array(#","page":\#(page)"#.utf8) }
        return line
    }
}

/// Writing JSON text.
package enum JSONText {
    /// `text` as a JSON string literal, escaped.
    package static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += Array("\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Valid JSON with the whitespace between tokens removed (strings untouched), so a
    /// pretty-printed body fits on one line.
    static func appendCompacted(_ json: [UInt8], to out: inout [UInt8]) {
        out.reserveCapacity(out.count + json.count)
        var inString = false
        var escaped = false
        for byte in json {
            if inString {
                out.append(byte)
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case 0x20, 0x0A, 0x0D, 0x09: continue
            case UInt8(ascii: "\""):
                inString = true
                out.append(byte)
            default: out.append(byte)
            }
        }
    }
}
