import Foundation

/// What a load generator did, when: the phases of the scenario with their real start and end
/// times, for comparing alerts against (`score_alerts.py` reads this shape).
public struct GroundTruth: Codable, Sendable {
    public struct Phase: Codable, Sendable, Hashable {
        /// `baseline`, `freeze`, `recover1`, `flood`, `tail`...
        public var phase: String
        /// `baseline`, `freeze`, `flood`, `slow`, `recover` or `tail`.
        public var kind: String
        /// RFC 3339 with milliseconds, UTC.
        public var start: String
        public var end: String
        /// What the incident hits: `ORDERS/worker`, `orders-producer`, `telemetry-sub`.
        public var targets: [String]
        public var what: String
    }

    public var scenario: String
    public var seed: UInt64
    public var server: String
    public var phases: [Phase]
    /// Per actor: messages published, delivered, acknowledged, received.
    public var counts: [String: [String: Int]]
    /// Whether the run was stopped before the scenario's end (the phases end where it stopped).
    public var interrupted: Bool
}

enum RFC3339 {
    static func string(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }
}
