import Synchronization

/// Wakes a sleeping loop early: a delivery loop when new notifications were committed, the
/// daemon's flusher when alert states changed. A fire with nobody waiting is kept for the next wait.
public final class Wakeup: Sendable {
    private struct State {
        var fired = false
        var cancelled = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    public init() {}

    public func fire() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter else {
                s.fired = true
                return nil
            }
            s.waiter = nil
            return w
        }
        waiter?.resume()
    }

    /// Returns when fired (or already fired since the last wait), or after `timeout`.
    public func wait(upTo timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: timeout) }
            group.addTask { await self.waitForFire() }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForFire() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.fired || s.cancelled {
                        s.fired = false
                        s.cancelled = false
                        return true
                    }
                    s.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                guard let w = s.waiter else {
                    s.cancelled = true
                    return nil
                }
                s.waiter = nil
                return w
            }
            waiter?.resume()
        }
    }
}
