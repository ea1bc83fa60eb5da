import AsyncHTTPClient
import Crypto
import FlatlineConfig
import FlatlineCore
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// What became of one delivery attempt.
public enum DeliveryOutcome: Sendable, Hashable {
    /// Accepted (a 2xx): the notification leaves the outbox.
    case delivered
    /// Worth trying again (5xx, 429, a connection error, a timeout); `after` is the delay the
    /// receiver asked for (`Retry-After`), if any.
    case retry(reason: String, after: Double?)
    /// Refused for good (another 4xx): recorded with the response, not retried.
    case rejected(reason: String)
}

/// One destination of a receiver: a webhook URL, a file, a subject.
public protocol Integration: Sendable {
    /// Its queue in the outbox: `<receiver>/<kind>/<index>`.
    var id: String { get }
    /// Whether it wants resolved alerts.
    var sendResolved: Bool { get }
    /// Delivers one notification's body.
    func deliver(_ item: OutboxItem) async -> DeliveryOutcome
    /// Releases its connections.
    func shutdown() async
}

/// Alertmanager's webhook: the payload POSTed as JSON, with the integration's headers and
/// credentials, an `Idempotency-Key` that is the same for every attempt of one notification,
/// and, with a secret, `X-Flatline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
/// "<t>.<body>">`.
public final class WebhookIntegration: Integration {
    public let id: String
    public let settings: WebhookSettings
    private let client: HTTPClient
    private let authorizer: RequestAuthorizer
    private let secret: FileSecret?
    let userAgent: String

    /// - Throws: ``TLSFilesError`` when the TLS files cannot be loaded.
    public init(id: String, settings: WebhookSettings, userAgent: String = "Flatline") throws(TLSFilesError) {
        self.id = id
        self.settings = settings
        self.userAgent = userAgent
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        // Groups are delivered side by side: enough connections for a burst of them.
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 32
        // An attempt is one attempt: the courier retries on its own backoff. (The client's own
        // retries held a refused attempt until the webhook's timeout, ~10 s, whatever the backoff.)
        configuration.connectionPool.retryConnectionEstablishment = false
        if let tls = settings.tls { configuration.tlsConfiguration = try HTTPClientSupport.tlsConfiguration(tls) }
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        authorizer = RequestAuthorizer(settings.authorization)
        secret = settings.signatureSecretFile.map(FileSecret.init)
    }

    public var sendResolved: Bool { settings.sendResolved }

    public func shutdown() async { try? await client.shutdown() }

    /// The signature header's value for `body` at unix time `time`.
    public static func signature(body: Data, secret: String, time: Int64) -> String {
        var message = Data("\(time).".utf8)
        message.append(body)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Data(secret.utf8)))
        return "t=\(time),v1=" + hexadecimal(mac)
    }

    public func deliver(_ item: OutboxItem) async -> DeliveryOutcome {
        var request = HTTPClientRequest(url: settings.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: userAgent)
        request.headers.add(name: "Idempotency-Key", value: item.idempotencyKey)
        for (name, value) in settings.headers.sorted(by: { $0.key < $1.key }) {
            request.headers.replaceOrAdd(name: name, value: value)
        }
        let timeout = Duration.clamped(seconds: settings.timeout)
        do {
            if let secret {
                let now = Int64(Date().timeIntervalSince1970)
                request.headers.add(
                    name: "X-Flatline-Signature",
                    value: Self.signature(body: item.body, secret: try secret.value(), time: now)
                )
            }
            try await authorizer.authorize(&request, client: client, timeout: timeout)
        } catch {
            // A secret file that cannot be read may be fixed without a restart: try again.
            return .retry(reason: error.reason, after: nil)
        }
        return await Self.post(request, body: item.body, client: client, timeout: settings.timeout)
    }

    /// POSTs `body` and classifies the answer (or the failure to get one).
    static func post(_ request: HTTPClientRequest, body: Data, client: HTTPClient, timeout: Double) async
        -> DeliveryOutcome
    {
        var request = request
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            // One deadline over the request and the answer's body: a receiver that answers its
            // headers and then stalls holds this attempt (and its group) no longer than `timeout`.
            let sent = request
            let deadline = ContinuousClock.now + Duration.clamped(seconds: timeout) + .milliseconds(250)
            let (response, body) = try await withDeadline(deadline) {
                let response = try await client.execute(sent, timeout: .nanoseconds(Int64(saturating: timeout * 1e9)))
                return (response, try await response.body.collect(upTo: 1 << 20))
            }
            var answer = body
            let status = Int(response.status.code)
            let text = (answer.readString(length: min(answer.readableBytes, 300)) ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            return classify(
                status: status,
                retryAfter: response.headers.first(name: "Retry-After"),
                detail: "HTTP \(status)" + (text.isEmpty ? "" : ": " + text)
            )
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            return .retry(reason: "timed out after \(timeout) s", after: nil)
        } catch is DeadlineExceeded {
            return .retry(reason: "timed out after \(timeout) s (the answer's body did not arrive in time)", after: nil)
        } catch {
            return .retry(reason: HTTPClientSupport.describe(error), after: nil)
        }
    }

    /// 2xx delivered; 429 and 5xx (and 408) retried, honouring `Retry-After`; other statuses
    /// rejected.
    static func classify(status: Int, retryAfter: String?, detail: String) -> DeliveryOutcome {
        switch status {
        case 200..<300: return .delivered
        case 429, 408, 500..<600: return .retry(reason: detail, after: retryAfter.flatMap(Self.retryAfter))
        default: return .rejected(reason: detail)
        }
    }

    /// `Retry-After` in seconds: a number of seconds, or an HTTP date.
    static func retryAfter(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let seconds = Double(trimmed), seconds >= 0, seconds.isFinite { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: trimmed) else { return nil }
        return max(0, date.timeIntervalSinceNow)
    }
}

/// NDJSON lines appended to a file, or written to standard output (`-`): for pipelines and
/// for reading along.
public final class FileIntegration: Integration {
    public let id: String
    public let settings: FileReceiverSettings
    /// One line at a time: groups are delivered side by side, lines must not interleave.
    private let writing = Mutex(())

    public init(id: String, settings: FileReceiverSettings) {
        self.id = id
        self.settings = settings
    }

    public var sendResolved: Bool { settings.sendResolved }

    public func shutdown() async {}

    public func deliver(_ item: OutboxItem) async -> DeliveryOutcome {
        var line = item.body
        if line.last != 0x0A { line.append(0x0A) }
        return writing.withLock { _ in append(line) }
    }

    private func append(_ line: Data) -> DeliveryOutcome {
        if settings.path == "-" {
            FileHandle.standardOutput.write(line)
            return .delivered
        }
        if !FileManager.default.fileExists(atPath: settings.path) {
            guard FileManager.default.createFile(atPath: settings.path, contents: nil) else {
                return .retry(reason: "cannot create \(settings.path)", after: nil)
            }
        }
        do {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: settings.path))
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: line)
            return .delivered
        } catch {
            return .retry(reason: "cannot append to \(settings.path): \(error.localizedDescription)", after: nil)
        }
    }
}

/// Lowercase hexadecimal, two digits a byte.
func hexadecimal(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { byte in
        let hex = String(byte, radix: 16)
        return byte < 16 ? "0" + hex : hex
    }.joined()
}
