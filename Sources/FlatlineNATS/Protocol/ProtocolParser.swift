import Foundation
import NIOCore

/// An incremental parser of the server side of the NATS client protocol.
///
/// Feed it bytes as they arrive, split anywhere; it returns one operation at a time once it has
/// all of its bytes, and leaves the rest in the buffer. It enforces the control line limit and
/// the payload limit (the server's `max_payload`), and names what is wrong with a malformed frame.
public struct ProtocolParser: Sendable {
    /// The longest control line accepted (the server's default `max_control_line`).
    public var maxControlLine: Int
    /// The largest message accepted, headers included: the server's `max_payload` once its
    /// `INFO` has been read (see ``followsServerInfo``).
    public var maxPayload: Int
    /// Whether an `INFO` sets ``maxPayload`` to the server's `max_payload`.
    public var followsServerInfo = true
    /// The largest message accepted whatever a server's `INFO` says: a server announcing a
    /// `max_payload` of 10¹⁸ cannot make the client buffer a message of that size.
    public let payloadCap: Int

    private var pending: PendingMessage?

    struct PendingMessage: Sendable {
        var subject: String
        var sid: UInt64
        var replyTo: String?
        var headerBytes: Int
        var totalBytes: Int
    }

    public init(maxControlLine: Int = 4096, maxPayload: Int = 64 * 1024 * 1024) {
        self.maxControlLine = maxControlLine
        self.maxPayload = maxPayload
        payloadCap = maxPayload
    }

    /// The next complete operation in `buffer`, or `nil` when more bytes are needed.
    /// - Throws: ``NATSError`` with code ``NATSError/Code/protocolViolation`` for a malformed frame.
    public mutating func parse(_ buffer: inout ByteBuffer) throws(NATSError) -> ServerOperation? {
        if let message = pending {
            return try readPayload(message, &buffer)
        }
        guard let lineEnd = findCRLF(buffer) else {
            if buffer.readableBytes > maxControlLine {
                throw violation("control line longer than \(maxControlLine) bytes")
            }
            return nil
        }
        guard lineEnd <= maxControlLine else { throw violation("control line longer than \(maxControlLine) bytes") }
        let line = buffer.readableBytesView.prefix(lineEnd)
        let operation = try parseControlLine(Array(line))
        buffer.moveReaderIndex(forwardBy: lineEnd + 2)
        if case .some(let message) = operation.pendingMessage {
            pending = message
            return try readPayload(message, &buffer)
        }
        if followsServerInfo, case .info(let info)? = operation.operation, info.maxPayload > 0 {
            maxPayload = Swift.min(info.maxPayload, payloadCap)
        }
        return operation.operation
    }

    private func findCRLF(_ buffer: ByteBuffer) -> Int? {
        let view = buffer.readableBytesView
        let limit = Swift.min(view.count, maxControlLine + 2)
        var i = view.startIndex
        let end = view.startIndex + limit
        while i < end {
            if view[i] == 10 {
                let offset = i - view.startIndex
                guard offset > 0, view[i - 1] == 13 else { return nil }
                return offset - 1
            }
            i += 1
        }
        return nil
    }

    private mutating func readPayload(_ message: PendingMessage, _ buffer: inout ByteBuffer) throws(NATSError)
        -> ServerOperation?
    {
        guard buffer.readableBytes >= message.totalBytes + 2 else { return nil }
        var headers: NATSHeaders?
        if message.headerBytes > 0 {
            guard let bytes = buffer.readBytes(length: message.headerBytes), let parsed = NATSHeaders.parse(bytes)
            else {
                throw violation("malformed headers in a message on \(message.subject)")
            }
            headers = parsed
        }
        guard let payload = buffer.readSlice(length: message.totalBytes - message.headerBytes),
            let crlf = buffer.readBytes(length: 2), crlf == [13, 10]
        else {
            throw violation("message payload on \(message.subject) not followed by CRLF")
        }
        pending = nil
        return .message(
            NATSMessage(
                subject: message.subject,
                sid: message.sid,
                replyTo: message.replyTo,
                headers: headers,
                payload: payload
            )
        )
    }

    private struct Parsed {
        var operation: ServerOperation?
        var pendingMessage: PendingMessage?
    }

    private func parseControlLine(_ line: [UInt8]) throws(NATSError) -> Parsed {
        let (keyword, rest) = splitKeyword(line)
        switch keyword {
        case "MSG":
            let fields = rest.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)
                .flatMap { $0.split(separator: UInt8(ascii: "\t"), omittingEmptySubsequences: true) }
            guard fields.count == 3 || fields.count == 4 else { throw violation("MSG needs 3 or 4 arguments") }
            let subject = String(decoding: fields[0], as: UTF8.self)
            guard let sid = parseInt(fields[1]).map(UInt64.init),
                let size = parseInt(fields[fields.count - 1])
            else { throw violation("MSG with a malformed sid or size") }
            guard size <= maxPayload else { throw violation("MSG payload of \(size) bytes exceeds \(maxPayload)") }
            let reply = fields.count == 4 ? String(decoding: fields[2], as: UTF8.self) : nil
            return Parsed(
                pendingMessage: PendingMessage(
                    subject: subject,
                    sid: sid,
                    replyTo: reply,
                    headerBytes: 0,
                    totalBytes: size
                )
            )
        case "HMSG":
            let fields = rest.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)
            guard fields.count == 4 || fields.count == 5 else { throw violation("HMSG needs 4 or 5 arguments") }
            let subject = String(decoding: fields[0], as: UTF8.self)
            guard let sid = parseInt(fields[1]).map(UInt64.init),
                let headerSize = parseInt(fields[fields.count - 2]),
                let total = parseInt(fields[fields.count - 1]), headerSize <= total
            else { throw violation("HMSG with a malformed sid or sizes") }
            guard total <= maxPayload else { throw violation("HMSG payload of \(total) bytes exceeds \(maxPayload)") }
            let reply = fields.count == 5 ? String(decoding: fields[2], as: UTF8.self) : nil
            return Parsed(
                pendingMessage: PendingMessage(
                    subject: subject,
                    sid: sid,
                    replyTo: reply,
                    headerBytes: headerSize,
                    totalBytes: total
                )
            )
        case "PING": return Parsed(operation: .ping)
        case "PONG": return Parsed(operation: .pong)
        case "+OK": return Parsed(operation: .ok)
        case "-ERR":
            var text = String(decoding: rest, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("'") && text.hasSuffix("'") && text.count >= 2 {
                text = String(text.dropFirst().dropLast())
            }
            return Parsed(operation: .error(text))
        case "INFO":
            do {
                let info = try JSONDecoder().decode(ServerInfo.self, from: Data(rest))
                return Parsed(operation: .info(info))
            } catch {
                throw violation("INFO is not valid JSON: \(error)")
            }
        default:
            let shown = String(decoding: line.prefix(40), as: UTF8.self)
            throw violation("unknown operation \"\(shown)\"")
        }
    }

    private func splitKeyword(_ line: [UInt8]) -> (String, ArraySlice<UInt8>) {
        var i = 0
        while i < line.count, line[i] != UInt8(ascii: " "), line[i] != UInt8(ascii: "\t") { i += 1 }
        let keyword = String(decoding: line[0..<i], as: UTF8.self).uppercased()
        while i < line.count, line[i] == UInt8(ascii: " ") || line[i] == UInt8(ascii: "\t") { i += 1 }
        return (keyword, line[i...])
    }

    private func parseInt(_ bytes: some Collection<UInt8>) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var value = 0
        for b in bytes {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(b - UInt8(ascii: "0"))
        }
        return value
    }

    private func violation(_ message: String) -> NATSError { NATSError(.protocolViolation, message) }
}
