import FlatlineCore

/// The last few scored points of one series, for the status page's charts: a ring of fixed
/// capacity, 32 bytes a point (single precision is plenty for a chart).
struct SeriesHistory: Sendable {
    struct Point: Sendable, Hashable {
        /// Milliseconds since the epoch.
        var time: Int64
        var value: Float
        /// NaN while the series warms up, like the band's edges.
        var expected: Float
        var lower: Float
        var upper: Float
        /// Inside an anomalous burst by the detectors' verdict.
        var anomalous: Bool

        init(time: Int64, value: Float, expected: Float, lower: Float, upper: Float, anomalous: Bool) {
            self.time = time
            self.value = value
            self.expected = expected
            self.lower = lower
            self.upper = upper
            self.anomalous = anomalous
        }

        init(time: Timestamp, _ verdict: PointVerdict) {
            self.init(
                time: time.milliseconds,
                value: Float(verdict.value),
                expected: Float(verdict.expected),
                lower: Float(verdict.lower),
                upper: Float(verdict.upper),
                anomalous: verdict.inBurst
            )
        }
    }

    let capacity: Int
    /// The points are a counter's per-second rate (not its value).
    let rate: Bool
    private var ring: [Point] = []
    /// Where the oldest point is once the ring is full.
    private var start = 0

    init(capacity: Int, rate: Bool) {
        self.capacity = max(capacity, 1)
        self.rate = rate
        ring.reserveCapacity(self.capacity)
    }

    mutating func append(_ point: Point) {
        if ring.count < capacity {
            ring.append(point)
        } else {
            ring[start] = point
            start = (start + 1) % capacity
        }
    }

    /// The newest point.
    var last: Point? {
        guard !ring.isEmpty else { return nil }
        return ring[(start + ring.count - 1) % ring.count]
    }

    /// Oldest first.
    var points: [Point] { Array(ring[start...] + ring[..<start]) }
}
