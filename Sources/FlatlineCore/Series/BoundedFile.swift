#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A small file an operator names (a configuration, a model, a secret), read whole but never
/// past a limit: a path given by mistake (`/dev/zero`, a log file) is refused, not read until
/// memory runs out.
package enum BoundedFile {
    /// The file's bytes, or why they cannot be had: "cannot open: ...", "cannot read: ..." (a
    /// directory), or "larger than N bytes".
    package static func read(_ path: String, limit: Int) -> Result<[UInt8], BoundedFileError> {
        guard let handle = fopen(path, "rb") else {
            return .failure(BoundedFileError(reason: "cannot open: \(String(cString: strerror(errno)))"))
        }
        defer { fclose(handle) }
        var bytes: [UInt8] = []
        // Small: a secret is read at every request that uses it.
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = fread(&chunk, 1, chunk.count, handle)
            if n > 0 { bytes += chunk[0..<n] }
            guard bytes.count <= limit else {
                return .failure(BoundedFileError(reason: "larger than \(size(limit))"))
            }
            if n < chunk.count { break }
        }
        if ferror(handle) != 0 {
            return .failure(BoundedFileError(reason: "cannot read: \(String(cString: strerror(errno)))"))
        }
        return .success(bytes)
    }

    /// `16 MiB`, `64 KiB`, `100 bytes`.
    static func size(_ bytes: Int) -> String {
        if bytes >= 1 << 20 && bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes >= 1 << 10 && bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }
}

/// Why a ``BoundedFile`` could not be read (the caller names the file).
package struct BoundedFileError: Error, Hashable, Sendable, CustomStringConvertible {
    package var reason: String
    package var description: String { reason }
}
