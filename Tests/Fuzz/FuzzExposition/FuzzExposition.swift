import FlatlineCore
import FlatlineIngest
import Foundation
import FuzzSupport

/// libFuzzer: an exposition body (text format, or OpenMetrics when the first byte is odd) through
/// a target's extraction, then every sample's labels through what the daemon does with them.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzExposition(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let type = bytes.first.map { $0 & 1 == 1 } == true ? "application/openmetrics-text; version=1.0.0" : "text/plain"
    var extractor = TargetExtractor(
        kind: .prometheus,
        targetLabels: ["job": "fuzz", "instance": "fuzz:1"],
        limits: ScrapeLimits(sampleLimit: 10_000)
    )
    guard
        let samples = try? extractor.samples(
            exposition: bytes,
            contentType: type,
            scrapeTime: Timestamp(milliseconds: 0)
        )
    else { return 0 }
    var store = SeriesStore(maxSeries: 1000)
    for sample in samples {
        _ = sample.labels.dictionary
        _ = sample.labels.description
        _ = sample.labels.fingerprint
        _ = try? store.slot(for: sample.labels, kind: sample.kind, at: sample.timestamp)
    }
    if let encoded = try? JSONEncoder().encode(store) {
        _ = try? JSONDecoder().decode(SeriesStore.self, from: encoded)
    }
    return 0
}

@_cdecl("FuzzExposition_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { fuzzExposition($0, $1) }
}
