import Synchronization

/// Ends a load-generator run early (Ctrl-C in `flatline loadgen`): the timeline stops where it
/// is, an incident in progress ends there, and the ground truth says the run was interrupted.
public final class StopSignal: Sendable {
    private struct State {
        var stopped = false
        var nextID: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Stops the run; later calls do nothing.
    public func stop() {
        let waiters = state.withLock { s in
            s.stopped = true
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    public var isStopped: Bool { state.withLock { $0.stopped } }

    /// Sleeps until `deadline`; returns `false` when the run was stopped first.
    func sleep(until deadline: ContinuousClock.Instant) async throws -> Bool {
        if isStopped { return false }
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await Task.sleep(until: deadline, clock: .continuous)
                return true
            }
            group.addTask {
                await self.waitForStop()
                return false
            }
            defer { group.cancelAll() }
            return try await group.next() ?? false
        }
    }

    private func waitForStop() async {
        let id = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.stopped || Task.isCancelled { return true }
                    s.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}
