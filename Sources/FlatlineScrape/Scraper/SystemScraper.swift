import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import FlatlineNATS
import Foundation
import Logging
import Synchronization

extension NATSEndpoint {
    /// The system-account request for the endpoint, when servers answer one.
    var systemEndpoint: SystemRequests.Endpoint? {
        switch self {
        case .varz: .varz
        case .connz: .connz
        case .jsz: .jsz
        case .healthz: .healthz
        case .subsz: .subsz
        case .routez: .routez
        case .leafz: .leafz
        case .gatewayz: .gatewayz
        case .accountz: .accountz
        case .accstatz, .connzClosed: nil
        }
    }
}

/// The servers a system-account job knows and what each keeps between rounds, shared by the
/// job's scraper and its ``SystemEventWatcher``: a disconnect event counts on the same
/// extractor the scrapes do, so neither counts a cut-off the other did.
final class SystemServers: Sendable {
    let states = Mutex<[String: TargetState]>([:])
}

/// Scrapes a whole cluster through the system account, as NATS Surveyor does: one
/// `$SYS.REQ.SERVER.PING.<ENDPOINT>` request per endpoint, one reply per server. Each server is
/// a target of its own (`instance` is its name), with the same extraction, validation and
/// recording as a server scraped over HTTP; later `/connz` pages go to the one server that has
/// more (`$SYS.REQ.SERVER.<id>.CONNZ`).
///
/// In a cluster of Flatline replicas each server is a unit of its own (`<job>/<server name>`):
/// every replica asks, and each takes only the replies of the servers it owns (`owns`), the others
/// unread; the failure of the whole job (nobody answers) is told by the owner of the job's unit.
struct SystemScraper {
    let job: ScrapeConfiguration
    let global: GlobalSettings
    let recorder: Recorder?
    let logger: Logger
    private var client: NATSClient?
    private var runner: Task<Void, any Error>?
    /// Every server's state, shared with the job's ``SystemEventWatcher``.
    let servers: SystemServers
    /// When each server last answered: servers silent for `stale_after` are forgotten.
    private var lastReply: [String: Timestamp] = [:]
    /// Replies from servers past ``maxServers``, ignored so far (a rogue `$SYS` responder
    /// inventing names cannot grow the daemon without bound).
    private(set) var ignoredReplies = 0
    /// The most servers one job tracks.
    static let maxServers = 1000
    private var failures = FailureLog()
    /// Whether this process evaluates a unit (a server's, or the job's); `nil`: every one.
    let owns: (@Sendable (String) -> Bool)?
    /// Called before the first round of a server this process now owns (a takeover).
    let taking: (@Sendable (String) async -> Void)?
    /// Told each round every server that answered, owned here or not.
    let discovered: (@Sendable (_ job: String, _ servers: [DiscoveredUnit]) -> Void)?
    /// Called for a server scraped here that another process owns now.
    let released: (@Sendable (_ unit: String, _ labels: [String: String]) async -> Void)?

    init(
        job: ScrapeConfiguration,
        global: GlobalSettings,
        recorder: Recorder?,
        servers: SystemServers = SystemServers(),
        owns: (@Sendable (String) -> Bool)? = nil,
        taking: (@Sendable (String) async -> Void)? = nil,
        discovered: (@Sendable (_ job: String, _ servers: [DiscoveredUnit]) -> Void)? = nil,
        released: (@Sendable (_ unit: String, _ labels: [String: String]) async -> Void)? = nil,
        logger: Logger
    ) {
        self.job = job
        self.released = released
        self.owns = owns
        self.taking = taking
        self.discovered = discovered
        self.servers = servers
        self.global = global
        self.recorder = recorder
        var logger = logger
        logger[metadataKey: "job"] = "\(job.jobName)"
        self.logger = logger
    }

    /// The unit of one server of the cluster: its target's name.
    func unit(ofServer name: String) -> String { "\(job.jobName)/\(Redaction.redactingUserinfo(name))" }

    /// The unit of the job as a whole (its first target's name): its owner tells the job's failure.
    var jobUnit: String { job.targets.first.map { "\(job.jobName)/\(Redaction.redactingUserinfo($0.address))" } ?? "" }

    /// A target for one server of the cluster.
    func target(named name: String) -> ScrapeTarget {
        var labels = global.externalLabels
        labels["job"] = job.jobName
        labels["instance"] = Redaction.redactingUserinfo(name)
        for target in job.targets { labels.merge(target.labels) { _, own in own } }
        return ScrapeTarget(job: job, address: Redaction.redactingUserinfo(name), labels: labels)
    }

    /// Connects on first use.
    private mutating func connected() async throws(ScrapeError) -> NATSClient {
        if let client, client.isConnected { return client }
        if let client { return client }
        let configuration = try Self.clientConfiguration(job, name: "flatline-\(job.jobName)")
        let client = NATSClient(configuration: configuration, logger: logger)
        self.client = client
        runner = Task { try await client.run() }
        do {
            try await client.waitUntilConnected(timeout: Duration.clamped(seconds: job.scrapeTimeout))
        } catch {
            throw ScrapeError(
                reason: "cannot connect to \(job.targets.map(\.address).joined(separator: ",")): \(error)"
            )
        }
        return client
    }

    /// The connection settings of a job: its servers, credentials and TLS.
    static func clientConfiguration(_ job: ScrapeConfiguration, name: String) throws(ScrapeError)
        -> NATSClientConfiguration
    {
        var connection = NATSConnectionSettings(urls: job.targets.map(\.address))
        connection.credentials = job.system
        connection.tls = job.tls
        return try connection.clientConfiguration(name: name)
    }

    mutating func close() async {
        client?.close()
        _ = try? await runner?.value
        client = nil
        runner = nil
    }

    /// The options object of an endpoint's request.
    func options(_ endpoint: NATSEndpoint, offset: Int) -> [String: any Sendable] {
        let settings = job.nats
        switch endpoint {
        case .connz:
            return ["subscriptions": settings.connzSubscriptions, "offset": offset, "limit": settings.pageLimit]
        case .jsz:
            return [
                "accounts": true, "streams": true, "consumers": settings.jszConsumers, "config": settings.jszConfig,
                "offset": offset, "limit": settings.pageLimit,
            ]
        default:
            return [:]
        }
    }

    /// One round: every endpoint from every server; one batch per server.
    mutating func scrape() async -> [ScrapeBatch] {
        let clock = ContinuousClock()
        let started = clock.now
        let time = Timestamp.now
        var samples: [String: [Sample]] = [:]
        var errors: [String: [String: String]] = [:]
        var seen = Set<String>()
        // Servers that answered but are evaluated by other replicas.
        var elsewhere = Set<String>()
        var answered: [String: DiscoveredUnit] = [:]
        let timeout = Duration.clamped(seconds: job.system.timeout)
        do {
            let client = try await connected()
            for endpoint in job.nats.endpoints {
                guard let request = endpoint.systemEndpoint else { continue }
                let replies: [SystemRequests.Reply]
                do {
                    replies = try await SystemRequests.ping(
                        client,
                        request,
                        options: options(endpoint, offset: 0),
                        timeout: timeout,
                        expectedServers: job.system.expectedServers
                    )
                } catch {
                    errors["", default: [:]][endpoint.rawValue] = "\(error)"
                    continue
                }
                for reply in replies {
                    let name = reply.server.name
                    let unit = unit(ofServer: name)
                    if answered.count < Self.maxServers {
                        answered[name] = DiscoveredUnit(name: unit, job: job.jobName, instance: name)
                    }
                    if let owns, !owns(unit) {
                        elsewhere.insert(name)
                        continue
                    }
                    var known = servers.states.withLock { $0[name]?.target }
                    if known == nil {
                        // A server first evaluated here: what was shared of it first.
                        if let taking { await taking(unit) }
                        // A server first heard from (only this task adds servers).
                        let fresh = target(named: name)
                        known = servers.states.withLock { states in
                            guard states.count < Self.maxServers else { return nil }
                            states[name] = TargetState(target: fresh, global: global)
                            return fresh
                        }
                    }
                    guard let target = known else {
                        ignoredReplies += 1
                        errors["", default: [:]]["servers"] =
                            "more than \(Self.maxServers) servers answered; \(ignoredReplies) replies ignored"
                        continue
                    }
                    seen.insert(name)
                    lastReply[name] = time
                    guard let data = reply.data else {
                        let reason = reply.error ?? "no data"
                        errors[name, default: [:]][endpoint.rawValue] = reason
                        await recorder?.error(time, target, endpoint.rawValue, reason)
                        continue
                    }
                    do {
                        let pages = try await self.pages(
                            endpoint,
                            first: [UInt8](data),
                            server: reply.server,
                            client: client
                        )
                        for (k, page) in pages.enumerated() {
                            await recorder?.json(time, target, endpoint.rawValue, page: k + 1, page)
                        }
                        let bodies = pages.map { JSONPage(document: $0) }
                        samples[name, default: []] += try servers.states.withLock {
                            (states) throws(ExtractionError) -> [Sample] in
                            try states[name]?.extractor.samples(endpoint, pages: bodies, scrapeTime: time) ?? []
                        }
                    } catch let error as ExtractionError {
                        errors[name, default: [:]][endpoint.rawValue] = error.description
                    } catch {
                        errors[name, default: [:]][endpoint.rawValue] = "\(error)"
                    }
                }
            }
        } catch {
            errors["", default: [:]]["connect"] = error.reason
        }
        // Servers silent for stale_after are gone (removed from the cluster, or names a rogue
        // responder made up); the others that did not answer this round are down (or cut off).
        let cutoff = time.advanced(bySeconds: -global.staleAfter)
        // Servers now evaluated elsewhere are forgotten here at once.
        let gone = lastReply.filter { $0.value < cutoff || elsewhere.contains($0.key) }.keys
        for name in gone { lastReply[name] = nil }
        let (names, moved) = servers.states.withLock { states -> ([String], [ScrapeTarget]) in
            var moved: [ScrapeTarget] = []
            for name in gone {
                if elsewhere.contains(name), let target = states[name]?.target { moved.append(target) }
                states[name] = nil
            }
            return (states.keys.sorted(), moved)
        }
        if let released {
            for target in moved { await released(target.name, target.labels) }
        }
        for name in names where !seen.contains(name) {
            errors[name, default: [:]]["reply"] = "no reply within \(job.system.timeout) s"
        }
        let duration = (clock.now - started).seconds
        var batches: [ScrapeBatch] = []
        for name in names {
            // A failure of the whole request (the connection) is every server's failure.
            let serverErrors = (errors[name] ?? [:]).merging(errors[""] ?? [:]) { own, _ in own }
            let closed = servers.states.withLock { states -> (ScrapeTarget, ScrapeBatch)? in
                guard var state = states[name] else { return nil }
                let batch = state.close(
                    samples: samples[name] ?? [],
                    errors: serverErrors,
                    time: time,
                    durationSeconds: duration
                )
                states[name] = state
                return (state.target, batch)
            }
            guard let (target, batch) = closed else { continue }
            await recorder?.health(time, target, batch.health)
            batches.append(batch)
        }
        if !answered.isEmpty { discovered?(job.jobName, answered.values.sorted { $0.name < $1.name }) }
        if batches.isEmpty, let failure = errors[""], owns?(jobUnit) ?? true {
            // Nobody answered at all: one batch for the job, so the failure is seen.
            let target = target(named: job.targets.map(\.address).joined(separator: ","))
            let health = ScrapeHealth(up: false, durationSeconds: duration, samplesScraped: 0, samplesDropped: 0)
            let extractor = TargetExtractor(kind: .natsSystem, targetLabels: target.labels)
            batches.append(
                ScrapeBatch(
                    target: target.name,
                    labels: target.labels,
                    time: time,
                    samples: extractor.healthSamples(health, drops: DropCounts(), at: time),
                    health: health,
                    errors: failure,
                    drops: DropCounts()
                )
            )
        }
        var flat: [String: String] = [:]
        for (server, endpoints) in errors {
            for (endpoint, reason) in endpoints { flat[server.isEmpty ? endpoint : "\(server) \(endpoint)"] = reason }
        }
        failures.update(flat, logger: logger)
        return batches
    }

    /// The first page and, for a paged endpoint with more, the rest from that one server.
    private func pages(
        _ endpoint: NATSEndpoint,
        first: [UInt8],
        server: SystemRequests.Server,
        client: NATSClient
    ) async throws -> [JSONDocument] {
        var documents = [try JSONDocument(parsing: first)]
        guard endpoint.isPaged, let request = endpoint.systemEndpoint else { return documents }
        var offset = 0
        for _ in 1..<1000 {
            guard let last = documents.last else { break }
            let page = JSONPage(document: last)
            guard let items = endpoint.pageCount(page), items > 0, let total = try endpoint.pageTotal(page) else {
                break
            }
            offset += items
            guard offset < total else { break }
            let body = try JSONSerialization.data(withJSONObject: options(endpoint, offset: offset))
            let subject = "$SYS.REQ.SERVER.\(server.id).\(request.rawValue)"
            let message = try await client.request(
                [UInt8](body),
                to: subject,
                timeout: Duration.clamped(seconds: job.system.timeout)
            )
            let reply = SystemRequests.parse(message)
            guard let data = reply.data else { throw ScrapeError(reason: reply.error ?? "no data") }
            documents.append(try JSONDocument(parsing: [UInt8](data)))
        }
        return documents
    }
}

/// A unit of scraping found while scraping: a server of a `nats_system` job.
public struct DiscoveredUnit: Sendable, Hashable {
    /// The unit's name (its target's: `<job>/<server name>`).
    public var name: String
    public var job: String
    /// Its `instance` label.
    public var instance: String

    public init(name: String, job: String, instance: String) {
        self.name = name
        self.job = job
        self.instance = instance
    }
}

extension NATSConnectionSettings {
    /// The text of a secret file, its failure said as a scrape's.
    private static func secret(_ path: String) throws(ScrapeError) -> String {
        do {
            return try FileSecret(path: path).value()
        } catch {
            throw ScrapeError(reason: error.reason)
        }
    }

    /// The client's settings: the servers (`nats://` added to a bare `host:port`), the
    /// credentials read from their files, and TLS.
    /// - Throws: ``ScrapeError`` for an address or a credentials file that cannot be used.
    public func clientConfiguration(name: String) throws(ScrapeError) -> NATSClientConfiguration {
        var configuration: NATSClientConfiguration
        do {
            configuration = try NATSClientConfiguration(
                urls: urls.map { $0.contains("://") ? $0 : "nats://" + $0 },
                name: name
            )
        } catch {
            throw ScrapeError(reason: "\(error)")
        }
        if let user = credentials.user, let passwordFile = credentials.passwordFile {
            configuration.authentication = .userPassword(
                user: user,
                password: try Self.secret(passwordFile)
            )
        } else if let tokenFile = credentials.tokenFile {
            configuration.authentication = .token(try Self.secret(tokenFile))
        } else if let path = credentials.credentialsFile {
            configuration.authentication = .credentials(path: path)
        } else if let seedFile = credentials.nkeySeedFile {
            configuration.authentication = .nkey(seed: try Self.secret(seedFile))
        }
        if let tls {
            configuration.tls = NATSTLSOptions(
                caFile: tls.caFile,
                certificateFile: tls.certFile,
                keyFile: tls.keyFile,
                serverName: tls.serverName,
                insecureSkipVerify: tls.insecureSkipVerify
            )
        }
        return configuration
    }
}
