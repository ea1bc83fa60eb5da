/// What a JSON body that does not decode lacks, by its JSON path: `missing "alerts"`,
/// `"alerts[0].labels" is not an object`: for an API's 400 and a command's refusal.
extension DecodingError {
    public static func describe(_ error: any Error) -> String {
        func path(_ context: DecodingError.Context, _ last: (any CodingKey)? = nil) -> String {
            var text = ""
            for key in context.codingPath + (last.map { [$0] } ?? []) {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += (text.isEmpty ? "" : ".") + key.stringValue
                }
            }
            return text
        }
        switch error as? DecodingError {
        case .keyNotFound(let key, let context)?: return "missing \"\(path(context, key))\""
        case .typeMismatch(let type, let context)?:
            let name = "\(type)"
            let kind =
                name.hasPrefix("Array")
                ? "an array"
                : name.hasPrefix("Dictionary")
                    ? "an object"
                    : name == "String" ? "a string" : name == "Bool" ? "true or false" : "a number"
            return "\"\(path(context))\" is not \(kind)"
        case .valueNotFound(_, let context)?: return "\"\(path(context))\" is null"
        case .dataCorrupted(let context)?:
            let at = path(context)
            return at.isEmpty ? "not JSON" : "\"\(at)\": \(context.debugDescription)"
        default: return "\(error)"
        }
    }
}
