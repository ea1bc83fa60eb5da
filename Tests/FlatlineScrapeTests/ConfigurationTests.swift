import FlatlineCore
import FlatlineIngest
import FlatlineNATS
import FlatlineTestSupport
import FlatlineYAML
import Foundation
import Testing

@testable import FlatlineConfig
@testable import FlatlineScrape

/// The configuration file: every key read, defaults as documented, and errors that name the
/// file, the line and the key.
@Suite("Configuration")
struct ConfigurationTests {
    static let full = """
        global:
          scrape_interval: 30s
          scrape_timeout: 5s
          future_tolerance: 1m
          stale_after: 15m
          external_labels: {region: eu}
        scrape_configs:
          - job_name: nats
            kind: nats
            scheme: https
            scrape_interval: 5s
            static_configs:
              - targets: ["n1.example:8222", "10.0.0.2:8222"]
                labels: {cluster_role: core}
            nats:
              endpoints: [connz, varz, jsz]
              page_limit: 500
              per_connection: false
              leader_only: false
              connz: {subs: true}
              jsz: {consumers: true, config: false}
              accstatz: {unused: true}
            max_series: 20000
            body_size_limit: 64MiB
            oauth2:
              client_id: flatline
              client_secret_file: secrets/client
              token_url: https://idp.example/token
              scopes: [monitoring.read]
              endpoint_params: {audience: nats}
            tls_config:
              ca_file: /etc/ca.pem
              server_name: nats.internal
            relabel_configs:
              - source_labels: [client_name]
                regex: "(.+)-worker-\\\\d+"
                target_label: client_group
              - action: labeldrop
                regex: cid
            required_labels:
              - metrics: "jetstream_consumer_.*"
                labels: [stream, consumer]
          - job_name: app
            static_configs: [{targets: ["127.0.0.1:9100"]}]
            metrics_path: /custom/metrics
            basic_auth: {username: scraper, password_file: /run/pw}
        web:
          auth: {bearer_token_file: api.token, open_paths: [/metrics, /healthz]}
          tls_config:
            cert_file: tls/flatline.pem
            key_file: tls/flatline-key.pem
            client_ca_file: /etc/ca.pem
            client_auth_type: VerifyClientCertIfGiven
            min_version: TLS13
        """

    @Test("every key of a full file is read")
    func full() throws {
        let configuration = try Configuration.parse(Self.full, file: "flatline.yml", directory: "/etc/flatline")
        #expect(configuration.global.scrapeInterval == 30)
        #expect(configuration.global.scrapeTimeout == 5)
        #expect(configuration.global.futureTolerance == 60)
        #expect(configuration.global.staleAfter == 900)
        try #require(configuration.scrapeConfigs.count == 2)
        let nats = configuration.scrapeConfigs[0]
        #expect(nats.kind == .nats)
        #expect(nats.scheme == "https")
        #expect(nats.scrapeInterval == 5)
        #expect(nats.scrapeTimeout == 5)
        // /varz goes first whatever the order given: it names the server.
        #expect(nats.nats.endpoints == [.varz, .connz, .jsz])
        #expect(nats.nats.pageLimit == 500)
        #expect(nats.nats.extraction == NATSExtractionOptions(perConnection: false, leaderOnly: false))
        #expect(nats.nats.connzSubscriptions)
        #expect(nats.nats.jszConsumers && !nats.nats.jszConfig)
        #expect(nats.nats.accstatzUnused)
        #expect(nats.maxSeries == 20000)
        #expect(nats.bodySizeLimit == 64 << 20)
        guard case .oauth2(let oauth) = nats.authorization else {
            Issue.record("expected oauth2")
            return
        }
        #expect(oauth.clientSecretFile == "/etc/flatline/secrets/client")
        #expect(oauth.scopes == ["monitoring.read"])
        #expect(oauth.endpointParams == ["audience": "nats"])
        #expect(nats.tls?.caFile == "/etc/ca.pem")
        #expect(nats.tls?.serverName == "nats.internal")
        #expect(nats.relabel.count == 2)
        #expect(nats.requiredLabels.first?.applies(to: "jetstream_consumer_num_pending") == true)
        #expect(nats.requiredLabels.first?.applies(to: "xjetstream_consumer_num_pending") == false)
        #expect(
            configuration.fileReferences.map(\.path).filter { $0.hasPrefix("/etc/") } == [
                "/etc/flatline/secrets/client", "/etc/ca.pem", "/etc/flatline/api.token",
                "/etc/flatline/tls/flatline.pem", "/etc/flatline/tls/flatline-key.pem", "/etc/ca.pem",
            ]
        )

        let targets = configuration.targets
        #expect(targets.count == 3)
        #expect(
            targets[0].labels == ["job": "nats", "instance": "n1.example:8222", "cluster_role": "core", "region": "eu"]
        )
        let app = configuration.scrapeConfigs[1]
        #expect(app.kind == .prometheus)
        #expect(app.metricsPath == "/custom/metrics")
        #expect(app.scrapeInterval == 30)
        #expect(app.authorization == .basic(username: "scraper", password: nil, passwordFile: "/run/pw"))
        #expect(configuration.web.bearerTokenFile == "/etc/flatline/api.token")
        #expect(configuration.web.openPaths == ["/metrics", "/healthz"])
        #expect(
            configuration.web.tls
                == WebTLSSettings(
                    certFile: "/etc/flatline/tls/flatline.pem",
                    keyFile: "/etc/flatline/tls/flatline-key.pem",
                    clientCAFile: "/etc/ca.pem",
                    clientAuth: .verifyIfGiven,
                    minVersion: "TLS13"
                )
        )
    }

    @Test("defaults: Prometheus's intervals, the default NATS endpoints")
    func defaults() throws {
        let configuration = try Configuration.parse(
            "scrape_configs:\n  - job_name: n\n    kind: nats\n    static_configs: [{targets: ['h:8222']}]\n",
            file: "f.yml"
        )
        let job = try #require(configuration.scrapeConfigs.first)
        #expect(job.scrapeInterval == 15)
        #expect(job.scrapeTimeout == 10)
        #expect(job.nats.endpoints == NATSEndpoint.defaults)
        #expect(job.scheme == "http")
        #expect(job.authorization == .none)
        // Bounded by default: 100,000 series and 64 MiB a body per target; `max_series: 0` lifts it.
        #expect(job.maxSeries == 100_000 && job.bodySizeLimit == 64 << 20)
        #expect(job.limits == ScrapeLimits())
        let unlimited = try Configuration.parse("scrape_configs:\n  - job_name: n\n    max_series: 0\n", file: "f.yml")
        #expect(unlimited.scrapeConfigs.first?.maxSeries == nil)
        // Closed connections are read by default: churn and slow-consumer cut-offs come from them.
        #expect(NATSEndpoint.defaults.contains(.connzClosed))
        // Through the system account the defaults leave out what it cannot read, even with other
        // nats: settings given.
        let system = try Configuration.parse(
            """
            scrape_configs:
              - job_name: c
                kind: nats_system
                static_configs: [{targets: ['h:4222']}]
                nats: {page_limit: 100}
            """,
            file: "f.yml"
        )
        let systemJob = try #require(system.scrapeConfigs.first)
        #expect(systemJob.nats.pageLimit == 100)
        #expect(systemJob.nats.endpoints == NATSEndpoint.defaults.filter { $0 != .accstatz && $0 != .connzClosed })
    }

    @Test(
        "errors name the file, the line and the key",
        arguments: [
            ("global:\n  scrape_intervall: 15s\n", 2, "global.scrape_intervall", "unknown key"),
            ("global:\n  scrape_interval: fast\n", 2, "global.scrape_interval", "not a duration"),
            ("global:\n  scrape_interval: 5s\n  scrape_timeout: 10s\n", 3, "global.scrape_timeout", "longer than"),
            ("scrape_configs:\n  - kind: nats\n", 2, "scrape_configs[0].job_name", "required"),
            (
                "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [http://h:8222]\n", 4,
                "scrape_configs[0].static_configs[0].targets[0]", "not host:port"
            ),
            (
                "scrape_configs:\n  - job_name: a\n    kind: nats\n    nats: {endpoints: [varz, bogus]}\n", 4,
                "endpoints[1]", "not an endpoint"
            ),
            (
                "scrape_configs:\n  - job_name: a\n    nats: {endpoints: [varz]}\n", 3, "scrape_configs[0].nats",
                "only for kind nats"
            ),
            (
                "scrape_configs:\n  - job_name: a\n    bearer_token_file: t\n    basic_auth: {username: u}\n", 2,
                "scrape_configs[0]", "at most one of"
            ),
            (
                "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - {source_labels: [a], regex: '(', target_label: b}\n",
                4, "relabel_configs[0]", "not a regular expression"
            ),
            (
                "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - {action: hashmod}\n", 4, "action",
                "not a supported action"
            ),
            ("scrape_configs:\n  - job_name: a\n  - job_name: a\n", 3, "scrape_configs[1]", "used by an earlier job"),
            ("scrape_configs:\n  - job_name: a\n    max_series: -1\n", 3, "max_series", "at least 0"),
            ("scrape_configs:\n  - job_name: a\n    body_size_limit: lots\n", 3, "body_size_limit", "not a size"),
            ("scrape_configs:\n  - job_name: a\n    tls_config: {cert_file: c}\n", 3, "tls_config", "go together"),
            (
                "scrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['h:1'], labels: {'bad-name': x}}]\n",
                3, "bad-name", "not a valid label name"
            ),
            (
                "scrape_configs:\n  - job_name: a\n    kind: nats_system\n    static_configs: [{targets: ['h:4222']}]\n    nats: {endpoints: [varz, accstatz]}\n",
                5, "scrape_configs[0].nats.endpoints", "cannot be read through the system account"
            ),
            (
                "scrape_configs:\n  - job_name: a\n    kind: nats_system\n", 2, "scrape_configs[0]",
                "needs a server address"
            ),
            (
                "scrape_configs:\n  - job_name: a\n    kind: nats_system\n    static_configs: [{targets: ['h:4222']}]\n    nats_system: {user: sys}\n",
                5, "nats_system", "user needs password_file"
            ),
            (
                "scrape_configs:\n  - job_name: a\n    kind: nats_events\n", 2, "scrape_configs[0]",
                "nats_events needs a server address"
            ),
            (
                "scrape_configs:\n  - job_name: a\n    kind: nats_events\n    static_configs: [{targets: ['h:4222']}]\n    nats_auth: {user: app, timeout: 2s}\n",
                5, "nats_auth.timeout", "unknown key"
            ),
            (
                "scrape_configs:\n  - job_name: a\n    kind: nats\n    static_configs: [{targets: ['h:8222']}]\n    nats_auth: {user: app}\n",
                5, "scrape_configs[0].nats_auth", "only for kind nats_events"
            ),
            (
                "scrape_configs:\n  - job_name: a\n    kind: nats_system\n    static_configs: [{targets: ['h:4222']}]\n    nats_system: {events: sometimes}\n",
                5, "nats_system.events", "true or false"
            ),
            ("web:\n  tls_config: {cert_file: c.pem}\n", 2, "web.tls_config", "needs cert_file and key_file"),
            ("cluster:\n  name: flatline\n", 2, "cluster", "nats (the coordinating NATS) is required"),
            ("cluster:\n  nats: {user: u}\n", 2, "cluster.nats", "url is required"),
            ("cluster:\n  nats: {url: 'http://h:4222'}\n", 2, "cluster.nats.url", "not a NATS server address"),
            ("cluster:\n  nats: {url: 'h:4222', token: t}\n", 2, "cluster.nats.token", "unknown key"),
            ("cluster:\n  nats: {url: 'h:4222', user: u}\n", 2, "cluster.nats", "user needs password_file"),
            ("cluster:\n  nats: {url: 'h:4222'}\n  name: 'a.b'\n", 3, "cluster.name", "not a cluster name"),
            ("cluster:\n  nats: {url: 'h:4222'}\n  replica: 'a b'\n", 3, "cluster.replica", "not a replica name"),
            ("cluster:\n  nats: {url: 'h:4222'}\n  lease: 500ms\n", 3, "cluster.lease", "from 1s to 10m"),
            ("cluster:\n  nats: {url: 'h:4222'}\n  replicas_per_shard: 0\n", 3, "replicas_per_shard", "at least 1"),
            ("cluster:\n  nats: {url: 'h:4222'}\n  replicas_per_shard: 17\n", 3, "replicas_per_shard", "more than 16"),
            (
                "web:\n  tls_config:\n    cert_file: c\n    key_file: k\n    client_auth_type: Always\n", 5,
                "web.tls_config.client_auth_type", "not one of NoClientCert"
            ),
            (
                "web:\n  tls_config: {cert_file: c, key_file: k, client_auth_type: RequireAndVerifyClientCert}\n", 2,
                "web.tls_config", "needs client_ca_file"
            ),
            ("web:\n  tls_config: {cert_file: c, key_file: k, min_version: TLS10}\n", 2, "min_version", "not TLS12"),
            ("scrape_configs: [\n", 2, "", "not valid YAML"),
            ("scrape_configs:\n\t- job_name: x\n", 2, "", "the line is indented with a tab"),
            ("global:\n  scrape_interval: 15s\n \tscrape_timeout: 5s\n", 3, "", "indented with a tab: YAML indents"),
            ("detector:\n  surprise:\n    treshold: 2\n", 3, "detector.surprise.treshold", "unknown key"),
            ("detector:\n  kind: prophet\n", 2, "detector.kind", "prophet"),
            ("detector:\n  surprise: {threshold: 40}\n", 2, "detector.surprise.threshold", "must be from -3 to 30"),
            ("detector:\n  surprise: {threshold: high}\n", 2, "detector.surprise.threshold", "expected a number"),
            // At the line of the key, not of the section.
            (
                "detector:\n  kind: surprise\n  surprise:\n    threshold: 99\n", 4, "detector.surprise.threshold",
                "must be"
            ),
            (
                "detector:\n  kind: ewma\n\n  ewma:\n    half_life: -3\n", 5, "detector.ewma.half_life",
                "is not a duration"
            ),
            (
                "detector:\n  calibration:\n    threshold: 3\n", 3, "detector.calibration.threshold",
                "must be between 0 and 1"
            ),
        ]
    )
    func errors(text: String, line: Int, key: String, reason: String) {
        #expect {
            _ = try Configuration.parse(text, file: "bad.yml")
        } throws: { error in
            guard let error = error as? ConfigError else { return false }
            let ok =
                error.file == "bad.yml" && error.line == line && error.key.hasSuffix(key)
                && error.reason.contains(reason)
            if !ok { Issue.record("got \(error)") }
            return ok
        }
    }

    @Test("detector: the kind and parameters the daemon runs; absent, the defaults")
    func detectorSection() throws {
        let text = """
            detector:
              kind: surprise
              surprise:
                threshold: 2.5
                season_period: 0
              calibration:
                direction: above
                min_deviation: 10
            """
        let configuration = try Configuration.parse(text, file: "d.yml")
        var expected = DetectorConfiguration()
        expected.surprise.threshold = 2.5
        expected.surprise.seasonPeriod = 0
        expected.calibration.direction = .above
        expected.calibration.minDeviation = 10
        #expect(configuration.detector == expected)
        let ensemble = try Configuration.parse("detector: {kind: ensemble, ewma: {half_life: 4m}}\n", file: "e.yml")
        #expect(ensemble.detector.kind == .ensemble)
        #expect(ensemble.detector.ewma.halfLife == .seconds(240))
        #expect(try Configuration.parse("global: {}\n", file: "n.yml").detector == DetectorConfiguration())
    }

    @Test("durations and sizes as Prometheus writes them")
    func units() {
        #expect(PrometheusDuration.seconds("1m30s") == 90)
        #expect(PrometheusDuration.seconds("500ms") == 0.5)
        #expect(PrometheusDuration.seconds("2h") == 7200)
        #expect(PrometheusDuration.seconds("1d") == 86400)
        #expect(PrometheusDuration.seconds("0") == 0)
        #expect(PrometheusDuration.seconds("30s1m") == nil)
        #expect(PrometheusDuration.seconds("1.5s") == nil)
        #expect(PrometheusDuration.seconds("s") == nil)
        #expect(ByteSize.parse("10MB") == 10_000_000)
        #expect(ByteSize.parse("64MiB") == 67_108_864)
        #expect(ByteSize.parse("1048576") == 1_048_576)
        #expect(ByteSize.parse("12 parsecs") == nil)
    }

    /// `flatline check --config PATH`.
    static func check(_ path: String, timeout: Double? = nil) throws -> TestSupport.ProcessResult {
        try TestSupport.run(TestSupport.flatlineBinary, ["check", "--config", path], timeout: timeout)
    }

    @Test("flatline check: OK with a summary, or the error and status 1")
    func checkCommand() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let good = try directory.write(
            "good.yml",
            "scrape_configs:\n  - job_name: n\n    kind: nats\n    static_configs: [{targets: ['127.0.0.1:8222']}]\n"
        )
        let ok = try Self.check(good.path)
        #expect(ok.status == 0, "\(ok.standardError)")
        #expect(ok.standardOutput.contains("OK, 1 job"))
        #expect(ok.standardOutput.contains("n (nats, every 15s): 127.0.0.1:8222"))
        let bad = try directory.write("bad.yml", "scrape_configs:\n  - job_name: n\n    scrape_timout: 5s\n")
        let failed = try Self.check(bad.path)
        #expect(failed.status == 1)
        #expect(failed.standardError.contains("bad.yml:3: scrape_configs[0].scrape_timout: unknown key"))
        let missing = try directory.write(
            "missing.yml",
            "scrape_configs:\n  - job_name: n\n    bearer_token_file: nowhere.token\n    static_configs: [{targets: ['h:1']}]\n"
        )
        let unreadable = try Self.check(missing.path)
        #expect(unreadable.status == 1)
        #expect(
            unreadable.standardError.contains(
                "missing.yml:3: scrape_configs[0].bearer_token_file: \"\(directory.url.path)/nowhere.token\" does not exist"
            ),
            "\(unreadable.standardError)"
        )
        let system = try directory.write(
            "system.yml",
            "scrape_configs:\n  - job_name: c\n    kind: nats_system\n    static_configs: [{targets: ['h:4222']}]\n    nats_system: {user: sys, password_file: sys.pw}\n"
        )
        let systemCheck = try Self.check(system.path)
        #expect(systemCheck.status == 1)
        #expect(
            systemCheck.standardError.contains(
                "system.yml:5: scrape_configs[0].nats_system.password_file: \"\(directory.url.path)/sys.pw\" does not exist"
            ),
            "\(systemCheck.standardError)"
        )
        let backfill = try directory.write(
            "backfill.yml",
            "scrape_configs:\n  - job_name: app\n    static_configs: [{targets: ['h:9100']}]\n"
                + "  - job_name: nats\n    kind: nats\n    static_configs: [{targets: ['h:8222']}]\n"
                + "backfill: {url: 'http://prometheus:9090', lookback: 14d}\n"
        )
        let backfillCheck = try Self.check(backfill.path)
        #expect(backfillCheck.status == 0, "\(backfillCheck.standardError)")
        #expect(
            backfillCheck.standardOutput.contains(
                "backfill: 2w of history from http://prometheus:9090 for app, nats (prometheus-nats-exporter's series)"
            ),
            "\(backfillCheck.standardOutput)"
        )
        let token = try directory.write(
            "token.yml",
            "backfill: {url: 'http://prometheus:9090', bearer_token_file: prom.token}\n"
        )
        let tokenCheck = try Self.check(token.path)
        #expect(tokenCheck.status == 1)
        #expect(
            tokenCheck.standardError.contains(
                "backfill.bearer_token_file: \"\(directory.url.path)/prom.token\" does not exist"
            )
        )
        let cluster = try directory.write(
            "cluster.yml",
            "cluster: {replica: a, lease: 5s, nats: {url: 'nats://u:secret@n1:4222'}}\n"
        )
        let clusterCheck = try Self.check(cluster.path)
        #expect(clusterCheck.status == 0, "\(clusterCheck.standardError)")
        #expect(
            clusterCheck.standardOutput.contains(
                "cluster: flatline, replica a, lease 5s, 2 replicas per target, through nats://<secret>@n1:4222"
            ),
            "\(clusterCheck.standardOutput)"
        )
        let clusterFile = try directory.write(
            "cluster-token.yml",
            "cluster: {nats: {url: 'n1:4222', token_file: nats.token}}\n"
        )
        let clusterFileCheck = try Self.check(clusterFile.path)
        #expect(clusterFileCheck.status == 1)
        #expect(
            clusterFileCheck.standardError.contains(
                "cluster.nats.token_file: \"\(directory.url.path)/nats.token\" does not exist"
            )
        )
        // A directory, and something endless, given as the configuration.
        let folder = try Self.check(directory.url.path)
        #expect(folder.status == 1)
        #expect(
            folder.standardError.contains("\(directory.url.path): cannot read: Is a directory"),
            "\(folder.standardError)"
        )
        let endless = try Self.check("/dev/zero", timeout: 60)
        #expect(endless.status == 1)
        #expect(endless.standardError.contains("/dev/zero: larger than 16 MiB"), "\(endless.standardError)")
        // A secret file is read at every use, never past its limit.
        #expect {
            _ = try FileSecret(path: "/dev/zero").value()
        } throws: { error in
            "\(error)".contains("cannot read /dev/zero: larger than 64 KiB")
        }
        _ = try directory.write("ok.token", " s3cret\n")
        #expect(try FileSecret(path: directory.file("ok.token").path).value() == "s3cret")
        // The HTTP API's token and certificates, and every receiver's secrets and certificates.
        let web = try directory.write(
            "web.yml",
            """
            web:
              auth: {bearer_token_file: api.token}
              tls_config: {cert_file: server.pem, key_file: server-key.pem}
            route: {receiver: r}
            receivers:
              - name: r
                webhook_configs: [{url: 'https://h/x', http_config: {basic_auth: {username: u, password_file: hook.pw}}}]
                alertmanager_configs: [{urls: ['https://am:9093'], http_config: {tls_config: {ca_file: am-ca.pem}}}]

            """
        )
        let webCheck = try Self.check(web.path)
        #expect(webCheck.status == 1)
        for (line, key, file) in [
            (2, "web.auth.bearer_token_file", "api.token"), (3, "web.tls_config.cert_file", "server.pem"),
            (3, "web.tls_config.key_file", "server-key.pem"),
            (7, "receivers[0].webhook_configs[0].http_config.basic_auth.password_file", "hook.pw"),
            (8, "receivers[0].alertmanager_configs[0].http_config.tls_config.ca_file", "am-ca.pem"),
        ] {
            #expect(
                webCheck.standardError.contains(
                    "web.yml:\(line): \(key): \"\(directory.url.path)/\(file)\" does not exist"
                ),
                "\(file): \(webCheck.standardError)"
            )
        }
        // A label that happens to end in `_file` names no file.
        let labelled = try directory.write(
            "labelled.yml",
            "scrape_configs:\n  - job_name: n\n    static_configs: [{targets: ['h:1'], labels: {config_file: nats.conf}}]\n"
        )
        let labelledCheck = try Self.check(labelled.path)
        #expect(labelledCheck.status == 0, "\(labelledCheck.standardError)")
        // A directory where a file is named.
        try FileManager.default.createDirectory(at: directory.file("certs"), withIntermediateDirectories: true)
        let folderFile = try directory.write(
            "folder-file.yml",
            "scrape_configs:\n  - job_name: n\n    tls_config: {ca_file: certs}\n    static_configs: [{targets: ['h:1']}]\n"
        )
        let folderFileCheck = try Self.check(folderFile.path)
        #expect(folderFileCheck.status == 1)
        #expect(
            folderFileCheck.standardError.contains(
                "folder-file.yml:3: scrape_configs[0].tls_config.ca_file: \"\(directory.url.path)/certs\" is a directory"
            ),
            "\(folderFileCheck.standardError)"
        )
    }

    @Test("cluster: every key, the defaults, and the credentials and TLS files of the coordinating NATS")
    func cluster() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        _ = try directory.write("nats.pw", "s3cret\n")
        let configuration = try Configuration.parse(
            """
            cluster:
              name: prod_alerting
              replica: east-1
              nats:
                url: nats://n1:4222, nats://n2:4222
                user: flatline
                password_file: nats.pw
                tls_config: {ca_file: ca.pem}
              lease: 30s
              replicas_per_shard: 1
            """,
            file: "c.yml",
            directory: directory.url.path
        )
        let cluster = try #require(configuration.cluster)
        #expect(cluster.name == "prod_alerting" && cluster.replica == "east-1")
        #expect(cluster.nats.urls == ["nats://n1:4222", "nats://n2:4222"])
        #expect(cluster.nats.credentials.user == "flatline")
        #expect(cluster.nats.credentials.passwordFile == directory.file("nats.pw").path)
        #expect(
            configuration.fileReferences == [
                FileReference(key: "cluster.nats.password_file", line: 7, path: directory.file("nats.pw").path),
                FileReference(key: "cluster.nats.tls_config.ca_file", line: 8, path: directory.file("ca.pem").path),
            ]
        )
        #expect(cluster.lease == 30 && cluster.replicasPerShard == 1)
        let client = try cluster.nats.clientConfiguration(name: "x")
        #expect(client.servers.map(\.description) == ["n1:4222", "n2:4222"])
        guard case .userPassword(let user, let password) = client.authentication else {
            Issue.record("\(client.authentication) is not a user and password")
            return
        }
        #expect(user == "flatline" && password == "s3cret")
        #expect(client.tls?.caFile == directory.file("ca.pem").path)

        let defaults = try #require(
            try Configuration.parse("cluster: {nats: {url: [h:4222]}}\n", file: "d.yml").cluster
        )
        #expect(defaults.name == "flatline" && defaults.lease == 10 && defaults.replicasPerShard == 2)
        #expect(defaults.replica == ClusterSettings.defaultReplica && ClusterSettings.isValidName(defaults.replica))
        #expect(try Configuration.parse("scrape_configs: []\n", file: "n.yml").cluster == nil)
    }

    @Test("flatline check: routes and receivers are summed up; an unreadable signature secret is a problem")
    func checkRouting() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let config = try directory.write(
            "f.yml",
            """
            route: {receiver: hook, routes: [{matchers: ['severity="critical"'], receiver: hook}]}
            receivers:
              - name: hook
                webhook_configs: [{url: "http://127.0.0.1:1/hook", signature_secret_file: hook.secret}]
            """
        )
        let missing = try Self.check(config.path)
        #expect(missing.status == 1)
        #expect(
            missing.standardError.contains(
                "f.yml:4: receivers[0].webhook_configs[0].signature_secret_file: \"\(directory.url.path)/hook.secret\" does not exist"
            ),
            "\(missing.standardError)"
        )
        _ = try directory.write("hook.secret", "s")
        let ok = try Self.check(config.path)
        #expect(ok.status == 0, "\(ok.standardError)")
        #expect(ok.standardOutput.contains("route: receiver hook, 1 child route(s), 0 inhibit rule(s)"))
        #expect(ok.standardOutput.contains("receiver hook: 1 webhook"))
        // A file receiver's file must be creatable; `-` is standard output.
        let files = try directory.write(
            "files.yml",
            """
            route: {receiver: out}
            receivers:
              - name: out
                file_configs: [{path: "-"}, {path: alerts.ndjson}, {path: nowhere/alerts.ndjson}]
            """
        )
        let filesCheck = try Self.check(files.path)
        #expect(filesCheck.status == 1)
        #expect(
            filesCheck.standardError
                == "check: \(files.path):4: receivers[0].file_configs[2].path: \"\(directory.url.path)/nowhere/alerts.ndjson\" "
                + "cannot be created: its directory \(directory.url.path)/nowhere does not exist\n",
            "\(filesCheck.standardError)"
        )
    }

    @Test("a duration is at most a year: longer, a target would never be scraped and nothing would say why")
    func longestDuration() throws {
        for (yaml, key) in [
            ("global: {scrape_interval: 300000y}\n", "global.scrape_interval"),
            ("global: {scrape_interval: 99999999999999999999d}\n", "global.scrape_interval"),
            ("route: {receiver: r, repeat_interval: 367d}\nreceivers: [{name: r}]\n", "route.repeat_interval"),
        ] {
            #expect {
                _ = try Configuration.parse(yaml, file: "f.yml")
            } throws: { error in
                "\(error)".contains("f.yml:1: \(key): ") && "\(error)".contains("is longer than a year")
            }
        }
        let year = try Configuration.parse(
            "route: {receiver: r, repeat_interval: 1y}\nreceivers: [{name: r}]\n",
            file: "f.yml"
        )
        #expect(year.alerting?.route.repeatInterval == Double(365 * 86_400))
    }

    @Test("flatline check --models: the shipped models pass; a typo names the file and key")
    func checkModels() throws {
        let shipped = TestSupport.repositoryFile("models").path
        let ok = try TestSupport.run(TestSupport.flatlineBinary, ["check", "--models", shipped])
        #expect(ok.status == 0, "\(ok.standardError)")
        #expect(ok.standardOutput.contains("OK, 17 models"))
        #expect(ok.standardOutput.contains("consumer_freeze (stall): ConsumerFreeze, critical"))
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let text = try String(contentsOfFile: shipped + "/producer_flood.yml", encoding: .utf8)
        let typo = try directory.write("flood.yml", text.replacingOccurrences(of: "  factor:", with: "  factr:"))
        let failed = try TestSupport.run(TestSupport.flatlineBinary, ["check", "--models", directory.url.path])
        #expect(failed.status == 1)
        // The line of the typo (the shipped file's `factor:` line), as a configuration file's errors.
        let line = (text.components(separatedBy: "\n").firstIndex { $0.hasPrefix("  factor:") } ?? -1) + 1
        #expect(
            failed.standardError.contains("\(typo.path):\(line): surge.factr: unknown key"),
            "\(failed.standardError)"
        )
        let neither = try TestSupport.run(TestSupport.flatlineBinary, ["check"])
        #expect(neither.status != 0)
    }
}
