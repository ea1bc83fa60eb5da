#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One pass over a JSON text that appends a node per value to a tape (see ``JSONDocument``).
/// Iterative, with an explicit stack of open containers, so nesting depth costs no call stack.
struct JSONTapeParser {
    private struct Frame {
        var node: Int
        var isObject: Bool
        var count: UInt32
    }

    let bytes: [UInt8]
    let maxDepth: Int
    let maxValues: Int
    private var i = 0
    /// `bytes` while ``parse()`` runs.
    private var text = UnsafeBufferPointer<UInt8>(start: nil, count: 0)
    /// The nodes written so far, into ``tape``.
    private var count = 0
    /// The tape while ``parse(capacity:)`` runs.
    private var tape = UnsafeMutableBufferPointer<JSONDocument.Node>(start: nil, count: 0)
    private var stack: [Frame] = []

    init(bytes: [UInt8], maxDepth: Int, maxValues: Int = JSONDocument.defaultMaxValues) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.maxValues = maxValues
    }

    mutating func parse() throws(JSONError) -> [JSONDocument.Node] {
        guard bytes.count < Int(UInt32.max) else { throw JSONError(offset: 0, reason: "text larger than 4 GiB") }
        // Monitoring JSON averages about one value (member names included) per 9 bytes
        // (`/connz`): a tape for one per 8 is nearly always enough. A text with more is parsed
        // again into one for every value it can hold: each takes at least two bytes with its
        // separator, and at most one member name more than `maxValues` passes the check below.
        let guess = min(bytes.count / 8 + 4, maxValues + 1)
        if let nodes = try parse(capacity: guess) { return nodes }
        let bound = min(bytes.count / 2 + 2, maxValues + 1)
        if let nodes = try parse(capacity: bound) { return nodes }
        throw JSONError(offset: i, reason: "more than \(bound) values")
    }

    /// One pass into a tape of `capacity` nodes; `nil` when the text has more.
    private mutating func parse(capacity: Int) throws(JSONError) -> [JSONDocument.Node]? {
        i = 0
        count = 0
        stack.removeAll(keepingCapacity: true)
        var failure: JSONError?
        var full = false
        let bytes = bytes
        // The pass reads the bytes and writes the nodes through pointers, valid only while it
        // runs: no bounds check or uniqueness check per byte or node (every read is guarded by
        // `i < text.count`, every write by `count < capacity`).
        let nodes = bytes.withUnsafeBufferPointer { text in
            [JSONDocument.Node](unsafeUninitializedCapacity: capacity) { tape, initialized in
                self.text = text
                self.tape = tape
                defer {
                    self.text = UnsafeBufferPointer(start: nil, count: 0)
                    self.tape = UnsafeMutableBufferPointer(start: nil, count: 0)
                }
                do throws(JSONError) {
                    try parseText()
                } catch {
                    if error == Self.tapeFull { full = true } else { failure = error }
                }
                // Nodes are plain values: those written are initialized, whatever happened.
                initialized = count
            }
        }
        if let failure { throw failure }
        return full ? nil : nodes
    }

    /// Thrown inside the pass when the tape has no room for another node.
    private static let tapeFull = JSONError(offset: -1, reason: "tape full")

    private mutating func parseText() throws(JSONError) {
        var needValue = true
        while true {
            if needValue {
                guard count < maxValues else { throw error("more than \(maxValues) values") }
                skipWhitespace()
                guard i < text.count else { throw error(count == 0 ? "empty text" : "unexpected end of text") }
                switch text[i] {
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    let isObject = text[i] == UInt8(ascii: "{")
                    guard stack.count < maxDepth else { throw error("nesting deeper than \(maxDepth) levels") }
                    try append(isObject ? .object : .array, start: i, length: 0)
                    stack.append(Frame(node: count - 1, isObject: isObject, count: 0))
                    i += 1
                    skipWhitespace()
                    if i < text.count && text[i] == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                        i += 1
                        close()
                        needValue = false
                    } else {
                        if isObject { try parseKey() }
                        stack[stack.count - 1].count += 1
                    }
                    continue
                case UInt8(ascii: "\""):
                    try parseString()
                case UInt8(ascii: "t"):
                    try literal("true")
                    try append(.bool, start: i - 4, length: 4, flag: true)
                case UInt8(ascii: "f"):
                    try literal("false")
                    try append(.bool, start: i - 5, length: 5, flag: false)
                case UInt8(ascii: "n"):
                    try literal("null")
                    try append(.null, start: i - 4, length: 4)
                case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                    try parseNumber()
                default:
                    throw error("unexpected character \(describe(text[i]))")
                }
                needValue = false
            } else {
                guard let top = stack.last else {
                    skipWhitespace()
                    guard i == text.count else { throw error("data after the end of the value") }
                    return
                }
                skipWhitespace()
                guard i < text.count else {
                    throw error("unexpected end of text inside \(top.isObject ? "an object" : "an array")")
                }
                let c = text[i]
                if c == UInt8(ascii: ",") {
                    i += 1
                    if top.isObject {
                        skipWhitespace()
                        try parseKey()
                    }
                    stack[stack.count - 1].count += 1
                    needValue = true
                } else if c == (top.isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    i += 1
                    close()
                } else {
                    throw error("expected , or \(top.isObject ? "}" : "]"), found \(describe(c))")
                }
            }
        }
    }

    // MARK: Pieces

    @inline(__always)
    private mutating func skipWhitespace() {
        while i < text.count {
            let c = text[i]
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            i += 1
        }
    }

    @inline(__always)
    private mutating func append(
        _ kind: JSONDocument.Kind,
        start: Int,
        length: Int,
        flag: Bool = false,
        number: Double = 0
    ) throws(JSONError) {
        guard count < tape.count else { throw Self.tapeFull }
        tape.initializeElement(
            at: count,
            to: JSONDocument.Node(
                kind: kind,
                flag: flag,
                start: UInt32(truncatingIfNeeded: start),
                length: UInt32(truncatingIfNeeded: length),
                next: UInt32(truncatingIfNeeded: count + 1),
                number: number
            )
        )
        count += 1
    }

    private mutating func close() {
        guard let top = stack.popLast() else { return }
        tape[top.node].length = top.count
        tape[top.node].next = UInt32(truncatingIfNeeded: count)
    }

    private mutating func parseKey() throws(JSONError) {
        guard i < text.count, text[i] == UInt8(ascii: "\"") else {
            throw error(
                i < text.count
                    ? "expected a member name in quotes, found \(describe(text[i]))" : "unexpected end of text"
            )
        }
        try parseString()
        skipWhitespace()
        guard i < text.count, text[i] == UInt8(ascii: ":") else { throw error("expected : after a member name") }
        i += 1
    }

    private mutating func parseString() throws(JSONError) {
        i += 1
        let start = i
        var escaped = false
        while true {
            i += Self.plainRun(UnsafeRawBufferPointer(text), from: i)
            guard i < text.count else { throw JSONError(offset: start - 1, reason: "unterminated string") }
            let c = text[i]
            if c == UInt8(ascii: "\"") { break }
            if c == UInt8(ascii: "\\") {
                escaped = true
                guard i + 1 < text.count else { throw JSONError(offset: start - 1, reason: "unterminated string") }
                switch text[i + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 2
                case UInt8(ascii: "u"):
                    guard i + 5 < text.count, (2...5).allSatisfy({ Self.hexValue(text[i + $0]) != nil }) else {
                        throw error("\\u must be followed by four hex digits")
                    }
                    i += 6
                default:
                    throw error("invalid escape \\\(describe(text[i + 1]))")
                }
                continue
            }
            guard c >= 0x20 else { throw error("control character \(describe(c)) in a string") }
            i += 1
        }
        try append(.string, start: start, length: i - start, flag: escaped)
        i += 1
    }

    /// How many bytes from `from` on are plain string text: no quote, backslash or control
    /// character. Eight bytes at a time.
    @inline(__always)
    static func plainRun(_ text: UnsafeRawBufferPointer, from: Int) -> Int {
        var k = from
        while k + 8 <= text.count {
            let v = UInt64(littleEndian: text.loadUnaligned(fromByteOffset: k, as: UInt64.self))
            let special =
                zeroBytes(v ^ 0x2222_2222_2222_2222) | zeroBytes(v ^ 0x5C5C_5C5C_5C5C_5C5C)
                | zeroBytes(v & 0xE0E0_E0E0_E0E0_E0E0)
            if special != 0 { return k + special.trailingZeroBitCount / 8 - from }
            k += 8
        }
        while k < text.count {
            let c = text[k]
            if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") || c < 0x20 { break }
            k += 1
        }
        return k - from
    }

    /// The high bit of each byte of `t` that is zero, and nothing else (exact: no carry crosses
    /// a byte, as `(b & 0x7F) + 0x7F` is at most 0xFE).
    @inline(__always)
    static func zeroBytes(_ t: UInt64) -> UInt64 {
        let low7: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
        return ~(((t & low7) &+ low7) | t | low7)
    }

    private mutating func literal(_ word: StaticString) throws(JSONError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= text.count else { throw error("unexpected end of text") }
        for k in 0..<n where text[i + k] != word.utf8Start[k] {
            throw error("unexpected character \(describe(text[i + k]))")
        }
        i += n
    }

    private mutating func parseNumber() throws(JSONError) {
        let start = i
        var negative = false
        if text[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        guard i < text.count, Self.isDigit(text[i]) else { throw error("a number needs digits") }
        var integer: Int64 = 0
        var digits = 0
        if text[i] == UInt8(ascii: "0") {
            i += 1
            digits = 1
        } else {
            while i < text.count, Self.isDigit(text[i]) {
                if digits < 18 { integer = integer * 10 + Int64(text[i] - UInt8(ascii: "0")) }
                digits += 1
                i += 1
            }
        }
        var simple = digits <= 18
        if i < text.count, text[i] == UInt8(ascii: ".") {
            simple = false
            i += 1
            guard i < text.count, Self.isDigit(text[i]) else { throw error("a fraction needs digits") }
            while i < text.count, Self.isDigit(text[i]) { i += 1 }
        }
        if i < text.count, text[i] == UInt8(ascii: "e") || text[i] == UInt8(ascii: "E") {
            simple = false
            i += 1
            if i < text.count, text[i] == UInt8(ascii: "+") || text[i] == UInt8(ascii: "-") { i += 1 }
            guard i < text.count, Self.isDigit(text[i]) else { throw error("an exponent needs digits") }
            while i < text.count, Self.isDigit(text[i]) { i += 1 }
        }
        let value: Double
        if simple {
            value = negative ? -Double(integer) : Double(integer)
        } else {
            value = Self.convert(bytes[start..<i])
        }
        try append(.number, start: start, length: i - start, number: value)
    }

    // MARK: Helpers

    private func error(_ reason: String) -> JSONError { JSONError(offset: i, reason: reason) }

    private func describe(_ c: UInt8) -> String {
        c >= 0x21 && c < 0x7F ? "'\(Character(Unicode.Scalar(c)))'" : "byte 0x\(String(c, radix: 16))"
    }

    @inline(__always)
    static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    static func hexValue(_ c: UInt8) -> UInt32? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(c - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(c - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    /// The C library's correctly rounded conversion, for numbers with a fraction, an exponent
    /// or more than 18 digits (already checked against the JSON grammar).
    static func convert(_ text: ArraySlice<UInt8>) -> Double {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: text.count + 1) { buffer in
            for (k, c) in text.enumerated() { buffer[k] = CChar(bitPattern: c) }
            buffer[text.count] = 0
            guard let base = buffer.baseAddress else { return .nan }
            return strtod(base, nil)
        }
    }

    /// A string's text with its escapes resolved (surrogate pairs joined; a lone surrogate becomes
    /// U+FFFD).
    static func unescape(_ raw: ArraySlice<UInt8>) -> String {
        String(decoding: unescapedBytes(raw), as: UTF8.self)
    }

    /// The bytes of a string's raw text with its escapes undone (`\uXXXX` as UTF-8).
    static func unescapedBytes(_ raw: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var k = raw.startIndex
        func hex4(_ at: Int) -> UInt32 {
            var v: UInt32 = 0
            for j in 0..<4 { v = v << 4 | (hexValue(raw[at + j]) ?? 0) }
            return v
        }
        func appendScalar(_ value: UInt32) {
            let scalar = Unicode.Scalar(value) ?? "\u{FFFD}"
            out.append(contentsOf: Array(String(Character(scalar)).utf8))
        }
        while k < raw.endIndex {
            let c = raw[k]
            guard c == UInt8(ascii: "\\"), k + 1 < raw.endIndex else {
                // Everything up to the next backslash, at once.
                let end = raw.withUnsafeBufferPointer { b -> Int in
                    let from = k - raw.startIndex + 1
                    guard let base = b.baseAddress, from < b.count,
                        let found = memchr(base + from, Int32(UInt8(ascii: "\\")), b.count - from)
                    else { return raw.endIndex }
                    return raw.startIndex + base.distance(to: found.assumingMemoryBound(to: UInt8.self))
                }
                out.append(contentsOf: raw[k..<end])
                k = end
                continue
            }
            let e = raw[k + 1]
            k += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard k + 4 <= raw.endIndex else { return out }
                var value = hex4(k)
                k += 4
                if (0xD800..<0xDC00).contains(value), k + 6 <= raw.endIndex, raw[k] == UInt8(ascii: "\\"),
                    raw[k + 1] == UInt8(ascii: "u")
                {
                    let low = hex4(k + 2)
                    if (0xDC00..<0xE000).contains(low) {
                        value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
                        k += 6
                    }
                }
                appendScalar(value)
            default: out.append(e)
            }
        }
        return out
    }
}
