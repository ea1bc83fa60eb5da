import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One daemon per data directory: an exclusive `flock` on `DATA_DIR/lock`, held while the daemon
/// lives. A second daemon on the same directory would replay and truncate the first one's
/// write-ahead log under it (the first then writes to a deleted file, and a crash loses what it
/// learned since) and deliver the same outbox twice; it is refused before it touches anything.
///
/// The kernel releases the lock when the process ends however it ends (a `kill -9` too), so a
/// lock file left behind never blocks a start. The file holds the holder's process id, for the
/// message. `flatline notify` takes it too: it delivers from the same outbox.
public final class DataDirectoryLock: Sendable {
    public let path: String
    private let descriptor: Mutex<Int32?>

    /// - Throws: ``StateFileError`` when another process holds the directory, naming its process
    ///   id, or the lock file cannot be opened.
    public init(directory: String) throws(StateFileError) {
        let path = directory + "/lock"
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StateFileError(path: path, reason: "cannot open the lock file: \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let failure = errno
            var bytes = [UInt8](repeating: 0, count: 32)
            let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
            close(fd)
            guard failure == EWOULDBLOCK else {
                throw StateFileError(path: path, reason: "cannot lock: \(String(cString: strerror(failure)))")
            }
            let holder = count > 0 ? bytes[..<count].prefix { $0 >= 0x30 && $0 <= 0x39 } : []
            let who =
                holder.isEmpty ? "another process" : "another process (pid \(String(decoding: holder, as: UTF8.self)))"
            throw StateFileError(
                path: directory,
                reason: "the data directory is in use by \(who): one daemon per data directory "
                    + "(give this one its own --data-dir; replicas share work through `cluster:`)"
            )
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        descriptor = Mutex(fd)
    }

    /// Lets the directory go (closing the file releases the lock); later calls do nothing.
    public func release() {
        descriptor.withLock { fd in
            if let held = fd { close(held) }
            fd = nil
        }
    }

    deinit {
        release()
    }
}
