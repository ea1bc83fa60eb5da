import FlatlineCore
import Yams

/// A configuration or model file that cannot be used: the file, the line, the key and why.
public struct ConfigError: Error, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    /// 1-based; 0 when the problem is the file as a whole.
    public var line: Int
    /// The key's path, `scrape_configs[0].tls_config.ca_file`; empty for the file.
    public var key: String
    public var reason: String

    public init(file: String, line: Int, key: String, reason: String) {
        self.file = file
        self.line = line
        self.key = key
        self.reason = reason
    }

    public var description: String {
        let place = line > 0 ? "\(file):\(line)" : file
        return key.isEmpty ? "\(place): \(reason)" : "\(place): \(key): \(reason)"
    }
}

/// A YAML node with where it is, for reading a configuration strictly: every key must be known,
/// every value of the right type, and every error names the file, line and key.
package struct YAMLValue {
    package let node: Node
    package let file: String
    package let path: String

    package init(node: Node, file: String, path: String) {
        self.node = node
        self.file = file
        self.path = path
    }

    package var line: Int { node.mark?.line ?? 0 }

    package func error(_ reason: String) -> ConfigError {
        ConfigError(file: file, line: line, key: path, reason: reason)
    }

    /// Parses a whole file's text.
    package static func parse(_ text: String, file: String) throws(ConfigError) -> YAMLValue {
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw ConfigError(file: file, line: 0, key: "", reason: "the file is empty")
            }
            return YAMLValue(node: node, file: file, path: "")
        } catch let error as ConfigError {
            throw error
        } catch let error as YamlError {
            let line = Self.line(of: error)
            throw ConfigError(
                file: file,
                line: line,
                key: "",
                reason: "not valid YAML: \(Self.describe(error))" + Self.tabHint(text, line: line)
            )
        } catch {
            throw ConfigError(file: file, line: 0, key: "", reason: "not valid YAML: \(error)")
        }
    }

    private static func line(of error: YamlError) -> Int {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        case .duplicatedKeysInMapping(_, let context):
            return context.mark.line
        default:
            return 0
        }
    }

    /// What the YAML library's words (`found character that cannot start any token`) mean when
    /// the line is indented with a tab.
    private static func tabHint(_ text: String, line: Int) -> String {
        guard line > 0 else { return "" }
        let lines = text.split(separator: "\n", maxSplits: line, omittingEmptySubsequences: false)
        guard line <= lines.count, lines[line - 1].prefix(while: { $0 == " " || $0 == "\t" }).contains("\t") else {
            return ""
        }
        return " (the line is indented with a tab: YAML indents with spaces only)"
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _),
            .composer(let context, let problem, _, _):
            return [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
        case .duplicatedKeysInMapping(let duplicates, _):
            return "a key given twice in one mapping: \(duplicates.sorted().joined(separator: ", "))"
        default:
            return "\(error)"
        }
    }

    package func child(_ key: String, _ node: Node) -> YAMLValue {
        YAMLValue(node: node, file: file, path: path.isEmpty ? key : path + "." + key)
    }

    /// The members of a mapping, refusing keys not in `known`.
    package func mapping(known: Set<String>) throws(ConfigError) -> YAMLMapping {
        guard case .mapping(let mapping) = node else { throw error("expected a mapping (key: value)") }
        var members: [String: YAMLValue] = [:]
        for (key, value) in mapping {
            guard let name = key.scalar?.string else { throw error("a key is not a string") }
            let member = child(name, value)
            guard known.contains(name) else {
                let hint = known.sorted().joined(separator: ", ")
                throw ConfigError(
                    file: file,
                    line: key.mark?.line ?? line,
                    key: member.path,
                    reason: "unknown key (known here: \(hint))"
                )
            }
            guard members[name] == nil else {
                throw ConfigError(file: file, line: key.mark?.line ?? line, key: member.path, reason: "given twice")
            }
            members[name] = member
        }
        return YAMLMapping(owner: self, members: members)
    }

    /// The member `key` of a mapping, if this is one and has it (no check of the other keys).
    package func member(_ key: String) -> YAMLValue? {
        guard case .mapping(let mapping) = node, let value = mapping[Node(key)] else { return nil }
        return child(key, value)
    }

    /// The elements of a sequence.
    package func sequence() throws(ConfigError) -> [YAMLValue] {
        guard case .sequence(let sequence) = node else { throw error("expected a list") }
        return sequence.enumerated().map { k, element in
            YAMLValue(node: element, file: file, path: "\(path)[\(k)]")
        }
    }

    /// A plain scalar's text (`null` is not one).
    package func string() throws(ConfigError) -> String {
        guard case .scalar(let scalar) = node else { throw error("expected a single value") }
        return scalar.string
    }

    package func int(min: Int = Int.min) throws(ConfigError) -> Int {
        let text = try string()
        guard let value = Int(text) else { throw error("\"\(text)\" is not a whole number") }
        guard value >= min else { throw error("must be at least \(min)") }
        return value
    }

    package func bool() throws(ConfigError) -> Bool {
        switch try string().lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        case let other: throw error("\"\(other)\" is not true or false")
        }
    }

    /// A Prometheus duration: `15s`, `1m30s`, `500ms`, `2h`, `1d`, `1w`, `1y`.
    package func duration() throws(ConfigError) -> Double {
        let text = try string()
        guard let seconds = PrometheusDuration.seconds(text) else {
            throw error("\"\(text)\" is not a duration (e.g. 15s, 1m30s, 500ms, 2h)")
        }
        return try bounded(seconds, text: text)
    }

    /// `seconds`, the duration this value's `text` says, or the error when it is past
    /// ``longestDuration``: no interval, timeout, wait or window is longer (past it a target
    /// would never be scraped, a route never notify, a model never decide, and nothing would
    /// say why).
    package func bounded(_ seconds: Double, text: String) throws(ConfigError) -> Double {
        guard seconds <= Self.longestDuration else {
            throw error("\"\(text.prefix(40))\" is longer than a year, the longest duration any setting takes")
        }
        return seconds
    }

    /// The longest duration a setting takes: a year (`1y` is 365 days; a leap year's 366 too).
    package static let longestDuration: Double = 366 * 86_400

    /// A byte size: a number of bytes, or with a unit: `512KB`, `64MiB`, `1GB`.
    package func byteSize() throws(ConfigError) -> Int {
        let text = try string()
        guard let bytes = ByteSize.parse(text) else {
            throw error("\"\(text)\" is not a size (e.g. 10MB, 64MiB, 1048576)")
        }
        return bytes
    }

    package func strings() throws(ConfigError) -> [String] {
        var out: [String] = []
        for element in try sequence() { out.append(try element.string()) }
        return out
    }

    /// A mapping of strings to strings (`labels:`).
    package func stringMap() throws(ConfigError) -> [(key: String, value: String, line: Int)] {
        guard case .mapping(let mapping) = node else { throw error("expected a mapping (name: value)") }
        var out: [(String, String, Int)] = []
        for (key, value) in mapping {
            guard let name = key.scalar?.string else { throw error("a key is not a string") }
            out.append((name, try child(name, value).string(), key.mark?.line ?? line))
        }
        return out
    }
}

/// The members of a mapping, read by name.
package struct YAMLMapping {
    package let owner: YAMLValue
    package let members: [String: YAMLValue]

    package subscript(key: String) -> YAMLValue? {
        guard let value = members[key] else { return nil }
        // `key:` with nothing, `~` or `null`: as if absent.
        if case .scalar(let scalar) = value.node, scalar.style == .plain,
            ["", "~", "null", "Null", "NULL"].contains(scalar.string)
        {
            return nil
        }
        return value
    }

    package func required(_ key: String) throws(ConfigError) -> YAMLValue {
        guard let value = self[key] else {
            throw ConfigError(
                file: owner.file,
                line: owner.line,
                key: owner.path.isEmpty ? key : owner.path + "." + key,
                reason: "required"
            )
        }
        return value
    }
}

/// Durations as Prometheus writes them.
public enum PrometheusDuration {
    /// Seconds, or `nil` when `text` is not a duration. Units: ms, s, m, h, d, w, y; combined
    /// largest first (`1h30m`).
    public static func seconds(_ text: String) -> Double? { DurationText.parse(text, strict: true) }
}

/// Sizes in bytes, with SI (`KB` = 1000) or binary (`KiB` = 1024) units, as Prometheus reads
/// `body_size_limit`.
public enum ByteSize {
    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingPrefix(" ")
        let digits = trimmed.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        guard !digits.isEmpty, let number = Double(digits), number >= 0 else { return nil }
        let unit = trimmed.dropFirst(digits.count).uppercased()
        let factors: [String: Double] = [
            "": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
            "KIB": 1024, "MIB": 1_048_576, "GIB": 1_073_741_824, "TIB": 1_099_511_627_776,
        ]
        guard let factor = factors[unit] else { return nil }
        let bytes = number * factor
        guard bytes < 9e18 else { return nil }
        return Int(bytes)
    }
}
