import FlatlineCore
import FlatlineIngest
import Foundation
import FuzzSupport

/// libFuzzer: an exposition body (text format, or OpenMetrics when the first byte is odd) through
/// a target's extraction (twice: the second scrape reads remembered series), then every sample's
/// labels through what the daemon does with them.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzExposition(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let type = bytes.first.map { $0 & 1 == 1 } == true ? "application/openmetrics-text; version=1.0.0" : "text/plain"
    // Replay's parser remembers series by their bytes: it must read exactly what the plain one reads.
    let format = ExpositionFormat(contentType: type)
    let plain = Result { () throws(ExpositionError) in try ExpositionParser(format: format).parse(bytes) }
    let interned = Result { () throws(ExpositionError) in
        try ExpositionParser(format: format, internSeries: true).parse(bytes)
    }
    switch (plain, interned) {
    case (.success(let a), .success(let b)):
        let same =
            a.count == b.count
            && zip(a, b).allSatisfy {
                $0.labels == $1.labels && $0.value.bitPattern == $1.value.bitPattern && $0.timestamp == $1.timestamp
                    && $0.kind == $1.kind && $0.line == $1.line
            }
        if !same { fatalError("interned series differ from the plain parse") }
    case (.failure(let a), .failure(let b)):
        if a != b { fatalError("interned parse fails differently: \(a) vs \(b)") }
    default:
        fatalError("interned parse and plain parse disagree on success")
    }
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
    // The target's next scrape of the same body reads its series from memory: the same samples.
    let again = try? extractor.samples(exposition: bytes, contentType: type, scrapeTime: Timestamp(milliseconds: 0))
    let same =
        again.map { again in
            again.count == samples.count
                && zip(again, samples).allSatisfy {
                    $0.labels == $1.labels && $0.value.bitPattern == $1.value.bitPattern
                        && $0.timestamp == $1.timestamp && $0.kind == $1.kind
                }
        } ?? false
    if !same { fatalError("a remembered series differs from the series parsed afresh") }
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
