import ArgumentParser

@main
struct Flatline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flatline",
        abstract: "Anomaly-detection alerting for NATS.",
        discussion: """
            Flatline scrapes NATS monitoring endpoints and Prometheus targets, scores every series \
            (by default with the surprise detector: forecasts, a tail learned per series, a daily \
            profile; also EWMA, robust z-score, seasonal and ensemble detectors), runs the NATS \
            incident models, and sends alerts in Alertmanager's webhook format.
            """,
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
