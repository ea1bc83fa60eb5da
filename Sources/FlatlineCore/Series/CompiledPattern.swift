import Synchronization

/// A regular expression that is not one.
public struct PatternError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// An anchored regular expression (it must match the whole text, as Prometheus anchors its
/// patterns) and `$1`, `${1}`, `${name}` expansion of its captures.
public struct CompiledPattern: @unchecked Sendable {
    // Regex is immutable once built; it is only read, from any thread.
    private let regex: Regex<AnyRegexOutput>
    /// Answers of ``matches(_:)`` for recent texts: label values repeat (the same teams,
    /// services, reasons), and a regular expression costs microseconds a call.
    private let memo = Memo()

    final class Memo: Sendable {
        static let limit = 4096
        let answers = Mutex<[String: Bool]>([:])
    }

    public init(_ pattern: String) throws(PatternError) {
        do {
            regex = try Regex("^(?:" + pattern + ")$")
        } catch {
            throw PatternError(reason: "regex \"\(pattern)\" is not a regular expression: \(error)")
        }
    }

    package struct Match {
        let output: AnyRegexOutput

        /// `template` with `$n`, `${n}` and `${name}` replaced by the captures (missing ones by "").
        package func expand(_ template: String) -> String {
            guard template.contains("$") else { return template }
            var out = ""
            var chars = Array(template)
            var i = 0
            chars.append("\0")
            while i < chars.count - 1 {
                let c = chars[i]
                guard c == "$" else {
                    out.append(c)
                    i += 1
                    continue
                }
                if chars[i + 1] == "$" {
                    out.append("$")
                    i += 2
                    continue
                }
                var name = ""
                var j = i + 1
                if chars[j] == "{" {
                    j += 1
                    while j < chars.count - 1, chars[j] != "}" {
                        name.append(chars[j])
                        j += 1
                    }
                    guard j < chars.count - 1 else {
                        out.append(c)
                        i += 1
                        continue
                    }
                    j += 1
                } else {
                    while j < chars.count - 1, chars[j].isLetter || chars[j].isNumber || chars[j] == "_" {
                        name.append(chars[j])
                        j += 1
                    }
                }
                guard !name.isEmpty else {
                    out.append(c)
                    i += 1
                    continue
                }
                out += capture(name)
                i = j
            }
            return out
        }

        private func capture(_ name: String) -> String {
            if let index = Int(name) {
                guard index < output.count, let text = output[index].substring else { return "" }
                return String(text)
            }
            guard let text = output[name]?.substring else { return "" }
            return String(text)
        }
    }

    /// Whether the whole of `text` matches.
    public func matches(_ text: String) -> Bool {
        if let known = memo.answers.withLock({ $0[text] }) { return known }
        let answer = match(text) != nil
        memo.answers.withLock {
            if $0.count >= Memo.limit { $0.removeAll(keepingCapacity: true) }
            $0[text] = answer
        }
        return answer
    }

    package func match(_ text: String) -> Match? {
        guard let match = try? regex.wholeMatch(in: text) else { return nil }
        return Match(output: match.output)
    }
}
