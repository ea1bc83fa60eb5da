import ArgumentParser
import FlatlineLoadgen
import FlatlineNATS
import Foundation
import Logging

struct LoadgenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadgen",
        abstract: "Drive NATS traffic with real incidents: a consumer freeze, a producer flood, a slow subscriber.",
        discussion: """
            Creates the scenario's JetStream streams and durable pull consumers, runs every \
            publisher, worker and core subscriber on a connection of its own (named as in the \
            scenario, so /connz tells them apart), injects the incidents on the timeline, and \
            prints the ground truth as JSON when it ends: each phase (baseline, freeze, recover1, \
            flood, ..., tail) with its real start and end and what it targets. The traffic \
            pattern is deterministic given the seed.

            SCENARIO FORMAT (YAML; every key of the built-in scenario is commented in \
            `flatline loadgen --print-scenario`):
              name, seed, duration               the whole run
              streams:     name, subjects, storage (file|memory), max_msgs, max_bytes
              consumers:   stream, name, capacity (msgs/s), max_ack_pending, ack_wait, batch, filter_subject
              publishers:  name, subject, rate (msgs/s), amplitude, period, noise, payload (bytes)
              subscribers: name, subject, queue
              incidents:   kind: freeze      target: STREAM/consumer  mode: noack|nofetch
                           kind: flood       target: publisher        multiplier: 50
                           kind: slow_subscriber  target: subscriber
                           each with at: and duration: (90s, 1m30s, or seconds)
            Without --scenario the built-in one runs: normal traffic, a noack freeze of \
            ORDERS/worker at 90s for 60s, a 50x flood of orders-producer at 180s for 30s.

            Ctrl-C ends the run early: an incident in progress ends there, and the ground \
            truth covers what ran, with "interrupted": true.
            """
    )

    @Option(help: "The NATS server URL (nats://host:port, tls://host:port; repeatable).")
    var server: [String] = ["nats://127.0.0.1:4222"]

    @Option(help: "A scenario file (YAML). Default: the built-in scenario.")
    var scenario: String?

    @Option(
        parsing: .unconditional,
        help: "Run the whole scenario in this time instead, scaling every time in it (e.g. 60s)."
    )
    var duration: DurationArgument?

    @Option(parsing: .unconditional, help: "Seed for the traffic pattern (default: the scenario's).")
    var seed: UInt64?

    @Option(help: "Write the ground truth JSON here instead of standard output.")
    var out: String?

    @Option(help: "User name for the server.")
    var user: String?

    @Option(help: "Password for --user.")
    var password: String?

    @Option(help: "Token for the server.")
    var token: String?

    @Option(help: "A .creds file (user JWT and NKey seed).")
    var creds: String?

    @Flag(
        name: .customLong("print-scenario"),
        help: "Print the built-in scenario (YAML, every key commented) and exit."
    )
    var printScenario = false

    @Flag(help: "Log connections and errors on standard error.")
    var verbose = false

    func validate() throws {
        try DurationArgument.refuseZero(duration, "--duration")
        let ways = [user != nil, token != nil, creds != nil].filter { $0 }.count
        if ways > 1 { throw ValidationError("give one of --user, --token and --creds") }
        if password != nil && user == nil { throw ValidationError("--password goes with --user") }
    }

    func run() async throws {
        if printScenario {
            print(Scenario.builtInYAML)
            return
        }
        var scenario: Scenario
        do {
            scenario =
                try self.scenario.map { path throws(ScenarioError) in try Scenario.load(path: path) }
                ?? Scenario.builtIn
        } catch {
            throw CommandFailure("\(error)")
        }
        // Before the run: its ground truth is written at the end.
        if let out { try OutputPath.refuseUnwritable("--out", out, renamed: true) }
        if let creds, !FileManager.default.isReadableFile(atPath: creds) {
            throw CommandFailure(
                "--creds \(creds) "
                    + (FileManager.default.fileExists(atPath: creds) ? "cannot be read" : "does not exist")
            )
        }
        if let seed { scenario.seed = seed }
        if let duration { scenario = scenario.scaled(toSeconds: duration.seconds) }
        var connection = try NATSClientConfiguration(urls: server)
        if let user { connection.authentication = .userPassword(user: user, password: password ?? "") }
        if let token { connection.authentication = .token(token) }
        if let creds { connection.authentication = .credentials(path: creds) }
        var logger = Logger(label: "flatline.loadgen")
        logger.logLevel = verbose ? .info : .error
        let total = scenario.totalSeconds
        Stderr.write(
            "loadgen: \(scenario.name) for \(Int(total.rounded())) s against \(server.joined(separator: ","))\n"
        )
        // Ctrl-C (or SIGTERM) ends the run early and still writes the ground truth of what ran;
        // a second one exits at once.
        let stop = StopSignal()
        let signals = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if stop.isStopped { Foundation.exit(130) }
                Stderr.write("loadgen: stopping (again to quit at once)\n")
                stop.stop()
            }
            source.resume()
            return source
        }
        defer { for source in signals { source.cancel() } }
        let generator = LoadGenerator(scenario: scenario, connection: connection, logger: logger)
        let truth = try await generator.run(stop: stop) { line in Stderr.write("loadgen: \(line)\n") }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let json = try encoder.encode(truth)
        if let out {
            do {
                try json.write(to: URL(fileURLWithPath: out), options: .atomic)
            } catch {
                throw CommandFailure("cannot write --out \(out): \(error.localizedDescription)")
            }
        } else {
            FileHandle.standardOutput.write(json)
            FileHandle.standardOutput.write(Data("\n".utf8))
        }
    }
}
