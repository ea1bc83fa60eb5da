import Dispatch
import FlatlineCore
import FlatlineIngest

/// Replay of a Prometheus or OpenMetrics file laid out series after series (as
/// `promtool tsdb dump`-style exports and `gen_dataset.py` write them), a block of whole series
/// at a time: memory holds a few blocks, not the file, however long it is.
///
/// Two passes: the first reads the file for its series, its ticks and its step
/// (``SeriesFile/outline(path:format:chunkBytes:)``); the second scores blocks of whole series,
/// each through every tick of the file (so each series' clock moves exactly as it would with the
/// whole file in one bank), on every core, and writes them in file order. The output is the same
/// bytes as ``Replayer`` on the whole file gives: only detectors whose series learn nothing from
/// each other can be split so (``canSplit(_:)``), and only without models or saved state.
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

    /// The first pass over `path`: nil when the detector cannot be split
    /// (``canSplit(_:)``) or the file is not laid out series after series (replay it whole).
    ///
    /// - Throws: ``ReplayError`` with the file's error (its line and reason), as a replay of the
    ///   whole file would throw it, or when the step cannot be inferred.
    public init?(path: String, format: SeriesFile.Format, settings: Settings) throws(ReplayError) {
        guard Self.canSplit(settings.configuration) else { return nil }
        let outline: SeriesFileOutline
        do {
            guard let read = try SeriesFile.outline(path: path, format: format, chunkBytes: settings.chunkBytes) else {
                return nil
            }
            outline = read
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
        to sink: ([UInt8]) -> Void
    ) throws(ReplayError) -> ReplaySummary {
        let outline = outline
        let settings = settings
        let step = step
        let blocks: SeriesFileBlocks
        do {
            blocks = try SeriesFileBlocks(
                path: outline.name,
                format: outline.format,
                kind: settings.kind,
                chunkBytes: settings.chunkBytes,
                blockRows: settings.blockRows
            )
        } catch {
            throw ReplayError(reason: "\(error)")
        }
        var summary = ReplaySummary()
        summary.series = outline.series
        summary.step = step
        summary.ticks = outline.times.count
        // As on the whole file: a core takes at least 64 series.
        let parts = Swift.max(1, Swift.min(settings.threads, outline.series / 64))
        summary.parts = parts
        let multi = outline.series > 1
        let header = writer.header(multi: multi)
        if !header.isEmpty { sink(header) }

        // Each round scores up to `parts` blocks side by side while the next round's blocks are
        // read (one more worker): the file is read once more, and only a round and the next are
        // held.
        var current = try read(blocks, count: parts)
        var done = 0
        while !current.isEmpty {
            var outputs = [Result<([[UInt8]], ReplaySummary), ReplayError>?](repeating: nil, count: current.count)
            var next: Result<[SeriesFile], ReplayError> = .success([])
            let work = current
            outputs.withUnsafeMutableBufferPointer { outputs in
                withUnsafeMutablePointer(to: &next) { next in
                    let shared = UnsafeSendable((outputs: outputs, next: next, blocks: blocks))
                    DispatchQueue.concurrentPerform(iterations: work.count + 1) { k in
                        if k == work.count {
                            do throws(ReplayError) {
                                shared.value.next.pointee = .success(try self.read(shared.value.blocks, count: parts))
                            } catch {
                                shared.value.next.pointee = .failure(error)
                            }
                            return
                        }
                        do throws(ReplayError) {
                            let result = try Replayer.run(
                                work[k],
                                configuration: settings.configuration,
                                step: step,
                                maxGap: settings.maxGap,
                                times: outline.times
                            )
                            var pieces: [[UInt8]] = []
                            writer.writeRows(result, multi: multi) { pieces.append($0) }
                            shared.value.outputs[k] = .success((pieces, result.summary))
                        } catch {
                            shared.value.outputs[k] = .failure(error)
                        }
                    }
                }
            }
            for output in outputs {
                guard let output else { continue }
                let (pieces, part) = try output.get()
                for piece in pieces { sink(piece) }
                summary.add(part)
                done += part.rows
            }
            progress(done, outline.rows)
            current = try next.get()
        }
        return summary
    }

    /// Up to `count` blocks.
    private func read(_ blocks: SeriesFileBlocks, count: Int) throws(ReplayError) -> [SeriesFile] {
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
        for reason in DropReason.allCases { drops.add(reason, count: part.drops[reason]) }
    }
}
