import FlatlineCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The samples a streamed replay's first pass parsed, kept in binary in a temporary file (already
/// removed: nothing is left behind) so that the second pass reads them back instead of parsing
/// the text again. Memory holds the columns of the chunks being parsed; the disk about 37 bytes
/// a sample. Made only in a directory on a disk: in a file system held in memory (tmpfs) it would
/// make the replay's memory grow with the file.
///
/// Written chunk by chunk in file order while the first pass reads, then read back in the same
/// order, once, by the one reader that claims it (``claim()``). One thread at a time writes it
/// (the first pass) and one reads it (the task of the second pass that reads the blocks): hence
/// `@unchecked Sendable`.
package final class SampleSpill: @unchecked Sendable {
    private let handle: UnsafeMutablePointer<FILE>
    /// A write failed (a full disk): the spill is not used, the second pass parses the text.
    package private(set) var failed = false
    private var reading = false
    private let claimed = Atomic<Bool>(false)
    /// Chunks written, and left to read.
    private var chunks = 0
    private var left = 0

    /// A spill in `directory` (``FileAccess/temporaryDirectory``); nil when no file can be made there, or the
    /// directory is held in memory (the replay then parses the text twice, as it would without).
    package static func create(in directory: String = FileAccess.temporaryDirectory) -> SampleSpill? {
        guard
            case .success(let descriptor) = FileAccess.anonymousTemporaryFile(prefix: "flatline-samples", in: directory)
        else {
            return nil
        }
        guard !FileAccess.isInMemory(descriptor: descriptor), let handle = fdopen(descriptor, "w+b") else {
            close(descriptor)
            return nil
        }
        return SampleSpill(handle: handle)
    }

    /// A spill written to `path` as it is (a device that refuses writes, to test a full disk).
    package static func open(path: String) -> SampleSpill? {
        guard let handle = fopen(path, "w+b") else { return nil }
        return SampleSpill(handle: handle)
    }

    private init(handle: UnsafeMutablePointer<FILE>) {
        self.handle = handle
    }

    deinit {
        fclose(handle)
    }

    /// Appends a chunk's samples, with the file's number of each of the chunk's series (`ids`,
    /// by the chunk's number). After a failed write nothing more is written.
    func append(_ chunk: ChunkOutline, ids: [Int]) {
        guard !failed, !reading else { return }
        let header = [chunk.numbers.count, ids.count, chunk.texts.bytes.count]
        let ok =
            write(header) && write(ids) && write(chunk.numbers) && write(chunk.times) && write(chunk.values)
            && write(chunk.lines) && write(chunk.kinds) && write(chunk.textOffsets) && write(chunk.textCounts)
            && write(chunk.texts.bytes)
        if ok { chunks += 1 } else { failed = true }
    }

    /// Ends the writing: true when every chunk was written and the spill can be read back.
    func finishWriting() -> Bool {
        guard !failed, fflush(handle) == 0, fseek(handle, 0, SEEK_SET) == 0 else {
            failed = true
            return false
        }
        reading = true
        left = chunks
        return true
    }

    /// Takes the spill for one reading: false when it was taken before (it is read once; a
    /// second reader parses the text).
    func claim() -> Bool {
        reading && claimed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }

    /// The next chunk read back into `chunk`; false after the last (the file's space is then
    /// given back). `series`: how many series the file has (the chunk's are among them).
    /// - Throws: ``SeriesFileError`` (naming `file`) when it cannot be read back as written.
    func next(into chunk: inout SpilledChunk, file: String, series fileSeries: Int) throws(SeriesFileError) -> Bool {
        guard reading, left > 0 else {
            if reading { _ = ftruncate(fileno(handle), 0) }
            return false
        }
        var header: [Int] = []
        guard read(&header, count: 3) else { throw lost(file) }
        let (rows, series, textBytes) = (header[0], header[1], header[2])
        // What was written, unless the temporary file was changed under the replay.
        guard (0...Int(Int32.max)).contains(rows), (0...Int(Int32.max)).contains(series),
            (0...Int(UInt32.max)).contains(textBytes)
        else { throw lost(file) }
        guard read(&chunk.ids, count: series), read(&chunk.numbers, count: rows), read(&chunk.times, count: rows),
            read(&chunk.values, count: rows), read(&chunk.lines, count: rows), read(&chunk.kinds, count: rows),
            read(&chunk.textOffsets, count: rows), read(&chunk.textCounts, count: rows),
            read(&chunk.texts, count: textBytes)
        else { throw lost(file) }
        guard chunk.ids.allSatisfy({ (0..<fileSeries).contains($0) }) else { throw lost(file) }
        for k in 0..<rows {
            guard (0..<series).contains(Int(chunk.numbers[k])),
                Int(chunk.textOffsets[k]) + Int(chunk.textCounts[k]) <= textBytes
            else { throw lost(file) }
        }
        left -= 1
        return true
    }

    private func lost(_ file: String) -> SeriesFileError {
        SeriesFileError(file: file, line: 0, reason: "its samples' temporary copy could not be read back")
    }

    private func write<T: BitwiseCopyable>(_ values: [T]) -> Bool {
        values.withUnsafeBytes { bytes in
            bytes.isEmpty || fwrite(bytes.baseAddress, 1, bytes.count, handle) == bytes.count
        }
    }

    private func read<T: BitwiseCopyable>(_ values: inout [T], count: Int) -> Bool {
        var ok = true
        values = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            let bytes = UnsafeMutableRawBufferPointer(buffer)
            ok = bytes.isEmpty || fread(bytes.baseAddress, 1, bytes.count, handle) == bytes.count
            initialized = ok ? count : 0
        }
        return ok
    }
}

/// One chunk of a ``SampleSpill`` read back: each sample's series (by the chunk's number), time,
/// value, line, kind and where its timestamp's text is in `texts`; `ids` is the file's number of
/// each of the chunk's series.
package struct SpilledChunk {
    var ids: [Int] = []
    var numbers: [Int32] = []
    var times: [Int64] = []
    var values: [Double] = []
    var lines: [Int] = []
    var kinds: [UInt8] = []
    var textOffsets: [UInt32] = []
    var textCounts: [UInt32] = []
    var texts: [UInt8] = []

    package init() {}
}
