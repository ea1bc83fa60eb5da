import FlatlineCore
import Foundation

/// Detection state on disk: a versioned JSON envelope around a ``DetectionBank``, written
/// atomically (a temporary file, then a rename), so a crash mid-write leaves the old file.
public enum StateFile {
    /// The version this build writes and reads.
    public static let version = 1
    private static let format = "flatline-detection-state"

    private struct Envelope: Codable {
        var format: String
        var version: Int
        var bank: DetectionBank?
    }

    /// Saves `bank` to `path`.
    /// - Throws: ``StateFileError`` when the file cannot be written.
    public static func save(_ bank: DetectionBank, to path: String) throws(StateFileError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data: Data
        do {
            data = try encoder.encode(Envelope(format: format, version: version, bank: bank))
        } catch {
            throw StateFileError(path: path, reason: "cannot encode the state: \(error)")
        }
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw StateFileError(path: path, reason: "cannot write: \(error.localizedDescription)")
        }
    }

    /// Loads a bank saved by ``save(_:to:)``.
    /// - Throws: ``StateFileError`` for a missing, corrupt or newer-version file.
    public static func load(from path: String) throws(StateFileError) -> DetectionBank {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw StateFileError(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
        struct Header: Codable {
            var format: String
            var version: Int
        }
        let decoder = JSONDecoder()
        guard let header = try? decoder.decode(Header.self, from: data), header.format == format else {
            throw StateFileError(path: path, reason: "not a Flatline detection state file")
        }
        guard header.version == version else {
            throw StateFileError(
                path: path,
                reason: "state version \(header.version) is not supported (this build reads version \(version))"
            )
        }
        do {
            guard let bank = try decoder.decode(Envelope.self, from: data).bank else {
                throw StateFileError(path: path, reason: "the state holds no detector")
            }
            return bank
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
