import Dispatch
import FlatlineCore
import FlatlineIngest

/// Replay of a large Prometheus, OpenMetrics or CSV file a block at a time: memory holds a few blocks,
/// not the file, however long it is.
///
/// Two passes: the first reads the file for its series, its ticks, its step and its layout
/// (``SeriesFile/outline(path:format:chunkBytes:)``); the second scores it block by block and
/// writes the blocks in file order. Laid out series after series (as `promtool tsdb dump` and
/// `gen_dataset.py` write them), a block holds whole series and is scored in a bank of its own
/// through every tick of the file (so each series' clock moves exactly as it would with the
/// whole file in one bank), on every core: only detectors whose series learn nothing from each
/// other can be split so (``canSplit(_:)``). In time order (tick after tick, or one long series),
/// a block holds whole ticks and one bank is carried from block to block, as save and load would
/// carry it (a CSV file streams only so). Either way the output is the same bytes as
/// ``Replayer`` on the whole file gives.
/// Models and saved state are not streamed.
public struct StreamingReplay: Sendable {
    /// What the replay is asked for.
    public struct Settings: Sendable {
        public var configuration: DetectorConfiguration
        /// The sampling interval in seconds; nil infers it as ``Replayer/inferStep(_:)`` does.
        public var step: Double?
        public var maxGap: Double?
        /// Force every series to be a counter or a gauge.
        public var kind: MetricKind?
        /// Blocks scored side by side.
        public var threads = 1
        /// Bytes read at a time, and samples in a block (a longer series is a block of its own).
        public var chunkBytes = 1 << 24
        public var blockRows = 1 << 17
        /// The first pass keeps the samples it parsed in a temporary file for the second to read
        /// back (``SeriesFileOutline/spill``); false: the second parses the text again.
        public var keepSamples = true

        public init(configuration: DetectorConfiguration) {
            self.configuration = configuration
        }
    }

    /// What the first pass found.
    public let outline: SeriesFileOutline
    public let settings: Settings
    /// The step used, in seconds.
    public let step: Double

    /// Whether the detector's series can be scored in separate banks with the same results.
    public static func canSplit(_ configuration: DetectorConfiguration) -> Bool {
        Replayer.independentKinds.contains(configuration.kind)
    }

    /// The first pass over `path`: nil when the file is neither series after series nor in time
    /// order, or series after series with a detector that cannot be split (``canSplit(_:)``):
    /// replay it whole.
    ///
    /// - Throws: ``ReplayError`` with the file's error (its line and reason), as a replay of the
    ///   whole file would throw it, or when the step cannot be inferred.
    public init?(path: String, format: SeriesFile.Format, settings: Settings) throws(ReplayError) {
        let outline: SeriesFileOutline
        do {
            let first: SeriesFileOutline?
            if format == .csv {
                first = try SeriesFile.outlineCSV(path: path, chunkBytes: settings.chunkBytes)
            } else {
                first = try SeriesFile.outline(
                    path: path,
                    format: format,
                    chunkBytes: settings.chunkBytes,
                    threads: settings.threads,
                    keepSamples: settings.keepSamples,
                    keepOnlyInTimeOrder: !Self.canSplit(settings.configuration)
                )
            }
            guard let read = first else { return nil }
            outline = read
            guard outline.layout == .timeOrder || Self.canSplit(settings.configuration) else { return nil }
        } catch {
            throw ReplayError(reason: "\(error)")
        }
        guard let step = settings.step ?? outline.step else {
            throw ReplayError(reason: Replayer.noStepReason(path))
        }
        self.outline = outline
        self.settings = settings
        self.step = step
    }

    /// The second pass: scores the file, writing the output (header included) to `sink` in
    /// file order.
    ///
    /// - Parameter progress: called after every round of blocks with (samples done, samples in all).
    /// - Throws: ``ReplayError`` when the file cannot be read again.
    public func run(
        writer: ReplayWriter,
        progress: (Int, Int) -> Void = { _, _ in },
        to sink: (UnsafeRawBufferPointer) -> Void
    ) throws(ReplayError) -> ReplaySummary {
        let outline = outline
        let settings = settings
        let step = step
        let blocks: any SeriesBlockSource
        do {
            if outline.format == .csv {
                blocks = try CSVBlocks(
                    path: outline.name,
                    kind: settings.kind,
                    chunkBytes: settings.chunkBytes,
                    blockRows: settings.blockRows
                )
            } else {
                blocks = try SeriesFileBlocks(
                    outline: outline,
                    kind: settings.kind,
                    chunkBytes: settings.chunkBytes,
                    blockRows: settings.blockRows
                )
            }
        } catch {
            throw ReplayError(reason: "\(error)")
        }
        var summary = ReplaySummary()
        summary.series = outline.series
        summary.step = step
        summary.ticks = outline.times.count
        // Series after series, blocks are scored side by side (as on the whole file, a core takes
        // at least 64 series); in time order one after another, through one bank. On several
        // cores a round holds one block more than there are cores: reading the next round's
        // blocks is one task beside the scoring ones, and with a block to spare the cores stay
        // busy while it runs (on 2 cores: a tenth less time without output, the same with CSV).
        let cores =
            outline.layout == .timeOrder ? 1 : Swift.max(1, Swift.min(settings.threads, outline.series / 64))
        let parts = cores > 1 ? cores + 1 : 1
        summary.parts = cores
        var bank: DetectionBank?
        if outline.layout == .timeOrder {
            do {
                bank = try DetectionBank(configuration: settings.configuration, step: step, maxGap: settings.maxGap)
            } catch {
                throw ReplayError(reason: "\(error)")
            }
        }
        let multi = outline.series > 1
        let header = writer.header(multi: multi)
        if !header.isEmpty { header.withUnsafeBytes { sink($0) } }

        // A pipeline of rounds: each round reads the next round's blocks, scores this round's
        // (up to `parts` side by side) and formats the last round's, all at once; only three
        // rounds are held.
        var current = try read(blocks, count: parts)
        var previous: [ReplayResult] = []
        // Each rendering slot's buffers, written into again round after round.
        var spares = [[OutputBuffer]](repeating: [], count: parts)
        var done = 0
        while !current.isEmpty || !previous.isEmpty {
            let scoring = current
            let rendering = previous
            let state = bank
            var scored = [Result<ReplayResult, ReplayError>?](repeating: nil, count: scoring.count)
            var rendered = [[OutputBuffer]](repeating: [], count: rendering.count)
            var next: Result<[SeriesFile], ReplayError> = .success([])
            scored.withUnsafeMutableBufferPointer { scored in
                rendered.withUnsafeMutableBufferPointer { rendered in
                    spares.withUnsafeMutableBufferPointer { spares in
                        withUnsafeMutablePointer(to: &next) { next in
                            let shared = UnsafeSendable(
                                (scored: scored, rendered: rendered, spares: spares, next: next, blocks: blocks)
                            )
                            let tasks = 1 + scoring.count + rendering.count
                            let task: @Sendable (Int) -> Void = { k in
                                if k == 0 {
                                    guard !scoring.isEmpty else { return }
                                    do throws(ReplayError) {
                                        shared.value.next.pointee = .success(
                                            try self.read(shared.value.blocks, count: parts)
                                        )
                                    } catch {
                                        shared.value.next.pointee = .failure(error)
                                    }
                                } else if k <= scoring.count {
                                    // Series after series: a fresh bank through every tick of the
                                    // file. In time order: the bank the block before left, through
                                    // the block's own ticks.
                                    do throws(ReplayError) {
                                        shared.value.scored[k - 1] = .success(
                                            try Replayer.run(
                                                scoring[k - 1],
                                                configuration: settings.configuration,
                                                step: step,
                                                maxGap: settings.maxGap,
                                                state: state,
                                                times: state == nil ? outline.times : nil
                                            )
                                        )
                                    } catch {
                                        shared.value.scored[k - 1] = .failure(error)
                                    }
                                } else {
                                    let index = k - 1 - scoring.count
                                    shared.value.rendered[index] = writer.renderRows(
                                        rendering[index],
                                        multi: multi,
                                        reusing: &shared.value.spares[index]
                                    )
                                }
                            }
                            // One core asked for: the stages one after another.
                            if settings.threads > 1 {
                                DispatchQueue.concurrentPerform(iterations: tasks, execute: task)
                            } else {
                                for k in 0..<tasks { task(k) }
                            }
                        }
                    }
                }
            }
            for (index, pieces) in rendered.enumerated() {
                for piece in pieces { sink(piece.bytes) }
                // Kept: as many as a block takes, the largest (one passed over as too small
                // does not stay for ever).
                spares[index] += pieces
                if spares[index].count > pieces.count {
                    spares[index].sort { $0.capacity > $1.capacity }
                    spares[index].removeLast(spares[index].count - pieces.count)
                }
            }
            previous = []
            for result in scored {
                guard let result else { continue }
                var block = try result.get()
                summary.add(block.summary)
                done += block.summary.rows
                if bank != nil { bank = block.bank }
                // Only the carried bank holds it: the next block learns in place, not in a copy.
                block.bank = nil
                previous.append(block)
            }
            progress(done, outline.rows)
            current = try next.get()
        }
        return summary
    }

    /// Up to `count` blocks.
    private func read(_ blocks: any SeriesBlockSource, count: Int) throws(ReplayError) -> [SeriesFile] {
        var out: [SeriesFile] = []
        do {
            while out.count < count, let block = try blocks.next() { out.append(block) }
        } catch {
            throw ReplayError(reason: "\(error)")
        }
        return out
    }
}

extension ReplaySummary {
    /// Adds the counts of a block of the same file (its series, rows and what became of them).
    mutating func add(_ part: ReplaySummary) {
        rows += part.rows
        scored += part.scored
        pending += part.pending
        missing += part.missing
        anomalies += part.anomalies
        counterResets += part.counterResets
        drops.add(part.drops)
    }
}
