import FlatlineIngest
import Foundation

/// Encodes a value as JSON straight to a file, in the order its `encode(to:)` writes, without
/// building the document in memory first. Foundation's `JSONEncoder` holds the whole tree and
/// then the whole output: for the detection state of 100,000 series (about 250 MB of base64)
/// that doubled the daemon's memory at every save. Keys are written in encoding order; any JSON
/// reader (`JSONDecoder` included) reads the result.
struct StreamingJSONEncoder {
    /// Writes `value` to `handle`; buffered, flushed every megabyte and at the end.
    func encode(_ value: some Encodable, to handle: FileHandle) throws {
        let sink = Sink(handle: handle)
        try value.encode(to: StreamEncoder(sink: sink, depth: 0, codingPath: []))
        try sink.close(to: 0)
        try sink.flush()
    }

    /// The output and the containers open in it, innermost last.
    final class Sink {
        enum Kind { case object, array }

        let handle: FileHandle
        var buffer: [UInt8] = []
        /// Each open container and how many members it has so far.
        var open: [(kind: Kind, count: Int)] = []

        init(handle: FileHandle) {
            self.handle = handle
            buffer.reserveCapacity(1 << 20)
        }

        func write(_ bytes: some Sequence<UInt8>) throws {
            buffer.append(contentsOf: bytes)
            if buffer.count >= 1 << 20 { try flush() }
        }

        func write(_ text: String) throws { try write(text.utf8) }

        func flush() throws {
            guard !buffer.isEmpty else { return }
            try handle.write(contentsOf: buffer)
            buffer.removeAll(keepingCapacity: true)
        }

        /// Ends the containers opened deeper than `depth` (a container's members are written
        /// when its encoder is used again, or at the end).
        func close(to depth: Int) throws {
            while open.count > depth {
                try write(open.removeLast().kind == .object ? "}" : "]")
            }
        }

        /// Starts a member of the container at `depth` (the one just below it stays open).
        func member(at depth: Int, key: String?) throws {
            try close(to: depth)
            guard depth > 0 else { return }
            if open[depth - 1].count > 0 { try write(",") }
            open[depth - 1].count += 1
            if let key {
                try string(key)
                try write(":")
            }
        }

        func begin(_ kind: Kind) throws {
            try write(kind == .object ? "{" : "[")
            open.append((kind, 0))
        }

        func string(_ text: String) throws {
            var out: [UInt8] = []
            out.reserveCapacity(text.utf8.count + 2)
            JSONText.appendString(text, to: &out)
            try write(out)
        }

        func number(_ value: Double, _ path: [any CodingKey]) throws {
            // JSON has no NaN or infinities: they are written as the strings Prometheus' JSON
            // uses ("NaN", "+Inf", "-Inf") and read back by ``StateFile``'s decoder, so one odd
            // value in a model's state is kept and never the reason a save fails.
            guard value.isFinite else {
                try write(value.isNaN ? "\"NaN\"" : value > 0 ? "\"+Inf\"" : "\"-Inf\"")
                return
            }
            // Swift's shortest round-trip text; integers without ".0".
            if let whole = Int64(exactly: value), abs(value) < 1e15, value != 0 || value.sign == .plus {
                try write(String(whole))
            } else {
                try write(value.description)
            }
        }
    }

    struct StreamEncoder: Encoder {
        let sink: Sink
        /// How many containers are open above this encoder's value.
        let depth: Int
        let codingPath: [any CodingKey]
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
            // An encoder makes one container; Encodable types that ask twice get the same one.
            if sink.open.count <= depth {
                try? sink.close(to: depth)
                try? sink.begin(.object)
            }
            return KeyedEncodingContainer(Keyed<Key>(sink: sink, depth: depth + 1, codingPath: codingPath))
        }

        func unkeyedContainer() -> any UnkeyedEncodingContainer {
            if sink.open.count <= depth {
                try? sink.close(to: depth)
                try? sink.begin(.array)
            }
            return Unkeyed(sink: sink, depth: depth + 1, codingPath: codingPath)
        }

        func singleValueContainer() -> any SingleValueEncodingContainer {
            Single(sink: sink, depth: depth, codingPath: codingPath)
        }
    }

    struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let sink: Sink
        let depth: Int
        let codingPath: [any CodingKey]

        mutating func encodeNil(forKey key: Key) throws {
            try sink.member(at: depth, key: key.stringValue)
            try sink.write("null")
        }

        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            try sink.member(at: depth, key: key.stringValue)
            try value.encode(to: StreamEncoder(sink: sink, depth: depth, codingPath: codingPath + [key]))
            try sink.close(to: depth)
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
            -> KeyedEncodingContainer<NestedKey>
        {
            try? sink.member(at: depth, key: key.stringValue)
            return StreamEncoder(sink: sink, depth: depth, codingPath: codingPath + [key]).container(keyedBy: keyType)
        }

        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            try? sink.member(at: depth, key: key.stringValue)
            return StreamEncoder(sink: sink, depth: depth, codingPath: codingPath + [key]).unkeyedContainer()
        }

        mutating func superEncoder() -> any Encoder {
            try? sink.member(at: depth, key: "super")
            return StreamEncoder(sink: sink, depth: depth, codingPath: codingPath)
        }

        mutating func superEncoder(forKey key: Key) -> any Encoder {
            try? sink.member(at: depth, key: key.stringValue)
            return StreamEncoder(sink: sink, depth: depth, codingPath: codingPath + [key])
        }
    }

    struct Unkeyed: UnkeyedEncodingContainer {
        let sink: Sink
        let depth: Int
        let codingPath: [any CodingKey]
        var count: Int { sink.open.count >= depth ? sink.open[depth - 1].count : 0 }

        mutating func encodeNil() throws {
            try sink.member(at: depth, key: nil)
            try sink.write("null")
        }

        mutating func encode<T: Encodable>(_ value: T) throws {
            try sink.member(at: depth, key: nil)
            try value.encode(to: StreamEncoder(sink: sink, depth: depth, codingPath: codingPath))
            try sink.close(to: depth)
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type)
            -> KeyedEncodingContainer<NestedKey>
        {
            try? sink.member(at: depth, key: nil)
            return StreamEncoder(sink: sink, depth: depth, codingPath: codingPath).container(keyedBy: keyType)
        }

        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
            try? sink.member(at: depth, key: nil)
            return StreamEncoder(sink: sink, depth: depth, codingPath: codingPath).unkeyedContainer()
        }

        mutating func superEncoder() -> any Encoder {
            try? sink.member(at: depth, key: nil)
            return StreamEncoder(sink: sink, depth: depth, codingPath: codingPath)
        }
    }

    struct Single: SingleValueEncodingContainer {
        let sink: Sink
        let depth: Int
        let codingPath: [any CodingKey]

        mutating func encodeNil() throws { try sink.write("null") }
        mutating func encode(_ value: Bool) throws { try sink.write(value ? "true" : "false") }
        mutating func encode(_ value: String) throws { try sink.string(value) }
        mutating func encode(_ value: Double) throws { try sink.number(value, codingPath) }
        mutating func encode(_ value: Float) throws {
            guard value.isFinite else { try sink.number(Double(value), codingPath); return }
            if let whole = Int64(exactly: value), abs(value) < 1e7, value != 0 || value.sign == .plus {
                try sink.write(String(whole))
            } else {
                try sink.write(value.description)
            }
        }
        mutating func encode(_ value: Int) throws { try sink.write(String(value)) }
        mutating func encode(_ value: Int8) throws { try sink.write(String(value)) }
        mutating func encode(_ value: Int16) throws { try sink.write(String(value)) }
        mutating func encode(_ value: Int32) throws { try sink.write(String(value)) }
        mutating func encode(_ value: Int64) throws { try sink.write(String(value)) }
        mutating func encode(_ value: UInt) throws { try sink.write(String(value)) }
        mutating func encode(_ value: UInt8) throws { try sink.write(String(value)) }
        mutating func encode(_ value: UInt16) throws { try sink.write(String(value)) }
        mutating func encode(_ value: UInt32) throws { try sink.write(String(value)) }
        mutating func encode(_ value: UInt64) throws { try sink.write(String(value)) }

        mutating func encode<T: Encodable>(_ value: T) throws {
            try value.encode(to: StreamEncoder(sink: sink, depth: depth, codingPath: codingPath))
        }
    }
}
