import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineIngest

@Suite("File chunks")
struct FileChunksTests {
    /// Every chunk but the last ends at a newline, the chunks joined are the file, and only the
    /// last says so.
    @Test(
        "chunks of whole lines, lines longer than a chunk included, the last line with or without a newline",
        arguments: [true, false]
    )
    func wholeLines(finalNewline: Bool) throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        // Short lines, then lines of 1.5, 3 and 9 chunks, then short lines again.
        var text = ""
        for k in 0..<600 { text += "line \(k) " + String(repeating: "x", count: k % 37) + "\n" }
        for length in [6_000, 12_288, 36_000] { text += String(repeating: "y", count: length) + "\n" }
        for k in 0..<300 { text += "tail \(k)\n" }
        text += "last"
        if finalNewline { text += "\n" }
        let path = try directory.write("lines.txt", text).path
        let chunks = try FileChunks(path: path, chunkBytes: 4096)
        var joined: [UInt8] = []
        var count = 0
        var sawLast = false
        while let (bytes, last) = try chunks.read() {
            #expect(!sawLast, "a chunk after the last")
            count += 1
            sawLast = last
            if !last { #expect(bytes.last == 0x0A, "chunk \(count) ends inside a line") }
            joined += bytes
        }
        #expect(sawLast)
        #expect(count >= 5)
        #expect(joined == Array(text.utf8))
        #expect(try chunks.read() == nil)
    }

    @Test("an empty file is one empty last chunk; a missing one is an error that names it")
    func emptyAndMissing() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let empty = try FileChunks(path: try directory.write("empty.txt", "").path, chunkBytes: 4096)
        let first = try #require(try empty.read())
        #expect(first.bytes.isEmpty && first.last)
        #expect(try empty.read() == nil)
        let missing = directory.file("missing.txt").path
        #expect {
            _ = try FileChunks(path: missing, chunkBytes: 4096)
        } throws: { error in
            "\(error)".contains(missing) && "\(error)".contains("cannot open")
        }
    }

    @Test("a line longer than the limit is refused with where it starts, after the chunks before it")
    func lineLimit() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        var text = ""
        for k in 0..<500 { text += "line \(k)\n" }
        let start = text.utf8.count
        text += String(repeating: "z", count: 30_000) + "\nafter\n"
        let path = try directory.write("long.txt", text).path
        // Under the limit, the same file reads whole.
        let roomy = try FileChunks(path: path, chunkBytes: 4096, maxLineBytes: 40_000)
        var joined: [UInt8] = []
        while let (bytes, _) = try roomy.read() { joined += bytes }
        #expect(joined == Array(text.utf8))

        let chunks = try FileChunks(path: path, chunkBytes: 4096, maxLineBytes: 10_000)
        var before: [UInt8] = []
        #expect {
            while let (bytes, _) = try chunks.read() { before += bytes }
        } throws: { error in
            "\(error)".contains(path) && "\(error)".contains("the line at byte \(start) is longer than 10000 bytes")
        }
        #expect(before == Array(text.utf8.prefix(start)))
        #expect(try chunks.read() == nil)
    }

    @Test("a small file is read into a buffer of about its size, not a chunk's, in one read that ends it")
    func smallFile() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        var text = ""
        for k in 0..<50 { text += "line \(k)\n" }
        let path = try directory.write("small.txt", text).path
        let chunks = try FileChunks(path: path, chunkBytes: 1 << 24)
        let first = try #require(try chunks.read())
        #expect(first.last)
        #expect(first.bytes == Array(text.utf8))
        // A 16 MiB chunk would have been allocated (and zeroed) for 400 bytes.
        #expect(first.bytes.capacity < 1 << 20, "capacity \(first.bytes.capacity)")
        #expect(try chunks.read() == nil)
    }

    @Test("a file that grows after it is opened is read to its new end, not cut at its first size")
    func growingFile() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        var text = ""
        for k in 0..<100 { text += "first \(k)\n" }
        let file = try directory.write("growing.txt", text)
        let chunks = try FileChunks(path: file.path, chunkBytes: 1 << 24)
        var more = ""
        for k in 0..<20_000 { more += "then \(k)\n" }
        let handle = try FileHandle(forWritingTo: file)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(more.utf8))
        try handle.close()
        var joined: [UInt8] = []
        var sawLast = false
        while let (bytes, last) = try chunks.read() {
            #expect(!sawLast, "a chunk after the last")
            sawLast = last
            if !last { #expect(bytes.last == 0x0A) }
            joined += bytes
        }
        #expect(sawLast)
        #expect(joined == Array((text + more).utf8))
    }
}
