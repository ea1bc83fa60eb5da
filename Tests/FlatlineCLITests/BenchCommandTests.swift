import FlatlineTestSupport
import Foundation
import Testing

@Suite("flatline bench")
struct BenchCommandTests {
    @Test("the quick benchmark prints every detector with throughput, reference ratio and state size")
    func quick() throws {
        let result = try TestSupport.run(TestSupport.flatlineBinary, ["bench", "--series", "200", "--ticks", "40"])
        #expect(result.status == 0, "\(result.standardError)")
        let out = result.standardOutput
        for name in ["ewma", "robust (window 64)", "seasonal (15 columns)", "ensemble", "dger", "dposv"] {
            #expect(out.contains(name), "missing \(name)")
        }
        let ensemble = try #require(out.split(separator: "\n").first { $0.hasPrefix("ensemble ") && $0.contains("×") })
        let bytes = try #require(Int(ensemble.split(separator: " ").last ?? ""))
        #expect(bytes > 0 && bytes < 4096, "ensemble state per series: \(bytes) bytes")
        let bad = try TestSupport.run(TestSupport.flatlineBinary, ["bench", "--series", "10"])
        #expect(bad.status != 0)
        #expect(bad.standardError.contains("--series and --ticks"))
    }
}
