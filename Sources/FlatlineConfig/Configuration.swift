import FlatlineCore
import FlatlineIngest
import FlatlineYAML
import Foundation
import Yams

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Flatline's configuration: what to scrape and how, shaped like `prometheus.yml`.
public struct Configuration: Sendable {
    public var global: GlobalSettings
    public var scrapeConfigs: [ScrapeConfiguration]
    /// `route`, `receivers`, `inhibit_rules`; `nil` when the file has no route.
    public var alerting: AlertingSettings?
    /// `web`: the daemon's HTTP API.
    public var web = WebSettings()
    /// `detector`: the detector the daemon runs over every target's series.
    public var detector = DetectorConfiguration()
    /// `backfill`: history from Prometheus for targets that start cold; `nil`: none.
    public var backfill: BackfillSettings?
    /// `cluster`: replicas that share the targets through NATS JetStream; `nil`: this process
    /// runs alone.
    public var cluster: ClusterSettings?
    /// The file it was read from.
    public var file: String
    /// Every file it names (the keys ending in `_file`, and the files file receivers write), with
    /// the key and line that name it, in the order they are written: what `flatline check` checks.
    public var fileReferences: [FileReference] = []

    package init(
        global: GlobalSettings,
        scrapeConfigs: [ScrapeConfiguration],
        alerting: AlertingSettings?,
        file: String
    ) {
        self.global = global
        self.scrapeConfigs = scrapeConfigs
        self.alerting = alerting
        self.file = file
    }

    /// Every target of every job.
    public var targets: [ScrapeTarget] {
        scrapeConfigs.flatMap { job in
            job.targets.map { target in
                var labels = global.externalLabels
                labels["job"] = job.jobName
                labels["instance"] = target.address
                labels.merge(target.labels) { _, own in own }
                return ScrapeTarget(job: job, address: target.address, labels: labels)
            }
        }
    }
}

/// `backfill`: on a cold start (no saved state for a target), the target's history is read from a
/// Prometheus server that scraped it and fed through the pipeline before the first scrape, so the
/// detectors' seasons and the models' baselines are learned from the first minute.
public struct BackfillSettings: Sendable, Hashable {
    /// The Prometheus server, e.g. `http://prometheus:9090`.
    public var url: String
    /// How far back to read.
    public var lookback: Double = 7 * 86_400
    /// `Authorization: Bearer` with this file's token.
    public var bearerTokenFile: String?
    /// Seconds each request to Prometheus may take.
    public var timeout: Double = 120
    /// How a `nats` target's history is found among prometheus-nats-exporter's series.
    public var natsExporter = NATSExporterSettings()

    public init(url: String) {
        self.url = url
    }
}

/// `backfill.nats_exporter`: how the prometheus-nats-exporter that Prometheus scraped was run.
public struct NATSExporterSettings: Sendable, Hashable {
    /// The exporter's `-prefix`: its metric names start with it instead of `gnatsd` (core) and
    /// `jetstream` (JetStream); `nil`: its default names.
    public var prefix: String?
    /// The PromQL selector of one server's series, `$address` and `$host` standing for the
    /// target's `host:port` and host; `nil`: by the exporter's default `server_id` label (the
    /// monitoring URL it was given).
    public var selector: String?

    public init(prefix: String? = nil, selector: String? = nil) {
        self.prefix = prefix
        self.selector = selector
    }
}

/// `cluster`: several Flatline processes with one configuration share its targets. Each replica
/// registers in a JetStream key-value bucket on the coordinating NATS and renews its entry; the
/// targets are spread over the live replicas by rendezvous hashing, each evaluated by
/// `replicasPerShard` of them.
public struct ClusterSettings: Sendable, Hashable {
    /// The prefix of the buckets and streams Flatline keeps on the coordinating NATS.
    public var name = "flatline"
    /// This replica's name, unique in the cluster (by default the host's name).
    public var replica: String
    /// The coordinating NATS.
    public var nats: NATSConnectionSettings
    /// Seconds a replica stays a member without renewing its entry.
    public var lease = 10.0
    /// How many replicas evaluate each target: 2 or more is high availability, 1 is sharding only.
    public var replicasPerShard = 2

    public init(replica: String, nats: NATSConnectionSettings) {
        self.replica = replica
        self.nats = nats
    }

    /// The host's name as a replica name: up to the first dot, letters, digits, `-` and `_`.
    public static var defaultReplica: String {
        var buffer = [CChar](repeating: 0, count: 256)
        let bytes = gethostname(&buffer, 255) == 0 ? buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) } : []
        let name = String(decoding: bytes, as: UTF8.self).prefix { $0 != "." }
        let cleaned = String(name.map { isNameCharacter($0) ? $0 : "-" }.prefix(64))
        return cleaned.isEmpty ? "flatline" : cleaned
    }

    /// `[A-Za-z0-9_-]`: what a bucket, a stream and a key token may all hold.
    public static func isValidName(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 48 && text.allSatisfy(isNameCharacter)
    }

    private static func isNameCharacter(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_")
    }
}

/// A connection to NATS: its servers, credentials and TLS.
public struct NATSConnectionSettings: Sendable, Hashable {
    /// `nats://host:port`, `tls://host:port` or `host:port`; several for a cluster.
    public var urls: [String]
    public var credentials = NATSSystemSettings()
    public var tls: TLSSettings?

    public init(urls: [String]) {
        self.urls = urls
    }
}

/// A file a configuration names: its key's path (`receivers[0].webhook_configs[0].http_config.
/// tls_config.ca_file`), the line, and the path as the daemon opens it.
public struct FileReference: Sendable, Hashable {
    public var key: String
    public var line: Int
    public var path: String
    /// A file the daemon writes (a file receiver's `path`), not one it reads.
    public var written = false

    /// Why the file cannot be used now (`config.yml:12: web.auth.bearer_token_file: "/etc/t"
    /// does not exist`), nil when it can be read (or, written, created or appended to).
    public func problem(in configurationFile: String) -> String? {
        let why: String
        switch written ? FileAccess.writeProblem(path, replaced: false) : FileAccess.readProblem(path) {
        case nil: return nil
        case .missing: why = "does not exist"
        case .directory: why = "is a directory"
        case .unreadable: why = "cannot be read (permissions)"
        case .unwritable: why = "cannot be written (permissions)"
        case .noDirectory(let directory): why = "cannot be created: its directory \(directory) does not exist"
        case .directoryUnwritable(let directory):
            why = "cannot be created: its directory \(directory) cannot be written (permissions)"
        }
        return ConfigError(file: configurationFile, line: line, key: key, reason: "\"\(path)\" \(why)").description
    }
}

/// The daemon's HTTP API: optional bearer-token authentication and TLS.
public struct WebSettings: Sendable, Hashable {
    /// A file holding the token every API request must bear (`Authorization: Bearer ...`),
    /// read at each request so it can be rotated in place; `nil`: no authentication.
    public var bearerTokenFile: String?
    /// Paths open without the token (health checks and Prometheus' scrapes).
    public var openPaths: [String] = ["/metrics", "/healthz", "/readyz", "/-/healthy", "/-/ready"]
    /// HTTPS instead of HTTP; read when the daemon starts.
    public var tls: WebTLSSettings?

    public init() {}
}

/// `web.tls_config`: the server's certificate and, optionally, client certificates, with the
/// keys of Prometheus' web configuration (`tls_server_config`).
public struct WebTLSSettings: Sendable, Hashable {
    /// Whether and how clients present certificates (Go's `tls.ClientAuthType` names).
    public enum ClientAuth: String, Sendable, Hashable, CaseIterable {
        case none = "NoClientCert"
        case verifyIfGiven = "VerifyClientCertIfGiven"
        case require = "RequireAndVerifyClientCert"
    }

    public var certFile: String
    public var keyFile: String
    /// The authorities client certificates must be signed by.
    public var clientCAFile: String?
    public var clientAuth: ClientAuth
    /// `TLS12` or `TLS13`.
    public var minVersion: String

    public init(
        certFile: String,
        keyFile: String,
        clientCAFile: String? = nil,
        clientAuth: ClientAuth? = nil,
        minVersion: String = "TLS12"
    ) {
        self.certFile = certFile
        self.keyFile = keyFile
        self.clientCAFile = clientCAFile
        self.clientAuth = clientAuth ?? (clientCAFile == nil ? .none : .require)
        self.minVersion = minVersion
    }
}

/// Defaults for every job, and the validation settings.
public struct GlobalSettings: Sendable, Hashable {
    /// Seconds between two scrapes of a target.
    public var scrapeInterval = 15.0
    /// Seconds a scrape may take.
    public var scrapeTimeout = 10.0
    /// Samples stamped more than this many seconds ahead of the local clock are dropped
    /// (`too_far_in_future`).
    public var futureTolerance = 300.0
    /// Series not seen for this many seconds leave the store (connections come and go).
    public var staleAfter = 600.0
    /// Labels added to every series.
    public var externalLabels: [String: String] = [:]

    package init() {}
}

/// How a NATS target is read.
public struct NATSScrapeSettings: Sendable, Hashable {
    /// The endpoints, in scrape order (`/varz` first: it names the server).
    public var endpoints: [NATSEndpoint] = NATSEndpoint.defaults
    /// `/connz?subs=1`: the subscription lists (larger bodies; not needed for the series).
    public var connzSubscriptions = false
    /// Page size for `/connz`, `/connz?state=closed` and `/jsz`.
    public var pageLimit = 1024
    /// `/jsz`: consumers (implies streams) and their configuration.
    public var jszConsumers = true
    public var jszConfig = true
    /// `/accstatz?unused=1`: accounts without local connections too.
    public var accstatzUnused = false
    public var extraction = NATSExtractionOptions()
}

/// Credentials for a NATS system-account connection (`kind: nats_system`).
public struct NATSSystemSettings: Sendable, Hashable {
    public var user: String?
    public var passwordFile: String?
    public var tokenFile: String?
    public var credentialsFile: String?
    public var nkeySeedFile: String?
    /// How long to wait for the servers' replies.
    public var timeout = 2.0
    /// Stop waiting once this many servers answered.
    public var expectedServers: Int?
    /// Also listen to the servers' disconnect events, so a client cut off as a slow consumer is
    /// known within a second whatever the scrape interval (a second connection).
    public var events = true
}

/// How requests authenticate.
public enum Authorization: Sendable, Hashable {
    case none
    /// `Authorization: Bearer <token>` with the token read from the file, re-read when it changes.
    case bearerTokenFile(String)
    /// `Authorization: Basic`, the password from a file (re-read when it changes) or inline.
    case basic(username: String, password: String?, passwordFile: String?)
    /// OAuth 2.0 client credentials: a token from `tokenURL`, cached until shortly before it expires.
    case oauth2(OAuth2Settings)
}

public struct OAuth2Settings: Sendable, Hashable {
    public var clientID: String
    public var clientSecret: String?
    public var clientSecretFile: String?
    public var tokenURL: String
    public var scopes: [String] = []
    public var endpointParams: [String: String] = [:]
}

/// TLS for HTTPS targets (and the OAuth2 token endpoint).
public struct TLSSettings: Sendable, Hashable {
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
    public var serverName: String?
    public var insecureSkipVerify = false
}

/// A required label: samples of metrics matching `metrics` must carry `labels`.
public struct LabelRequirement: LabelRequirementRule {
    /// A regular expression over metric names, matching whole names.
    public var metrics: String
    public var labels: [String]
    let pattern: CompiledPattern

    public init(metrics: String, labels: [String]) throws(RelabelError) {
        self.metrics = metrics
        self.labels = labels
        do {
            pattern = try CompiledPattern(metrics)
        } catch {
            throw RelabelError(reason: error.reason)
        }
    }

    /// Whether samples of metric `name` must carry ``labels``.
    public func applies(to name: String) -> Bool { pattern.matches(name) }
}

/// One `scrape_configs` entry: a job.
public struct ScrapeConfiguration: Sendable {
    public struct Target: Sendable, Hashable {
        /// `host:port` (or for `nats_system`, a NATS URL).
        public var address: String
        public var labels: [String: String]

        package init(address: String, labels: [String: String]) {
            self.address = address
            self.labels = labels
        }
    }

    public var jobName: String
    public var kind: TargetKind
    public var scheme = "http"
    /// For `prometheus` targets.
    public var metricsPath = "/metrics"
    public var scrapeInterval: Double
    public var scrapeTimeout: Double
    public var targets: [Target]
    public var nats = NATSScrapeSettings()
    public var system = NATSSystemSettings()
    /// The most series one target may have; new ones past it are dropped (`series_limit`).
    public var maxSeries: Int? = ScrapeConfiguration.defaultMaxSeries
    /// The largest body read, in bytes; a larger one fails the scrape.
    public var bodySizeLimit = ScrapeConfiguration.defaultBodySizeLimit
    /// The defaults: 100,000 series a target, 64 MiB a body.
    public static let defaultMaxSeries = 100_000
    public static let defaultBodySizeLimit = 64 << 20
    /// `sample_limit`, `label_limit`, `label_name_length_limit`, `label_value_length_limit`.
    public var limits = ScrapeLimits()
    public var authorization = Authorization.none
    public var tls: TLSSettings?
    public var relabel: [RelabelRule] = []
    public var requiredLabels: [LabelRequirement] = []

    package init(jobName: String, kind: TargetKind, scrapeInterval: Double, scrapeTimeout: Double, targets: [Target]) {
        self.jobName = jobName
        self.kind = kind
        self.scrapeInterval = scrapeInterval
        self.scrapeTimeout = scrapeTimeout
        self.targets = targets
    }
}

/// One target of one job, with its full label set.
public struct ScrapeTarget: Sendable {
    public var job: ScrapeConfiguration
    public var address: String
    /// `job`, `instance` and the static labels (target labels win over job defaults).
    public var labels: [String: String]

    /// A stable name for logs, the API and the recorder (a URL's user and password redacted).
    public var name: String { "\(job.jobName)/\(Redaction.redactingUserinfo(address))" }

    package init(job: ScrapeConfiguration, address: String, labels: [String: String]) {
        self.job = job
        self.address = address
        self.labels = labels
    }
}

extension Configuration {
    /// The largest configuration file read.
    public static let maxFileBytes = 16 << 20

    /// Reads and checks a configuration file. Relative file names in it (token files,
    /// certificates) are taken relative to the configuration file's directory.
    /// - Throws: ``ConfigError`` with the file, line and key of the first problem.
    public static func load(path: String) throws(ConfigError) -> Configuration {
        // A configuration is text an operator wrote: past the limit it is not one (and
        // `/dev/zero` given by mistake is not read for ever); a directory cannot be read.
        let bytes: [UInt8]
        switch BoundedFile.read(path, limit: maxFileBytes) {
        case .success(let read): bytes = read
        case .failure(let error): throw ConfigError(file: path, line: 0, key: "", reason: error.reason)
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError(file: path, line: 0, key: "", reason: "not UTF-8 text")
        }
        let directory = path.contains("/") ? String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]) : "."
        return try parse(text, file: path, directory: directory)
    }

    /// Parses configuration text (see ``load(path:)``).
    public static func parse(_ text: String, file: String, directory: String = ".") throws(ConfigError) -> Configuration
    {
        let root = try YAMLValue.parse(text, file: file)
        let top = try root.mapping(known: [
            "global", "scrape_configs", "route", "receivers", "inhibit_rules", "web", "detector", "backfill",
            "cluster",
        ])
        var global = GlobalSettings()
        if let g = top["global"] {
            let m = try g.mapping(known: [
                "scrape_interval", "scrape_timeout", "future_tolerance", "stale_after", "external_labels",
            ])
            if let v = m["scrape_interval"] { global.scrapeInterval = try positive(v, v.duration()) }
            if let v = m["scrape_timeout"] { global.scrapeTimeout = try positive(v, v.duration()) }
            if let v = m["future_tolerance"] { global.futureTolerance = try v.duration() }
            if let v = m["stale_after"] { global.staleAfter = try positive(v, v.duration()) }
            if let v = m["external_labels"] { global.externalLabels = try labels(v) }
            if global.scrapeTimeout > global.scrapeInterval, m["scrape_timeout"] != nil {
                throw (m["scrape_timeout"] ?? g).error("scrape_timeout is longer than scrape_interval")
            }
            global.scrapeTimeout = min(global.scrapeTimeout, global.scrapeInterval)
        }
        var jobs: [ScrapeConfiguration] = []
        var names = Set<String>()
        if let list = top["scrape_configs"] {
            for element in try list.sequence() {
                let job = try scrapeConfig(element, global: global, directory: directory)
                guard names.insert(job.jobName).inserted else {
                    throw element.error("job_name \"\(job.jobName)\" is used by an earlier job")
                }
                jobs.append(job)
            }
        }
        let alerting = try alerting(
            route: top["route"],
            receivers: top["receivers"],
            inhibitRules: top["inhibit_rules"],
            directory: directory,
            owner: root
        )
        var configuration = Configuration(global: global, scrapeConfigs: jobs, alerting: alerting, file: file)
        if let v = top["detector"] { configuration.detector = try detector(v) }
        if let v = top["backfill"] { configuration.backfill = try backfill(v, directory: directory) }
        if let v = top["cluster"] { configuration.cluster = try cluster(v, directory: directory) }
        if let v = top["web"] {
            let w = try v.mapping(known: ["auth", "tls_config"])
            if let t = w["tls_config"] { configuration.web.tls = try Self.webTLS(t, directory: directory) }
            if let a = w["auth"] {
                let m = try a.mapping(known: ["bearer_token_file", "open_paths"])
                configuration.web.bearerTokenFile = try m["bearer_token_file"].map { f throws(ConfigError) in
                    try Self.file(f, directory: directory)
                }
                if let paths = m["open_paths"] {
                    let list = try paths.strings()
                    for path in list where !path.hasPrefix("/") { throw paths.error("\"\(path)\" is not a path") }
                    configuration.web.openPaths = list
                }
            }
        }
        configuration.fileReferences = fileReferences(in: root, directory: directory)
        return configuration
    }

    /// The keys whose value is a file to read (every one ``file(_:directory:)`` reads).
    static let fileKeys: Set<String> = [
        "bearer_token_file", "ca_file", "cert_file", "key_file", "client_ca_file", "client_secret_file",
        "credentials_file", "nkey_seed_file", "password_file", "signature_secret_file", "token_file",
    ]

    /// The values of the file keys (``fileKeys``) under `value`, and the paths file receivers
    /// write, as ``file(_:directory:)`` reads them.
    static func fileReferences(in value: YAMLValue, directory: String) -> [FileReference] {
        var out: [FileReference] = []
        func visit(_ value: YAMLValue, name: String?) {
            switch value.node {
            case .mapping(let mapping):
                // Labels, headers and parameters are free text: a label named `config_file` is
                // no file.
                guard !["labels", "headers", "endpoint_params"].contains(name ?? "") else { return }
                for (key, member) in mapping {
                    guard let key = key.scalar?.string else { continue }
                    visit(value.child(key, member), name: key)
                }
            case .sequence:
                for element in (try? value.sequence()) ?? [] { visit(element, name: nil) }
            case .scalar:
                // A file receiver's `path` is written; `-` is standard output.
                let written = name == "path" && value.path.contains("file_configs[")
                guard let name, fileKeys.contains(name) || written, (try? value.string()) != "-",
                    let path = try? file(value, directory: directory)
                else {
                    return
                }
                out.append(FileReference(key: value.path, line: value.line, path: path, written: written))
            default:
                return
            }
        }
        visit(value, name: nil)
        return out
    }

    static func backfill(_ value: YAMLValue, directory: String) throws(ConfigError) -> BackfillSettings {
        let m = try value.mapping(known: ["url", "lookback", "bearer_token_file", "timeout", "nats_exporter"])
        guard let u = m["url"] else { throw value.error("backfill: url is required") }
        let url = try u.string()
        let lower = url.lowercased()
        let rest =
            lower.hasPrefix("http://") ? lower.dropFirst(7) : lower.hasPrefix("https://") ? lower.dropFirst(8) : ""
        guard let first = rest.first, first != "/", first != ":" else {
            throw u.error("\"\(Redaction.redactingUserinfo(url))\" is not an http:// or https:// URL")
        }
        var settings = BackfillSettings(url: url)
        if let v = m["lookback"] {
            // At most a year, as every duration (a year at a 1 s interval is 31 million steps a
            // series: far enough).
            settings.lookback = try positive(v, v.duration())
        }
        if let v = m["timeout"] { settings.timeout = try positive(v, v.duration()) }
        if let v = m["bearer_token_file"] { settings.bearerTokenFile = try Self.file(v, directory: directory) }
        if let v = m["nats_exporter"] {
            let e = try v.mapping(known: ["prefix", "selector"])
            if let p = e["prefix"] {
                let prefix = try p.string()
                guard LabelSet.isValidLabelName(prefix), !prefix.hasPrefix("__") else {
                    throw p.error("nats_exporter.prefix \"\(prefix)\" is not a metric name prefix (letters, digits, _)")
                }
                settings.natsExporter.prefix = prefix
            }
            if let q = e["selector"] {
                let selector = try q.string()
                guard selector.hasPrefix("{"), selector.hasSuffix("}"), selector.utf8.count <= 1024,
                    !selector.contains("\n")
                else {
                    throw q.error(
                        "nats_exporter.selector must be one PromQL label selector in braces, such as {instance=\"$host:7777\"} (at most 1024 bytes)"
                    )
                }
                settings.natsExporter.selector = selector
            }
        }
        return settings
    }

    static func cluster(_ value: YAMLValue, directory: String) throws(ConfigError) -> ClusterSettings {
        let m = try value.mapping(known: ["name", "replica", "nats", "lease", "replicas_per_shard"])
        guard let n = m["nats"] else { throw value.error("cluster: nats (the coordinating NATS) is required") }
        let c = try n.mapping(known: [
            "url", "user", "password_file", "token_file", "credentials_file", "nkey_seed_file", "tls_config",
        ])
        guard let u = c["url"] else { throw n.error("nats: url is required") }
        // One URL, a comma-separated list (as NATS tools take), or a YAML list.
        let listed: [String]
        if let list = try? u.strings() { listed = list } else { listed = [try u.string()] }
        let urls = listed.flatMap { $0.split(separator: ",") }.map { String($0.filter { $0 != " " }) }
        guard !urls.isEmpty else { throw u.error("no NATS server address") }
        for url in urls {
            let rest =
                url.hasPrefix("nats://") ? url.dropFirst(7) : url.hasPrefix("tls://") ? url.dropFirst(6) : url[...]
            guard !rest.isEmpty, !rest.contains("://"), !rest.contains("/") else {
                throw u.error("\"\(Redaction.redactingUserinfo(url))\" is not a NATS server address (nats://host:port)")
            }
        }
        var nats = NATSConnectionSettings(urls: urls)
        nats.credentials = try systemSettings(n, directory: directory, events: true, extra: ["url", "tls_config"])
        nats.tls = try httpSettings(c, owner: n, directory: directory).1
        var settings = ClusterSettings(replica: ClusterSettings.defaultReplica, nats: nats)
        if let v = m["name"] {
            settings.name = try v.string()
            guard ClusterSettings.isValidName(settings.name) else {
                throw v.error("\"\(settings.name)\" is not a cluster name (1 to 48 letters, digits, - and _)")
            }
        }
        if let v = m["replica"] {
            settings.replica = try v.string()
            guard ClusterSettings.isValidName(settings.replica) else {
                throw v.error("\"\(settings.replica)\" is not a replica name (1 to 48 letters, digits, - and _)")
            }
        }
        if let v = m["lease"] {
            settings.lease = try v.duration()
            // Renewed every third of it: shorter than a second would be mostly renewing.
            guard (1...600).contains(settings.lease) else { throw v.error("lease must be from 1s to 10m") }
        }
        if let v = m["replicas_per_shard"] {
            settings.replicasPerShard = try v.int(min: 1)
            guard settings.replicasPerShard <= 16 else { throw v.error("replicas_per_shard is more than 16") }
        }
        return settings
    }

    static func webTLS(_ value: YAMLValue, directory: String) throws(ConfigError) -> WebTLSSettings {
        let t = try value.mapping(known: ["cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version"])
        guard let cert = t["cert_file"], let key = t["key_file"] else {
            throw value.error("needs cert_file and key_file")
        }
        var clientAuth: WebTLSSettings.ClientAuth?
        if let v = t["client_auth_type"] {
            let text = try v.string()
            guard let parsed = WebTLSSettings.ClientAuth(rawValue: text) else {
                let known = WebTLSSettings.ClientAuth.allCases.map(\.rawValue).joined(separator: ", ")
                throw v.error("\"\(text)\" is not one of \(known)")
            }
            clientAuth = parsed
        }
        let clientCA = try t["client_ca_file"].map { f throws(ConfigError) in try file(f, directory: directory) }
        if clientAuth != nil, clientAuth != WebTLSSettings.ClientAuth.none, clientCA == nil {
            throw value.error("client_auth_type \(clientAuth?.rawValue ?? "") needs client_ca_file")
        }
        let version = try t["min_version"]?.string() ?? "TLS12"
        guard ["TLS12", "TLS13"].contains(version) else {
            throw (t["min_version"] ?? value).error("\"\(version)\" is not TLS12 or TLS13")
        }
        return WebTLSSettings(
            certFile: try file(cert, directory: directory),
            keyFile: try file(key, directory: directory),
            clientCAFile: clientCA,
            clientAuth: clientAuth,
            minVersion: version
        )
    }

    static func positive(_ value: YAMLValue, _ seconds: Double) throws(ConfigError) -> Double {
        guard seconds > 0 else { throw value.error("must be longer than 0") }
        return seconds
    }

    static func labels(_ value: YAMLValue) throws(ConfigError) -> [String: String] {
        var out: [String: String] = [:]
        for (name, text, line) in try value.stringMap() {
            guard LabelSet.isValidLabelName(name), !name.hasPrefix("__") else {
                throw ConfigError(
                    file: value.file,
                    line: line,
                    key: value.path + "." + name,
                    reason: "not a valid label name"
                )
            }
            out[name] = text
        }
        return out
    }

    static func file(_ value: YAMLValue, directory: String) throws(ConfigError) -> String {
        let path = try value.string()
        guard !path.isEmpty else { throw value.error("empty file name") }
        return path.hasPrefix("/") ? path : directory + "/" + path
    }

    /// The HTTP client keys shared by scrape jobs and receivers: `bearer_token_file`,
    /// `basic_auth`, `oauth2` (at most one) and `tls_config`.
    static func httpSettings(_ m: YAMLMapping, owner value: YAMLValue, directory: String) throws(ConfigError)
        -> (Authorization, TLSSettings?)
    {
        var authorization = Authorization.none
        var tlsSettings: TLSSettings?
        var auths: [String] = []
        if let v = m["bearer_token_file"] {
            authorization = .bearerTokenFile(try file(v, directory: directory))
            auths.append("bearer_token_file")
        }
        if let v = m["basic_auth"] {
            let b = try v.mapping(known: ["username", "password", "password_file"])
            let username = try b.required("username").string()
            let password = try b["password"]?.string()
            let passwordFile = try b["password_file"].map { f throws(ConfigError) in try file(f, directory: directory) }
            if password != nil && passwordFile != nil {
                throw v.error("password and password_file are mutually exclusive")
            }
            authorization = .basic(username: username, password: password, passwordFile: passwordFile)
            auths.append("basic_auth")
        }
        if let v = m["oauth2"] {
            let o = try v.mapping(known: [
                "client_id", "client_secret", "client_secret_file", "token_url", "scopes", "endpoint_params",
            ])
            var settings = OAuth2Settings(
                clientID: try o.required("client_id").string(),
                tokenURL: try o.required("token_url").string()
            )
            settings.clientSecret = try o["client_secret"]?.string()
            settings.clientSecretFile = try o["client_secret_file"].map { f throws(ConfigError) in
                try file(f, directory: directory)
            }
            if settings.clientSecret != nil && settings.clientSecretFile != nil {
                throw v.error("client_secret and client_secret_file are mutually exclusive")
            }
            if let scopes = o["scopes"] { settings.scopes = try scopes.strings() }
            if let params = o["endpoint_params"] {
                settings.endpointParams = Dictionary(try params.stringMap().map { ($0.key, $0.value) }) { a, _ in a }
            }
            let url = settings.tokenURL
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw (o["token_url"] ?? v).error("must be an http:// or https:// URL")
            }
            authorization = .oauth2(settings)
            auths.append("oauth2")
        }
        if auths.count > 1 {
            throw value.error(
                "at most one of bearer_token_file, basic_auth and oauth2 (got \(auths.joined(separator: ", ")))"
            )
        }
        if let v = m["tls_config"] {
            let t = try v.mapping(known: ["ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify"])
            var tls = TLSSettings()
            tls.caFile = try t["ca_file"].map { f throws(ConfigError) in try file(f, directory: directory) }
            tls.certFile = try t["cert_file"].map { f throws(ConfigError) in try file(f, directory: directory) }
            tls.keyFile = try t["key_file"].map { f throws(ConfigError) in try file(f, directory: directory) }
            tls.serverName = try t["server_name"]?.string()
            tls.insecureSkipVerify = try t["insecure_skip_verify"]?.bool() ?? false
            if (tls.certFile == nil) != (tls.keyFile == nil) { throw v.error("cert_file and key_file go together") }
            tlsSettings = tls
        }
        return (authorization, tlsSettings)
    }

    static let jobKeys: Set<String> = [
        "job_name", "kind", "scheme", "metrics_path", "scrape_interval", "scrape_timeout", "static_configs", "nats",
        "nats_system", "nats_auth", "max_series", "body_size_limit", "bearer_token_file", "basic_auth", "oauth2",
        "tls_config",
        "relabel_configs", "metric_relabel_configs", "required_labels", "sample_limit", "label_limit",
        "label_name_length_limit", "label_value_length_limit",
    ]

    private static func scrapeConfig(_ value: YAMLValue, global: GlobalSettings, directory: String) throws(ConfigError)
        -> ScrapeConfiguration
    {
        let m = try value.mapping(known: jobKeys)
        let nameValue = try m.required("job_name")
        let jobName = try nameValue.string()
        guard !jobName.isEmpty else { throw nameValue.error("must not be empty") }
        var kind = TargetKind.prometheus
        if let v = m["kind"] {
            let text = try v.string()
            guard let parsed = TargetKind(rawValue: text) else {
                throw v.error("\"\(text)\" is not a kind (nats, prometheus, nats_system, nats_events)")
            }
            kind = parsed
        }
        var job = ScrapeConfiguration(
            jobName: jobName,
            kind: kind,
            scrapeInterval: global.scrapeInterval,
            scrapeTimeout: global.scrapeTimeout,
            targets: []
        )
        if let v = m["scheme"] {
            job.scheme = try v.string()
            guard job.scheme == "http" || job.scheme == "https" else { throw v.error("must be http or https") }
        }
        if let v = m["metrics_path"] {
            job.metricsPath = try v.string()
            guard job.metricsPath.hasPrefix("/") else { throw v.error("must start with /") }
        }
        if let v = m["scrape_interval"] { job.scrapeInterval = try positive(v, v.duration()) }
        if let v = m["scrape_timeout"] {
            job.scrapeTimeout = try positive(v, v.duration())
            guard job.scrapeTimeout <= job.scrapeInterval else {
                throw v.error("scrape_timeout is longer than scrape_interval")
            }
        } else {
            job.scrapeTimeout = min(job.scrapeTimeout, job.scrapeInterval)
        }
        // `max_series: 0` lifts the limit.
        if let v = m["max_series"] {
            let limit = try v.int(min: 0)
            job.maxSeries = limit == 0 ? nil : limit
        }
        if let v = m["sample_limit"] { job.limits.sampleLimit = try v.int(min: 0) }
        if let v = m["label_limit"] { job.limits.labelLimit = try v.int(min: 0) }
        if let v = m["label_name_length_limit"] { job.limits.labelNameLengthLimit = try v.int(min: 0) }
        if let v = m["label_value_length_limit"] { job.limits.labelValueLengthLimit = try v.int(min: 0) }
        if let v = m["body_size_limit"] {
            job.bodySizeLimit = try v.byteSize()
            guard job.bodySizeLimit > 0 else { throw v.error("must be more than 0") }
        }
        if let v = m["static_configs"] {
            for element in try v.sequence() {
                let s = try element.mapping(known: ["targets", "labels"])
                let targetsValue = try s.required("targets")
                let own = try s["labels"].map { v throws(ConfigError) in try labels(v) } ?? [:]
                for (k, address) in try targetsValue.strings().enumerated() {
                    let at = (try? targetsValue.sequence()[k]) ?? targetsValue
                    try checkAddress(address, kind: kind, at: at)
                    job.targets.append(ScrapeConfiguration.Target(address: address, labels: own))
                }
            }
        }
        if let v = m["nats"] {
            guard kind == .nats || kind == .natsSystem else { throw v.error("only for kind nats or nats_system") }
            job.nats = try natsSettings(v)
        }
        if let v = m["nats_system"] {
            guard kind == .natsSystem else { throw v.error("only for kind nats_system") }
            job.system = try systemSettings(v, directory: directory)
        }
        if let v = m["nats_auth"] {
            guard kind == .natsEvents else { throw v.error("only for kind nats_events") }
            job.system = try systemSettings(v, directory: directory, events: true)
        }
        if kind == .natsEvents, job.targets.isEmpty {
            throw value.error("nats_events needs a server address in static_configs")
        }
        if kind == .natsSystem {
            let unsupported = job.nats.endpoints.filter { $0 == .accstatz || $0 == .connzClosed }
            // Only a list the user wrote is a mistake; the defaults simply skip what the system
            // account cannot read.
            if !unsupported.isEmpty, let v = m["nats"]?.member("endpoints") {
                throw v.error(
                    "\(unsupported.map(\.rawValue).joined(separator: ", ")) cannot be read through the system account"
                )
            }
            job.nats.endpoints.removeAll { $0 == .accstatz || $0 == .connzClosed }
            guard !job.targets.isEmpty else {
                throw value.error("nats_system needs a server address in static_configs")
            }
        }
        (job.authorization, job.tls) = try httpSettings(m, owner: value, directory: directory)
        for key in ["relabel_configs", "metric_relabel_configs"] {
            guard let v = m[key] else { continue }
            for element in try v.sequence() { job.relabel.append(try relabelRule(element)) }
        }
        if let v = m["required_labels"] {
            for element in try v.sequence() {
                let r = try element.mapping(known: ["metrics", "labels"])
                let metricsValue = try r.required("metrics")
                let metrics = try metricsValue.string()
                let labelsValue = try r.required("labels")
                let names = try labelsValue.strings()
                for name in names where !LabelSet.isValidLabelName(name) {
                    throw labelsValue.error("\"\(name)\" is not a valid label name")
                }
                do {
                    job.requiredLabels.append(try LabelRequirement(metrics: metrics, labels: names))
                } catch {
                    throw metricsValue.error(error.reason)
                }
            }
        }
        return job
    }

    private static func checkAddress(_ address: String, kind: TargetKind, at value: YAMLValue) throws(ConfigError) {
        if kind == .natsSystem || kind == .natsEvents {
            guard address.hasPrefix("nats://") || address.hasPrefix("tls://") || !address.contains("://") else {
                throw value.error("\"\(address)\" is not a NATS server address (host:port or nats://host:port)")
            }
            return
        }
        guard !address.contains("://"), !address.contains("/"), let colon = address.lastIndex(of: ":"),
            let port = Int(address[address.index(after: colon)...]), (1...65535).contains(port),
            colon != address.startIndex
        else {
            throw value.error(
                "\"\(address)\" is not host:port (the scheme goes in `scheme`, the path in `metrics_path`)"
            )
        }
    }

    private static func natsSettings(_ value: YAMLValue) throws(ConfigError) -> NATSScrapeSettings {
        let m = try value.mapping(known: [
            "endpoints", "connz", "jsz", "accstatz", "page_limit", "per_connection", "leader_only",
        ])
        var settings = NATSScrapeSettings()
        if let v = m["endpoints"] {
            var endpoints: [NATSEndpoint] = []
            for element in try v.sequence() {
                let text = try element.string()
                guard let endpoint = NATSEndpoint(rawValue: text) else {
                    let known = NATSEndpoint.allCases.map(\.rawValue).joined(separator: ", ")
                    throw element.error("\"\(text)\" is not an endpoint (\(known))")
                }
                guard !endpoints.contains(endpoint) else { throw element.error("\"\(text)\" is listed twice") }
                endpoints.append(endpoint)
            }
            guard !endpoints.isEmpty else { throw v.error("name at least one endpoint") }
            // /varz first: it names the server, for the labels of the other endpoints' series.
            settings.endpoints = endpoints.filter { $0 == .varz } + endpoints.filter { $0 != .varz }
        }
        if let v = m["page_limit"] { settings.pageLimit = try v.int(min: 1) }
        if let v = m["per_connection"] { settings.extraction.perConnection = try v.bool() }
        if let v = m["leader_only"] { settings.extraction.leaderOnly = try v.bool() }
        if let v = m["connz"] {
            let c = try v.mapping(known: ["subs"])
            settings.connzSubscriptions = try c["subs"]?.bool() ?? false
        }
        if let v = m["jsz"] {
            let j = try v.mapping(known: ["consumers", "config"])
            settings.jszConsumers = try j["consumers"]?.bool() ?? true
            settings.jszConfig = try j["config"]?.bool() ?? true
        }
        if let v = m["accstatz"] {
            let a = try v.mapping(known: ["unused"])
            settings.accstatzUnused = try a["unused"]?.bool() ?? false
        }
        return settings
    }

    /// A `nats_system:` block, or with `events` a `nats_events` job's `nats_auth:` (credentials only).
    private static func systemSettings(
        _ value: YAMLValue,
        directory: String,
        events: Bool = false,
        extra: Set<String> = []
    ) throws(ConfigError) -> NATSSystemSettings {
        let credentials: Set<String> = ["user", "password_file", "token_file", "credentials_file", "nkey_seed_file"]
        let m = try value.mapping(
            known: (events ? credentials : credentials.union(["timeout", "expected_servers", "events"])).union(extra)
        )
        var settings = NATSSystemSettings()
        settings.user = try m["user"]?.string()
        settings.passwordFile = try m["password_file"].map { f throws(ConfigError) in try file(f, directory: directory)
        }
        settings.tokenFile = try m["token_file"].map { f throws(ConfigError) in try file(f, directory: directory) }
        settings.credentialsFile = try m["credentials_file"].map { f throws(ConfigError) in
            try file(f, directory: directory)
        }
        settings.nkeySeedFile = try m["nkey_seed_file"].map { f throws(ConfigError) in try file(f, directory: directory)
        }
        if let v = m["timeout"] { settings.timeout = try positive(v, v.duration()) }
        if let v = m["expected_servers"] { settings.expectedServers = try v.int(min: 1) }
        if let v = m["events"] { settings.events = try v.bool() }
        if settings.user != nil && settings.passwordFile == nil { throw value.error("user needs password_file") }
        return settings
    }

    private static func relabelRule(_ value: YAMLValue) throws(ConfigError) -> RelabelRule {
        let m = try value.mapping(known: [
            "action", "source_labels", "separator", "regex", "target_label", "replacement",
        ])
        var action = RelabelRule.Action.replace
        if let v = m["action"] {
            let text = try v.string()
            guard let parsed = RelabelRule.Action(rawValue: text) else {
                let known = RelabelRule.Action.allCases.map(\.rawValue).joined(separator: ", ")
                throw v.error("\"\(text)\" is not a supported action (\(known))")
            }
            action = parsed
        }
        do {
            return try RelabelRule(
                action: action,
                sourceLabels: try m["source_labels"]?.strings() ?? [],
                separator: try m["separator"]?.string() ?? ";",
                regex: try m["regex"]?.string() ?? "(.*)",
                targetLabel: try m["target_label"]?.string(),
                replacement: try m["replacement"]?.string() ?? "$1"
            )
        } catch let error as RelabelError {
            throw value.error(error.reason)
        } catch let error as ConfigError {
            throw error
        } catch {
            throw value.error("\(error)")
        }
    }
}

extension Configuration {
    /// Each job's extraction, relabeling and validation settings, for replaying a recording the
    /// way its targets were scraped.
    public var recordingJobs: [String: RecordingSource.JobSettings] {
        var jobs: [String: RecordingSource.JobSettings] = [:]
        for job in scrapeConfigs {
            jobs[job.jobName] = RecordingSource.JobSettings(
                options: job.nats.extraction,
                relabel: job.relabel,
                validator: SampleValidator(
                    maxSeries: job.maxSeries,
                    futureTolerance: global.futureTolerance,
                    staleAfter: global.staleAfter,
                    requirements: job.requiredLabels
                ),
                limits: job.limits
            )
        }
        return jobs
    }
}
