import Foundation
import NIOCore

/// Writes client operations in the wire format.
enum ProtocolEncoding {
    static let crlf: [UInt8] = [13, 10]

    static func writeConnect(_ options: ConnectOptions, into buffer: inout ByteBuffer) throws(NATSError) {
        let json: Data
        do {
            json = try JSONEncoder().encode(options)
        } catch {
            throw NATSError(.invalidArgument, "cannot encode CONNECT: \(error)")
        }
        buffer.writeString("CONNECT ")
        buffer.writeBytes(json)
        buffer.writeBytes(crlf)
    }

    /// `PUB`, or `HPUB` when there are headers (already encoded, `NATS/1.0` line first).
    ///
    /// It runs on every publish: the size is worked out first and the frame is copied into the
    /// buffer in one reservation, not field by field.
    static func writePublish(
        subject: String,
        replyTo: String?,
        headers: [UInt8]?,
        payload: UnsafeRawBufferPointer,
        into buffer: inout ByteBuffer
    ) {
        let headerCount = headers?.count ?? 0
        let total = headerCount + payload.count
        var size = (headers == nil ? 4 : 5) + subject.utf8.count + 1 + decimalDigits(total) + 2 + total + 2
        if let replyTo { size += 1 + replyTo.utf8.count }
        if let headers { size += decimalDigits(headers.count) + 1 }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { out in
            var at = 0
            func put(_ byte: UInt8) {
                out[at] = byte
                at += 1
            }
            func put(_ bytes: UnsafeRawBufferPointer) {
                guard let base = bytes.baseAddress, bytes.count > 0 else { return }
                out.baseAddress?.advanced(by: at).copyMemory(from: base, byteCount: bytes.count)
                at += bytes.count
            }
            func put(_ text: String) {
                var text = text
                text.withUTF8 { put(UnsafeRawBufferPointer($0)) }
            }
            func put(decimal value: Int) {
                let digits = decimalDigits(value)
                var n = value
                for i in stride(from: at + digits - 1, through: at, by: -1) {
                    out[i] = UInt8(48 + n % 10)
                    n /= 10
                }
                at += digits
            }
            if headers == nil {
                put(UInt8(ascii: "P"))
            } else {
                put(UInt8(ascii: "H"))
                put(UInt8(ascii: "P"))
            }
            put(UInt8(ascii: "U"))
            put(UInt8(ascii: "B"))
            put(UInt8(ascii: " "))
            put(subject)
            if let replyTo {
                put(UInt8(ascii: " "))
                put(replyTo)
            }
            put(UInt8(ascii: " "))
            if let headers {
                put(decimal: headers.count)
                put(UInt8(ascii: " "))
            }
            put(decimal: total)
            put(13)
            put(10)
            if let headers { headers.withUnsafeBytes { put($0) } }
            put(payload)
            put(13)
            put(10)
            assert(at == size, "PUB frame size \(at) differs from the \(size) bytes reserved")
            return at
        }
    }

    /// How many decimal digits a non-negative integer has.
    @inline(__always)
    static func decimalDigits(_ value: Int) -> Int {
        var digits = 1
        var n = value
        while n >= 10 {
            n /= 10
            digits += 1
        }
        return digits
    }

    static func writeSubscribe(subject: String, queue: String?, sid: UInt64, into buffer: inout ByteBuffer) {
        buffer.writeString("SUB ")
        buffer.writeString(subject)
        if let queue {
            buffer.writeString(" ")
            buffer.writeString(queue)
        }
        buffer.writeString(" \(sid)\r\n")
    }

    static func writeUnsubscribe(sid: UInt64, max: Int?, into buffer: inout ByteBuffer) {
        buffer.writeString("UNSUB \(sid)")
        if let max { buffer.writeString(" \(max)") }
        buffer.writeBytes(crlf)
    }

    static func writePing(into buffer: inout ByteBuffer) { buffer.writeString("PING\r\n") }
    static func writePong(into buffer: inout ByteBuffer) { buffer.writeString("PONG\r\n") }

    /// A non-negative integer without going through `String`.
    @inline(__always)
    static func writeDecimal(_ value: Int, into buffer: inout ByteBuffer) {
        if value < 10 {
            buffer.writeInteger(UInt8(48 + value))
            return
        }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        )
        var n = value
        var count = 0
        withUnsafeMutableBytes(of: &digits) { raw in
            while n > 0 && count < 10 {
                raw[9 - count] = UInt8(48 + n % 10)
                n /= 10
                count += 1
            }
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: raw[(10 - count)...]))
        }
    }

    /// Checks a subject: not empty, no whitespace, no empty tokens; wildcards (`*`, and `>` as
    /// the last token) only where allowed. One pass over the bytes, no allocation: it runs on
    /// every publish.
    static func validate(subject: String, wildcards: Bool) throws(NATSError) {
        let star = UInt8(ascii: "*")
        let tail = UInt8(ascii: ">")
        var count = 0
        var tokenLength = 0
        var first: UInt8 = 0
        var emptyToken = false
        var whitespace = false
        var wildcard = false
        var misplacedTail = false
        for byte in subject.utf8 {
            count += 1
            if byte == 32 || byte == 9 || byte == 13 || byte == 10 { whitespace = true }
            if byte == UInt8(ascii: ".") {
                if tokenLength == 0 {
                    emptyToken = true
                } else if tokenLength == 1 && (first == star || first == tail) {
                    wildcard = true
                    if first == tail { misplacedTail = true }
                }
                tokenLength = 0
            } else {
                if tokenLength == 0 { first = byte }
                tokenLength += 1
            }
        }
        if tokenLength == 0 {
            emptyToken = true
        } else if tokenLength == 1 && (first == star || first == tail) {
            wildcard = true
        }
        if count == 0 { throw NATSError(.invalidArgument, "empty subject") }
        if whitespace { throw NATSError(.invalidArgument, "subject \"\(subject)\" contains whitespace") }
        if emptyToken { throw NATSError(.invalidArgument, "subject \"\(subject)\" has an empty token") }
        if wildcard && !wildcards {
            throw NATSError(.invalidArgument, "cannot publish to the wildcard subject \"\(subject)\"")
        }
        if misplacedTail { throw NATSError(.invalidArgument, "\">\" must be the last token of \"\(subject)\"") }
    }

    static func validate(queue: String) throws(NATSError) {
        guard !queue.isEmpty, !queue.utf8.contains(where: { $0 == 32 || $0 == 9 || $0 == 13 || $0 == 10 }) else {
            throw NATSError(.invalidArgument, "queue group \"\(queue)\" is empty or contains whitespace")
        }
    }
}

/// Frames server operations out of the byte stream for a NIO pipeline.
struct ServerOperationDecoder: ByteToMessageDecoder {
    typealias InboundOut = ServerOperation
    var parser: ProtocolParser

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let operation = try parser.parse(&buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(operation))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        try decode(context: context, buffer: &buffer)
    }
}
