import FlatlineCore

/// Ends a load-generator run early (Ctrl-C in `flatline loadgen`): the timeline stops where it
/// is, an incident in progress ends there, and the ground truth says the run was interrupted.
public final class StopSignal: Sendable {
    /// Generation 1 is "stopped".
    private let generations = Generations()

    public init() {}

    /// Stops the run; later calls do nothing.
    public func stop() {
        if !isStopped { generations.advance() }
    }

    public var isStopped: Bool { generations.current > 0 }

    /// Sleeps until `deadline`; returns `false` when the run was stopped first.
    func sleep(until deadline: ContinuousClock.Instant) async throws -> Bool {
        if isStopped { return false }
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await Task.sleep(until: deadline, clock: .continuous)
                return true
            }
            group.addTask {
                await self.generations.wait(past: 0)
                return false
            }
            defer { group.cancelAll() }
            return try await group.next() ?? false
        }
    }
}
