import ArgumentParser
import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import FlatlineScrape
import Foundation

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a configuration file or a models directory without starting anything.",
        discussion: """
            Reads the file as `flatline record` and the daemon would, checks every key, and \
            prints the jobs and targets it found. On a problem it prints the file, line and key \
            with the reason, and exits with status 1. Token, password and certificate files \
            are checked for readability. With --models it reads every model file of the \
            directory and prints each model's kind and alert.
            """
    )

    @Option(help: "The configuration file (YAML, shaped like prometheus.yml).")
    var config: String?

    @Option(help: "A models directory (models/*.yml) to check.")
    var models: String?

    func validate() throws {
        guard config != nil || models != nil else { throw ValidationError("give --config FILE, --models DIR, or both") }
    }

    func run() throws {
        if let models { try checkModels(models) }
        if let config { try checkConfiguration(config) }
    }

    private func checkModels(_ directory: String) throws {
        let loaded: [Model]
        do {
            loaded = try ModelDirectory.load(directory)
        } catch {
            Stderr.write("check: \(error)\n")
            throw ExitCode(1)
        }
        var text = "\(directory): OK, \(loaded.count) model\(loaded.count == 1 ? "" : "s")\n"
        for model in loaded {
            text += "  \(model.name) (\(model.kind.name)): \(model.alert.name), \(model.alert.severity)\n"
        }
        print(text, terminator: "")
    }

    private func checkConfiguration(_ config: String) throws {
        let configuration: Configuration
        do {
            configuration = try Configuration.load(path: config)
        } catch {
            Stderr.write("check: \(error)\n")
            throw ExitCode(1)
        }
        // Every file a key names (the daemon reads some only at their first use: a receiver's
        // secret when it first sends), told by the key and line that name it.
        let problems = configuration.fileReferences.compactMap { $0.problem(in: config) }
        for problem in problems { Stderr.write("check: \(problem)\n") }
        guard problems.isEmpty else { throw ExitCode(1) }
        var text =
            "\(config): OK, \(configuration.scrapeConfigs.count) job\(configuration.scrapeConfigs.count == 1 ? "" : "s")\n"
        for job in configuration.scrapeConfigs {
            let every =
                job.kind == .natsEvents
                ? "advisories as they come" : "every \(DurationText.format(seconds: job.scrapeInterval))"
            text += "  \(job.jobName) (\(job.kind.rawValue), \(every)): "
            text += job.targets.map(\.address).joined(separator: ", ")
            if job.kind == .nats { text += " [" + job.nats.endpoints.map(\.rawValue).joined(separator: " ") + "]" }
            if job.kind == .natsSystem && job.system.events { text += " (+ disconnect events)" }
            text += "\n"
        }
        if let backfill = configuration.backfill {
            let jobs = configuration.scrapeConfigs.filter { $0.kind == .prometheus || $0.kind == .nats }.map {
                $0.kind == .nats ? $0.jobName + " (prometheus-nats-exporter's series)" : $0.jobName
            }
            text += "  backfill: \(DurationText.format(seconds: backfill.lookback)) of history from "
            text += Redaction.redactingUserinfo(backfill.url)
            text +=
                jobs.isEmpty
                ? " (no prometheus or nats job to backfill)\n" : " for " + jobs.joined(separator: ", ") + "\n"
        }
        if let cluster = configuration.cluster {
            text +=
                "  cluster: \(cluster.name), replica \(cluster.replica), lease \(DurationText.format(seconds: cluster.lease)), "
            text +=
                "\(cluster.replicasPerShard) replica\(cluster.replicasPerShard == 1 ? "" : "s") per target, through "
            text += cluster.nats.urls.map(Redaction.redactingUserinfo).joined(separator: ",") + "\n"
        }
        if let alerting = configuration.alerting {
            text +=
                "  route: receiver \(alerting.route.receiver ?? "?"), \(alerting.route.routes.count) child route(s), "
            text += "\(alerting.inhibitRules.count) inhibit rule(s)\n"
            for receiver in alerting.receivers {
                var kinds: [String] = []
                if !receiver.webhooks.isEmpty { kinds.append("\(receiver.webhooks.count) webhook") }
                if !receiver.alertmanagers.isEmpty { kinds.append("\(receiver.alertmanagers.count) alertmanager") }
                if !receiver.nats.isEmpty { kinds.append("\(receiver.nats.count) nats") }
                if !receiver.files.isEmpty { kinds.append("\(receiver.files.count) file") }
                text +=
                    "  receiver \(receiver.name): "
                    + (kinds.isEmpty ? "no integrations" : kinds.joined(separator: ", ")) + "\n"
            }
        }
        print(text, terminator: "")
    }
}
