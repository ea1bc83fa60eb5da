import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import FlatlineScrape
import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineDaemon

/// A recording's rows come from the daemon's pipeline as the recording is read: one row per
/// sample the daemon scored, with its verdict, written a block at a time, the same bytes
/// whatever the block size and core count.
@Suite("A recording's rows, round by round")
struct RecordingRowsTests {
    static let recording = TestSupport.repositoryFile(
        "Tests/FlatlineIngestTests/Fixtures/nats/scenario-freeze-flood.ndjson.gz"
    ).path

    static func replay(blockRows: Int, threads: Int, format: ReplayOutputFormat = .csv) async throws -> (
        pieces: [[UInt8]], result: RecordingReplay.Result
    ) {
        let configuration = try RecordedRounds.inferConfiguration(
            path: recording,
            detector: DetectorConfiguration()
        )
        var pieces: [[UInt8]] = []
        let result = try await RecordingReplay.run(
            recording: recording,
            configuration: configuration,
            models: [],
            writer: ReplayWriter(format: format),
            threads: threads,
            blockRows: blockRows,
            logger: TestSupport.quietLogger
        ) { pieces.append($0) }
        return (pieces, result)
    }

    @Test("rows are written a block at a time, the same bytes whatever the block and core count")
    func blocks() async throws {
        let whole = try await Self.replay(blockRows: RecordingReplay.blockRows, threads: 1)
        let small = try await Self.replay(blockRows: 1_000, threads: 2)
        #expect(whole.pieces.flatMap { $0 } == small.pieces.flatMap { $0 })
        // Written as the recording is read: many pieces, none much larger than a block of rows.
        #expect(small.pieces.count > 20)
        let text = String(decoding: whole.pieces.flatMap { $0 }, as: UTF8.self)
        let lines = text.split(separator: "\n")
        #expect(lines.first == "series,timestamp,value,expected,lower,upper,score,anomaly")
        #expect(lines.count - 1 == whole.result.summary.rows)
        let summary = whole.result.summary
        #expect(summary.rows == summary.scored + summary.pending + summary.drops.total)
        #expect(whole.result.summary.anomalies == lines.filter { $0.hasSuffix(",1") }.count)
        #expect(whole.result.summary.step == 1)
        #expect(whole.result.summary.ticks == whole.result.daemon.batches)
    }

    @Test("each row is its sample's verdict in the daemon's pipeline, in the order it was evaluated")
    func rowsAreVerdicts() async throws {
        let configuration = try RecordedRounds.inferConfiguration(
            path: Self.recording,
            detector: DetectorConfiguration()
        )
        // The pipeline's verdicts, taken straight from it.
        var expected: [(labels: LabelSet, time: Timestamp, verdict: SampleVerdict)] = []
        _ = try await DaemonReplay.run(
            recording: Self.recording,
            configuration: configuration,
            models: [],
            logger: TestSupport.quietLogger,
            scored: { batch, verdicts in
                for (sample, verdict) in zip(batch.samples, verdicts) {
                    expected.append((sample.labels, sample.timestamp, verdict))
                }
            }
        )
        let replayed = try await Self.replay(blockRows: 5_000, threads: 2, format: .ndjson)
        let lines = String(decoding: replayed.pieces.flatMap { $0 }, as: UTF8.self).split(separator: "\n")
        try #require(lines.count == expected.count)
        var pending = 0
        for (line, want) in zip(lines, expected) {
            let row = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(row["series"] as? String == want.labels.description)
            #expect(row["timestamp"] as? String == want.time.description)
            // The numbers as written (Foundation's JSON reader rounds some in their last bit).
            let tail = try #require(line.range(of: ",\"value\":", options: .backwards))
            var numbers: [String: Double] = [:]
            for field in line[tail.upperBound...].dropLast().split(separator: ",") {
                let parts = field.split(separator: ":")
                guard parts.count == 2 else { continue }
                numbers[String(parts[0].filter { $0 != "\"" })] = Double(parts[1])
            }
            numbers["value"] = Double(line[tail.upperBound...].prefix { $0 != "," })
            switch want.verdict {
            case .scored(let point):
                #expect(numbers["value"] == point.value)
                #expect(numbers["score"] == point.score)
                #expect((numbers["anomaly"] == 1) == point.anomaly)
                if point.expected.isFinite { #expect(numbers["expected"] == point.expected) }
                if point.upper.isFinite { #expect(numbers["upper"] == point.upper) }
            case .pending:
                // A counter's first sample: no rate yet.
                #expect(row["value"] is NSNull)
                pending += 1
            case .dropped:
                #expect(numbers["score"] == 0)
            }
        }
        #expect(pending > 0)
        #expect(replayed.result.summary.pending == pending)
        // Every series is a series of the recording's one target, with its labels.
        #expect(expected.allSatisfy { $0.labels["instance"] == "recording" && $0.labels["job"] == "nats" })
    }
}
