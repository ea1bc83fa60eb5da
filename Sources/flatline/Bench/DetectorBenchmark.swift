import FlatlineCore
import FlatlineIngest

/// Throughput of the detectors and their kernels, each next to its plain-Swift reference in the
/// same run.
struct DetectorBenchmark {
    struct Size: CustomStringConvertible {
        var series: Int
        var ticks: Int
        var description: String { "\(series.formatted) series × \(ticks.formatted) ticks" }
    }

    struct Row {
        var name: String
        var updatesPerSecond: Double
        var referencePerSecond: Double?
        var bytesPerSeries: Int?
    }

    let step: Double
    let configuration: DetectorConfiguration
    /// Longest time a plain-Swift reference runs; its rate is measured over the ticks that fit.
    let referenceBudget: Duration
    /// The detectors ``detectors(_:)`` runs, in this order.
    let kinds: [DetectorKind]
    let progress: (String) -> Void

    /// Runs `body` once per tick with fresh values; returns updates per second over the ticks run
    /// (at most `ticks`, fewer when `budget` runs out; never fewer than 3).
    func measure(
        _ source: TickSource,
        ticks: Int,
        budget: Duration? = nil,
        _ body: (Double, [Double]) -> Void
    ) -> Double {
        let clock = ContinuousClock()
        var values = [Double](repeating: 0, count: source.series)
        var elapsed = Duration.zero
        var done = 0
        // A few untimed ticks first: allocation and first-touch costs are not throughput.
        for t in 0..<min(3, ticks) {
            source.fill(t, into: &values)
            body(source.time(t), values)
        }
        for t in 3..<max(3, ticks) {
            source.fill(t, into: &values)
            let start = clock.now
            body(source.time(t), values)
            elapsed += clock.now - start
            done += 1
            if let budget, elapsed > budget, done >= 3 { break }
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        return seconds > 0 ? Double(done * source.series) / seconds : 0
    }

    func estimatorRate<E: Estimator>(_ make: () -> E, source: TickSource, ticks: Int, budget: Duration? = nil) -> (
        Double, Int
    ) {
        var estimator = make()
        estimator.reserve(capacity: source.series)
        var out = Estimates(capacity: source.series)
        let floors = [Double](repeating: 1e-9, count: source.series)
        let rate = measure(source, ticks: ticks, budget: budget) { time, values in
            values.withUnsafeBufferPointer { v in
                floors.withUnsafeBufferPointer { f in estimator.update(time: time, values: v, floors: f, into: &out) }
            }
        }
        return (rate, estimator.bytesPerSeries)
    }

    /// The estimators alone (the numeric kernels of each detector), each against its reference.
    func estimators(_ size: Size) -> [Row] {
        let source = TickSource(series: size.series, step: step)
        var rows: [Row] = []
        let c = configuration
        progress("ewma")
        let ewma = estimatorRate({ EWMAEstimator(c.ewma, step: step) }, source: source, ticks: size.ticks)
        let ewmaRef = estimatorRate(
            { ReferenceEstimators.EWMA(c.ewma, step: step) },
            source: source,
            ticks: size.ticks,
            budget: referenceBudget
        )
        rows.append(Row(name: "ewma", updatesPerSecond: ewma.0, referencePerSecond: ewmaRef.0, bytesPerSeries: ewma.1))
        progress("robust")
        let robust = estimatorRate({ RobustEstimator(c.robust) }, source: source, ticks: size.ticks)
        let robustRef = estimatorRate(
            { ReferenceEstimators.Robust(c.robust) },
            source: source,
            ticks: size.ticks,
            budget: referenceBudget
        )
        rows.append(
            Row(
                name: "robust (window \(c.robust.window))",
                updatesPerSecond: robust.0,
                referencePerSecond: robustRef.0,
                bytesPerSeries: robust.1
            )
        )
        progress("seasonal")
        let seasonal = estimatorRate({ SeasonalEstimator(c.seasonal, step: step) }, source: source, ticks: size.ticks)
        let seasonalRef = estimatorRate(
            { () -> SeasonalEstimator in
                var e = SeasonalEstimator(c.seasonal, step: step)
                e.backend = .swift
                return e
            },
            source: source,
            ticks: size.ticks,
            budget: referenceBudget
        )
        let columns = SeasonalEstimator(c.seasonal, step: step).columns
        rows.append(
            Row(
                name: "seasonal (\(columns) columns)",
                updatesPerSecond: seasonal.0,
                referencePerSecond: seasonalRef.0,
                bytesPerSeries: seasonal.1
            )
        )
        progress("ensemble")
        let ensemble = estimatorRate({ EnsembleEstimator(c, step: step) }, source: source, ticks: size.ticks)
        // The ensemble's reference: the three references back to back.
        let reference = 1 / (1 / ewmaRef.0 + 1 / robustRef.0 + 1 / seasonalRef.0)
        rows.append(
            Row(
                name: "ensemble",
                updatesPerSecond: ensemble.0,
                referencePerSecond: reference,
                bytesPerSeries: ensemble.1
            )
        )
        return rows
    }

    /// Whole detectors as they run in the daemon: estimator, series profile, calibration and
    /// burst suppression.
    func detectors(_ size: Size) throws -> [Row] {
        let source = TickSource(series: size.series, step: step)
        var rows: [Row] = []
        for kind in kinds {
            progress("\(kind) detector")
            var c = configuration
            c.kind = kind
            var detector = try Detector(c, step: step)
            detector.reserve(capacity: size.series)
            var output = DetectorOutput()
            let rate = measure(source, ticks: size.ticks) { time, values in
                detector.update(time: time, values: values, into: &output)
            }
            rows.append(
                Row(
                    name: "\(kind)",
                    updatesPerSecond: rate,
                    referencePerSecond: nil,
                    bytesPerSeries: detector.bytesPerSeries
                )
            )
        }
        return rows
    }

    /// The seasonal fit's BLAS/LAPACK calls for one tick of `series` series, against plain Swift.
    func kernels(series: Int) throws -> [Row] {
        let p = SeasonalEstimator(configuration.seasonal, step: step).columns
        var rng = SplitMix64(seed: 3)
        let beta = try Matrix(rows: p, columns: series, columnMajor: (0..<(p * series)).map { _ in rng.normal() })
        let x = (0..<p).map { _ in rng.normal() }
        let y = (0..<series).map { _ in rng.normal() }
        var out = [Double](repeating: 0, count: series)
        var rows: [Row] = []
        let repeats = max(3, 20_000_000 / max(1, p * series))
        let clock = ContinuousClock()
        func rate(_ body: () throws -> Void) rethrows -> Double {
            let start = clock.now
            for _ in 0..<repeats { try body() }
            let d = clock.now - start
            let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
            return Double(repeats * series) / seconds
        }
        progress("kernels")
        let gemv = try rate { try LinearAlgebra.gemv(.transpose, alpha: 1, beta, x, beta: 0, &out) }
        let gemvRef = rate { ReferenceKernels.gemv(.transpose, alpha: 1, beta, x, beta: 0, &out) }
        rows.append(Row(name: "dgemv βᵀx (\(p) × n)", updatesPerSecond: gemv, referencePerSecond: gemvRef))
        var b = beta
        var bRef = beta
        let ger = try rate { try LinearAlgebra.rankOneUpdate(alpha: 1e-9, x, y, &b) }
        let gerRef = rate { ReferenceKernels.rankOneUpdate(alpha: 1e-9, x, y, &bRef) }
        rows.append(Row(name: "dger B += x·yᵀ (\(p) × n)", updatesPerSecond: ger, referencePerSecond: gerRef))
        var gram = Matrix.identity(p)
        for k in 0..<p { gram[k, k] = 2 }
        let solves = max(1, repeats / 20)
        let start = clock.now
        for _ in 0..<solves {
            var rhs = beta
            try LinearAlgebra.choleskySolve(gram, &rhs)
        }
        let lapack = clock.now - start
        let startRef = clock.now
        for _ in 0..<solves {
            var rhs = beta
            _ = ReferenceKernels.choleskySolve(gram, &rhs)
        }
        let plain = clock.now - startRef
        func perSecond(_ d: Duration) -> Double {
            Double(solves * series) / (Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
        }
        rows.append(
            Row(
                name: "dposv refit, n right-hand sides",
                updatesPerSecond: perSecond(lapack),
                referencePerSecond: perSecond(plain)
            )
        )
        rows.append(Self.shortestDecimal())
        rows.append(Self.decimalParse())
        return rows
    }

    /// Values read from text as replay and scrapes read them (`NumberText.parseDouble`, on the
    /// line's bytes) against the standard library's `Double(Substring)` on the same bytes: short
    /// decimals as files and bodies give them (`4.46667`, `3.2`, `1704067215`, `0`), one in ten
    /// with an exponent and one in ten with 17 significant digits.
    static func decimalParse() -> Row {
        var rng = SplitMix64(seed: 6)
        var text: [UInt8] = []
        var spans: [Range<Int>] = []
        for k in 0..<200_000 {
            let value: String =
                switch k % 10 {
                case 0: String(rng.normal() * 1e-7)
                case 1: String(rng.normal() * 1_000)
                case 2: String(Int(rng.uniform() * 2e9))
                case 3: "0"
                default: String(Double(Int(rng.uniform() * 1e7)) / 1e5)
                }
            let start = text.count
            text.append(contentsOf: value.utf8)
            spans.append(start..<text.count)
            text.append(0x20)
        }
        let clock = ContinuousClock()
        func rate(_ body: (UnsafeBufferPointer<UInt8>) -> Double) -> Double {
            var best = Double.infinity
            var sum = 0.0
            text.withUnsafeBufferPointer { bytes in
                for _ in 0..<5 {
                    let start = clock.now
                    for span in spans { sum += body(UnsafeBufferPointer(rebasing: bytes[span])) }
                    let d = clock.now - start
                    best = min(best, Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
                }
            }
            precondition(sum.isFinite)
            return Double(spans.count) / best
        }
        let fast = rate { NumberText.parseDouble($0) ?? 0 }
        let plain = rate { Double(Substring(decoding: $0, as: UTF8.self)) ?? 0 }
        return Row(name: "decimal text to numbers (values)", updatesPerSecond: fast, referencePerSecond: plain)
    }

    /// Numbers as replay writes them (`ShortestDecimal`) against `Double.description`, the same
    /// text: half of them read from short decimals (a value as a file gives it), half computed
    /// (an expected value, a bound).
    static func shortestDecimal() -> Row {
        var rng = SplitMix64(seed: 5)
        let values = (0..<200_000).map { k in
            k % 2 == 0 ? Double(Int(rng.uniform() * 1e6)) / 100 : rng.normal() * 1_000
        }
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: ShortestDecimal.maximumLength)
        defer { buffer.deallocate() }
        let clock = ContinuousClock()
        func rate(_ body: (Double) -> Int) -> Double {
            var best = Double.infinity
            var bytes = 0
            for _ in 0..<5 {
                let start = clock.now
                for v in values { bytes &+= body(v) }
                let d = clock.now - start
                best = min(best, Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
            }
            precondition(bytes > 0)
            return Double(values.count) / best
        }
        let fast = rate { ShortestDecimal.write($0, to: buffer) }
        let plain = rate { $0.description.utf8.count }
        return Row(name: "shortest decimal text (numbers)", updatesPerSecond: fast, referencePerSecond: plain)
    }
}

extension Int {
    var formatted: String {
        let digits = String(self)
        var out = ""
        for (i, c) in digits.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return String(out.reversed())
    }
}
