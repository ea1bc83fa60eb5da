import ArgumentParser
import FlatlineCore
import FlatlineDaemon
import FlatlineIngest
import Foundation

extension DetectorKind: ExpressibleByArgument {}
extension Direction: ExpressibleByArgument {}
extension ReplayOutputFormat: ExpressibleByArgument {}
extension MetricKind: ExpressibleByArgument {}
extension SeriesFile.Format: ExpressibleByArgument {}

/// A duration on the command line: `15s`, `5m`, `1h30m`, `7d`.
struct DurationArgument: ExpressibleByArgument, Sendable {
    var seconds: Double

    init(seconds: Double) {
        self.seconds = seconds
    }

    /// Any duration, `0s` and negative ones (`-5m`) too: the command says why one is too short
    /// (an unreadable one is refused by the argument parser as invalid). Options that take one
    /// parse their next argument unconditionally, so `--step -5m` reaches this instead of reading
    /// as a short flag.
    init?(argument: String) {
        let negative = argument.hasPrefix("-")
        guard let seconds = DurationText.parse(negative ? String(argument.dropFirst()) : argument), seconds >= 0
        else { return nil }
        self.seconds = negative ? -seconds : seconds
    }

    /// Refuses a duration of zero or less for `option`, saying so.
    static func refuseZero(_ value: DurationArgument?, _ option: String) throws {
        if let value, value.seconds <= 0 { throw ValidationError("\(option) must be longer than 0s") }
    }

    static var defaultCompletionKind: CompletionKind { .default }

    /// As `--help` shows a default: `5m`, not the structure.
    var defaultValueDescription: String { DurationText.format(seconds: seconds) }
}

/// Seasons on the command line: `none`, or periods with optional harmonics: `1d,1w`, `1d:4,1w:3`.
struct SeasonsArgument: ExpressibleByArgument, Sendable {
    var seasons: [Season]

    init?(argument: String) {
        if argument == "none" {
            seasons = []
            return
        }
        var result: [Season] = []
        for part in argument.split(separator: ",") {
            let pieces = part.split(separator: ":")
            guard pieces.count <= 2, let period = DurationText.parse(String(pieces[0])), period > 0 else { return nil }
            var harmonics = period >= 604_800 ? Season.weekly.harmonics : Season.daily.harmonics
            if pieces.count == 2 {
                guard let h = Int(pieces[1]), h >= 1 else { return nil }
                harmonics = h
            }
            result.append(Season(period: period, harmonics: harmonics))
        }
        guard !result.isEmpty else { return nil }
        seasons = result
    }
}

/// A command that failed at its work rather than at its arguments: a file it could not read or
/// write, a configuration, model or saved state that does not load. Printed as `Error: reason`
/// with exit status 1; an argument error (`ValidationError`) prints the usage after its reason and
/// exits with 64.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Output paths checked before the work that fills them: a long run (a replay, a load
/// generation) must not end in "cannot create" after its work is done.
enum OutputPath {
    /// Refuses `path` (given as option `name`) when it cannot be written: a directory, a
    /// directory that does not exist or cannot be written. `renamed`: the output is written to a
    /// temporary file and renamed over the path (a state, a ground truth), so its directory must
    /// be writable whether the file exists or not; otherwise an existing file is opened as it is.
    static func refuseUnwritable(_ name: String, _ path: String, renamed: Bool) throws {
        switch FileAccess.writeProblem(path, replaced: renamed) {
        case nil: return
        case .directory: throw CommandFailure("\(name) \(path) is a directory")
        case .noDirectory(let directory):
            throw CommandFailure("\(name) \(path): the directory \(directory) does not exist")
        case .directoryUnwritable(let directory):
            throw CommandFailure("\(name) \(path): the directory \(directory) cannot be written (permissions)")
        case .missing, .unreadable, .unwritable:
            throw CommandFailure("\(name) \(path) cannot be written (permissions)")
        }
    }
}
