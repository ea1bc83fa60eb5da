import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineIngest

/// The tape parser against Foundation's JSONSerialization, an independent implementation: the
/// recorded NATS bodies and generated documents must read the same, and bad texts must be refused.
@Suite("JSON tape parser")
struct JSONDocumentTests {
    /// Compares node `node` of `document` with a Foundation value, recursively.
    static func same(_ document: JSONDocument, _ node: Int, _ value: Any, path: String = "$") -> String? {
        switch value {
        case let dictionary as [String: Any]:
            guard document.kind(node) == .object else { return "\(path): expected an object" }
            var seen = 0
            for (key, child) in document.members(node) {
                seen += 1
                guard let name = document.string(key) else { return "\(path): a key is not a string" }
                guard let expected = dictionary[name] else { return "\(path).\(name): not in the reference" }
                if let problem = same(document, child, expected, path: "\(path).\(name)") { return problem }
            }
            return seen == dictionary.count ? nil : "\(path): \(seen) members, reference has \(dictionary.count)"
        case let array as [Any]:
            guard document.kind(node) == .array, document.childCount(node) == array.count else {
                return "\(path): expected an array of \(array.count)"
            }
            for (k, child) in document.elements(node).enumerated() {
                if let problem = same(document, child, array[k], path: "\(path)[\(k)]") { return problem }
            }
            return nil
        case let string as String:
            return document.string(node) == string ? nil : "\(path): \(document.string(node) ?? "-") != \(string)"
        case is NSNull:
            return document.kind(node) == .null ? nil : "\(path): expected null"
        case let flag as Bool where type(of: value) == Bool.self:
            return document.bool(node) == flag ? nil : "\(path): expected \(flag)"
        case let number as NSNumber where document.kind(node) == .bool:
            // Foundation on Linux hands booleans back as NSNumber.
            return document.bool(node) == number.boolValue ? nil : "\(path): expected \(number.boolValue)"
        case let number as NSNumber:
            guard let parsed = document.number(node) else { return "\(path): expected a number" }
            // Foundation on Linux does not round every decimal correctly (0.7311814810286507
            // reads as ...509): the exact check is against the standard library's conversion of
            // the same text, and Foundation's value must agree to within rounding.
            let text = String(decoding: document.rawText(node), as: UTF8.self)
            guard let exact = Double(text), parsed == exact else { return "\(path): \(parsed) is not \(text)" }
            let tolerance = 4 * Swift.max(abs(exact), 1) * Double.ulpOfOne
            return abs(parsed - number.doubleValue) <= tolerance ? nil : "\(path): \(parsed) != \(number.doubleValue)"
        default:
            return "\(path): unexpected reference value \(value)"
        }
    }

    @Test("every recorded NATS body reads as JSONSerialization reads it")
    func fixtures() throws {
        let directory = try #require(Bundle.module.url(forResource: "Fixtures/nats", withExtension: nil))
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".json") }
        #expect(files.count >= 15)
        for file in files {
            let data = try Data(contentsOf: directory.appendingPathComponent(file))
            let reference = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            let document = try JSONDocument(parsing: Array(data))
            #expect(Self.same(document, document.root, reference) == nil, "\(file)")
        }
    }

    @Test("generated documents: nesting, escapes, unicode, every number form")
    func generated() throws {
        var random = SeededRandom(seed: 7)
        func value(_ depth: Int) -> Any {
            let choice = depth > 4 ? Int.random(in: 0...3, using: &random) : Int.random(in: 0...5, using: &random)
            switch choice {
            case 0: return NSNull()
            case 1: return Bool.random(using: &random)
            case 2:
                let forms: [Double] = [
                    0, -0.5, 1e-7, 123_456_789_012, Double(UInt64.max), -3.25e21, 0.1, 42,
                    Double(Int.random(in: -1_000_000...1_000_000, using: &random)),
                    Double.random(in: -1e6...1e6, using: &random),
                ]
                return forms[Int.random(in: 0..<forms.count, using: &random)]
            case 3:
                let pieces = ["plain", "quote \"", "back\\slash", "tab\t", "new\nline", "é", "日本", "🙂", "\u{1}", "/"]
                return (0..<Int.random(in: 0...3, using: &random)).map { _ in
                    pieces[Int.random(in: 0..<pieces.count, using: &random)]
                }.joined()
            case 4: return (0..<Int.random(in: 0...5, using: &random)).map { _ in value(depth + 1) }
            default:
                var object: [String: Any] = [:]
                for k in 0..<Int.random(in: 0...5, using: &random) {
                    object["k\(k)\(k % 2 == 0 ? "é" : "")"] = value(depth + 1)
                }
                return object
            }
        }
        for round in 0..<300 {
            let reference: Any = round % 2 == 0 ? ["root": value(0)] : [value(0)]
            let options: JSONSerialization.WritingOptions = round % 3 == 0 ? [.prettyPrinted] : []
            let data = try JSONSerialization.data(withJSONObject: reference, options: options)
            let document = try JSONDocument(parsing: Array(data))
            let reparsed = try JSONSerialization.jsonObject(with: data)
            let problem = Self.same(document, document.root, reparsed)
            #expect(problem == nil, "round \(round): \(String(decoding: data, as: UTF8.self))")
        }
    }

    @Test("lookups by key and path, numbers and strings")
    func lookups() throws {
        let text =
            #"{"a": {"b": [1, 2.5, -3e2]}, "s": "x\u00e9\ud83d\ude42\n", "big": 18446744073709551615, "t": true}"#
        let document = try JSONDocument(parsing: Array(text.utf8))
        let b = try #require(document.member(document.root, "a", "b"))
        #expect(document.elements(b).compactMap { document.number($0) } == [1, 2.5, -300])
        #expect(document.string(document.root, "s") == "xé🙂\n")
        #expect(document.number(document.root, "big") == Double(UInt64.max))
        #expect(document.member(document.root, "missing") == nil)
        #expect(document.member(document.root, "a", "missing") == nil)
        #expect(document.bool(try #require(document.member(document.root, "t"))) == true)
    }

    @Test("a string's UTF-8 bytes are the bytes of its String: escapes undone, invalid UTF-8 repaired")
    func utf8Bytes() throws {
        var text = Array(##"{"plain": "a b\\", "escaped": "# TYPE x gauge\nx{l=\"\u00e9\ud83d\ude42\"} 1\n\\", "##.utf8)
        text += Array(#""bad": "x"#.utf8) + [0xFF, 0xC3] + Array(#"y\n", "n": 1}"#.utf8)
        let document = try JSONDocument(parsing: text)
        let keys: [StaticString] = ["plain", "escaped", "bad"]
        for key in keys {
            let node = try #require(document.member(document.root, key))
            let string = try #require(document.string(node))
            #expect(document.utf8(node) == Array(string.utf8), "\(key)")
        }
        #expect(document.string(document.root, "escaped") == "# TYPE x gauge\nx{l=\"é🙂\"} 1\n\\")
        #expect(document.utf8(try #require(document.member(document.root, "bad")))?.contains(0xFF) == false)
        #expect(document.utf8(try #require(document.member(document.root, "n"))) == nil)
    }

    @Test("a text denser than the tape's first guess is read whole, value for value")
    func denseText() throws {
        // One value per two bytes: four times what the first tape holds.
        let values = (0..<10_000).map { String($0 % 10) }
        let document = try JSONDocument(parsing: Array("[\(values.joined(separator: ","))]".utf8))
        #expect(document.count == values.count + 1)
        #expect(document.elements(document.root).map { document.number($0) } == values.map { Double($0) })
        // At the limit exactly, and one past it.
        let text = Array("[\(values.prefix(999).joined(separator: ","))]".utf8)
        #expect(try JSONDocument(parsing: text, maxValues: 1000).count == 1000)
        let error = #expect(throws: JSONError.self) { try JSONDocument(parsing: text, maxValues: 999) }
        #expect(error?.reason == "more than 999 values")
    }

    @Test("keys of every length up to 64 bytes are told apart by all their bytes, at the end of the text too")
    func keyTableLengths() throws {
        let keys: [StaticString] = [
            "a", "in_msgs", "in_bytes", "out_bytes", "last_activity", "abcdefghijklmnop", "abcdefghijklmnoq",
            "abcdefghijklmnopq", "abcdefghijklmnopr", "abcdefghijklmnopqrstuvwxyz_0123456789_abcdefghijklmnopqrstuvw",
        ]
        let table = JSONKeyTable(keys)
        let names = keys.map { key in key.withUTF8Buffer { String(decoding: $0, as: UTF8.self) } }
        // Each key alone (the last member of a short text), and near misses of each.
        for (slot, name) in names.enumerated() {
            var values: [Int] = []
            let alone = try JSONDocument(parsing: Array(#"{"\#(name)":1}"#.utf8))
            alone.members(alone.root, in: table, into: &values)
            #expect(values.enumerated().allSatisfy { $0.element == ($0.offset == slot ? 2 : -1) }, "\(name)")
            for miss in [String(name.dropLast()) + "#", "#" + name.dropFirst(), name + "x"] {
                let other = try JSONDocument(parsing: Array(#"{"\#(miss)":1,"zzzzzzzzzzzzzzzzzzzz":2}"#.utf8))
                other.members(other.root, in: table, into: &values)
                #expect(values.allSatisfy { $0 == -1 } || names.contains(miss), "\(miss)")
            }
        }
    }

    @Test("a key table finds what one member lookup per key finds, in one pass")
    func keyTable() throws {
        let table = JSONKeyTable(["cid", "name", "pending_bytes", "rtt", "absent", "dup", "esc"])
        let texts = [
            #"{"name": "a", "cid": 7, "rtt": "1ms", "pending_bytes": 0, "other": {"cid": 9}}"#,
            // The first of a repeated key wins, as with member(_:_:); an escaped key is not read.
            #"{"dup": 1, "dup": 2, "e\u0073c": 3, "cid": null}"#,
            #"{}"#, #"[1, 2]"#, #""cid""#,
        ]
        var values: [Int] = [99]
        for text in texts {
            let document = try JSONDocument(parsing: Array(text.utf8))
            document.members(document.root, in: table, into: &values)
            #expect(values.count == table.count)
            let one: [Int?] = [
                document.member(document.root, "cid"), document.member(document.root, "name"),
                document.member(document.root, "pending_bytes"), document.member(document.root, "rtt"),
                document.member(document.root, "absent"), document.member(document.root, "dup"),
                document.member(document.root, "esc"),
            ]
            #expect(values == one.map { $0 ?? -1 }, "\(text)")
        }
        let document = try JSONDocument(parsing: Array(texts[1].utf8))
        document.members(document.root, in: table, into: &values)
        #expect(document.number(values[5]) == 1)
        #expect(values[6] == -1)
    }

    @Test(
        "bad texts are refused with the place and the reason",
        arguments: [
            ("", "empty text"),
            ("{", "unexpected end"),
            (#"{"a":1,}"#, "member name"),
            (#"{a:1}"#, "member name"),
            (#"[1 2]"#, "expected , or ]"),
            (#"{"a" 1}"#, "expected :"),
            (#"["x"#, "unterminated string"),
            ("[\"a\u{1}\"]", "control character"),
            (#"["\q"]"#, "invalid escape"),
            (#"["\u12"]"#, "four hex digits"),
            ("[01]", "expected , or ]"),
            ("[-]", "needs digits"),
            ("[1.]", "fraction"),
            ("[1e]", "exponent"),
            ("[tru]", "unexpected"),
            ("{} {}", "after the end"),
            ("<html>", "unexpected character '<'"),
        ]
    )
    func invalid(text: String, reason: String) {
        do {
            _ = try JSONDocument(parsing: Array(text.utf8))
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.reason.contains(reason), "\(text): \(error)")
        }
    }

    @Test("nesting beyond the limit is refused, not a crash")
    func depth() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONError.self) { try JSONDocument(parsing: Array(deep.utf8)) }
        let fine = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: Never.self) { try JSONDocument(parsing: Array(fine.utf8)) }
    }
}
