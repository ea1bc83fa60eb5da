import ArgumentParser
import FlatlineAlerting
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
            `promtool test rules`.
            """
    )

    @Option(help: "The models directory the thresholds come from.")
    var models = "models"

    @Option(help: "Where to write the files.")
    var out = "rules"

    func run() throws {
        let loaded: [Model]
        do {
            loaded = try ModelDirectory.load(models)
        } catch {
            throw ValidationError("\(error)")
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for file in RuleFiles.files(models: loaded) {
            let path = out + "/" + file.name
            do {
                try Data(file.text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
            } catch {
                throw ValidationError("cannot write \(path): \(error.localizedDescription)")
            }
            print(path)
        }
    }
}
