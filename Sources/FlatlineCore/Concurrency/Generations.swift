import Synchronization

/// A counter that tasks can wait on: each ``advance()`` starts a new generation (a reload of the
/// daemon's configuration, the stop of a load-generator run), and every task waiting for a
/// generation past the one it knew wakes up. Any number of waiters; a waiter's cancellation
/// ends its wait.
public final class Generations: Sendable {
    private struct State {
        var current = 0
        var nextID: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// The generation now (0 before the first ``advance()``).
    public var current: Int { state.withLock { $0.current } }

    /// Starts the next generation and wakes every waiter.
    public func advance() {
        let waiters = state.withLock { s in
            s.current &+= 1
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the generation is past `generation`, or when the calling task is cancelled.
    public func wait(past generation: Int) async {
        let id = state.withLock { s in
            s.nextID &+= 1
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.current > generation || Task.isCancelled { return true }
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
