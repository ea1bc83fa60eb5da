extension StringProtocol {
    /// At most `limit` characters, with "…" when cut: how text from outside (an error that
    /// quotes a body, a name from a scrape) is kept before it reaches logs, the API or the page.
    /// A 200 MB token in a `# TYPE` line must not become a 200 MB log line.
    package func truncated(_ limit: Int = 200) -> String {
        // Counting characters of a huge string is itself costly: look at a prefix of the bytes.
        let head = utf8.prefix(limit * 4 + 4)
        let text = String(decoding: head, as: UTF8.self)
        guard text.count > limit || head.count < utf8.count else { return text }
        return String(text.prefix(limit)) + "…"
    }
}
