import CZlib

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads a file line by line, gzip or plain (zlib reads an uncompressed file as is).
final class LineReader {
    private let file: gzFile
    let path: String
    private var buffer: [UInt8] = []
    private var position = 0
    // Where the search for the next newline resumes: a long line is not scanned again per chunk.
    private var searched = 0
    private var finished = false
    /// The 1-based number of the line last returned.
    private(set) var lineNumber = 0
    /// Set when a gzip stream ended early (a recording cut off by a crash): the whole lines
    /// before the cut were returned, the partial one after them was not.
    private(set) var truncation: RecordingError?
    /// Whether the line last returned was the file's last and had no newline: a plain file cut
    /// off while a line was being written ends that way.
    private(set) var unterminated = false

    /// Records that the last line, unterminated, was cut off mid-write and is left out.
    func cutLastLine() {
        truncation = RecordingError(
            file: path,
            line: lineNumber,
            reason: "the last line is cut off (the file was cut while it was being written); it was left out"
        )
    }

    init(path: String) throws(RecordingError) {
        guard let file = gzopen(path, "rb") else {
            throw RecordingError(file: path, line: 0, reason: "cannot open: \(String(cString: strerror(errno)))")
        }
        _ = gzbuffer(file, 1 << 17)
        self.file = file
        self.path = path
    }

    deinit { gzclose(file) }

    /// The next line without its `\n` (a final line without one counts too), or `nil` at the end.
    func next() throws(RecordingError) -> ArraySlice<UInt8>? {
        while true {
            if let newline = buffer[Swift.max(position, searched)...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[position..<newline]
                position = newline + 1
                searched = position
                lineNumber += 1
                return withoutByteOrderMark(line)
            }
            searched = buffer.count
            if finished {
                guard position < buffer.count else { return nil }
                let line = buffer[position...]
                position = buffer.count
                lineNumber += 1
                unterminated = true
                return withoutByteOrderMark(line)
            }
            try fill()
        }
    }

    /// The first line without the byte order mark some editors put first (CSV files are read
    /// past one too); other lines as they are.
    private func withoutByteOrderMark(_ line: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        lineNumber == 1 && line.starts(with: [0xEF, 0xBB, 0xBF]) ? line.dropFirst(3) : line
    }

    private func fill() throws(RecordingError) {
        if position > 0 {
            buffer.removeFirst(position)
            searched -= position
            position = 0
        }
        let chunk = 1 << 17
        let old = buffer.count
        buffer.append(contentsOf: [UInt8](repeating: 0, count: chunk))
        let n = buffer.withUnsafeMutableBytes { raw in
            gzread(file, raw.baseAddress.map { $0 + old }, UInt32(chunk))
        }
        if n < 0 {
            buffer.removeLast(chunk)
            try endEarly()
            return
        }
        buffer.removeLast(chunk - Int(n))
        if n == 0 {
            finished = true
            var code: Int32 = 0
            _ = gzerror(file, &code)
            if code != Z_OK && code != Z_STREAM_END { try endEarly() }
        }
    }

    /// A gzip stream that stops early (a recording cut off mid-write, as by a crash) ends the
    /// file after its last whole line, and says so in ``truncation``; any other read error is
    /// thrown.
    private func endEarly() throws(RecordingError) {
        finished = true
        var code: Int32 = 0
        let message = gzerror(file, &code).map { String(cString: $0) } ?? "unknown error"
        guard code == Z_BUF_ERROR || message.hasSuffix("unexpected end of file") else {
            let reason =
                "read error: " + (message.hasPrefix(path + ": ") ? String(message.dropFirst(path.count + 2)) : message)
            throw RecordingError(file: path, line: lineNumber + 1, reason: reason)
        }
        // The line being written when the file was cut is incomplete: drop it. (Only reads that
        // found no newline past `position` get here, so all that is left unread is that line.)
        let cut = buffer.count - position
        buffer.removeLast(cut)
        searched = position
        truncation = RecordingError(
            file: path,
            line: lineNumber + 1,
            reason: "the gzip stream is truncated (the file was cut off, perhaps while it was being written)"
                + (cut > 0 ? "; the \(cut) bytes of the line it cut were left out" : "")
        )
    }
}

/// Writes a file, through gzip when its name ends in `.gz`.
final class CompressedWriter {
    private enum Sink {
        case gzip(gzFile)
        case plain(UnsafeMutablePointer<FILE>)
    }

    private let sink: Sink
    let path: String
    private var closed = false

    init(path: String) throws(RecordingError) {
        self.path = path
        if path.hasSuffix(".gz") {
            guard let file = gzopen(path, "wb6") else {
                throw RecordingError(file: path, line: 0, reason: "cannot create: \(String(cString: strerror(errno)))")
            }
            sink = .gzip(file)
        } else {
            guard let file = fopen(path, "wb") else {
                throw RecordingError(file: path, line: 0, reason: "cannot create: \(String(cString: strerror(errno)))")
            }
            sink = .plain(file)
        }
    }

    deinit { try? close() }

    func write(_ bytes: [UInt8]) throws(RecordingError) {
        guard !closed else { throw RecordingError(file: path, line: 0, reason: "written after it was closed") }
        guard !bytes.isEmpty else { return }
        let written: Int = bytes.withUnsafeBytes { raw in
            switch sink {
            case .gzip(let file): Int(gzwrite(file, raw.baseAddress, UInt32(raw.count)))
            case .plain(let file): fwrite(raw.baseAddress, 1, raw.count, file)
            }
        }
        guard written == bytes.count else {
            throw RecordingError(file: path, line: 0, reason: "write failed: \(String(cString: strerror(errno)))")
        }
    }

    /// Pushes buffered bytes to the file (a gzip flush point: what is written so far can be read).
    func flush() throws(RecordingError) {
        guard !closed else { throw RecordingError(file: path, line: 0, reason: "flushed after it was closed") }
        let ok: Bool
        switch sink {
        case .gzip(let file): ok = gzflush(file, Z_SYNC_FLUSH) == Z_OK
        case .plain(let file): ok = fflush(file) == 0
        }
        guard ok else {
            throw RecordingError(file: path, line: 0, reason: "flush failed: \(String(cString: strerror(errno)))")
        }
    }

    func close() throws(RecordingError) {
        guard !closed else { return }
        closed = true
        let ok: Bool
        switch sink {
        case .gzip(let file): ok = gzclose(file) == Z_OK
        case .plain(let file): ok = fclose(file) == 0
        }
        guard ok else {
            throw RecordingError(file: path, line: 0, reason: "close failed: \(String(cString: strerror(errno)))")
        }
    }
}

/// A recording that cannot be read or written, with the file, the line (0 for the file as a
/// whole) and why: the same error as for any file replay reads.
public typealias RecordingError = SeriesFileError
