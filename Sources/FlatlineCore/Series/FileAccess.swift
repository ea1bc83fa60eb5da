import Foundation

/// Why a path cannot be read or written now: checked before the work that needs it (a daemon's
/// start, a replay's rows), so the failure is said first and in words, not after the work.
package enum FileAccess {
    package enum Problem: Hashable, Sendable {
        /// Nothing is there.
        case missing
        /// A directory where a file is wanted.
        case directory
        /// The file is there; this process may not read it.
        case unreadable
        /// The file is there; this process may not write it.
        case unwritable
        /// It would be created in this directory, which is not there.
        case noDirectory(String)
        /// It would be created (or renamed into place) in this directory, which this process may
        /// not write.
        case directoryUnwritable(String)
    }

    /// Why `path` cannot be read; nil when it can.
    package static func readProblem(_ path: String) -> Problem? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return .missing }
        if isDirectory.boolValue { return .directory }
        return FileManager.default.isReadableFile(atPath: path) ? nil : .unreadable
    }

    /// Why `path` cannot be written; nil when it can. `replaced`: a new file is renamed over it
    /// (a state, a ground truth), so its directory must be writable whether it exists or not;
    /// otherwise an existing file is opened as it is, and a missing one created.
    package static func writeProblem(_ path: String, replaced: Bool) -> Problem? {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        if exists && isDirectory.boolValue { return .directory }
        if exists && !replaced { return FileManager.default.isWritableFile(atPath: path) ? nil : .unwritable }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            return .noDirectory(directory)
        }
        return FileManager.default.isWritableFile(atPath: directory) ? nil : .directoryUnwritable(directory)
    }
}
