import FlatlineNATS
import FuzzSupport
import NIOCore

/// libFuzzer: bytes from a NATS server through the client's protocol parser, fed in two parts
/// (so frames split across reads are exercised), until it needs more or refuses.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNATSProtocol(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    var parser = ProtocolParser(maxControlLine: 4096, maxPayload: 1 << 20)
    var buffer = ByteBuffer()
    let split = size / 2
    for part in [bytes[..<split], bytes[split...]] {
        buffer.writeBytes(part)
        do {
            while try parser.parse(&buffer) != nil {}
        } catch {
            return 0
        }
    }
    return 0
}

@_cdecl("FuzzNATSProtocol_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { fuzzNATSProtocol($0, $1) }
}
