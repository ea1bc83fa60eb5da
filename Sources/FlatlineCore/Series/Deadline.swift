/// The deadline of an operation passed before it finished.
package struct DeadlineExceeded: Error, Hashable, Sendable {
    package init() {}
}

/// Runs `operation` until `deadline`: its result, or ``DeadlineExceeded`` when the deadline
/// passes first (the operation is then cancelled).
///
/// One deadline over a whole exchange, request *and* body: a server that sends its headers and
/// then trickles or stalls the body cannot hold the caller past it. The operation must end when
/// cancelled (HTTP body streams and sleeps do).
package func withDeadline<T: Sendable>(
    _ deadline: ContinuousClock.Instant,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            // Cancelled from outside: the group's caller sees the cancellation, not a timeout.
            try await Task.sleep(until: deadline, clock: .continuous)
            return nil
        }
        defer { group.cancelAll() }
        while let next = try await group.next() {
            if let value = next { return value }
            throw DeadlineExceeded()
        }
        throw DeadlineExceeded()
    }
}
