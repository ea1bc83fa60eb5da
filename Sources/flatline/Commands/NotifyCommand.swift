import ArgumentParser
import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineDaemon
import FlatlineNotify
import FlatlineScrape
import Foundation
import Logging

struct NotifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notify",
        abstract: "Send recorded alert events through the configured routes and receivers.",
        discussion: """
            Reads alert events (NDJSON, as `flatline replay --alerts-out` writes them), routes \
            and groups them as the daemon would on their own clock, commits the notifications \
            to the outbox under the data directory, and delivers them, retrying failures. \
            Without EVENTS it delivers what an earlier run left in the outbox. Exits 0 when \
            everything was delivered, 1 when notifications were given up or are still waiting \
            at --timeout (they stay in the outbox for the next run).
            """
    )

    @Option(help: "The configuration file with route: and receivers:.")
    var config: String

    @Option(help: "The data directory; the outbox is DIR/outbox.sqlite.")
    var dataDir = "./data"

    @Option(help: "Where Flatline is reached; alerts link to it (externalURL in payloads).")
    var externalURL = "http://localhost:9464"

    @Option(help: "How long to keep delivering before giving the rest to the next run (e.g. 60s, 5m).")
    var timeout = "60s"

    @Argument(help: "Alert events, NDJSON; - for standard input.")
    var events: String?

    func run() async throws {
        guard let limit = DurationText.parse(timeout), limit > 0 else {
            throw ValidationError("--timeout: \"\(timeout)\" is not a duration")
        }
        let configuration: Configuration
        do {
            configuration = try Configuration.load(path: config)
        } catch {
            throw CommandFailure("\(error)")
        }
        guard let alerting = configuration.alerting else {
            throw CommandFailure("\(config): no route: (and receivers:) to send notifications to")
        }
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let logger = Logger(label: "flatline.notify") { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        // The events are read before any connection is made: a bad line is refused with nothing
        // to close.
        let recorded = try events.map { try Self.read($0) }
        // A daemon on the same directory delivers from the same outbox (one stopping is waited
        // for, as a daemon waits).
        let lock: DataDirectoryLock
        do {
            lock = try DataDirectoryLock(directory: dataDir, waiting: 10) { pid in
                Stderr.write("notify: \(dataDir) is in use (pid \(pid ?? "?")): waiting up to 10 s\n")
            }
        } catch {
            throw CommandFailure("\(error)")
        }
        defer { lock.release() }
        let outbox = try Outbox(path: dataDir + "/outbox.sqlite")
        let notifier = try Notifier(settings: alerting, outbox: outbox, externalURL: externalURL, logger: logger)
        let failedBefore: Int
        do {
            if let recorded {
                // The daemon's evaluation from the dispatcher on, clocked by the events.
                var evaluation = Evaluation(models: [], routing: alerting)
                let notifications = evaluation.notifications(for: recorded)
                let committed = try notifier.submit(
                    notifications,
                    tree: evaluation.dispatcher.tree,
                    now: Date().timeIntervalSince1970
                )
                Stderr.write(
                    "notify: \(recorded.count) events, \(notifications.count) notifications, \(committed) committed to the outbox\n"
                )
            }
            failedBefore = try outbox.failed().count
        } catch {
            await notifier.shutdown()
            throw error
        }
        await notifier.courier.drain(within: limit)
        await notifier.shutdown()
        let pending = try outbox.pendingCount()
        let failed = try outbox.failed()
        let outcomes = notifier.courier.stats.snapshot.outcomes.values
        let delivered = outcomes.reduce(0) { $0 + ($1["delivered"] ?? 0) }
        Stderr.write("notify: \(delivered) delivered, \(pending) waiting, \(failed.count - failedBefore) given up\n")
        for failure in failed.dropFirst(failedBefore) {
            Stderr.write("notify: gave up on \(failure.item.integration) \(failure.item.groupKey): \(failure.reason)\n")
        }
        if pending > 0 || failed.count > failedBefore { throw ExitCode(1) }
    }

    static func read(_ path: String) throws -> [AlertEvent] {
        let data: Data
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let contents = FileManager.default.contents(atPath: path) else {
                throw CommandFailure("cannot read \(path)")
            }
            data = contents
        }
        var out: [AlertEvent] = []
        for (number, line) in data.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated()
        where !line.allSatisfy({ $0 == 0x20 || $0 == 0x0D }) {
            do {
                out.append(try JSONDecoder().decode(AlertEventRecord.self, from: Data(line)).event())
            } catch {
                throw CommandFailure("\(path):\(number + 1): not an alert event: \(error)")
            }
        }
        return out
    }
}
