import FlatlineNATS
import Logging

extension TestSupport {
    /// A logger that discards everything, for tests that do not look at logs.
    public static var quietLogger: Logger { Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }) }

    /// Runs `body` with a connected client whose ``NATSClient/run()`` runs beside it; closes the
    /// client and waits for `run()` to return afterwards, whatever `body` does.
    public static func withNATSClient<T: Sendable>(
        _ url: String,
        name: String = "flatline-test",
        configure: (inout NATSClientConfiguration) -> Void = { _ in },
        _ body: (NATSClient) async throws -> T
    ) async throws -> T {
        var configuration = try NATSClientConfiguration(urls: [url], name: name)
        configure(&configuration)
        let client = NATSClient(configuration: configuration, logger: quietLogger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.run() }
            do {
                try await client.waitUntilConnected()
                let result = try await body(client)
                client.close()
                try await group.waitForAll()
                return result
            } catch {
                client.close()
                group.cancelAll()
                try? await group.waitForAll()
                throw error
            }
        }
    }
}
