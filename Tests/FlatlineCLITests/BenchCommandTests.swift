import FlatlineTestSupport
import Foundation
import Testing

@Suite("flatline bench")
struct BenchCommandTests {
    @Test("the quick benchmark prints every detector with throughput, reference ratio and state size")
    func quick() throws {
        let result = try TestSupport.run(
            TestSupport.flatlineBinary,
            [
                "bench", "--series", "200", "--ticks", "40", "--parts", "estimators,detectors,kernels",
            ]
        )
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

    @Test("--kinds runs only the detectors named; an unknown one is refused with the known ones")
    func kinds() throws {
        let result = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["bench", "--series", "200", "--ticks", "40", "--parts", "detectors", "--kinds", "surprise,ewma"]
        )
        #expect(result.status == 0, "\(result.standardError)")
        let rows = result.standardOutput.split(separator: "\n").compactMap { $0.split(separator: " ").first }
            .map(String.init)
        #expect(
            rows.filter { ["ewma", "robust", "seasonal", "ensemble", "surprise"].contains($0) } == ["surprise", "ewma"]
        )
        let bad = try TestSupport.run(TestSupport.flatlineBinary, ["bench", "--kinds", "prophet"])
        #expect(bad.status != 0)
        #expect(bad.standardError.contains("unknown detector 'prophet' in --kinds"), "\(bad.standardError)")
    }

    @Test("the NATS part publishes and requests against its own nats-server, and says why nats-py is missing")
    func nats() throws {
        let result = try TestSupport.run(
            TestSupport.flatlineBinary,
            [
                "bench", "--parts", "nats", "--nats-messages", "20000", "--nats-request-seconds", "0.3",
                "--python-bench", "/nonexistent/nats_py_bench.py",
            ]
        )
        #expect(result.status == 0, "\(result.standardError)")
        let rows = result.standardOutput.split(separator: "\n")
        for name in ["publish 16 B", "publish 1024 B", "request/reply, 16 B", "request/reply on the client's loop"] {
            let row = try #require(rows.first { $0.hasPrefix(name) }, "missing \(name)")
            let rate = try #require(Double(row.dropFirst(name.count).split(separator: " ").first ?? ""))
            #expect(rate > 0, "\(row)")
        }
        #expect(result.standardOutput.contains("no nats-py comparison: /nonexistent/nats_py_bench.py not found"))
        #expect(!result.standardOutput.contains("ewma"))
    }

    @Test("the replay part replays every input in its own process, a NATS recording with and without the models")
    func replay() throws {
        let result = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["bench", "--parts", "replay", "--quick", "--models", TestSupport.repositoryFile("models").path],
            timeout: 180
        )
        #expect(result.status == 0, "\(result.standardError)")
        let rows = result.standardOutput.split(separator: "\n")
        var samples: [Int] = []
        for name in [
            "OpenMetrics → CSV, one core", "recording → CSV", "NATS recording → CSV",
            "NATS recording → CSV and alerts (shipped models)",
        ] {
            let row = try #require(rows.first { $0.hasPrefix(name + " ") }, "missing \(name)")
            let fields = row.dropFirst(name.count).split(separator: " ")
            let count = try #require(Int(fields.first?.replacingOccurrences(of: ",", with: "") ?? ""), "\(row)")
            let seconds = try #require(Double(fields.dropFirst().first ?? ""), "\(row)")
            #expect(count > 0 && seconds > 0, "\(row)")
            samples.append(count)
        }
        // 20 rounds of 200 connections' eight series (no stalls in the bodies) and 50 streams'
        // and their 200 consumers' series, as extraction counts them.
        #expect(samples[2] > (200 * 8 + 200) * 20)
    }

    @Test(
        "the cluster part runs three replicas on a 3-node nats-server cluster: every target held once, a SIGKILL taken over"
    )
    func cluster() throws {
        let result = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["bench", "--parts", "cluster", "--quick", "--models", TestSupport.repositoryFile("models").path],
            timeout: 180
        )
        #expect(result.status == 0, "\(result.standardError)")
        let rows = result.standardOutput.split(separator: "\n").map {
            $0.split(separator: " ", omittingEmptySubsequences: true)
        }
        let replicas = rows.filter { $0.count == 6 && ["a", "b", "c"].contains(String($0[0])) }
        #expect(replicas.count == 3, "\(result.standardOutput)")
        // Together they hold every target, each its share.
        let targets = replicas.compactMap { Int($0[1]) }
        #expect(targets.reduce(0, +) == 20 && targets.allSatisfy { $0 > 0 }, "\(result.standardOutput)")
        #expect(replicas.allSatisfy { (Double($0[3]) ?? 0) > 0 && (Double($0[4]) ?? 0) > 0 })
        // Replicas started together wait for each other: none took another's targets at the start.
        #expect(replicas.allSatisfy { $0[5] == $0[1] }, "\(result.standardOutput)")
        #expect(result.standardOutput.contains("the survivors scraped all of them within"), "\(result.standardOutput)")
    }

    @Test(
        "the daemon part runs flatline run against a local target and webhook: every alert delivered, CPU and memory read"
    )
    func daemon() throws {
        let result = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["bench", "--parts", "daemon", "--quick", "--models", TestSupport.repositoryFile("models").path],
            timeout: 180
        )
        #expect(result.status == 0, "\(result.standardError)")
        let rows = result.standardOutput.split(separator: "\n")
        func number(_ name: String) throws -> Double {
            let row = try #require(rows.first { $0.hasPrefix(name) }, "missing \(name) in \(result.standardOutput)")
            return try #require(Double(row.dropFirst(name.count).split(separator: " ").first ?? ""), "\(row)")
        }
        let p50 = try number("scrape to webhook, p50")
        let p99 = try number("scrape to webhook, p99")
        #expect(p50 > 0 && p99 >= p50)
        #expect(result.standardOutput.contains("8/8 alerts delivered"), "\(result.standardOutput)")
        #expect(try number("CPU") > 0)
        // A daemon with 10,000 series holds some megabytes, and far less than a gigabyte.
        let rss = try number("resident memory")
        #expect(rss > 5 && rss < 1024, "\(rss) MiB")
        let bad = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["bench", "--parts", "daemon", "--models", "/nonexistent"]
        )
        #expect(bad.status != 0 && bad.standardError.contains("needs the shipped models"), "\(bad.standardError)")
    }

    @Test("the ingest part extracts connz, jsz and exposition bodies next to their references")
    func ingest() throws {
        let result = try TestSupport.run(TestSupport.flatlineBinary, ["bench", "--parts", "ingest", "--quick"])
        #expect(result.status == 0, "\(result.standardError)")
        let rows = result.standardOutput.split(separator: "\n")
        for name in [
            "/connz, 2,000 connections (2 pages)", "/jsz, 200 streams × 10 consumers", "exposition, 20,000 samples",
        ] {
            let row = try #require(rows.first { $0.hasPrefix(name) }, "missing \(name) in \(result.standardOutput)")
            let cells = row.dropFirst(name.count).split(separator: " ")
            #expect((Double(cells[0]) ?? 0) > 0, "\(row)")
            #expect(cells[2] != "-" && (Double(cells[3]) ?? 0) > 0, "\(row)")
        }
        // 2,000 connections give 8 series each; one group (service-N-M) gives 8 more; 2 summary series.
        #expect(rows.contains { $0.hasPrefix("/connz, 2,000 connections (2 pages)") && $0.contains(" 16,010 ") })
        #expect(!result.standardOutput.contains("series ×"))
    }
}
