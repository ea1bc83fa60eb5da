/// A regular expression in RE2's syntax (what Prometheus and Alertmanager accept) matched
/// against a whole text in time linear in the text: a Thompson NFA run as a Pike VM, so no
/// pattern, however written (`(a+)+`, `(a|a)*`, `a*a*a*a*c`), can make a match take more than
/// text length × pattern size steps. Label matchers use it: their patterns come from callers
/// of the API (silences, series filters) as much as from configuration.
///
/// Supported: literals, `.` (any character, newlines too, as Prometheus's `(?s)`), classes
/// (`[a-z0-9_]`, `[^...]`, `[[:alpha:]]`, `\d \w \s \D \W \S` inside and out), escapes (`\.`,
/// `\n`, `\t`, `\xHH`, `\x{HHHH}`), groups (`(...)`, `(?:...)`, `(?P<name>...)`, `(?<name>...)`),
/// alternation, `* + ? {n} {n,} {n,m}` (lazy forms match the same whole texts), `^ $ \A \z`,
/// and the flags `i` (case-insensitive), `s`, `m`, `U` in `(?flags)` and `(?flags:...)`. Not
/// supported, and refused with the reason: word boundaries, Unicode classes `\p{...}`,
/// back-references, look-around (RE2 has none of the last two either).
package struct LinearPattern: Sendable {
    /// The largest repetition count (`{n,m}`), as RE2.
    package static let maxRepeat = 1000
    /// The largest program, in instructions: a bound on the work per character.
    package static let maxProgram = 20_000
    /// The longest pattern, in characters.
    package static let maxPatternLength = 4096

    enum Instruction: Sendable {
        case scalar(Unicode.Scalar)
        case set(ScalarSet)
        case any
        case split(Int, Int)
        case jump(Int)
        case atStart
        case atEnd
        case match
    }

    let program: [Instruction]

    /// - Throws: ``PatternError`` naming the pattern and what is wrong or unsupported.
    package init(_ pattern: String) throws(PatternError) {
        guard pattern.count <= Self.maxPatternLength else {
            throw PatternError(reason: "regex is longer than \(Self.maxPatternLength) characters")
        }
        var parser = Parser(Array(pattern.unicodeScalars))
        let node: Node
        do {
            node = try parser.parse()
        } catch {
            throw PatternError(
                reason: "regex \"\(pattern.truncated(100))\" is not a regular expression: \(error.reason)"
            )
        }
        var compiler = Compiler()
        do {
            try compiler.emit(node)
        } catch {
            throw PatternError(reason: "regex \"\(pattern.truncated(100))\": \(error.reason)")
        }
        compiler.program.append(.match)
        program = compiler.program
    }

    /// Whether the whole of `text` matches.
    package func matches(_ text: String) -> Bool {
        let count = program.count
        var current = ThreadList(capacity: count)
        var next = ThreadList(capacity: count)
        var stack: [Int] = []
        let scalars = text.unicodeScalars
        var position = scalars.startIndex
        let end = scalars.endIndex
        add(0, to: &current, atStart: true, atEnd: position == end, stack: &stack)
        while position < end {
            let scalar = scalars[position]
            position = scalars.index(after: position)
            let atEnd = position == end
            next.clear()
            for k in 0..<current.count {
                let pc = current.dense[k]
                let advances: Bool
                switch program[pc] {
                case .scalar(let s): advances = s == scalar
                case .set(let set): advances = set.contains(scalar)
                case .any: advances = true
                default: advances = false
                }
                if advances { add(pc + 1, to: &next, atStart: false, atEnd: atEnd, stack: &stack) }
            }
            if next.count == 0 { return false }
            swap(&current, &next)
        }
        for k in 0..<current.count {
            if case .match = program[current.dense[k]] { return true }
        }
        return false
    }

    /// Adds `pc` and everything it reaches without consuming a character.
    private func add(_ pc: Int, to list: inout ThreadList, atStart: Bool, atEnd: Bool, stack: inout [Int]) {
        stack.append(pc)
        while let pc = stack.popLast() {
            guard list.insert(pc) else { continue }
            switch program[pc] {
            case .jump(let target): stack.append(target)
            case .split(let a, let b):
                stack.append(b)
                stack.append(a)
            case .atStart: if atStart { stack.append(pc + 1) }
            case .atEnd: if atEnd { stack.append(pc + 1) }
            default: break
            }
        }
    }

    /// A sparse set of program counters: insert and clear in constant time.
    struct ThreadList {
        var dense: [Int]
        var sparse: [Int]
        var count = 0

        init(capacity: Int) {
            dense = [Int](repeating: 0, count: capacity)
            sparse = [Int](repeating: 0, count: capacity)
        }

        mutating func insert(_ pc: Int) -> Bool {
            let i = sparse[pc]
            if i < count && dense[i] == pc { return false }
            sparse[pc] = count
            dense[count] = pc
            count += 1
            return true
        }

        mutating func clear() { count = 0 }
    }
}

/// A set of Unicode scalars as sorted, merged ranges, possibly negated.
struct ScalarSet: Sendable {
    var ranges: [ClosedRange<UInt32>]
    var negated = false

    func contains(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        var lo = 0
        var hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].upperBound < v { lo = mid + 1 } else { hi = mid }
        }
        let inside = lo < ranges.count && ranges[lo].contains(v)
        return inside != negated
    }

    /// Sorted and merged.
    mutating func normalize() {
        ranges.sort { $0.lowerBound < $1.lowerBound }
        var merged: [ClosedRange<UInt32>] = []
        for r in ranges {
            if let last = merged.last, r.lowerBound <= last.upperBound &+ 1 {
                merged[merged.count - 1] = last.lowerBound...max(last.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        ranges = merged
    }

    /// Both cases of every ASCII letter in the set (and simple case pairs beyond ASCII).
    mutating func foldCase() {
        var extra: [ClosedRange<UInt32>] = []
        for r in ranges where r.count < 0x1_0000 {
            for v in r {
                guard let scalar = Unicode.Scalar(v) else { continue }
                for other in ScalarSet.caseVariants(scalar) where other.value != v {
                    extra.append(other.value...other.value)
                }
            }
        }
        ranges += extra
        normalize()
    }

    static func caseVariants(_ scalar: Unicode.Scalar) -> [Unicode.Scalar] {
        let lower = String(scalar).lowercased().unicodeScalars
        let upper = String(scalar).uppercased().unicodeScalars
        var out = [scalar]
        if lower.count == 1, let l = lower.first { out.append(l) }
        if upper.count == 1, let u = upper.first { out.append(u) }
        return out
    }

    static let digit = ScalarSet(ranges: [48...57])
    static let word = ScalarSet(ranges: [48...57, 65...90, 95...95, 97...122])
    static let space = ScalarSet(ranges: [9...10, 12...13, 32...32])
}

extension LinearPattern {
    indirect enum Node {
        case empty
        case scalar(Unicode.Scalar)
        case set(ScalarSet)
        case any
        case concat([Node])
        case alternation([Node])
        case repetition(Node, min: Int, max: Int?)
        case atStart
        case atEnd
    }

    struct SyntaxError: Error {
        var reason: String
    }

    struct Parser {
        let text: [Unicode.Scalar]
        var i = 0
        var caseInsensitive = false
        var depth = 0

        init(_ text: [Unicode.Scalar]) { self.text = text }

        var peek: Unicode.Scalar? { i < text.count ? text[i] : nil }

        mutating func parse() throws(SyntaxError) -> Node {
            let node = try alternation()
            guard i == text.count else { throw SyntaxError(reason: "unexpected ) at \(i + 1)") }
            return node
        }

        mutating func alternation() throws(SyntaxError) -> Node {
            var branches = [try concatenation()]
            while peek == "|" {
                i += 1
                branches.append(try concatenation())
            }
            return branches.count == 1 ? branches[0] : .alternation(branches)
        }

        mutating func concatenation() throws(SyntaxError) -> Node {
            var items: [Node] = []
            while let c = peek, c != "|", c != ")" {
                // A flag group alone, `(?i)`, changes the rest of the enclosing group.
                if c == "(", i + 1 < text.count, text[i + 1] == "?", let flags = try standaloneFlags() {
                    if flags { caseInsensitive = true }
                    continue
                }
                var atom = try self.atom()
                atom = try quantified(atom)
                items.append(atom)
            }
            return items.isEmpty ? .empty : items.count == 1 ? items[0] : .concat(items)
        }

        /// `(?flags)`: consumes it and says whether it turns on case-insensitivity; `nil` when the
        /// group at `i` is not a standalone flag group.
        mutating func standaloneFlags() throws(SyntaxError) -> Bool? {
            var j = i + 2
            var insensitive = false
            var negate = false
            while j < text.count {
                let c = text[j]
                switch c {
                case ")":
                    guard j > i + 2 else { throw SyntaxError(reason: "empty flag group at \(i + 1)") }
                    i = j + 1
                    return insensitive
                case "i": if !negate { insensitive = true }
                case "s", "m", "U": break
                case "-": negate = true
                default: return nil
                }
                j += 1
            }
            return nil
        }

        mutating func quantified(_ atom: Node) throws(SyntaxError) -> Node {
            var node = atom
            var repeated = false
            while let c = peek {
                var minimum = 0
                var maximum: Int?
                switch c {
                case "*": i += 1
                case "+":
                    i += 1
                    minimum = 1
                case "?":
                    i += 1
                    maximum = 1
                case "{":
                    guard let (lo, hi, length) = repeatSpec() else { return node }
                    i += length
                    minimum = lo
                    maximum = hi
                default:
                    return node
                }
                if case .atStart = node { throw SyntaxError(reason: "missing argument to repetition operator") }
                if case .atEnd = node { throw SyntaxError(reason: "missing argument to repetition operator") }
                // `a**`, `a*+`, `a{2}{3}`: RE2 refuses a repetition of a repetition without a group.
                if repeated { throw SyntaxError(reason: "invalid nested repetition operator") }
                if peek == "?" { i += 1 }  // lazy: the same whole-text matches
                node = .repetition(node, min: minimum, max: maximum)
                repeated = true
            }
            return node
        }

        /// `{n}`, `{n,}`, `{n,m}` at `i`: the bounds and the length, or `nil` (then `{` is literal).
        func repeatSpec() -> (Int, Int?, Int)? {
            var j = i + 1
            func number() -> Int? {
                var value = 0
                var digits = 0
                while j < text.count, text[j].value >= 48, text[j].value <= 57 {
                    value = min(value * 10 + Int(text[j].value - 48), 100_000)
                    digits += 1
                    j += 1
                }
                return digits > 0 ? value : nil
            }
            guard let lo = number() else { return nil }
            var hi: Int? = lo
            if j < text.count, text[j] == "," {
                j += 1
                hi = number()
            }
            guard j < text.count, text[j] == "}" else { return nil }
            if let hi, hi < lo { return nil }
            return (lo, hi, j + 1 - i)
        }

        mutating func atom() throws(SyntaxError) -> Node {
            guard let c = peek else { throw SyntaxError(reason: "unexpected end") }
            switch c {
            case "(":
                i += 1
                depth += 1
                guard depth <= 200 else { throw SyntaxError(reason: "groups nested too deeply") }
                let saved = caseInsensitive
                if peek == "?" {
                    i += 1
                    if peek == "P" || peek == "<" {
                        // Named group: the name is ignored (matching needs no captures).
                        if peek == "P" { i += 1 }
                        guard peek == "<" else { throw SyntaxError(reason: "invalid named group") }
                        while let n = peek, n != ">" { i += 1 }
                        guard peek == ">" else { throw SyntaxError(reason: "unterminated group name") }
                        i += 1
                    } else {
                        var negate = false
                        while let f = peek, f != ":" {
                            switch f {
                            case "i": caseInsensitive = !negate
                            case "s", "m", "U": break
                            case "-": negate = true
                            case "=", "!", "<": throw SyntaxError(reason: "look-around is not supported")
                            default: throw SyntaxError(reason: "invalid or unsupported flag \"\(f)\"")
                            }
                            i += 1
                        }
                        guard peek == ":" else { throw SyntaxError(reason: "missing ) in flag group") }
                        i += 1
                    }
                }
                let inner = try alternation()
                guard peek == ")" else { throw SyntaxError(reason: "missing )") }
                i += 1
                depth -= 1
                caseInsensitive = saved
                return inner
            case "[":
                i += 1
                return .set(try characterClass())
            case ".":
                i += 1
                return .any
            case "^":
                i += 1
                return .atStart
            case "$":
                i += 1
                return .atEnd
            case "*", "+", "?":
                throw SyntaxError(reason: "missing argument to repetition operator \(c)")
            case "\\":
                i += 1
                return try escape(inClass: false)
            default:
                i += 1
                return literal(c)
            }
        }

        func literal(_ c: Unicode.Scalar) -> Node {
            guard caseInsensitive else { return .scalar(c) }
            let variants = ScalarSet.caseVariants(c)
            guard variants.contains(where: { $0 != c }) else { return .scalar(c) }
            var set = ScalarSet(ranges: variants.map { $0.value...$0.value })
            set.normalize()
            return .set(set)
        }

        /// After a backslash.
        mutating func escape(inClass: Bool) throws(SyntaxError) -> Node {
            guard let c = peek else { throw SyntaxError(reason: "trailing backslash") }
            i += 1
            switch c {
            case "d": return .set(.digit)
            case "D": return .set(ScalarSet(ranges: ScalarSet.digit.ranges, negated: true))
            case "w": return .set(.word)
            case "W": return .set(ScalarSet(ranges: ScalarSet.word.ranges, negated: true))
            case "s": return .set(.space)
            case "S": return .set(ScalarSet(ranges: ScalarSet.space.ranges, negated: true))
            case "n": return .scalar("\n")
            case "t": return .scalar("\t")
            case "r": return .scalar("\r")
            case "f": return .scalar("\u{0C}")
            case "v": return .scalar("\u{0B}")
            case "a": return .scalar("\u{07}")
            case "A" where !inClass: return .atStart
            case "z" where !inClass: return .atEnd
            case "x":
                var digits = ""
                if peek == "{" {
                    i += 1
                    while let h = peek, h != "}" {
                        digits.unicodeScalars.append(h)
                        i += 1
                    }
                    guard peek == "}" else { throw SyntaxError(reason: "unterminated \\x{...}") }
                    i += 1
                } else {
                    for _ in 0..<2 {
                        guard let h = peek else { break }
                        digits.unicodeScalars.append(h)
                        i += 1
                    }
                }
                guard digits.count <= 8, let value = UInt32(digits, radix: 16), let scalar = Unicode.Scalar(value)
                else {
                    throw SyntaxError(reason: "invalid escape \\x\(digits)")
                }
                return literal(scalar)
            case "b", "B": throw SyntaxError(reason: "word boundaries (\\\(c)) are not supported")
            case "p", "P": throw SyntaxError(reason: "Unicode classes (\\\(c){...}) are not supported")
            case "Q", "E", "C": throw SyntaxError(reason: "\\\(c) is not supported")
            case "0"..."9": throw SyntaxError(reason: "back-references and octal escapes (\\\(c)) are not supported")
            default:
                // Escaped punctuation stands for itself; an escaped letter RE2 does not know is an error.
                if c.properties.isAlphabetic {
                    throw SyntaxError(reason: "invalid escape \\\(c)")
                }
                return literal(c)
            }
        }

        /// After `[`, up to and including `]`.
        mutating func characterClass() throws(SyntaxError) -> ScalarSet {
            var set = ScalarSet(ranges: [])
            if peek == "^" {
                set.negated = true
                i += 1
            }
            var first = true
            while true {
                guard let c = peek else { throw SyntaxError(reason: "missing ]") }
                if c == "]" && !first {
                    i += 1
                    break
                }
                first = false
                // [:alpha:] and friends.
                if c == "[", i + 1 < text.count, text[i + 1] == ":" {
                    guard
                        let close = (i + 2..<text.count).first(where: {
                            text[$0] == ":" && $0 + 1 < text.count && text[$0 + 1] == "]"
                        })
                    else { throw SyntaxError(reason: "invalid POSIX class") }
                    let name = String(String.UnicodeScalarView(text[(i + 2)..<close]))
                    guard let ranges = Self.posix[name] else {
                        throw SyntaxError(reason: "unknown POSIX class [:\(name):]")
                    }
                    set.ranges += ranges
                    i = close + 2
                    continue
                }
                let low: UInt32
                if c == "\\" {
                    i += 1
                    switch try escape(inClass: true) {
                    case .scalar(let s): low = s.value
                    case .set(let inner):
                        if inner.negated {
                            // A negated class inside a class: its complement's ranges.
                            var previous: UInt32 = 0
                            for r in inner.ranges {
                                if r.lowerBound > previous { set.ranges.append(previous...(r.lowerBound - 1)) }
                                previous = r.upperBound + 1
                            }
                            set.ranges.append(previous...0x10FFFF)
                        } else {
                            set.ranges += inner.ranges
                        }
                        continue
                    default: throw SyntaxError(reason: "invalid escape in a class")
                    }
                } else {
                    i += 1
                    low = c.value
                }
                if peek == "-", i + 1 < text.count, text[i + 1] != "]" {
                    i += 1
                    guard let h = peek else { throw SyntaxError(reason: "missing ]") }
                    var high = h.value
                    i += 1
                    if h == "\\" {
                        guard case .scalar(let s) = try escape(inClass: true) else {
                            throw SyntaxError(reason: "invalid range end")
                        }
                        high = s.value
                    }
                    guard high >= low else { throw SyntaxError(reason: "invalid range \(low)-\(high)") }
                    set.ranges.append(low...high)
                } else {
                    set.ranges.append(low...low)
                }
            }
            set.normalize()
            if caseInsensitive { set.foldCase() }
            return set
        }

        static let posix: [String: [ClosedRange<UInt32>]] = [
            "alpha": [65...90, 97...122], "digit": [48...57], "alnum": [48...57, 65...90, 97...122],
            "upper": [65...90], "lower": [97...122], "space": [9...13, 32...32],
            "xdigit": [48...57, 65...70, 97...102],
            "word": [48...57, 65...90, 95...95, 97...122], "punct": [33...47, 58...64, 91...96, 123...126],
            "blank": [9...9, 32...32], "cntrl": [0...31, 127...127], "print": [32...126], "graph": [33...126],
            "ascii": [0...127],
        ]
    }

    struct Compiler {
        var program: [Instruction] = []

        mutating func append(_ instruction: Instruction) throws(SyntaxError) {
            guard program.count < LinearPattern.maxProgram else {
                throw SyntaxError(reason: "pattern too large (more than \(LinearPattern.maxProgram) steps)")
            }
            program.append(instruction)
        }

        mutating func emit(_ node: Node) throws(SyntaxError) {
            switch node {
            case .empty: break
            case .scalar(let s): try append(.scalar(s))
            case .set(let set): try append(.set(set))
            case .any: try append(.any)
            case .atStart: try append(.atStart)
            case .atEnd: try append(.atEnd)
            case .concat(let items): for item in items { try emit(item) }
            case .alternation(let branches):
                // split L1, next; L1: a; jump end; next: split L2, ...
                var jumps: [Int] = []
                for (k, branch) in branches.enumerated() {
                    if k < branches.count - 1 {
                        let split = program.count
                        try append(.split(split + 1, -1))
                        try emit(branch)
                        jumps.append(program.count)
                        try append(.jump(-1))
                        program[split] = .split(split + 1, program.count)
                    } else {
                        try emit(branch)
                    }
                }
                for j in jumps { program[j] = .jump(program.count) }
            case .repetition(let inner, let minimum, let maximum):
                guard minimum <= LinearPattern.maxRepeat, (maximum ?? 0) <= LinearPattern.maxRepeat else {
                    throw SyntaxError(reason: "invalid repeat count (at most \(LinearPattern.maxRepeat))")
                }
                for _ in 0..<minimum { try emit(inner) }
                if let maximum {
                    // (inner (inner (...)?)?)?: each optional copy may end the repetition.
                    var exits: [Int] = []
                    for _ in minimum..<maximum {
                        exits.append(program.count)
                        try append(.split(program.count + 1, -1))
                        try emit(inner)
                    }
                    for e in exits { program[e] = .split(e + 1, program.count) }
                } else {
                    // loop: split body, out; body; jump loop
                    let loop = program.count
                    try append(.split(loop + 1, -1))
                    try emit(inner)
                    try append(.jump(loop))
                    program[loop] = .split(loop + 1, program.count)
                }
            }
        }
    }
}

extension LinearPattern.SyntaxError {
    init(_ reason: String) { self.reason = reason }
}
