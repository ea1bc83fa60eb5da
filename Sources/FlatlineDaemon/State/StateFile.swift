import FlatlineCore
import Foundation

/// State on disk: a versioned JSON envelope (`format`, `version`, `state`), written atomically
/// (a temporary file, then a rename), so a crash mid-write leaves the old file whole.
public enum StateFile {
    /// The version of the detection state this build writes and reads.
    public static let version = 1
    static let detectionFormat = "flatline-detection-state"

    private struct Envelope<State: Codable>: Codable {
        var format: String
        var version: Int
        var state: State?

        private enum CodingKeys: String, CodingKey {
            case format, version
            // The detection state has been saved under "bank" since its first version.
            case state = "bank"
        }
    }

    private struct Header: Codable {
        var format: String
        var version: Int
    }

    /// Saves `bank` to `path`.
    /// - Throws: ``StateFileError`` when the file cannot be written.
    public static func save(_ bank: DetectionBank, to path: String) throws(StateFileError) {
        try save(bank, format: detectionFormat, version: version, to: path)
    }

    /// Loads a bank saved by ``save(_:to:)``.
    /// - Throws: ``StateFileError`` for a missing, corrupt or newer-version file.
    public static func load(from path: String) throws(StateFileError) -> DetectionBank {
        try load(DetectionBank.self, format: detectionFormat, version: version, from: path)
    }

    /// Saves any state under a format name and version.
    static func save<State: Codable>(_ state: State, format: String, version: Int, to path: String)
        throws(StateFileError)
    {
        // Streamed to a temporary file next to the target, flushed to disk, then renamed over
        // it: the memory a save needs does not grow with the state, and a crash mid-write
        // leaves the old file whole.
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
            throw StateFileError(path: path, reason: "cannot write: cannot create \(temporary)")
        }
        do {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
            defer { try? handle.close() }
            do {
                try StreamingJSONEncoder().encode(Envelope(format: format, version: version, state: state), to: handle)
            } catch let error as EncodingError {
                throw StateFileError(path: path, reason: "cannot encode the state: \(error)")
            }
            try handle.synchronize()
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            if let error = error as? StateFileError { throw error }
            throw StateFileError(path: path, reason: "cannot write: \(error.localizedDescription)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw StateFileError(path: path, reason: "cannot write: rename failed: \(reason)")
        }
        syncDirectory(of: path)
    }

    /// Flushes the directory holding `path`, so the rename itself survives a power cut.
    static func syncDirectory(of path: String) {
        let directory = path.contains("/") ? String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]) : "."
        let fd = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    /// Loads state saved by ``save(_:format:version:to:)``.
    /// - Throws: ``StateFileError`` for a missing, foreign, corrupt or other-version file.
    static func load<State: Codable>(
        _ type: State.Type,
        format: String,
        version: Int,
        from path: String
    ) throws(StateFileError) -> State {
        let data: Data
        switch FileAccess.readProblem(path) {
        case .missing: throw StateFileError(path: path, reason: "cannot read: no such file")
        case .directory: throw StateFileError(path: path, reason: "cannot read: a directory, not a state file")
        default: break
        }
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw StateFileError(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "+Inf",
            negativeInfinity: "-Inf",
            nan: "NaN"
        )
        let header: Header
        do {
            header = try decoder.decode(Header.self, from: data)
        } catch DecodingError.dataCorrupted {
            throw StateFileError(path: path, reason: "corrupt state: not valid JSON (truncated, or overwritten)")
        } catch {
            throw StateFileError(path: path, reason: "not a Flatline \(format) file")
        }
        guard header.format == format else {
            throw StateFileError(path: path, reason: "not a Flatline \(format) file")
        }
        guard header.version == version else {
            throw StateFileError(
                path: path,
                reason: "state version \(header.version) is not supported (this build reads version \(version))"
            )
        }
        do {
            guard let state = try decoder.decode(Envelope<State>.self, from: data).state else {
                throw StateFileError(path: path, reason: "the file holds no state")
            }
            return state
        } catch let error as StateFileError {
            throw error
        } catch {
            throw StateFileError(path: path, reason: "corrupt state: \(error)")
        }
    }
}

/// A state file that cannot be read or written.
public struct StateFileError: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public var description: String { "\(path): \(reason)" }
}
