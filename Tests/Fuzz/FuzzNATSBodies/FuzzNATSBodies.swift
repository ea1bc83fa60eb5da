import FlatlineCore
import FlatlineIngest
import FuzzSupport

/// libFuzzer: a JSON body through the tape parser and, twice (so the extractor compares with a
/// previous body), through the NATS extractor of every endpoint; then as an event (a disconnect
/// or a JetStream advisory), counted as the event watchers count it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNATSBodies(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let document = try? JSONDocument(parsing: bytes) else { return 0 }
    let page = JSONPage(document: document)
    for endpoint in NATSEndpoint.allCases {
        var extractor = NATSExtractor(targetLabels: ["job": "fuzz", "instance": "fuzz:1"])
        for second in 0..<2 {
            _ = try? extractor.extract(
                endpoint,
                pages: [page],
                scrapeTime: Timestamp(milliseconds: Int64(second) * 1000)
            )
        }
        _ = extractor.takeDrops()
        _ = try? endpoint.pageTotal(page)
        _ = endpoint.pageCount(page)
    }
    var extractor = TargetExtractor(kind: .nats, targetLabels: ["job": "fuzz", "instance": "fuzz:1"])
    if let event = (try? NATSEvent.parse(bytes)) ?? nil { _ = extractor.samples(event: event) }
    return 0
}

@_cdecl("FuzzNATSBodies_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { fuzzNATSBodies($0, $1) }
}
