import FlatlineAlerting
import FlatlineCore
import FlatlineIngest
import FlatlineNotify
import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineConfig
@testable import FlatlineDaemon
@testable import FlatlineScrape

/// The outbox cannot be written (a full disk, a locked database) just when an alert resolves:
/// the resolve is kept, and committed once the outbox can be written again.
@Suite("Outbox write failures", .serialized)
struct OutboxFailureTests {
    static let model = """
        name: too_high
        kind: threshold
        group_by: [instance]
        threshold: {metric: x, above: 5}
        alert: {name: TooHigh, severity: warning, summary: "x is {{value}}", description: "x is high"}
        """

    /// One sample of `x` from target `j/t:1`, at `time` (by default now).
    static func batch(_ value: Double, at time: Timestamp? = nil) throws -> ScrapeBatch {
        let time = time ?? Timestamp(milliseconds: Int64((Date().timeIntervalSince1970 * 1000).rounded()))
        let labels = try LabelSet(validating: ["__name__": "x", "instance": "t:1", "job": "j"])
        return ScrapeBatch(
            target: "j/t:1",
            labels: ["job": "j", "instance": "t:1"],
            time: time,
            samples: [Sample(labels: labels, value: value, timestamp: time)],
            health: ScrapeHealth(up: true, durationSeconds: 0, samplesScraped: 1, samplesDropped: 0),
            errors: [:],
            drops: DropCounts()
        )
    }

    /// A pipeline with the `too_high` model, grouping by `groupBy`, whose notifier's outbox is
    /// `outbox` (its webhook goes nowhere: what is told stays pending there).
    static func pipeline(groupBy: String, outbox path: String, state: StateDirectory? = nil) throws -> (
        Pipeline, Notifier
    ) {
        let yaml = """
            route: {receiver: hook, group_by: [\(groupBy)], group_wait: 0s, group_interval: 1s}
            receivers:
              - name: hook
                webhook_configs: [{url: "http://127.0.0.1:9/hook"}]
            """
        let settings = try #require(try Configuration.parse(yaml, file: "f.yml").alerting)
        let notifier = try Notifier(
            settings: settings,
            outbox: try Outbox(path: path),
            externalURL: "http://flatline.test",
            logger: TestSupport.quietLogger
        )
        let pipeline = Pipeline(
            models: [try Model.parse(Self.model, file: "m.yml")],
            routing: settings,
            detection: [:],
            notifier: notifier,
            state: state,
            logger: TestSupport.quietLogger
        )
        return (pipeline, notifier)
    }

    /// Another process (Python's sqlite3) holding the database's write lock on `path` for
    /// `seconds`, started and holding it when this returns.
    static func lock(_ path: String, seconds: Int) throws -> Process {
        let locker = Process()
        locker.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        locker.arguments = [
            "python3", "-c",
            "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None); "
                + "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(\(seconds))",
            path,
        ]
        let output = Pipe()
        locker.standardOutput = output
        try locker.run()
        _ = output.fileHandleForReading.readData(ofLength: 6)
        return locker
    }

    @Test("a resolve flushed while the outbox is locked is committed once it is not", .timeLimit(.minutes(1)))
    func lockedOutbox() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("outbox.sqlite").path
        let (pipeline, notifier) = try Self.pipeline(groupBy: "alertname", outbox: path)
        func statuses() throws -> [String] {
            try notifier.outbox.pending().map {
                String(decoding: $0.body, as: UTF8.self).contains(#""status":"resolved""#) ? "resolved" : "firing"
            }
        }
        await pipeline.ingest(try Self.batch(10))
        await pipeline.flush()
        #expect(try statuses() == ["firing"])
        // Another process holds the database's write lock: commits fail.
        let locker = try Self.lock(path, seconds: 3)
        try await Task.sleep(for: .milliseconds(1100))  // group_interval
        await pipeline.ingest(try Self.batch(0))
        await pipeline.flush()
        #expect(await pipeline.commitFailing)
        locker.waitUntilExit()
        // The disk is back: the next flush commits the resolve.
        await pipeline.flush()
        #expect(await !pipeline.commitFailing)
        #expect(try statuses() == ["firing", "resolved"])
        await notifier.shutdown()
    }

    @Test("an outbox another process holds locked for a moment is opened once it lets go", .timeLimit(.minutes(1)))
    func openWhileLocked() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("outbox.sqlite").path
        _ = try Outbox(path: path)
        let locker = try Self.lock(path, seconds: 1)
        let started = ContinuousClock.now
        let outbox = try Outbox(path: path)
        #expect(ContinuousClock.now - started > .milliseconds(300), "opened while the lock was held")
        #expect(try outbox.pending().isEmpty)
        locker.waitUntilExit()
    }
}
