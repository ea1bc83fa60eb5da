import FlatlineTestSupport
import Foundation
import NIOCore
import Testing

@testable import FlatlineNATS

@Suite("NATS protocol parser")
struct ProtocolParserTests {
    /// Bytes a real nats-server 2.9.10 sent (scripts/reference/record_nats_stream.py).
    static func recorded() throws -> [UInt8] {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/server-stream", withExtension: "bin"))
        return [UInt8](try Data(contentsOf: url))
    }

    static func parseAll(_ bytes: [UInt8], chunks: [Int]) throws -> [ServerOperation] {
        var parser = ProtocolParser()
        var buffer = ByteBuffer()
        var operations: [ServerOperation] = []
        var offset = 0
        var k = 0
        while offset < bytes.count {
            let size = Swift.min(chunks[k % chunks.count], bytes.count - offset)
            buffer.writeBytes(bytes[offset..<(offset + size)])
            offset += size
            k += 1
            while let operation = try parser.parse(&buffer) { operations.append(operation) }
        }
        #expect(buffer.readableBytes == 0)
        return operations
    }

    @Test("the recorded stream parses into the operations the server sent")
    func recordedStream() throws {
        let operations = try Self.parseAll(try Self.recorded(), chunks: [1 << 20])
        #expect(operations.count == 10)
        guard case .info(let info) = operations[0] else { Issue.record("first is not INFO"); return }
        #expect(info.version == "2.9.10")
        #expect(info.maxPayload == 1_048_576)
        #expect(info.headers)
        let messages = operations.compactMap { op -> NATSMessage? in
            if case .message(let m) = op { return m }
            return nil
        }
        #expect(messages.prefix(5).map(\.payload.readableBytes) == [0, 1, 256, 70000, 11])
        #expect(messages[2].bytes == Array(0...255))
        #expect(messages[4].string == "ünïcødé")
        let withHeaders = messages[5]
        #expect(withHeaders.subject == "telemetry")
        #expect(withHeaders.sid == 2)
        #expect(withHeaders.headers?.values(for: "Trace-Id") == ["abc123", "def456"])
        #expect(withHeaders.headers?["X-Empty"] == "")
        #expect(withHeaders.string == "with headers")
        #expect(messages[6].replyTo == "_INBOX.rec.1")
        #expect(messages[7].headers?.status == 503)
        #expect(messages[7].payload.readableBytes == 0)
        #expect(operations.last == .pong)
    }

    @Test("split at any byte, the stream parses the same", arguments: [1 as UInt64, 2, 3, 4, 5])
    func randomSplits(seed: UInt64) throws {
        let bytes = try Self.recorded()
        let whole = try Self.parseAll(bytes, chunks: [1 << 20])
        var rng = SeededRandom(seed: seed)
        let chunks = (0..<500).map { _ in 1 + Int(rng.uniform() * (seed == 1 ? 3 : 700)) }
        #expect(try Self.parseAll(bytes, chunks: chunks) == whole)
    }

    @Test(
        "malformed frames are refused with a reason",
        arguments: [
            ("MSG foo\r\n", "MSG needs 3 or 4 arguments"), ("MSG foo x 3\r\nabc\r\n", "malformed sid"),
            ("MSG foo 1 3\r\nabcXY", "not followed by CRLF"), ("HMSG foo 1 9 3\r\n", "malformed sid or sizes"),
            ("WAT\r\n", "unknown operation"), ("INFO {not json}\r\n", "INFO is not valid JSON"),
            ("HMSG foo 1 5 7\r\nBROKEhi\r\n", "malformed headers"),
        ]
    )
    func malformed(text: String, fragment: String) {
        var parser = ProtocolParser()
        var buffer = ByteBuffer(string: text)
        do {
            while try parser.parse(&buffer) != nil {}
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.code == .protocolViolation)
            #expect(error.message.contains(fragment), "\(error)")
        }
    }

    @Test("limits: a control line or a payload beyond the limit is refused before it is read")
    func limits() {
        var parser = ProtocolParser(maxControlLine: 32, maxPayload: 10)
        var long = ByteBuffer(string: "MSG " + String(repeating: "a", count: 40))
        #expect(throws: NATSError.self) { try parser.parse(&long) }
        parser = ProtocolParser(maxControlLine: 32, maxPayload: 10)
        var big = ByteBuffer(string: "MSG foo 1 11\r\n")
        #expect(throws: NATSError.self) { try parser.parse(&big) }

        // The server's INFO sets the payload limit: its max_payload, headers included.
        parser = ProtocolParser()
        var stream = ByteBuffer(string: "INFO {\"server_id\":\"S\",\"version\":\"2.10.0\",\"max_payload\":100}\r\n")
        guard case .info? = try? parser.parse(&stream) else {
            Issue.record("INFO did not parse")
            return
        }
        #expect(parser.maxPayload == 100)
        var fits = ByteBuffer(
            string: "HMSG foo 1 12 100\r\nNATS/1.0\r\n\r\n" + String(repeating: "x", count: 88) + "\r\n"
        )
        #expect(throws: Never.self) { try parser.parse(&fits) }
        var over = ByteBuffer(string: "MSG foo 1 101\r\n")
        #expect(throws: NATSError.self) { try parser.parse(&over) }
    }

    @Test("-ERR text, +OK, PING and lowercase keywords")
    func simpleOperations() throws {
        var parser = ProtocolParser()
        var buffer = ByteBuffer(string: "-ERR 'Authorization Violation'\r\n+OK\r\nping\r\n")
        #expect(try parser.parse(&buffer) == .error("Authorization Violation"))
        #expect(try parser.parse(&buffer) == .ok)
        #expect(try parser.parse(&buffer) == .ping)
        #expect(try parser.parse(&buffer) == nil)
    }

    @Test("the encoder writes what the protocol specifies")
    func encoding() throws {
        var buffer = ByteBuffer()
        Array("hi".utf8).withUnsafeBytes {
            ProtocolEncoding.writePublish(subject: "a.b", replyTo: "r", headers: nil, payload: $0, into: &buffer)
        }
        var headers = NATSHeaders()
        headers.append("1", for: "K")
        [UInt8]().withUnsafeBytes {
            ProtocolEncoding.writePublish(
                subject: "a",
                replyTo: nil,
                headers: headers.encoded(),
                payload: $0,
                into: &buffer
            )
        }
        ProtocolEncoding.writeSubscribe(subject: "a.*", queue: "q", sid: 7, into: &buffer)
        ProtocolEncoding.writeUnsubscribe(sid: 7, max: 3, into: &buffer)
        #expect(
            String(buffer: buffer)
                == "PUB a.b r 2\r\nhi\r\nHPUB a 18 18\r\nNATS/1.0\r\nK: 1\r\n\r\n\r\nSUB a.* q 7\r\nUNSUB 7 3\r\n"
        )
        for n in [0, 7, 10, 99, 1000, 1_048_576] {
            var b = ByteBuffer()
            ProtocolEncoding.writeDecimal(n, into: &b)
            #expect(String(buffer: b) == "\(n)")
        }
    }

    @Test("PUB and HPUB frames match a field-by-field reference for any shape and size")
    func publishFramesMatchReference() {
        var random = SeededRandom(seed: 11)
        let sizes = [0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 1024, 65_535, 65_536, 1_048_576]
        for round in 0..<200 {
            let subject = (0..<Int.random(in: 1...4, using: &random)).map { "t\($0)x\(round)" }.joined(separator: ".")
            let replyTo = Bool.random(using: &random) ? "_INBOX.\(round).r" : nil
            var headers: NATSHeaders?
            if round % 3 == 0 {
                var h = NATSHeaders()
                for k in 0..<Int.random(in: 0...3, using: &random) { h.append("v\(k)", for: "K\(k)") }
                headers = h
            }
            let size = round < sizes.count ? sizes[round] : Int.random(in: 0...5000, using: &random)
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ round) }
            var buffer = ByteBuffer(string: "prefix")
            payload.withUnsafeBytes {
                ProtocolEncoding.writePublish(
                    subject: subject,
                    replyTo: replyTo,
                    headers: headers?.encoded(),
                    payload: $0,
                    into: &buffer
                )
            }
            var expected = Array("prefix".utf8)
            let encodedHeaders = headers?.encoded() ?? []
            var line = (headers == nil ? "PUB " : "HPUB ") + subject + (replyTo.map { " " + $0 } ?? "")
            if headers != nil { line += " \(encodedHeaders.count)" }
            line += " \(encodedHeaders.count + payload.count)\r\n"
            expected += Array(line.utf8) + encodedHeaders + payload + [13, 10]
            #expect(Array(buffer.readableBytesView) == expected, "round \(round): \(line)")
        }
    }

    @Test(
        "subjects are checked without allocating",
        arguments: [
            ("a.b", false, true), ("a..b", false, false), ("", false, false), ("a b", false, false),
            ("a.*", false, false),
            ("a.*", true, true), ("a.>", true, true), ("a.>.b", true, false), (">", true, true), ("a.", true, false),
            ("a*b.c", false, true),
        ]
    )
    func subjects(subject: String, wildcards: Bool, valid: Bool) {
        if valid {
            #expect(throws: Never.self) { try ProtocolEncoding.validate(subject: subject, wildcards: wildcards) }
        } else {
            #expect(throws: NATSError.self) { try ProtocolEncoding.validate(subject: subject, wildcards: wildcards) }
        }
    }
}
