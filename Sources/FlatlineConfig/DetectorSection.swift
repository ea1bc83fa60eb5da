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
            throw ConfigError(file: value.file, line: value.line, key: "detector.\(error.key)", reason: error.rule)
        }
        return configuration
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

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "" : keys.joined(separator: ".") + ": "
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
