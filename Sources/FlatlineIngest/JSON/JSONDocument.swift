#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A parsed JSON text, kept as a flat tape of nodes over the original bytes.
///
/// Monitoring bodies are large (a `/connz` page of 10,000 connections is about 5 MB) and read
/// once, for a few fields per object; a tree of Swift values would allocate for every member.
/// Here parsing is one pass that records each value as a node (kind, byte range, the index of
/// the node after its subtree, and its number when it is one), and lookups walk the tape. Strings
/// stay bytes until asked for.
///
/// Nodes are addressed by index; the root is node 0. An object's children are its keys and values
/// in turn (key, value, key, value...).
public struct JSONDocument: Sendable {
    /// What a node is.
    public enum Kind: UInt8, Sendable {
        case null, bool, number, string, array, object
    }

    struct Node: Sendable {
        var kind: Kind
        /// For strings: whether it has escapes. For bools: its value.
        var flag: Bool
        /// Byte offset of the value's text (for strings, after the opening quote).
        var start: UInt32
        /// Byte length of the text (strings: without quotes); children for containers.
        var length: UInt32
        /// The index of the first node after this one's subtree.
        var next: UInt32
        var number: Double
    }

    /// The text parsed.
    public let bytes: [UInt8]
    var nodes: [Node]

    /// The most values a document may hold by default: 4,194,304, a tape of about 100 MiB
    /// (24 bytes a value). A body of `[0,0,0,...]` has a value every two bytes, twelve times
    /// its size in tape; this caps it whatever `body_size_limit` allows.
    public static let defaultMaxValues = 4_194_304

    /// Parses a complete JSON text (RFC 8259). Nesting deeper than `maxDepth`, or more than
    /// `maxValues` values, is refused, so a hostile body cannot exhaust the stack or the memory.
    /// - Throws: ``JSONError`` with the byte offset and the reason.
    public init(parsing bytes: [UInt8], maxDepth: Int = 256, maxValues: Int = JSONDocument.defaultMaxValues)
        throws(JSONError)
    {
        self.bytes = bytes
        var parser = JSONTapeParser(bytes: bytes, maxDepth: maxDepth, maxValues: maxValues)
        nodes = try parser.parse()
    }

    /// The root node's index.
    public var root: Int { 0 }

    /// The number of nodes.
    public var count: Int { nodes.count }

    public func kind(_ node: Int) -> Kind { nodes[node].kind }

    /// The node's number, or `nil` when it is not a number.
    public func number(_ node: Int) -> Double? {
        let n = nodes[node]
        return n.kind == .number ? n.number : nil
    }

    /// The node's boolean, or `nil` when it is not `true` or `false`.
    public func bool(_ node: Int) -> Bool? {
        let n = nodes[node]
        return n.kind == .bool ? n.flag : nil
    }

    /// The node's string, unescaped, or `nil` when it is not a string.
    public func string(_ node: Int) -> String? {
        let n = nodes[node]
        guard n.kind == .string else { return nil }
        let range = Int(n.start)..<Int(n.start + n.length)
        if !n.flag { return String(decoding: bytes[range], as: UTF8.self) }
        return JSONTapeParser.unescape(bytes[range])
    }

    /// A string node's text as UTF-8 bytes, the same text as ``string(_:)`` gives (invalid UTF-8
    /// repaired), without making a `String` of a text that is ASCII (an exposition body).
    public func utf8(_ node: Int) -> [UInt8]? {
        let n = nodes[node]
        guard n.kind == .string else { return nil }
        let range = Int(n.start)..<Int(n.start + n.length)
        let out = n.flag ? JSONTapeParser.unescapedBytes(bytes[range]) : Array(bytes[range])
        let ascii = out.withUnsafeBufferPointer { b in b.reduce(UInt8(0)) { $0 | $1 } < 0x80 }
        return ascii ? out : Array(String(decoding: out, as: UTF8.self).utf8)
    }

    /// Whether node `node` is a string whose text has `text`'s bytes (not merely canonically
    /// equivalent ones), without building the string when the node has no escapes and its raw
    /// bytes are `text`'s.
    public func string(_ node: Int, matches text: String) -> Bool {
        let n = nodes[node]
        guard n.kind == .string else { return false }
        if !n.flag {
            var text = text
            let same = text.withUTF8 { want in
                bytes.withUnsafeBufferPointer { all in
                    guard want.count == Int(n.length) else { return false }
                    guard let base = all.baseAddress, let other = want.baseAddress else { return want.isEmpty }
                    return memcmp(base + Int(n.start), other, want.count) == 0
                }
            }
            // Equal bytes are equal text; unequal ones may still decode to it (an invalid byte
            // read as U+FFFD), which the slow path below decides.
            if same { return true }
        }
        return string(node).map { $0.utf8.elementsEqual(text.utf8) } ?? false
    }

    /// Whether the string node equals `text` (raw bytes; keys and names have no escapes).
    public func string(_ node: Int, equals text: StaticString) -> Bool {
        let n = nodes[node]
        guard n.kind == .string, !n.flag, Int(n.length) == text.utf8CodeUnitCount else { return false }
        return bytes.withUnsafeBufferPointer { all in
            guard let base = all.baseAddress else { return n.length == 0 }
            return memcmp(base + Int(n.start), text.utf8Start, Int(n.length)) == 0
        }
    }

    /// The number of elements of an array or members of an object (0 for anything else).
    public func childCount(_ node: Int) -> Int {
        let n = nodes[node]
        return n.kind == .array || n.kind == .object ? Int(n.length) : 0
    }

    /// The elements of an array, as node indices.
    public func elements(_ node: Int) -> JSONChildren {
        let n = nodes[node]
        guard n.kind == .array else { return JSONChildren(document: self, first: 0, count: 0, stride: 1) }
        return JSONChildren(document: self, first: node + 1, count: Int(n.length), stride: 1)
    }

    /// The members of an object, as `(key, value)` node indices.
    public func members(_ node: Int) -> JSONMembers {
        let n = nodes[node]
        guard n.kind == .object else { return JSONMembers(document: self, first: 0, count: 0) }
        return JSONMembers(document: self, first: node + 1, count: Int(n.length))
    }

    /// The value of member `key` of an object, or `nil`.
    public func member(_ node: Int, _ key: StaticString) -> Int? {
        for (k, v) in members(node) where string(k, equals: key) { return v }
        return nil
    }

    /// The values of the keys of `table` in an object, found in one pass over its members: slot
    /// `i` of `values` gets the value node of `table`'s key `i`, or -1 when the object has none
    /// (the first one wins, as with ``member(_:_:)-(Int,StaticString)``). For objects read many
    /// times for many keys (a `/connz` connection), where one ``member(_:_:)`` per key would
    /// walk the members once per key.
    public func members(_ node: Int, in table: JSONKeyTable, into values: inout [Int]) {
        values.removeAll(keepingCapacity: true)
        values.append(contentsOf: repeatElement(-1, count: table.count))
        let n = nodes[node]
        guard n.kind == .object else { return }
        var found = 0
        bytes.withUnsafeBufferPointer { text in
            nodes.withUnsafeBufferPointer { tape in
                guard let base = text.baseAddress else { return }
                var key = node + 1
                for _ in 0..<Int(n.length) {
                    let k = tape[key]
                    if !k.flag,
                        let slot = table.slot(
                            of: base + Int(k.start),
                            length: Int(k.length),
                            readable: text.count - Int(k.start)
                        ),
                        values[slot] < 0
                    {
                        values[slot] = key + 1
                        found += 1
                        if found == table.count { return }
                    }
                    key = Int(tape[key + 1].next)
                }
            }
        }
    }

    /// The value at a path of object keys, or `nil` when a step is missing.
    public func member(_ node: Int, _ path: StaticString...) -> Int? {
        var current = node
        for key in path {
            guard let next = member(current, key) else { return nil }
            current = next
        }
        return current
    }

    /// The number of member `key`, or `nil`.
    public func number(_ node: Int, _ key: StaticString) -> Double? { member(node, key).flatMap(number) }

    /// The string of member `key`, or `nil`.
    public func string(_ node: Int, _ key: StaticString) -> String? { member(node, key).flatMap(string) }

    /// `body` on the bytes of a string node that has no escapes (its text as it is), or `nil` when
    /// the node is no such string.
    public func withUnescapedString<R>(_ node: Int, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R? {
        let n = nodes[node]
        guard n.kind == .string, !n.flag else { return nil }
        return bytes.withUnsafeBufferPointer { all in
            body(UnsafeBufferPointer(rebasing: all[Int(n.start)..<Int(n.start + n.length)]))
        }
    }

    /// The raw bytes of a node's text: a string's without quotes and unescaping, a number's or a
    /// literal's as written (containers: only the opening bracket).
    public func rawText(_ node: Int) -> ArraySlice<UInt8> {
        let n = nodes[node]
        return bytes[Int(n.start)..<Int(n.start + n.length)]
    }

    /// The index of the node after `node`'s subtree.
    @inline(__always)
    func next(_ node: Int) -> Int { Int(nodes[node].next) }
}

/// A fixed set of object keys to look up together (``JSONDocument/members(_:in:into:)``); build
/// it once, as a `static let`.
public struct JSONKeyTable: Sendable {
    /// A key's first sixteen bytes as two little-endian words, zero past its end.
    private struct Entry: Sendable {
        var head: UInt64
        var second: UInt64
        var slot: Int
    }

    private let keys: [[UInt8]]
    /// The keys by length: those of `n` bytes are `entries[starts[n]..<starts[n + 1]]` (keys
    /// longer than 63 bytes are never found).
    private let entries: [Entry]
    private let starts: [Int]

    public init(_ keys: [StaticString]) {
        self.keys = keys.map { key in key.withUTF8Buffer { Array($0) } }
        var entries: [Entry] = []
        var starts: [Int] = []
        for length in 0..<64 {
            starts.append(entries.count)
            for (slot, key) in self.keys.enumerated() where key.count == length {
                key.withUnsafeBufferPointer { text in
                    guard let base = text.baseAddress else {
                        entries.append(Entry(head: 0, second: 0, slot: slot))
                        return
                    }
                    entries.append(
                        Entry(
                            head: Self.word(base, from: 0, length: length),
                            second: Self.word(base, from: 8, length: length),
                            slot: slot
                        )
                    )
                }
            }
        }
        starts.append(entries.count)
        self.entries = entries
        self.starts = starts
    }

    /// The number of keys.
    public var count: Int { keys.count }

    /// Bytes `from..<from + 8` of a `length`-byte text as a little-endian word, zero past the
    /// text's end; reads nothing past it.
    @inline(__always)
    private static func word(_ text: UnsafePointer<UInt8>, from: Int, length: Int) -> UInt64 {
        var word: UInt64 = 0
        var k = min(from + 8, length) - 1
        while k >= from {
            word = word << 8 | UInt64(text[k])
            k -= 1
        }
        return word
    }

    /// The slot of the key spelled by `length` bytes at `start`, or `nil`; `readable` bytes
    /// from `start` on may be read.
    @inline(__always)
    func slot(of start: UnsafePointer<UInt8>, length: Int, readable: Int) -> Int? {
        guard length < 64 else { return nil }
        let first = starts[length]
        let end = starts[length + 1]
        guard first < end else { return nil }
        let head: UInt64
        let second: UInt64
        if readable >= 16 {
            // Two loads, the bytes past the key masked off.
            func mask(_ n: Int) -> UInt64 { n >= 8 ? ~0 : n <= 0 ? 0 : (1 << UInt64(8 * n)) - 1 }
            let raw = UnsafeRawPointer(start)
            head = UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self)) & mask(length)
            second = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) & mask(length - 8)
        } else {
            head = Self.word(start, from: 0, length: length)
            second = Self.word(start, from: 8, length: length)
        }
        for k in first..<end where entries[k].head == head && entries[k].second == second {
            let slot = entries[k].slot
            guard length > 16 else { return slot }
            let same = keys[slot].withUnsafeBufferPointer { key in
                guard let base = key.baseAddress else { return false }
                return memcmp(base + 16, start + 16, length - 16) == 0
            }
            if same { return slot }
        }
        return nil
    }
}

/// The elements of a JSON array as node indices.
public struct JSONChildren: Sequence, Sendable {
    let document: JSONDocument
    let first: Int
    public let count: Int
    let stride: Int

    public struct Iterator: IteratorProtocol {
        let document: JSONDocument
        var node: Int
        var remaining: Int

        public mutating func next() -> Int? {
            guard remaining > 0 else { return nil }
            let current = node
            node = document.next(current)
            remaining -= 1
            return current
        }
    }

    public func makeIterator() -> Iterator { Iterator(document: document, node: first, remaining: count) }
}

/// The members of a JSON object as `(key, value)` node indices.
public struct JSONMembers: Sequence, Sendable {
    let document: JSONDocument
    let first: Int
    public let count: Int

    public struct Iterator: IteratorProtocol {
        let document: JSONDocument
        var node: Int
        var remaining: Int

        public mutating func next() -> (key: Int, value: Int)? {
            guard remaining > 0 else { return nil }
            let key = node
            let value = key + 1
            node = document.next(value)
            remaining -= 1
            return (key, value)
        }
    }

    public func makeIterator() -> Iterator { Iterator(document: document, node: first, remaining: count) }
}

/// A body that is not valid JSON.
public struct JSONError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The byte offset where parsing stopped.
    public var offset: Int
    public var reason: String

    public init(offset: Int, reason: String) {
        self.offset = offset
        self.reason = reason
    }

    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}
