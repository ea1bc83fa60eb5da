/// Secrets that must never reach logs, labels, the API, the status page or the outbox.
package enum Redaction {
    /// What a redacted secret reads as (Prometheus and Alertmanager write the same).
    package static let placeholder = "<secret>"

    /// `text` with the user information of every URL in it (`nats://user:pass@host:4222`)
    /// replaced by ``placeholder``: `nats://<secret>@host:4222`.
    package static func redactingUserinfo(_ text: String) -> String {
        guard text.contains("://"), text.contains("@") else { return text }
        var out = ""
        var rest = Substring(text)
        while let scheme = rest.firstRange(of: "://") {
            out += rest[..<scheme.upperBound]
            rest = rest[scheme.upperBound...]
            // The authority ends at the path, the query, the fragment, a space or a quote.
            let end =
                rest.firstIndex {
                    $0 == "/" || $0 == "?" || $0 == "#" || $0 == " " || $0 == "\"" || $0 == "," || $0 == "\n"
                }
                ?? rest.endIndex
            let authority = rest[..<end]
            if let at = authority.lastIndex(of: "@") {
                out += placeholder
                out += authority[at...]
            } else {
                out += authority
            }
            rest = rest[end...]
        }
        return out + rest
    }
}
