/// A model's text with `{{name}}` placeholders (an alert's summary, description, incident),
/// parsed once when the model is loaded, so rendering it at every evaluation is appends.
///
/// `{{ name }}` is replaced by the value of `name` (spaces inside the braces are ignored), a name
/// without a value by nothing; an opening `{{` without a closing `}}` is kept as written.
struct TextTemplate: Sendable, Hashable {
    enum Part: Sendable, Hashable {
        case text(String)
        case value(String)
    }

    let parts: [Part]

    init(_ template: String) {
        var parts: [Part] = []
        var rest = Substring(template)
        func text(_ s: Substring) { if !s.isEmpty { parts.append(.text(String(s))) } }
        while let open = rest.firstRange(of: "{{") {
            text(rest[..<open.lowerBound])
            guard let close = rest[open.upperBound...].firstRange(of: "}}") else {
                rest = rest[open.lowerBound...]
                break
            }
            parts.append(.value(String(rest[open.upperBound..<close.lowerBound].filter { $0 != " " })))
            rest = rest[close.upperBound...]
        }
        text(rest)
        self.parts = parts
    }

    func render(_ values: [String: String]) -> String {
        var out = ""
        for part in parts {
            switch part {
            case .text(let text): out += text
            case .value(let name): out += values[name] ?? ""
            }
        }
        return out
    }
}

/// A model's incident, summary and description, parsed once.
struct AlertTexts: Sendable {
    let incident: TextTemplate?
    let summary: TextTemplate
    let description: TextTemplate

    init(_ model: Model) {
        incident = model.incident.map(TextTemplate.init)
        summary = TextTemplate(model.alert.summary)
        description = TextTemplate(model.alert.description)
    }
}
