import FlatlineAlerting
import FlatlineConfig
import FuzzSupport

/// libFuzzer: text as a configuration file and as a model file; both must refuse with a reason
/// (file, line, key) or read, never trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfiguration(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = try? Configuration.parse(text, file: "fuzz.yml", directory: "/nonexistent")
    _ = try? Model.parse(text, file: "fuzz-model.yml")
    return 0
}

@_cdecl("FuzzConfiguration_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { fuzzConfiguration($0, $1) }
}
