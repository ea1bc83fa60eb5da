import FlatlineTestSupport
import Foundation
import Testing

/// `flatline record` against a real nats-server, then `flatline replay` of what it wrote.
@Suite("flatline record", .serialized)
struct RecordCommandTests {
    @Test("records every endpoint for some rounds; the recording replays")
    func recordAndReplay() throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let config = try directory.write(
            "flatline.yml",
            """
            global: {scrape_interval: 1s}
            scrape_configs:
              - job_name: nats
                kind: nats
                static_configs: [{targets: ["127.0.0.1:\(server.monitoringPort)"]}]
            """
        )
        let out = directory.file("rec.ndjson.gz").path
        let record = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["record", "--config", config.path, "--out", out, "--rounds", "2"]
        )
        #expect(record.status == 0, "\(record.standardError)")
        // Per round a line for each of the nine default endpoints (connz_closed among them), and two more.
        #expect(record.standardError.contains("rec.ndjson.gz: 20 lines; 2 rounds"), "\(record.standardError)")
        let replay = try TestSupport.run(TestSupport.flatlineBinary, ["replay", out, "--quiet"])
        #expect(replay.status == 0, "\(replay.standardError)")
        #expect(
            replay.standardOutput.contains("gnatsd_varz_in_msgs{instance=\"\"127.0.0.1:\(server.monitoringPort)\"\"")
        )
        #expect(replay.standardOutput.contains("\"up{instance="))

        let missing = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["record", "--config", directory.file("nope.yml").path, "--out", out]
        )
        #expect(missing.status == 1)
        #expect(missing.standardError.contains("Error: \(directory.file("nope.yml").path): cannot open"))
        // Its own configuration is not an output.
        let original = try String(contentsOf: config, encoding: .utf8)
        let over = try TestSupport.run(
            TestSupport.flatlineBinary,
            ["record", "--config", config.path, "--out", "\(directory.url.path)/./flatline.yml", "--rounds", "1"]
        )
        #expect(over.status == 64)
        #expect(over.standardError.contains("is the configuration"), "\(over.standardError)")
        #expect(try String(contentsOf: config, encoding: .utf8) == original)
    }
}
