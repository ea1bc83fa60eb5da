import FlatlineCore
import FlatlineYAML
import Foundation
import Yams

extension Configuration {
    /// The `detector:` section: the detector every target's series go through, with the keys of
    /// ``DetectorConfiguration`` (`kind`, `surprise`, `ensemble`, `ewma`, `robust`, `seasonal`,
    /// `floor`, `calibration`). Unknown keys, values of the wrong type and values out of range
    /// are refused with the key's path.
    static func detector(_ value: YAMLValue) throws(ConfigError) -> DetectorConfiguration {
        let configuration: DetectorConfiguration
        do {
            configuration = try YAMLDecoder().decode(DetectorConfiguration.self, from: value.node)
        } catch let error as DecodingError {
            // Told at the key the decoder was reading, when it has one.
            if let context = Self.context(error), !context.codingPath.isEmpty {
                let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
                let member = Self.member(of: value, at: context.codingPath.map(\.stringValue))
                throw ConfigError(
                    file: value.file,
                    line: member?.line ?? value.line,
                    key: value.path + "." + keys.joined(separator: ".").replacingOccurrences(of: ".[", with: "["),
                    reason: Self.describe(error, withPath: false)
                )
            }
            throw value.error(Self.describe(error))
        } catch {
            throw value.error("\(error)")
        }
        // Every key the decoder did not use is a mistake: the keys it knows are the ones it
        // writes back.
        if let encoded = try? JSONSerialization.jsonObject(with: JSONEncoder().encode(configuration)) {
            try Self.refuseUnknown(value, known: encoded)
        }
        do {
            try configuration.validate()
        } catch {
            let member = Self.member(of: value, at: error.key.split(separator: ".").map(String.init))
            throw ConfigError(
                file: value.file,
                line: member?.line ?? value.line,
                key: "detector.\(error.key)",
                reason: error.rule
            )
        }
        return configuration
    }

    /// The value at `keys` under `value` (mappings only), for the line of a key an error names.
    private static func member(of value: YAMLValue, at keys: [String]) -> YAMLValue? {
        var current = value
        for key in keys {
            guard let next = current.member(key) else { return nil }
            current = next
        }
        return current
    }

    private static func context(_ error: DecodingError) -> DecodingError.Context? {
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context),
            .keyNotFound(_, let context):
            return context
        @unknown default:
            return nil
        }
    }

    /// Throws for the first key of `value` (a mapping, nested) that `known` does not have.
    private static func refuseUnknown(_ value: YAMLValue, known: Any) throws(ConfigError) {
        guard case .mapping(let mapping) = value.node, let known = known as? [String: Any] else { return }
        for (key, node) in mapping {
            guard let name = key.scalar?.string else { throw value.error("a key is not a string") }
            let member = value.child(name, node)
            guard let inner = known[name] else {
                throw ConfigError(
                    file: value.file,
                    line: key.mark?.line ?? value.line,
                    key: member.path,
                    reason: "unknown key (known here: \(known.keys.sorted().joined(separator: ", ")))"
                )
            }
            try refuseUnknown(member, known: inner)
        }
    }

    private static func describe(_ error: DecodingError, withPath: Bool = true) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty || !withPath ? "" : keys.joined(separator: ".") + ": "
        }
        switch error {
        case .typeMismatch(let type, let context):
            return "\(path(context))expected \(type == Double.self || type == Int.self ? "a number" : "\(type)")"
        case .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(path(context))\(context.debugDescription)"
        case .keyNotFound(let key, let context):
            return "\(path(context))\(key.stringValue) is missing"
        @unknown default:
            return "\(error)"
        }
    }
}
