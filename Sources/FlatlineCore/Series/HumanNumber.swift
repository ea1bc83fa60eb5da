/// Numbers as people read them in alerts, rule files and the status page.
public enum HumanNumber {
    /// A number for people: integers as integers, others with up to three significant decimals.
    public static func format(_ value: Double) -> String {
        guard value.isFinite else { return value.isNaN ? "NaN" : (value > 0 ? "+Inf" : "-Inf") }
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
        let magnitude = abs(value)
        let scale = magnitude >= 100 ? 1.0 : magnitude >= 1 ? 10.0 : magnitude >= 0.01 ? 1000.0 : 1e6
        let rounded = (value * scale).rounded() / scale
        if rounded == rounded.rounded() && abs(rounded) < 1e15 { return String(Int64(rounded)) }
        return String(rounded)
    }
}
