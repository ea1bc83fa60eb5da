/// Message headers: an ordered multi-map of names to values, plus the status line the server uses
/// for replies such as "503 no responders".
public struct NATSHeaders: Hashable, Sendable, Sequence {
    /// A status code from the header line (`NATS/1.0 503`), when there is one.
    public var status: Int?
    /// The status description (`No Responders`), when there is one.
    public var statusDescription: String?
    private var fields: [(name: String, value: String)] = []

    public init() {}

    public init(_ pairs: [(String, String)]) {
        fields = pairs.map { (name: $0.0, value: $0.1) }
    }

    /// The first value of `name` (names compare case-sensitively, as NATS does).
    public subscript(name: String) -> String? {
        fields.first { $0.name == name }?.value
    }

    /// All values of `name`.
    public func values(for name: String) -> [String] {
        fields.filter { $0.name == name }.map(\.value)
    }

    /// Adds a value, keeping the ones already there.
    public mutating func append(_ value: String, for name: String) {
        fields.append((name, value))
    }

    /// Replaces every value of `name` with `value`.
    public mutating func set(_ value: String, for name: String) {
        fields.removeAll { $0.name == name }
        fields.append((name, value))
    }

    public var isEmpty: Bool { fields.isEmpty && status == nil }

    public func makeIterator() -> some IteratorProtocol<(name: String, value: String)> { fields.makeIterator() }

    public static func == (lhs: NATSHeaders, rhs: NATSHeaders) -> Bool {
        lhs.status == rhs.status && lhs.statusDescription == rhs.statusDescription
            && lhs.fields.map(\.name) == rhs.fields.map(\.name) && lhs.fields.map(\.value) == rhs.fields.map(\.value)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(status)
        for field in fields {
            hasher.combine(field.name)
            hasher.combine(field.value)
        }
    }

    /// The wire form: `NATS/1.0\r\nName: value\r\n...\r\n`.
    func encoded() -> [UInt8] {
        var out = Array("NATS/1.0".utf8)
        if let status {
            out.append(contentsOf: Array(" \(status)".utf8))
            if let statusDescription { out.append(contentsOf: Array(" \(statusDescription)".utf8)) }
        }
        out.append(contentsOf: [13, 10])
        for field in fields {
            out.append(contentsOf: Array(field.name.utf8))
            out.append(contentsOf: [58, 32])
            out.append(contentsOf: Array(field.value.utf8))
            out.append(contentsOf: [13, 10])
        }
        out.append(contentsOf: [13, 10])
        return out
    }

    /// Parses the wire form.
    static func parse(_ bytes: some Collection<UInt8>) -> NATSHeaders? {
        let text = String(decoding: bytes, as: UTF8.self)
        var lines = text.components(separatedByCRLF: ())
        guard let first = lines.first, first.hasPrefix("NATS/1.0") else { return nil }
        lines.removeFirst()
        var headers = NATSHeaders()
        let statusPart = first.dropFirst("NATS/1.0".count).drop { $0 == " " }
        if !statusPart.isEmpty {
            let code = statusPart.prefix { $0.isNumber }
            headers.status = Int(code)
            let rest = statusPart.dropFirst(code.count).drop { $0 == " " }
            if !rest.isEmpty { headers.statusDescription = String(rest) }
        }
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = String(line[..<colon])
            let value = String(line[line.index(after: colon)...].drop { $0 == " " })
            headers.fields.append((name, value))
        }
        return headers
    }
}

extension String {
    fileprivate func components(separatedByCRLF: Void) -> [String] {
        var parts: [String] = []
        var current = ""
        var iterator = makeIterator()
        while let ch = iterator.next() {
            if ch == "\r\n" {
                parts.append(current)
                current = ""
            } else {
                current.append(ch)
            }
        }
        if !current.isEmpty { parts.append(current) }
        return parts
    }
}
