import AsyncHTTPClient
import FlatlineAlerting
import FlatlineConfig
import FlatlineCore
import FlatlineNATS
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Alerts pushed to one Alertmanager's `POST /api/v2/alerts`, the way Prometheus pushes them:
/// the JSON array of alerts with their `startsAt`, firing ones with an `endsAt` ahead (so an
/// Alertmanager that stops hearing from Flatline resolves them), resolved ones with their real
/// `endsAt`. Each listed Alertmanager is its own integration: HA peers do not share alerts.
public final class AlertmanagerIntegration: Integration {
    public let id: String
    public let baseURL: String
    public let settings: AlertmanagerPushSettings
    private let client: HTTPClient
    private let authorizer: RequestAuthorizer

    public init(id: String, baseURL: String, settings: AlertmanagerPushSettings) throws(TLSFilesError) {
        self.id = id
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.settings = settings
        var configuration = HTTPClient.Configuration()
        // One attempt per attempt: the courier retries on its own backoff.
        configuration.connectionPool.retryConnectionEstablishment = false
        if let tls = settings.tls { configuration.tlsConfiguration = try HTTPClientSupport.tlsConfiguration(tls) }
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        authorizer = RequestAuthorizer(settings.authorization)
    }

    public var sendResolved: Bool { true }

    public func shutdown() async { try? await client.shutdown() }

    public func deliver(_ item: OutboxItem) async -> DeliveryOutcome {
        var request = HTTPClientRequest(url: baseURL + "/api/v2/alerts")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "Flatline")
        let timeout = Duration.clamped(seconds: settings.timeout)
        do {
            try await authorizer.authorize(&request, client: client, timeout: timeout)
        } catch {
            return .retry(reason: error.reason, after: nil)
        }
        return await WebhookIntegration.post(request, body: item.body, client: client, timeout: settings.timeout)
    }

    /// The body Alertmanager's API takes for a notification's alerts; firing alerts end at
    /// `time + hold` unless told again.
    public static func body(_ notification: GroupNotification, externalURL: String, hold: Double) -> Data {
        struct PostableAlert: Encodable {
            var labels: [String: String]
            var annotations: [String: String]
            var startsAt: String
            var endsAt: String
            var generatorURL: String
        }
        let base = externalURL.hasSuffix("/") ? String(externalURL.dropLast()) : externalURL
        let alerts = notification.alerts.map { alert in
            PostableAlert(
                labels: alert.labels,
                annotations: alert.annotations,
                startsAt: (alert.firedAt ?? alert.activeSince).description,
                endsAt: alert.state == .firing
                    ? notification.time.advanced(bySeconds: hold).description
                    : (alert.resolvedAt ?? alert.lastSeen).description,
                generatorURL: base + "/#alert-" + alert.fingerprint.description
            )
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(alerts)) ?? Data("[]".utf8)
    }
}

/// The webhook payload published to a NATS subject; delivered once the server has it (a flush
/// after the publish returned).
public final class NATSIntegration: Integration {
    public let id: String
    public let settings: NATSReceiverSettings
    private let client: NATSClient
    private let runner = Mutex<Task<Void, Never>?>(nil)
    private let logger: Logger

    public init(id: String, settings: NATSReceiverSettings, logger: Logger) throws(NATSError) {
        self.id = id
        self.settings = settings
        self.logger = logger
        var configuration = try NATSClientConfiguration(urls: [settings.url], name: "flatline-notify")
        configuration.maxReconnectAttempts = nil
        client = NATSClient(configuration: configuration, logger: logger)
    }

    public var sendResolved: Bool { settings.sendResolved }

    private func start() {
        runner.withLock { task in
            guard task == nil else { return }
            let client = self.client
            let logger = self.logger
            let id = self.id
            task = Task {
                do {
                    try await client.run()
                } catch {
                    logger.error(
                        "NATS receiver connection ended",
                        metadata: ["integration": "\(id)", "error": "\(error)"]
                    )
                }
            }
        }
    }

    public func shutdown() async {
        client.close()
        let task = runner.withLock { $0 }
        await task?.value
    }

    public func deliver(_ item: OutboxItem) async -> DeliveryOutcome {
        start()
        do {
            try await client.waitUntilConnected(timeout: .seconds(5))
            try await client.publish(item.body, to: settings.subject)
            try await client.flush(timeout: .seconds(5))
            return .delivered
        } catch {
            return .retry(reason: "NATS \(settings.url): \(error)", after: nil)
        }
    }
}
