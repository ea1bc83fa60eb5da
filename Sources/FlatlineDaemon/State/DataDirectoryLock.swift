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

    /// - Parameters:
    ///   - waiting: seconds to wait for a holder to let go (a daemon on the directory still
    ///     stopping while its successor starts), polling every 100 ms.
    ///   - onWait: called once, with the holder's process id when known, if it has to wait.
    /// - Throws: ``StateFileError`` when another process holds the directory, naming its process
    ///   id, or the lock file cannot be opened.
    public init(directory: String, waiting: Double = 0, onWait: (String?) -> Void = { _ in }) throws(StateFileError) {
        let path = directory + "/lock"
        self.path = path
        var fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        // A lock file another user made (a `sudo flatline notify` once): locking needs only to
        // read it.
        let writable = fd >= 0
        if fd < 0 && errno == EACCES { fd = open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else {
            throw StateFileError(path: path, reason: "cannot open the lock file: \(String(cString: strerror(errno)))")
        }
        let file = fd
        func holder() -> String? {
            var bytes = [UInt8](repeating: 0, count: 32)
            let count = bytes.withUnsafeMutableBytes { pread(file, $0.baseAddress, $0.count, 0) }
            let digits = count > 0 ? bytes[..<count].prefix { $0 >= 0x30 && $0 <= 0x39 } : []
            return digits.isEmpty ? nil : String(decoding: digits, as: UTF8.self)
        }
        var locked = flock(file, LOCK_EX | LOCK_NB) == 0
        var failure = locked ? 0 : errno
        if !locked && failure == EWOULDBLOCK && waiting > 0 {
            onWait(holder())
            let deadline = ContinuousClock.now + .milliseconds(Int64(min(waiting, 3600) * 1000))
            while !locked && failure == EWOULDBLOCK && ContinuousClock.now < deadline {
                usleep(100_000)
                locked = flock(file, LOCK_EX | LOCK_NB) == 0
                failure = locked ? 0 : errno
            }
        }
        guard locked else {
            let pid = holder()
            close(file)
            guard failure == EWOULDBLOCK else {
                throw StateFileError(path: path, reason: "cannot lock: \(String(cString: strerror(failure)))")
            }
            let who = pid.map { "another process (pid \($0))" } ?? "another process"
            throw StateFileError(
                path: directory,
                reason: "the data directory is in use by \(who): one daemon per data directory "
                    + "(give this one its own --data-dir; replicas share work through `cluster:`)"
            )
        }
        if writable {
            let pid = Array("\(getpid())\n".utf8)
            _ = ftruncate(file, 0)
            _ = pid.withUnsafeBytes { pwrite(file, $0.baseAddress, $0.count, 0) }
        }
        descriptor = Mutex(file)
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
