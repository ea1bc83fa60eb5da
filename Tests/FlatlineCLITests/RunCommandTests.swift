import FlatlineTestSupport
import Foundation
import Testing

/// `flatline run` as operators start it: SIGTERM stops it cleanly with its state saved, and the
/// next start continues from that state instead of learning again.
@Suite("flatline run", .serialized)
struct RunCommandTests {
    static func start(_ arguments: [String], log: URL) throws -> Process {
        let process = Process()
        process.executableURL = TestSupport.flatlineBinary
        process.arguments = ["run"] + arguments
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return process
    }

    static func waitReady(_ port: Int) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if let body = try? NATSServerProcess.httpGet(port: port, path: "/readyz"),
                String(decoding: body, as: UTF8.self).contains("ready\n"),
                !String(decoding: body, as: UTF8.self).contains("not")
            {
                return true
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        return false
    }

    static func stop(_ process: Process) async throws -> Bool {
        kill(process.processIdentifier, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(20)
        while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        return !process.isRunning
    }

    @Test(
        "a models directory that is not there is named, with where a relative one was looked for and --models; a failure is exit status 1 without the usage, an argument error 64 with it"
    )
    func missingModels() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let absolute = directory.file("nope").path
        let result = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["run", "--models", absolute, "--data-dir", directory.file("data").path],
            timeout: 60
        )
        #expect(result.status == 1)
        #expect(result.standardError.hasPrefix("Error: "), "\(result.standardError)")
        #expect(!result.standardError.contains("Usage:"), "\(result.standardError)")
        #expect(result.standardError.contains("\(absolute): no such models directory"), "\(result.standardError)")
        #expect(result.standardError.contains("pass --models DIR"), "\(result.standardError)")
        // The default is relative: the error says where it looked.
        let relative = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["run", "--models", "no-such-models-here", "--data-dir", directory.file("data").path],
            timeout: 60
        )
        #expect(relative.status != 0)
        #expect(
            relative.standardError.contains(
                "no-such-models-here: no such models directory (looked for in \(FileManager.default.currentDirectoryPath))"
            ),
            "\(relative.standardError)"
        )
        // A file where the directory should be.
        let file = try directory.write("models.yml", "x")
        let notDirectory = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["run", "--models", file.path, "--data-dir", directory.file("data").path],
            timeout: 60
        )
        #expect(notDirectory.status != 0)
        #expect(notDirectory.standardError.contains("\(file.path): not a directory"), "\(notDirectory.standardError)")
        // What the arguments got wrong shows how to give them.
        let argument = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["run", "--log-format", "xml", "--data-dir", directory.file("data").path],
            timeout: 60
        )
        #expect(argument.status == 64)
        #expect(argument.standardError.contains("--log-format must be text or json"), "\(argument.standardError)")
        #expect(argument.standardError.contains("Usage: flatline run"), "\(argument.standardError)")
    }

    @Test("a duration option of 0s or less, or a negative number, says why it is refused")
    func zeroDurations() throws {
        // A negative value is the option's value, not a short flag (it read "Missing value").
        for (arguments, reason) in [
            (["run", "--save-interval", "0s"], "--save-interval must be at least 1s"),
            (["run", "--save-interval", "-5m"], "--save-interval must be at least 1s"),
            (["replay", "x.csv", "--step", "0s"], "--step must be longer than 0s"),
            (["replay", "x.csv", "--step", "-5m"], "--step must be longer than 0s"),
            (["replay", "x.csv", "--max-gap", "-1s"], "--max-gap must be longer than 0s"),
            (["replay", "x.csv", "--jobs", "-2"], "--jobs must be from 1 to 1024"),
            (["replay", "x.csv", "--min-z", "-3"], "calibration.min_z must not be negative"),
            (
                ["record", "--config", "c.yml", "--out", "r.ndjson", "--duration", "0s"],
                "--duration must be longer than 0s"
            ),
            (
                ["record", "--config", "c.yml", "--out", "r.ndjson", "--duration", "-1s"],
                "--duration must be longer than 0s"
            ),
            (["loadgen", "--duration", "-1s"], "--duration must be longer than 0s"),
        ] {
            let result = try TestSupport.run(TestSupport.flatlineBinary, arguments, timeout: 60)
            #expect(result.status == 64, "\(arguments)")
            #expect(result.standardError.contains(reason), "\(arguments): \(result.standardError)")
        }
    }

    @Test("SIGTERM saves state and exits 0; the next start continues from it")
    func termAndRestart() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let config = try directory.write(
            "flatline.yml",
            """
            global: {scrape_interval: 1s}
            scrape_configs:
              - job_name: nats
                kind: nats
                static_configs: [{targets: ["127.0.0.1:\(server.monitoringPort)"]}]
            """
        )
        let port = try NATSServerProcess.freePort()
        let arguments = [
            "--config", config.path, "--data-dir", directory.file("data").path, "--listen", "127.0.0.1:\(port)",
            "--models", TestSupport.repositoryFile("models").path,
        ]
        let first = try Self.start(arguments, log: directory.file("first.log"))
        #expect(try await Self.waitReady(port))
        try await Task.sleep(for: .seconds(2))
        #expect(try await Self.stop(first))
        #expect(first.terminationStatus == 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.file("data").path)
        for name in ["alerts.json", "models.json", "outbox.sqlite"] { #expect(files.contains(name), "\(files)") }
        #expect(files.contains { $0.hasPrefix("detection-nats_") })
        let firstLog = try String(contentsOf: directory.file("first.log"), encoding: .utf8)
        #expect(firstLog.contains("state saved"), "\(firstLog)")
        // The stop is said first, then its steps.
        let stopping = try #require(firstLog.range(of: "stopping: "), "\(firstLog)")
        let lastSave = firstLog.range(of: "state saved", options: .backwards)?.lowerBound ?? firstLog.startIndex
        #expect(lastSave > stopping.lowerBound, "\(firstLog)")

        let second = try Self.start(arguments + ["--log-format", "json"], log: directory.file("second.log"))
        #expect(try await Self.waitReady(port))
        #expect(try await Self.stop(second))
        let secondLog = try String(contentsOf: directory.file("second.log"), encoding: .utf8)
        #expect(secondLog.contains("models continue from saved state"), "\(secondLog)")
        #expect(
            secondLog.contains("restored detection state of nats/127.0.0.1:\(server.monitoringPort)"),
            "\(secondLog)"
        )
        // JSON logs: one object a line.
        for line in secondLog.split(separator: "\n") {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "\(line)")
        }
    }
}
