/// Per-slot estimates of one tick, before calibration: the expected value, the scale of normal
/// deviation around it, and the signed raw score.
///
/// Stored column-wise (one array per field) so a tick is a handful of vector passes.
/// `z` is NaN where there is no score: the series is missing from the tick or still warming up.
package struct Estimates: Sendable {
    package var expected: [Double] = []
    package var scale: [Double] = []
    package var z: [Double] = []

    package init(capacity: Int = 0) {
        resize(capacity)
    }

    package var capacity: Int { z.count }

    /// Runs `body` with the three output columns as raw buffers, for a tick's loop.
    package mutating func withBuffers<R>(
        _ body: (
            UnsafeMutableBufferPointer<Double>, UnsafeMutableBufferPointer<Double>, UnsafeMutableBufferPointer<Double>
        )
            -> R
    ) -> R {
        expected.withUnsafeMutableBufferPointer { e in
            scale.withUnsafeMutableBufferPointer { s in
                z.withUnsafeMutableBufferPointer { z in body(e, s, z) }
            }
        }
    }

    package mutating func resize(_ capacity: Int) {
        guard capacity != z.count else { return }
        expected = [Double](repeating: .nan, count: capacity)
        scale = [Double](repeating: .nan, count: capacity)
        z = [Double](repeating: .nan, count: capacity)
    }
}

/// A streaming model of many series that share one tick schedule.
///
/// An estimator keeps its state per slot, column-wise, and never reads a clock: the tick's time
/// comes in with its values. A NaN value means the series is absent from this tick.
package protocol Estimator: Sendable, Codable {
    /// The number of slots.
    var capacity: Int { get }
    /// Grows the state to `capacity` slots (new slots start cold).
    mutating func reserve(capacity: Int)
    /// Forgets everything about `slot`.
    mutating func reset(slot: Int)
    /// Scores every slot against the state before the tick, then learns from the tick.
    ///
    /// - Parameters:
    ///   - time: the tick's time in seconds since the epoch; increases from tick to tick.
    ///   - values: one value per slot (`capacity` of them), NaN where absent; finite otherwise.
    ///   - floors: the smallest scale per slot (from ``ScaleFloorTracker``).
    ///   - out: receives the estimates; resized by the caller to `capacity`.
    mutating func update(
        time: Double,
        values: UnsafeBufferPointer<Double>,
        floors: UnsafeBufferPointer<Double>,
        into out: inout Estimates
    )
    /// Bytes of state one slot costs.
    var bytesPerSeries: Int { get }
    /// How the model sees `slot` now, for explanations (e.g. "seasonal (1d)" or "level").
    func mode(slot: Int) -> String
}

extension Estimator {
    package func mode(slot: Int) -> String { "level" }
}
