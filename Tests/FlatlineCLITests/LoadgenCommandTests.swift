import FlatlineTestSupport
import Foundation
import Testing

@Suite("flatline loadgen", .serialized, .timeLimit(.minutes(1)))
struct LoadgenCommandTests {
    @Test("--help documents the scenario format; --print-scenario prints the built-in one")
    func help() throws {
        let help = try TestSupport.run(TestSupport.flatlineBinary, ["loadgen", "--help"])
        #expect(help.status == 0)
        for key in ["SCENARIO FORMAT", "publishers:", "incidents:", "noack|nofetch", "slow_subscriber", "--duration"] {
            #expect(help.standardOutput.contains(key), "help lacks \(key)")
        }
        let printed = try TestSupport.run(TestSupport.flatlineBinary, ["loadgen", "--print-scenario"])
        #expect(printed.status == 0)
        #expect(printed.standardOutput.contains("name: freeze-and-flood"))
    }

    @Test("a short run against a real server prints the ground truth; a bad scenario names its key")
    func run() throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        let result = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["loadgen", "--server", server.url, "--duration", "6s", "--seed", "3"]
        )
        #expect(result.status == 0, "\(result.standardError)")
        let truth = try #require(
            try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any]
        )
        let phases = try #require(truth["phases"] as? [[String: Any]])
        #expect(phases.compactMap { $0["phase"] as? String } == ["baseline", "freeze", "recover1", "flood", "tail"])
        #expect(truth["seed"] as? Int == 3)
        #expect(result.standardError.contains("begin freeze ORDERS/worker"))

        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let bad = try directory.write("bad.yml", "incidents:\n  - {kind: flood, target: ghost, at: 1s, duration: 1s}\n")
        let refused = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["loadgen", "--server", server.url, "--scenario", bad.path]
        )
        #expect(refused.status != 0)
        #expect(
            refused.standardError.contains("bad.yml: incidents[0].target: no publisher named ghost"),
            "\(refused.standardError)"
        )
        let unreachable = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["loadgen", "--server", "nats://127.0.0.1:\(try NATSServerProcess.freePort())", "--duration", "2s"]
        )
        #expect(unreachable.status != 0)
        #expect(unreachable.standardError.contains("not connected"), "\(unreachable.standardError)")
        // In words, not NIO's structures.
        #expect(unreachable.standardError.contains(": connection refused)"), "\(unreachable.standardError)")
        // What would fail after the run, or at connecting, is refused before it (the default
        // scenario's four minutes would pass the suite's time limit).
        let noDirectory = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["loadgen", "--server", server.url, "--out", directory.file("missing/truth.json").path]
        )
        #expect(noDirectory.status == 1)
        #expect(
            noDirectory.standardError.contains("--out \(directory.file("missing/truth.json").path): the directory"),
            "\(noDirectory.standardError)"
        )
        let noCreds = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["loadgen", "--server", server.url, "--creds", directory.file("user.creds").path]
        )
        #expect(noCreds.status == 1)
        #expect(noCreds.standardError.contains("user.creds does not exist"), "\(noCreds.standardError)")
        let both = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["loadgen", "--server", server.url, "--user", "a", "--token", "b"]
        )
        #expect(both.status == 64 && both.standardError.contains("give one of --user, --token and --creds"))
        let missingScenario = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["loadgen", "--server", server.url, "--scenario", directory.file("nope.yml").path]
        )
        #expect(missingScenario.status == 1)
        #expect(missingScenario.standardError.contains("nope.yml: cannot open: No such file or directory"))
    }

    @Test("Ctrl-C ends the run early: the incident in progress ends there and the ground truth says so")
    func interrupted() throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        let process = Process()
        process.executableURL = TestSupport.flatlineBinary
        process.arguments = ["loadgen", "--server", server.url, "--duration", "12s"]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Wait for the freeze to begin (the scenario ends by itself if this never comes).
        var log = ""
        while !log.contains("begin freeze") {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            log += String(decoding: chunk, as: UTF8.self)
        }
        #expect(log.contains("begin freeze"), "\(log)")
        kill(process.processIdentifier, SIGINT)
        let output = out.fileHandleForReading.readDataToEndOfFile()
        log += String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(log)")
        #expect(log.contains("stopped early"), "\(log)")
        let truth = try #require(try JSONSerialization.jsonObject(with: output) as? [String: Any])
        #expect(truth["interrupted"] as? Bool == true)
        let phases = try #require(truth["phases"] as? [[String: Any]])
        #expect(phases.compactMap { $0["phase"] as? String } == ["baseline", "freeze"])
        let freeze = try #require(phases.last)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let start = try #require(formatter.date(from: freeze["start"] as? String ?? ""))
        let end = try #require(formatter.date(from: freeze["end"] as? String ?? ""))
        #expect(end.timeIntervalSince(start) < 3, "the freeze ended at the interrupt, not at its planned end")
        let counts = try #require(truth["counts"] as? [String: [String: Int]])
        #expect((counts["orders-producer"]?["published"] ?? 0) > 0)
    }
}
