import ArgumentParser
import FlatlineAlerting
import FlatlineDaemon
import Foundation

struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Write Prometheus rule files (and their promtool tests) from the models.",
        discussion: """
            Writes flatline.yml (alerts over the series the daemon exports) and nats.yml \
            (standalone alerts over prometheus-nats-exporter's metrics, with the models' \
            thresholds), each with a NAME.test.yml for `promtool test rules` whose input series \
            make every alert fire and not fire. Check them with `promtool check rules` and \
            `promtool test rules`. With --from-state DIR, consumers whose learned gap between \
            acknowledgements is longer than the generic freeze window get freeze rules of their \
            own (from DIR/models.json, the daemon's saved state).
            """
    )

    @Option(help: "The models directory the thresholds come from.")
    var models = "models"

    @Option(help: "Where to write the files.")
    var out = "rules"

    @Option(help: "A data directory whose saved model state (models.json) refines the thresholds.")
    var fromState: String?

    func run() throws {
        let loaded: [Model]
        do {
            loaded = try ModelDirectory.load(models)
        } catch {
            throw CommandFailure("\(error)")
        }
        var learned: [RuleFiles.LearnedStall] = []
        if let fromState {
            let state: ModelEvaluatorState
            do {
                state = try StateDirectory.readModels(in: fromState)
            } catch {
                throw CommandFailure("--from-state: \(error)")
            }
            learned = RuleFiles.learnedStalls(state, models: loaded)
            Stderr.write("rules: \(learned.count) consumer(s) with a learned stall longer than the generic window\n")
        }
        do {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        } catch {
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory)
            throw CommandFailure(
                "--out \(out): "
                    + (exists && !isDirectory.boolValue
                        ? "is a file, not a directory" : "cannot create the directory (\(error.localizedDescription))")
            )
        }
        for file in RuleFiles.files(models: loaded, learned: learned) {
            let path = out + "/" + file.name
            do {
                try Data(file.text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
            } catch {
                throw CommandFailure("cannot write \(path): \(error.localizedDescription)")
            }
            print(path)
        }
    }
}
