import ArgumentParser

@main
struct Flatline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flatline",
        abstract: "Anomaly-detection alerting for NATS.",
        discussion: "Flatline scores NATS monitoring series with EWMA, robust z-score and seasonal detectors.",
        version: "0.1.0",
        subcommands: [
            RunCommand.self, ReceiveCommand.self, RecordCommand.self, ReplayCommand.self, NotifyCommand.self,
            RulesCommand.self,
            CheckCommand.self,
            LoadgenCommand.self,
            BenchCommand.self,
        ]
    )
}
