import FlatlineCore
import FlatlineIngest
import FlatlineTestSupport
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization

@testable import FlatlineConfig
@testable import FlatlineScrape

/// Helpers for scraping real servers in tests.
enum ScrapeSupport {
    /// Collects batches from the scraper's targets.
    actor Collector {
        private(set) var batches: [ScrapeBatch] = []
        func add(_ batch: ScrapeBatch) { batches.append(batch) }
    }

    /// Runs `rounds` rounds of every target of `yaml` (first at once, then every interval).
    static func scrape(
        _ yaml: String,
        rounds: Int,
        recordTo path: String? = nil,
        afterEach: @escaping @Sendable (ScrapeBatch) async -> Void = { _ in }
    ) async throws -> [ScrapeBatch] {
        let configuration = try Configuration.parse(yaml, file: "test.yml")
        let recorder = try path.map { path throws(RecordingError) in try Recorder(path: path) }
        let scraper = Scraper(configuration: configuration, recorder: recorder, logger: TestSupport.quietLogger)
        let collector = Collector()
        try await scraper.run(rounds: rounds, immediately: true) { batch in
            await collector.add(batch)
            await afterEach(batch)
        }
        try await recorder?.close()
        return await collector.batches
    }

    /// The one sample of `batch` named `name` whose labels include `labels`.
    static func sample(_ samples: [Sample], _ name: String, _ labels: [String: String] = [:]) -> Sample? {
        let matching = samples.filter { s in
            s.labels.metricName == name && labels.allSatisfy { s.labels[$0.key] == $0.value }
        }
        return matching.count == 1 ? matching[0] : nil
    }
}

/// Plain NATS connections opened with a socket each (CONNECT and PING, nothing more), to have
/// hundreds of connections on a server cheaply.
final class RawConnections: @unchecked Sendable {
    private var sockets: [Int32] = []

    init(port: Int, count: Int, name: (Int) -> String) throws {
        for k in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw TestError("socket failed") }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard connected == 0 else {
                close(fd)
                throw TestError("connect failed")
            }
            sockets.append(fd)
            let line =
                "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"\(name(k))\",\"lang\":\"raw\"}\r\nPING\r\n"
            _ = line.withCString { send(fd, $0, strlen($0), 0) }
        }
    }

    func closeAll() {
        for fd in sockets { close(fd) }
        sockets = []
    }

    deinit { closeAll() }
}
