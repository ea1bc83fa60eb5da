import FlatlineIngest
import Foundation
import FuzzSupport

/// libFuzzer: bytes as a recording file, replayed through the same extraction as live scrapes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRecording(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = "/dev/shm/flatline-fuzz-recording-\(getpid()).ndjson"
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes: data, count: size)) else { return 0 }
    defer { unlink(path) }
    guard var source = try? RecordingSource(path: path) else { return 0 }
    var batches = 0
    while batches < 10_000, let batch = try? source.next() {
        _ = batch.samples.count
        batches += 1
    }
    return 0
}

@_cdecl("FuzzRecording_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { fuzzRecording($0, $1) }
}
