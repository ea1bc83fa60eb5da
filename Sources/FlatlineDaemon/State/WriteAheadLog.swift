import FlatlineCore
import FlatlineIngest
import FlatlineScrape
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The batches the pipeline was fed since the last snapshot, so a crash (`kill -9`, a power cut)
/// loses no learning: at start the daemon restores the snapshot and feeds these again, in order,
/// through the same pipeline. Each batch is appended and synced (`fsync`) before it is evaluated.
///
/// Segments `wal/<sequence>.wal` of records: `FLW1`, the payload's length and CRC-32 (little
/// endian, 4 bytes each), the payload (``WALRecord``). A save (a snapshot of every state file)
/// starts a new segment and deletes the older ones. A record that is cut short or fails its
/// checksum ends its segment: the segment is cut there, logged and counted, and replay goes on
/// with the next segment; never a crash, never a refusal to start.
final class WriteAheadLog {
    typealias Options = WriteAheadLogSettings

    /// What a replay found.
    struct Replayed: Sendable, Hashable {
        var batches = 0
        var segments = 0
        /// Segments cut at a bad record, and the bytes cut off.
        var cutSegments = 0
        var cutBytes = 0
    }

    static let magic: [UInt8] = Array("FLW1".utf8)
    /// The largest record read back (a batch of about two million samples).
    static let maxRecordBytes = 256 << 20

    let directory: String
    let options: Options
    private let logger: Logger
    private var descriptor: Int32 = -1
    private var sequence: UInt64 = 0
    private var segmentSize = 0
    /// Bytes in every segment, the open one included.
    private(set) var size = 0
    /// Records appended since the start.
    private(set) var appended = 0

    /// Opens (and creates) `directory`; nothing is written until the first append.
    /// - Throws: ``StateFileError`` when it cannot be created.
    init(directory: String, options: Options = Options(), logger: Logger) throws(StateFileError) {
        self.directory = directory
        self.options = options
        self.logger = logger
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw StateFileError(
                path: directory,
                reason: "cannot create the write-ahead log: \(error.localizedDescription)"
            )
        }
        let existing = segments()
        sequence = existing.last?.sequence ?? 0
        size = existing.reduce(0) { $0 + $1.size }
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// The segments on disk, oldest first.
    func segments() -> [(sequence: UInt64, path: String, size: Int)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> (UInt64, String, Int)? in
            guard name.hasSuffix(".wal"), let sequence = UInt64(name.dropLast(4)) else { return nil }
            let path = directory + "/" + name
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            return (sequence, path, size)
        }
        .sorted { $0.0 < $1.0 }
    }

    private func path(_ sequence: UInt64) -> String {
        let digits = String(sequence)
        return directory + "/" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".wal"
    }

    /// Appends a batch and syncs it to disk.
    /// - Throws: ``StateFileError`` when it cannot be written (a full disk): the batch is still
    ///   evaluated, only not recoverable.
    func append(_ batch: ScrapeBatch) throws(StateFileError) {
        let payload = WALRecord.encode(batch)
        var record = Self.magic
        record.reserveCapacity(12 + payload.count)
        Self.appendUInt32(UInt32(truncatingIfNeeded: payload.count), to: &record)
        Self.appendUInt32(CRC32.checksum(payload), to: &record)
        record += payload
        if descriptor < 0 || segmentSize >= options.segmentBytes { try openNext() }
        let written = record.withUnsafeBytes { raw -> Int in
            guard let base = raw.baseAddress else { return 0 }
            var offset = 0
            while offset < raw.count {
                let n = write(descriptor, base + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return -1
                }
                offset += n
            }
            return offset
        }
        guard written == record.count else {
            let reason = String(cString: strerror(errno))
            // What was half written is cut off at the next start.
            close(descriptor)
            descriptor = -1
            throw StateFileError(path: path(sequence), reason: "cannot append to the write-ahead log: \(reason)")
        }
        guard fsync(descriptor) == 0 else {
            throw StateFileError(
                path: path(sequence),
                reason: "cannot sync the write-ahead log: \(String(cString: strerror(errno)))"
            )
        }
        segmentSize += record.count
        size += record.count
        appended += 1
    }

    /// Everything appended so far is in a snapshot: a new segment starts and the older ones go.
    func checkpoint() {
        if descriptor >= 0 {
            close(descriptor)
            descriptor = -1
        }
        for segment in segments() {
            do {
                try FileManager.default.removeItem(atPath: segment.path)
            } catch {
                logger.warning(
                    "cannot delete a write-ahead log segment",
                    metadata: ["segment": "\(segment.path)", "error": "\(error.localizedDescription)"]
                )
            }
        }
        size = segments().reduce(0) { $0 + $1.size }
        segmentSize = 0
    }

    private func openNext() throws(StateFileError) {
        if descriptor >= 0 { close(descriptor) }
        sequence += 1
        let file = path(sequence)
        descriptor = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw StateFileError(
                path: file,
                reason: "cannot create a write-ahead log segment: \(String(cString: strerror(errno)))"
            )
        }
        segmentSize = 0
        // The new file's name must survive a crash too.
        let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            _ = fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    /// Feeds every intact record of every segment, oldest first, to `body`. A segment with a
    /// bad record is cut at the last good one (logged, counted); replay goes on with the next.
    func replay(_ body: (ScrapeBatch) -> Void) -> Replayed {
        var report = Replayed()
        for segment in segments() {
            report.segments += 1
            guard let data = FileManager.default.contents(atPath: segment.path) else {
                logger.error("cannot read a write-ahead log segment", metadata: ["segment": "\(segment.path)"])
                continue
            }
            let bytes = [UInt8](data)
            var offset = 0
            var problem: String?
            while offset < bytes.count {
                switch Self.record(in: bytes, at: offset) {
                case .success(let (batch, next)):
                    body(batch)
                    report.batches += 1
                    offset = next
                case .failure(let reason):
                    problem = reason.description
                }
                if problem != nil { break }
            }
            guard let problem else { continue }
            report.cutSegments += 1
            report.cutBytes += bytes.count - offset
            logger.warning(
                "write-ahead log segment cut at its last good record",
                metadata: [
                    "segment": "\(segment.path)", "at_byte": "\(offset)", "bytes_cut": "\(bytes.count - offset)",
                    "reason": "\(problem)",
                ]
            )
            if truncate(segment.path, off_t(offset)) != 0 {
                logger.error(
                    "cannot cut the write-ahead log segment",
                    metadata: ["segment": "\(segment.path)", "error": "\(String(cString: strerror(errno)))"]
                )
            }
        }
        size = segments().reduce(0) { $0 + $1.size }
        return report
    }

    /// The record at `offset`: the batch and where the next record starts, or why it is bad.
    static func record(in bytes: [UInt8], at offset: Int) -> Result<(ScrapeBatch, Int), WALRecord.Failure> {
        guard bytes.count - offset >= 12 else { return .failure("cut short: a header needs 12 bytes") }
        guard Array(bytes[offset..<offset + 4]) == magic else { return .failure("no record marker") }
        let length = Int(readUInt32(bytes, offset + 4))
        let checksum = readUInt32(bytes, offset + 8)
        guard length <= maxRecordBytes else {
            return .failure(WALRecord.Failure("a record of \(length) bytes is too large"))
        }
        guard bytes.count - offset - 12 >= length else {
            return .failure(
                WALRecord.Failure("cut short: \(length) bytes announced, \(bytes.count - offset - 12) there")
            )
        }
        let payload = Array(bytes[offset + 12..<offset + 12 + length])
        guard CRC32.checksum(payload) == checksum else { return .failure("checksum mismatch") }
        switch WALRecord.decode(payload) {
        case .success(let batch): return .success((batch, offset + 12 + length))
        case .failure(let failure): return .failure(failure)
        }
    }

    static func appendUInt32(_ value: UInt32, to bytes: inout [UInt8]) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    static func readUInt32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        var value: UInt32 = 0
        for k in 0..<4 { value |= UInt32(bytes[at + k]) << UInt32(8 * k) }
        return value
    }
}

/// How the write-ahead log is kept (`flatline run --wal-segment-size`, `--wal-max-size`).
public struct WriteAheadLogSettings: Sendable, Hashable {
    /// A segment past this size is closed and a new one started.
    public var segmentBytes = 64 << 20
    /// Past this total size, the pipeline takes a snapshot (which truncates the log).
    public var maxBytes = 1 << 30

    public init() {}
}

/// CRC-32 (IEEE 802.3, the one of zlib and gzip).
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}

/// One batch as a write-ahead log record: the target, its labels, the time, the health, errors
/// and drops, and every sample (labels, value, timestamp, kind, counter reset). Little endian;
/// strings as a 4-byte length and UTF-8. Decoding checks every length against what is left.
enum WALRecord {
    struct Failure: Error, ExpressibleByStringLiteral, CustomStringConvertible, Sendable, Hashable {
        var description: String
        init(stringLiteral value: String) { description = value }
        init(_ value: String) { description = value }
    }

    static let version: UInt8 = 1
    /// The latest time a record may hold (the year 9999), either side of 1970.
    static let maxMilliseconds: Int64 = 253_402_300_799_999
    /// The largest count a record may hold: far above any real round, far below a sum that traps.
    static let maxCount: Int64 = 1 << 40

    static func encode(_ batch: ScrapeBatch) -> [UInt8] {
        var out: [UInt8] = [version, (batch.event ? 1 : 0) | (batch.health.up ? 2 : 0)]
        func u32(_ v: Int) { WriteAheadLog.appendUInt32(UInt32(truncatingIfNeeded: v), to: &out) }
        func u64(_ v: UInt64) {
            for s in stride(from: 0, to: 64, by: 8) { out.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) }
        }
        func string(_ s: String) {
            u32(s.utf8.count)
            out += s.utf8
        }
        func pairs(_ d: [String: String]) {
            u32(d.count)
            for key in d.keys.sorted() {
                string(key)
                string(d[key] ?? "")
            }
        }
        u64(UInt64(bitPattern: batch.time.milliseconds))
        u64(batch.health.durationSeconds.bitPattern)
        u64(UInt64(bitPattern: Int64(batch.health.samplesScraped)))
        u64(UInt64(bitPattern: Int64(batch.health.samplesDropped)))
        string(batch.target)
        pairs(batch.labels)
        pairs(batch.errors)
        let drops = DropReason.allCases.filter { batch.drops[$0] > 0 }
        u32(drops.count)
        for reason in drops {
            string(reason.rawValue)
            u64(UInt64(bitPattern: Int64(batch.drops[reason])))
        }
        u32(batch.samples.count)
        for sample in batch.samples {
            let labels = sample.labels.labels
            u32(labels.count)
            for label in labels {
                string(label.name)
                string(label.value)
            }
            u64(sample.value.bitPattern)
            u64(UInt64(bitPattern: sample.timestamp.milliseconds))
            out.append((sample.kind == .counter ? 1 : 0) | (sample.counterReset ? 2 : 0))
        }
        return out
    }

    static func decode(_ bytes: [UInt8]) -> Result<ScrapeBatch, Failure> {
        var at = 0
        func need(_ n: Int) throws(Failure) {
            guard n >= 0, bytes.count - at >= n else { throw Failure("cut short at byte \(at)") }
        }
        func u8() throws(Failure) -> UInt8 {
            try need(1)
            defer { at += 1 }
            return bytes[at]
        }
        func u32() throws(Failure) -> Int {
            try need(4)
            defer { at += 4 }
            return Int(WriteAheadLog.readUInt32(bytes, at))
        }
        func u64() throws(Failure) -> UInt64 {
            try need(8)
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(bytes[at + k]) << UInt64(8 * k) }
            at += 8
            return v
        }
        func string() throws(Failure) -> String {
            let n = try u32()
            try need(n)
            defer { at += n }
            return String(decoding: bytes[at..<at + n], as: UTF8.self)
        }
        func count(_ minimumBytesEach: Int) throws(Failure) -> Int {
            let n = try u32()
            guard n <= (bytes.count - at) / minimumBytesEach else {
                throw Failure("a count of \(n) at byte \(at) overruns the record")
            }
            return n
        }
        // Times and counts from a file are bounded before anything computes with them.
        func timestamp() throws(Failure) -> Timestamp {
            let milliseconds = Int64(bitPattern: try u64())
            guard abs(milliseconds) <= maxMilliseconds else { throw Failure("a time out of range at byte \(at - 8)") }
            return Timestamp(milliseconds: milliseconds)
        }
        func amount() throws(Failure) -> Int {
            let n = Int64(bitPattern: try u64())
            guard n >= 0, n <= maxCount else { throw Failure("a count out of range at byte \(at - 8)") }
            return Int(n)
        }
        func pairs() throws(Failure) -> [String: String] {
            var d: [String: String] = [:]
            for _ in 0..<(try count(8)) { d[try string()] = try string() }
            return d
        }
        do throws(Failure) {
            guard try u8() == version else { throw Failure("unknown record version") }
            let flags = try u8()
            let time = try timestamp()
            let duration = Double(bitPattern: try u64())
            let scraped = try amount()
            let dropped = try amount()
            let target = try string()
            let labels = try pairs()
            let errors = try pairs()
            var drops = DropCounts()
            for _ in 0..<(try count(12)) {
                let name = try string()
                let n = try amount()
                guard let reason = DropReason(rawValue: name) else { throw Failure("unknown drop reason") }
                drops.add(reason, count: n)
            }
            var samples: [Sample] = []
            for _ in 0..<(try count(21)) {
                var list: [(String, String)] = []
                for _ in 0..<(try count(8)) { list.append((try string(), try string())) }
                let value = Double(bitPattern: try u64())
                let sampleTime = try timestamp()
                let kind = try u8()
                let labelSet: LabelSet
                do {
                    labelSet = try LabelSet(validating: list)
                } catch {
                    throw Failure("invalid labels: \(error)")
                }
                samples.append(
                    Sample(
                        labels: labelSet,
                        value: value,
                        timestamp: sampleTime,
                        kind: kind & 1 == 1 ? .counter : .gauge,
                        counterReset: kind & 2 == 2
                    )
                )
            }
            guard at == bytes.count else { throw Failure("\(bytes.count - at) bytes after the batch") }
            return .success(
                ScrapeBatch(
                    target: target,
                    labels: labels,
                    time: time,
                    samples: samples,
                    health: ScrapeHealth(
                        up: flags & 2 == 2,
                        durationSeconds: duration,
                        samplesScraped: scraped,
                        samplesDropped: dropped
                    ),
                    errors: errors,
                    drops: drops,
                    event: flags & 1 == 1
                )
            )
        } catch {
            return .failure(error)
        }
    }
}
