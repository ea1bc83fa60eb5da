import CFileSystem
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

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

    /// Whether `path` is something that can be read only once (a pipe, a character device, a
    /// socket); false for a regular file and for what is not there.
    package static func isStream(_ path: String) -> Bool {
        var status = stat()
        guard stat(path, &status) == 0 else { return false }
        let type = status.st_mode & S_IFMT
        return type == S_IFIFO || type == S_IFCHR || type == S_IFSOCK
    }

    /// What two paths share when they are one file: a regular file's device and inode; for a
    /// path that does not exist yet, its directory's resolved path and its name (it will be
    /// created there). Nil for what is neither (`/dev/null`, a pipe), which may be written twice.
    package static func identity(_ path: String) -> String? {
        var status = stat()
        if stat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFREG else { return nil }
            return "file \(status.st_dev):\(status.st_ino)"
        }
        guard errno == ENOENT else { return nil }
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        guard let resolved = realpath(directory, nil) else { return nil }
        defer { free(resolved) }
        return "new " + String(cString: resolved) + "/" + url.lastPathComponent
    }

    /// The directory temporary files go in: `TMPDIR`, else `/tmp`.
    package static var temporaryDirectory: String {
        ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    }

    /// A new file in `directory` (``temporaryDirectory``), open for reading and writing and already removed
    /// (nothing is left behind however the process ends): its descriptor, or why it could not be
    /// made (`strerror`'s words).
    package static func anonymousTemporaryFile(
        prefix: String,
        in directory: String = temporaryDirectory
    ) -> Result<Int32, TemporaryFileError> {
        var template = Array((directory + "/" + prefix + "-XXXXXX").utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress.map { mkstemp($0) } ?? -1
        }
        guard descriptor >= 0 else {
            return .failure(TemporaryFileError(directory: directory, reason: String(cString: strerror(errno))))
        }
        unlink(String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        // Not inherited by a process this one starts from now on.
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        return .success(descriptor)
    }

    /// Whether the file open at `descriptor` is in a file system held in memory (tmpfs, ramfs):
    /// what is written there takes memory, not disk.
    package static func isInMemory(descriptor: Int32) -> Bool {
        // TMPFS_MAGIC and RAMFS_MAGIC (linux/magic.h).
        let type = flatline_filesystem_type(descriptor)
        return type == 0x0102_1994 || type == 0x8584_58F6
    }

    package struct TemporaryFileError: Error, Hashable, Sendable {
        package var directory: String
        package var reason: String
    }
}
