import FlatlineCore
import FlatlineIngest
import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineConfig
@testable import FlatlineScrape

/// A recording read back as the rounds the daemon fed its pipeline, and the configuration a
/// recording shows when none is given.
@Suite("Recorded rounds")
struct RecordedRoundsTests {
    static let fixture = TestSupport.repositoryFile(
        "Tests/FlatlineIngestTests/Fixtures/nats/scenario-freeze-flood.ndjson.gz"
    ).path

    @Test("a recording without scrape lines: one round per /varz, with the scrape series, in time order")
    func rounds() throws {
        var varz = 0
        let reader = try RecordingReader(path: Self.fixture)
        while let line = try reader.next() {
            if line.endpoint == "varz" { varz += 1 }
        }
        var rounds = try RecordedRounds(
            path: Self.fixture,
            configuration: Configuration.parse("scrape_configs: []\n", file: "f.yml")
        )
        var batches: [ScrapeBatch] = []
        while let batch = try rounds.next() { batches.append(batch) }
        #expect(batches.count == varz)
        #expect(zip(batches, batches.dropFirst()).allSatisfy { $0.time < $1.time })
        for batch in batches.prefix(5) {
            #expect(batch.samples.contains { $0.labels.metricName == "up" && $0.value == 1 })
            #expect(batch.samples.contains { $0.labels.metricName == "gnatsd_varz_in_msgs" })
            #expect(!batch.event && batch.target.hasPrefix("nats/"))
        }
    }

    @Test("the configuration a recording shows: its job, read as NATS, scraped every second")
    func inferred() throws {
        let configuration = try RecordedRounds.inferConfiguration(
            path: Self.fixture,
            detector: DetectorConfiguration()
        )
        #expect(configuration.scrapeConfigs.map(\.jobName) == ["nats"])
        #expect(configuration.scrapeConfigs.first?.kind == .nats)
        let interval = try #require(configuration.scrapeConfigs.first?.scrapeInterval)
        #expect(abs(interval - 1) < 0.05, "\(interval)")
    }
}
