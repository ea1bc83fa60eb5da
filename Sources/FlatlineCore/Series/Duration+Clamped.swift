extension Duration {
    /// The longest wait Flatline ever schedules: about 31 years. Waits computed from outside
    /// values (a `Retry-After`, an OAuth2 `expires_in`, a configured duration) are cut to it.
    package static let longestWait: Double = 1e9

    /// `seconds` as a duration, clamped to [0, ``longestWait``] seconds; NaN is 0. Unlike
    /// `.milliseconds(Int64(seconds * 1000))` it never traps, whatever the value.
    package static func clamped(seconds: Double) -> Duration {
        guard seconds > 0 else { return .zero }
        let bounded = Swift.min(seconds, longestWait)
        let whole = bounded.rounded(.down)
        return .seconds(Int64(whole)) + .nanoseconds(Int64(((bounded - whole) * 1e9).rounded()))
    }
}
