import FlatlineAlerting
import FlatlineCore
import FlatlineNotify
import Foundation
import Logging

/// The daemon's state under its data directory (`--data-dir`): learned detector baselines per
/// source and the alerts' states, each in its own versioned file written atomically, restored
/// at start so a restart neither loses baselines nor re-fires or forgets firing alerts.
///
/// A file that cannot be used (corrupt, foreign, written by a newer version) never stops a
/// start: it is logged with the reason, moved aside (`NAME.unreadable-<time>`) for a person to
/// look at, and that state starts cold.
public struct StateDirectory: Sendable {
    public let path: String

    /// The alert state's format and version.
    static let alertsFormat = "flatline-alert-state"
    static let alertsVersion = 1
    /// Silences made through the API.
    static let silencesFormat = "flatline-silences"
    static let silencesVersion = 1
    /// The models' learned state (baselines, usual gaps, levels, trends).
    static let modelsFormat = "flatline-model-state"
    static let modelsVersion = 1

    /// Uses (and creates, if needed) the directory.
    /// - Throws: ``StateFileError`` when it cannot be created or is not a directory.
    public init(path: String) throws(StateFileError) {
        self.path = path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw StateFileError(path: path, reason: "not a directory") }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw StateFileError(path: path, reason: "cannot create the data directory: \(error.localizedDescription)")
        }
    }

    /// The file of a source's detection state. Names are sanitised to `[A-Za-z0-9._-]`.
    public func detectionFile(_ source: String) -> String {
        let safe = String(
            source.unicodeScalars.map { scalar -> Character in
                let ok =
                    scalar.properties.isASCIIHexDigit || (scalar >= "a" && scalar <= "z")
                    || (scalar >= "A" && scalar <= "Z")
                    || scalar == "." || scalar == "_" || scalar == "-"
                return ok ? Character(scalar) : "_"
            }
        )
        return path + "/detection-" + safe + ".json"
    }

    /// The file of the alerts' state.
    public var alertsFile: String { path + "/alerts.json" }

    /// The file of the silences.
    public var silencesFile: String { path + "/silences.json" }

    /// What the dispatcher last told each group (written after every flush that told something).
    public var notificationsFile: String { path + "/notifications.json" }
    static let notificationsFormat = "flatline-notification-log"
    static let notificationsVersion = 1

    public func save(notificationLog: [String: Dispatcher.NotificationLogEntry]) throws(StateFileError) {
        try StateFile.save(
            notificationLog,
            format: Self.notificationsFormat,
            version: Self.notificationsVersion,
            to: notificationsFile
        )
    }

    /// The saved notification log, or `nil` when there is none.
    public func restoreNotificationLog(logger: Logger) -> [String: Dispatcher.NotificationLogEntry]? {
        restore(notificationsFile, what: "notification log", logger: logger) { path throws(StateFileError) in
            try StateFile.load(
                [String: Dispatcher.NotificationLogEntry].self,
                format: Self.notificationsFormat,
                version: Self.notificationsVersion,
                from: path
            )
        }
    }

    /// The file of the models' learned state.
    public var modelsFile: String { path + "/models.json" }

    public func save(_ bank: DetectionBank, source: String) throws(StateFileError) {
        try StateFile.save(bank, to: detectionFile(source))
    }

    public func save(_ engine: AlertEngine) throws(StateFileError) {
        try StateFile.save(engine, format: Self.alertsFormat, version: Self.alertsVersion, to: alertsFile)
    }

    /// The saved detection state of `source`, or `nil` for a cold start.
    public func restoreDetection(source: String, logger: Logger) -> DetectionBank? {
        restore(detectionFile(source), what: "detection state of \(source)", logger: logger) {
            path throws(StateFileError) in
            try StateFile.load(from: path)
        }
    }

    public func save(_ models: ModelEvaluatorState) throws(StateFileError) {
        try StateFile.save(models, format: Self.modelsFormat, version: Self.modelsVersion, to: modelsFile)
    }

    /// The models' saved learned state, or `nil` for a cold start.
    public func restoreModels(logger: Logger) -> ModelEvaluatorState? {
        restore(modelsFile, what: "model state", logger: logger) { path throws(StateFileError) in
            try StateFile.load(
                ModelEvaluatorState.self,
                format: Self.modelsFormat,
                version: Self.modelsVersion,
                from: path
            )
        }
    }

    /// The model state a daemon saved in `directory`, read for another use (`flatline rules
    /// --from-state`): nothing is created, moved or logged; what is missing or unreadable is
    /// thrown, naming the file.
    /// - Throws: ``StateFileError`` when the directory or its `models.json` is not there or does
    ///   not load.
    public static func readModels(in directory: String) throws(StateFileError) -> ModelEvaluatorState {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            throw StateFileError(path: directory, reason: "no such directory")
        }
        guard isDirectory.boolValue else { throw StateFileError(path: directory, reason: "not a directory") }
        let file = directory + "/models.json"
        guard FileManager.default.fileExists(atPath: file) else {
            throw StateFileError(
                path: file,
                reason: "no saved model state: not a daemon's --data-dir, or the daemon has not saved yet"
            )
        }
        return try StateFile.load(ModelEvaluatorState.self, format: modelsFormat, version: modelsVersion, from: file)
    }

    public func save(silences: [Silence]) throws(StateFileError) {
        try StateFile.save(silences, format: Self.silencesFormat, version: Self.silencesVersion, to: silencesFile)
    }

    /// The saved silences, or `nil` when there are none.
    public func restoreSilences(logger: Logger) -> [Silence]? {
        restore(silencesFile, what: "silences", logger: logger) { path throws(StateFileError) in
            try StateFile.load([Silence].self, format: Self.silencesFormat, version: Self.silencesVersion, from: path)
        }
    }

    /// The saved alert state, or `nil` for a cold start.
    public func restoreAlerts(logger: Logger) -> AlertEngine? {
        restore(alertsFile, what: "alert state", logger: logger) { path throws(StateFileError) in
            try StateFile.load(AlertEngine.self, format: Self.alertsFormat, version: Self.alertsVersion, from: path)
        }
    }

    private func restore<State>(
        _ file: String,
        what: String,
        logger: Logger,
        _ load: (String) throws(StateFileError) -> State
    ) -> State? {
        guard FileManager.default.fileExists(atPath: file) else {
            logger.info("no saved \(what): starting cold", metadata: ["file": "\(file)"])
            return nil
        }
        do {
            let state = try load(file)
            logger.info("restored \(what)", metadata: ["file": "\(file)"])
            return state
        } catch {
            let aside = file + ".unreadable-" + String(Int64(Date().timeIntervalSince1970 * 1000))
            let moved = (try? FileManager.default.moveItem(atPath: file, toPath: aside)) != nil
            logger.error(
                "cannot use the saved \(what): starting cold",
                metadata: [
                    "file": "\(file)", "reason": "\(error.reason)", "kept_as": "\(moved ? aside : file)",
                ]
            )
            return nil
        }
    }
}
