import FlatlineAlerting
import FlatlineCore
import FlatlineDaemon
import FlatlineTestSupport
import Foundation
import Testing

/// `flatline rules`: the committed rule files are what the shipped models generate, and a real
/// promtool accepts them and passes their tests (every alert fires on its input and stays quiet
/// on the other).
@Suite("flatline rules")
struct RulesCommandTests {
    static var promtool: URL? {
        ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
            .map(URL.init(fileURLWithPath:))
    }

    @Test("regenerating gives the committed files, byte for byte")
    func current() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let result = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["rules", "--models", TestSupport.repositoryFile("models").path, "--out", directory.url.path]
        )
        #expect(result.status == 0, "\(result.standardError)")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.url.path).sorted()
        #expect(names == ["flatline.test.yml", "flatline.yml", "nats.test.yml", "nats.yml"])
        for name in names {
            let fresh = try String(contentsOf: directory.file(name), encoding: .utf8)
            let committed = try String(contentsOf: TestSupport.repositoryFile("rules/\(name)"), encoding: .utf8)
            #expect(fresh == committed, "rules/\(name) is stale: run `flatline rules`")
        }
        // A file where the directory should be is named as one.
        let file = try directory.write("not-a-directory", "")
        let refused = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["rules", "--models", TestSupport.repositoryFile("models").path, "--out", file.path]
        )
        #expect(refused.status == 1)
        #expect(
            refused.standardError == "Error: --out \(file.path): is a file, not a directory\n",
            "\(refused.standardError)"
        )
    }

    @Test("promtool check rules and promtool test rules pass on every committed file")
    func promtoolAccepts() throws {
        let promtool = try #require(Self.promtool, "promtool is not installed (make deps installs it)")
        let rules = TestSupport.repositoryFile("rules")
        let check = try TestSupport.run(
            promtool,
            [
                "check", "rules", rules.appendingPathComponent("flatline.yml").path,
                rules.appendingPathComponent("nats.yml").path,
            ]
        )
        #expect(check.status == 0, "\(check.standardOutput)\(check.standardError)")
        #expect(check.standardOutput.contains("SUCCESS: 4 rules found"))
        #expect(check.standardOutput.contains("SUCCESS: 12 rules found"))
        let test = try TestSupport.run(
            promtool,
            [
                "test", "rules", rules.appendingPathComponent("flatline.test.yml").path,
                rules.appendingPathComponent("nats.test.yml").path,
            ]
        )
        #expect(test.status == 0, "\(test.standardOutput)\(test.standardError)")
        // Each alert is tested both ways.
        let text = try String(contentsOf: rules.appendingPathComponent("nats.test.yml"), encoding: .utf8)
        #expect(text.components(separatedBy: " fires\"").count - 1 == 12)
        #expect(text.components(separatedBy: "exp_alerts: []").count - 1 == 12)
    }

    @Test("a model's threshold reaches its rule; a model left out leaves its rule out")
    func followsModels() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let models = directory.file("models")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        let shipped = TestSupport.repositoryFile("models/jetstream_storage_near_limit.yml")
        let text = try String(contentsOf: shipped, encoding: .utf8)
            .replacingOccurrences(of: "above: 0.9 ", with: "above: 0.75 ")
            .replacingOccurrences(of: "clear: 0.85 ", with: "clear: 0.7 ")
        try Data(text.utf8).write(to: models.appendingPathComponent("storage.yml"))
        let out = directory.file("rules")
        let result = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["rules", "--models", models.path, "--out", out.path]
        )
        #expect(result.status == 0, "\(result.standardError)")
        let nats = try String(contentsOf: out.appendingPathComponent("nats.yml"), encoding: .utf8)
        #expect(nats.contains("gnatsd_varz_jetstream_config_max_storage > 0.75"))
        #expect(!nats.contains("NATSConsumerFreeze"))
        if let promtool = Self.promtool {
            let test = try TestSupport.run(
                promtool,
                ["test", "rules", out.appendingPathComponent("nats.test.yml").path]
            )
            #expect(test.status == 0, "\(test.standardOutput)")
        }
    }

    @Test("--from-state: a consumer that usually acks every 90 s gets its own freeze window; promtool agrees")
    func fromState() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let models = try ModelDirectory.load(TestSupport.repositoryFile("models").path)
        var evaluator = ModelEvaluator(models: models)
        let labels = ["instance": "n1", "account": "$G", "stream": "BATCH", "consumer": "nightly"]
        for second in stride(from: 0, to: 1800, by: 15) {
            var samples: [Sample] = []
            for (name, value) in [
                ("jetstream_consumer_ack_floor_stream_seq", Double(second / 90) * 100),
                ("jetstream_consumer_num_pending", 40.0), ("jetstream_consumer_num_ack_pending", 10.0),
            ] {
                var all = labels
                all["__name__"] = name
                let time = Timestamp(milliseconds: 1_767_225_600_000 + Int64(second) * 1000)
                samples.append(Sample(labels: try LabelSet(validating: all), value: value, timestamp: time))
            }
            _ = evaluator.observe(time: samples[0].timestamp, samples: samples)
        }
        let data = directory.file("data").path
        try StateDirectory(path: data).save(evaluator.state)
        let out = directory.file("rules")
        let result = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["rules", "--models", TestSupport.repositoryFile("models").path, "--out", out.path, "--from-state", data]
        )
        #expect(result.status == 0, "\(result.standardError)")
        #expect(result.standardError.contains("1 consumer(s) with a learned stall"), "\(result.standardError)")
        let nats = try String(contentsOf: out.appendingPathComponent("nats.yml"), encoding: .utf8)
        // 3 x 90 s = 4.5 min: a 5-minute window of its own; the generic rule leaves it out.
        #expect(
            nats.contains(
                #"jetstream_consumer_ack_floor_stream_seq{stream_name=\"BATCH\", consumer_name=\"nightly\"}[5m]"#
            )
        )
        #expect(nats.contains("unless on(stream_name, consumer_name)"))
        if let promtool = Self.promtool {
            let check = try TestSupport.run(promtool, ["check", "rules", out.appendingPathComponent("nats.yml").path])
            #expect(check.status == 0, "\(check.standardOutput)\(check.standardError)")
            let test = try TestSupport.run(
                promtool,
                ["test", "rules", out.appendingPathComponent("nats.test.yml").path]
            )
            #expect(test.status == 0, "\(test.standardOutput)")
        }
        let missing = try TestSupport.run(
            TestSupport.flatlineBinary,
            [
                "rules", "--out", out.path, "--models", TestSupport.repositoryFile("models").path, "--from-state",
                directory.file("none").path,
            ]
        )
        #expect(missing.status == 1)
        #expect(!missing.standardError.contains("Usage:"), "\(missing.standardError)")
        #expect(
            missing.standardError == "Error: --from-state: \(directory.file("none").path): no such directory\n",
            "\(missing.standardError)"
        )
        // Reading a state is all it does: a missing directory is not created, an unreadable
        // file is not moved aside (a daemon may be using it), and the reason is given.
        #expect(!FileManager.default.fileExists(atPath: directory.file("none").path))
        let broken = directory.file("broken")
        try FileManager.default.createDirectory(at: broken, withIntermediateDirectories: true)
        try Data("{\"format\":".utf8).write(to: broken.appendingPathComponent("models.json"))
        let unreadable = try TestSupport.run(
            TestSupport.flatlineBinary,
            [
                "rules", "--out", out.path, "--models", TestSupport.repositoryFile("models").path, "--from-state",
                broken.path,
            ]
        )
        #expect(unreadable.status == 1)
        #expect(
            unreadable.standardError.contains("--from-state: \(broken.path)/models.json: "),
            "\(unreadable.standardError)"
        )
        #expect(try FileManager.default.contentsOfDirectory(atPath: broken.path) == ["models.json"])
        let empty = directory.file("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let none = try TestSupport.run(
            TestSupport.flatlineBinary,
            [
                "rules", "--out", out.path, "--models", TestSupport.repositoryFile("models").path, "--from-state",
                empty.path,
            ]
        )
        #expect(
            none.standardError.contains("models.json: no saved model state: not a daemon's --data-dir"),
            "\(none.standardError)"
        )
    }
}
