import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL
import ServiceLifecycle
import Synchronization

/// A Hummingbird server on 127.0.0.1 (plain or TLS) for the length of `body`.
public enum TestHTTPServer {
    public static func run<T: Sendable>(
        _ router: Router<BasicRequestContext>,
        tls: TLSConfiguration? = nil,
        _ body: @Sendable (Int) async throws -> T
    ) async throws -> T {
        let port = Mutex<Int?>(nil)
        let server: HTTPServerBuilder = try tls.map { try .tls(.http1(), tlsConfiguration: $0) } ?? .http1()
        let app = Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } },
            logger: TestSupport.quietLogger
        )
        return try await withThrowingTaskGroup(of: Void.self) { group in
            let serviceGroup = ServiceGroup(
                configuration: .init(services: [app], gracefulShutdownSignals: [], logger: TestSupport.quietLogger)
            )
            group.addTask { try await serviceGroup.run() }
            defer { group.cancelAll() }
            let deadline = ContinuousClock.now + .seconds(10)
            while port.withLock({ $0 }) == nil {
                guard ContinuousClock.now < deadline else { throw TestError("the test HTTP server did not start") }
                try await Task.sleep(for: .milliseconds(10))
            }
            let result = try await body(port.withLock { $0 } ?? 0)
            await serviceGroup.triggerGracefulShutdown()
            return result
        }
    }
}
