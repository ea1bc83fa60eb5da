import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineScrape
import FlatlineTestSupport
import Foundation
import Logging
import Synchronization
import Testing

@testable import FlatlineDaemon

/// The data directory: detection and alert state survive a restart; a file that cannot be used
/// is logged, kept aside, and the start goes on cold.
@Suite("State directory")
struct StateDirectoryTests {
    /// Keeps what is logged, for the assertions.
    final class Captured: Sendable {
        let lines = Mutex<[String]>([])
        var all: [String] { lines.withLock { $0 } }
    }

    struct CapturingHandler: LogHandler {
        let captured: Captured
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let extra = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            captured.lines.withLock { $0.append("\(event.level) \(event.message) \(extra.joined(separator: " "))") }
        }
    }

    static func logger(_ captured: Captured) -> Logger {
        Logger(label: "test") { _ in CapturingHandler(captured: captured) }
    }

    static func bank() throws -> DetectionBank {
        var bank = try DetectionBank(configuration: DetectorConfiguration(kind: .ewma), step: 1)
        let labels = try LabelSet(validating: ["__name__": "x"])
        for t in 0..<50 {
            _ = bank.process(
                time: Timestamp(milliseconds: Int64(t) * 1000),
                samples: [
                    Sample(labels: labels, value: Double(t % 5), timestamp: Timestamp(milliseconds: Int64(t) * 1000))
                ]
            )
        }
        return bank
    }

    static func firingEngine() -> AlertEngine {
        var engine = AlertEngine()
        let observation = AlertObservation(
            labels: ["alertname": "ConsumerFreeze", "stream": "ORDERS", "consumer": "worker"],
            condition: .active,
            timing: AlertTiming(forSeconds: 0)
        )
        _ = engine.evaluate(at: Timestamp(milliseconds: 1000), [observation])
        return engine
    }

    @Test("both states round-trip through the directory, atomically")
    func roundTrip() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let state = try StateDirectory(path: directory.file("data/nested").path)
        let bank = try Self.bank()
        let engine = Self.firingEngine()
        try state.save(bank, source: "nats/127.0.0.1:8222")
        try state.save(engine)
        // The models' learned state: a consumer's usual gap, a client's baseline.
        let models = try ModelDirectory.load(TestSupport.repositoryFile("models").path)
        var evaluator = ModelEvaluator(models: models)
        for t in 0..<30 {
            let labels = ["__name__": "gnatsd_connz_in_msgs", "instance": "n1", "cid": "3"]
            var bytes = labels
            bytes["__name__"] = "gnatsd_connz_in_bytes"
            let time = Timestamp(milliseconds: Int64(t) * 1000)
            _ = evaluator.observe(
                time: time,
                samples: [
                    Sample(labels: try LabelSet(validating: labels), value: Double(t * 40), timestamp: time),
                    Sample(labels: try LabelSet(validating: bytes), value: Double(t * 4000), timestamp: time),
                ]
            )
        }
        try state.save(evaluator.state)
        let captured = Captured()
        let restoredBank = try #require(
            state.restoreDetection(source: "nats/127.0.0.1:8222", logger: Self.logger(captured))
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        #expect(try encoder.encode(restoredBank) == encoder.encode(bank))
        let restoredEngine = try #require(state.restoreAlerts(logger: Self.logger(captured)))
        #expect(restoredEngine.alerts == engine.alerts)
        #expect(restoredEngine.alerts(in: .firing).count == 1)
        let restoredModels = try #require(state.restoreModels(logger: Self.logger(captured)))
        #expect(try encoder.encode(restoredModels) == encoder.encode(evaluator.state))
        var fresh = ModelEvaluator(models: models)
        #expect(fresh.restore(restoredModels).count == models.count)
        // Only the state files: no temporary files left behind.
        let files = try FileManager.default.contentsOfDirectory(atPath: state.path).sorted()
        #expect(files == ["alerts.json", "detection-nats_127.0.0.1_8222.json", "models.json"])
        #expect(captured.all.allSatisfy { $0.hasPrefix("info restored") })
    }

    @Test("a saved bank goes on under a detector that learns alike, with its thresholds; else afresh, saying why")
    func savedBankContinues() throws {
        let saved = try Self.bank()  // ewma at a 1 s step
        let captured = Captured()
        let log = Self.logger(captured)
        let ewma = DetectorConfiguration(kind: .ewma)
        let same = try #require(Pipeline.continuing(saved, detector: ewma, step: 1, target: "t", logger: log))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        #expect(try encoder.encode(same) == encoder.encode(saved))
        #expect(captured.all.isEmpty)
        // A new threshold, or a parameter of a detector that does not run: the state goes on.
        var tuned = ewma
        tuned.calibration.threshold = 0.99
        tuned.surprise.shapeWeight = 0.05
        let judged = try #require(Pipeline.continuing(saved, detector: tuned, step: 1, target: "t", logger: log))
        #expect(judged.detector.configuration == tuned)
        #expect(judged.store.count == saved.store.count)
        #expect(captured.all.count == 1)
        #expect(captured.all.first?.hasPrefix("info saved detection state goes on") == true, "\(captured.all)")
        // The default detector changed under it, a learning parameter did, or the scrape
        // interval: learn afresh, say so and name what differs.
        #expect(Pipeline.continuing(saved, detector: DetectorConfiguration(), step: 1, target: "t", logger: log) == nil)
        #expect(Pipeline.continuing(saved, detector: ewma, step: 15, target: "t", logger: log) == nil)
        var relearn = ewma
        relearn.calibration.halfLife = .samples(100)
        #expect(Pipeline.continuing(saved, detector: relearn, step: 1, target: "t", logger: log) == nil)
        let notices = captured.all.dropFirst()
        #expect(notices.count == 3)
        #expect(notices.allSatisfy { $0.hasPrefix("notice saved detection state was learned with another") })
        let kind = try #require(notices.first)
        #expect(kind.contains("key=kind") && kind.contains("saved_detector=ewma"), "\(kind)")
        #expect(kind.contains("detector=surprise"), "\(kind)")
        #expect(notices.dropFirst().first?.contains("saved_step=1.0") == true, "\(notices)")
        let key = try #require(notices.last)
        #expect(key.contains("key=calibration.half_life") && key.contains("configured=100 samples"), "\(key)")
    }

    @Test(
        "a restart with a new threshold goes on with what the series learned; one with a new learning parameter starts afresh"
    )
    func restartWithThreshold() async throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let state = try StateDirectory(path: directory.file("data").path)
        func batch(_ value: Double, at second: Int64) throws -> ScrapeBatch {
            try OutboxFailureTests.batch(value, at: Timestamp(milliseconds: 1_767_225_600_000 + second * 15_000))
        }
        func pipeline(_ detector: DetectorConfiguration, _ captured: Captured) -> Pipeline {
            Pipeline(
                models: [],
                detector: detector,
                routing: AlertingSettings(route: RouteSettings(receiver: "none"), receivers: []),
                detection: ["j/t:1": DetectionSettings(step: 15)],
                notifier: nil,
                state: state,
                writeAheadLog: nil,
                logger: Self.logger(captured)
            )
        }
        let first = pipeline(DetectorConfiguration(), Captured())
        for k in 0..<60 { _ = await first.ingest(try batch(100 + Double(k % 3), at: Int64(k))) }
        await first.save()
        // A spike after the restart: scored against what the series learned, judged with the
        // new threshold (no anomaly); under another learning parameter, the first point of a
        // fresh series (no band yet).
        var raised = DetectorConfiguration()
        raised.surprise.threshold = 30
        let raisedLog = Captured()
        let going = await pipeline(raised, raisedLog).ingestScored(try batch(400, at: 60)).verdicts
        let point = try #require(going.first?.point)
        #expect(point.lower.isFinite && point.upper.isFinite && point.score > 0 && !point.anomaly, "\(point)")
        #expect(raisedLog.all.contains { $0.hasPrefix("info saved detection state goes on") }, "\(raisedLog.all)")
        var relearn = DetectorConfiguration()
        relearn.surprise.shapeWeight = 0.05
        let relearnLog = Captured()
        let fresh = await pipeline(relearn, relearnLog).ingestScored(try batch(400, at: 60)).verdicts
        let cold = try #require(fresh.first?.point)
        #expect(cold.lower.isNaN && cold.score == 0, "\(cold)")
        #expect(relearnLog.all.contains { $0.contains("key=surprise.shape_weight") }, "\(relearnLog.all)")
    }

    @Test("a missing file is a cold start, said at info")
    func missing() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let state = try StateDirectory(path: directory.url.path)
        let captured = Captured()
        #expect(state.restoreAlerts(logger: Self.logger(captured)) == nil)
        #expect(captured.all.first?.hasPrefix("info no saved alert state: starting cold") == true)
    }

    @Test(
        "corrupt, foreign and newer files: logged with the reason, kept aside, a cold start",
        arguments: [
            ("{\"format\":\"flatline-alert-state\",\"version\":1,\"bank\":{\"alerts\":[{\"oops\":", "corrupt state"),
            ("{\"format\":\"flatline-alert-state\",\"version\":7,\"bank\":{}}", "state version 7 is not supported"),
            ("{\"format\":\"something-else\",\"version\":1}", "not a Flatline flatline-alert-state file"),
            ("\u{0}\u{1}binary", "corrupt state: not valid JSON"),
            ("{\"format\":\"flatline-alert-state\",\"version\":1,\"bank\":{\"alerts\":7}}", "corrupt state"),
        ]
    )
    func unusable(content: String, reason: String) throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let state = try StateDirectory(path: directory.url.path)
        try Data(content.utf8).write(to: URL(fileURLWithPath: state.alertsFile))
        let captured = Captured()
        #expect(state.restoreAlerts(logger: Self.logger(captured)) == nil)
        let line = try #require(captured.all.first)
        #expect(line.hasPrefix("error cannot use the saved alert state: starting cold"))
        #expect(line.contains(reason), "\(line)")
        let files = try FileManager.default.contentsOfDirectory(atPath: state.path)
        let aside = try #require(files.first { $0.hasPrefix("alerts.json.unreadable-") })
        #expect(!files.contains("alerts.json"))
        #expect(try String(contentsOfFile: state.path + "/" + aside, encoding: .utf8) == content)
        // The next save starts a good file again.
        try state.save(Self.firingEngine())
        #expect(state.restoreAlerts(logger: Self.logger(captured)) != nil)
    }

    /// A saved detection state with one member replaced, as a hostile or damaged file would have it.
    static func tampered(_ bank: DetectionBank, _ change: (inout [String: Any]) throws -> Void) throws -> Data {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let state = try StateDirectory(path: directory.url.path)
        try state.save(bank, source: "s")
        var file = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: state.detectionFile("s"))))
                as? [String: Any]
        )
        var saved = try #require(file["bank"] as? [String: Any])
        try change(&saved)
        file["bank"] = saved
        return try JSONSerialization.data(withJSONObject: file)
    }

    static func packed(_ values: [Double]) throws -> String {
        let text = String(decoding: try JSONEncoder().encode(PackedDoubles(values)), as: UTF8.self)
        return String(text.dropFirst().dropLast())
    }

    @Test(
        "a detection state with Inf or 2^63 in packed counter times, or a huge capacity: moved aside, a cold start",
        arguments: ["infinity", "two to the 63", "capacity"]
    )
    func hostileDetectionState(_ damage: String) throws {
        var bank = try DetectionBank(configuration: DetectorConfiguration(kind: .ewma), step: 1)
        let labels = try LabelSet(validating: ["__name__": "c_total"])
        for t in 0..<5 {
            let time = Timestamp(milliseconds: Int64(t) * 1000)
            _ = bank.process(
                time: time,
                samples: [Sample(labels: labels, value: Double(t), timestamp: time, kind: .counter)]
            )
        }
        let data = try Self.tampered(bank) { saved in
            switch damage {
            case "capacity":
                var store = try #require(saved["store"] as? [String: Any])
                store["capacity"] = 1_000_000_000_000
                saved["store"] = store
            default:
                var rates = try #require(saved["rates"] as? [String: Any])
                #expect(rates["lastTimeMilliseconds"] != nil)
                rates["lastTimeMilliseconds"] = try Self.packed([damage == "infinity" ? .infinity : 0x1p63])
                saved["rates"] = rates
            }
        }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let state = try StateDirectory(path: directory.url.path)
        try data.write(to: URL(fileURLWithPath: state.detectionFile("s")))
        let captured = Captured()
        #expect(state.restoreDetection(source: "s", logger: Self.logger(captured)) == nil)
        let line = try #require(captured.all.first)
        #expect(line.hasPrefix("error cannot use the saved detection state of s: starting cold"), "\(line)")
        #expect(line.contains(damage == "capacity" ? "capacity 1000000000000" : "is not a time"), "\(line)")
        let files = try FileManager.default.contentsOfDirectory(atPath: state.path)
        #expect(files.contains { $0.hasPrefix("detection-s.json.unreadable-") })
    }

    @Test("NaN and infinities in a state are written (as Prometheus' JSON strings) and read back bit for bit")
    func nonFinite() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("values.json").path
        let values: [Double] = [.nan, .infinity, -.infinity, 1.5, 0x1p63, -0.0]
        try StateFile.save(values, format: "test", version: 1, to: path)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains(#"["NaN","+Inf","-Inf",1.5,"#), "\(text)")
        let loaded = try StateFile.load([Double].self, format: "test", version: 1, from: path)
        #expect(loaded.map(\.bitPattern).dropFirst() == values.map(\.bitPattern).dropFirst())
        #expect(loaded.first?.isNaN == true)
    }

    @Test("a data directory that is a file is an error, not a crash")
    func notADirectory() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write("plain", "x")
        #expect(throws: StateFileError.self) { try StateDirectory(path: file.path) }
    }
}
