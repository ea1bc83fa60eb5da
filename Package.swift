// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "flatline",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "flatline", targets: ["flatline"]),
        .library(name: "FlatlineCore", targets: ["FlatlineCore"]),
        .library(name: "FlatlineIngest", targets: ["FlatlineIngest"]),
        .library(name: "FlatlineAlerting", targets: ["FlatlineAlerting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C BLAS (cblas.h) and LAPACKE (lapacke.h) from Debian's libblas-dev / liblapacke-dev.
        // Only FlatlineCore imports it; everything else sees Swift wrappers.
        .systemLibrary(
            name: "CLAPACK",
            providers: [.apt(["libblas-dev", "liblapacke-dev"])]
        ),
        // zlib (Debian zlib1g-dev), for gzip recordings; the test support reads PNG screenshots with it.
        .systemLibrary(
            name: "CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // A cache prefetch hint (a compiler builtin, header only), for walks over remembered series.
        .systemLibrary(name: "CPrefetch"),
        // The file system a file is on (statfs, header only): temporary files are kept off tmpfs.
        .systemLibrary(name: "CFileSystem"),
        // Series identity, counters to rates, numeric kernels, detectors and their state.
        .target(
            name: "FlatlineCore",
            dependencies: ["CLAPACK", "CPrefetch", "CFileSystem"]
        ),
        // Data entering Flatline: exposition formats, CSV series, NATS monitoring JSON, scrapes
        // and recordings.
        .target(
            name: "FlatlineIngest",
            dependencies: ["FlatlineCore", "CZlib"]
        ),
        // A NATS client on SwiftNIO: core protocol, request/reply, JetStream API, $SYS requests.
        // Depends on no other Flatline target.
        .target(
            name: "FlatlineNATS",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The traffic generator: scenario-driven NATS traffic with real incidents, for tests, the
        // demo, and operators who want to see Flatline catch one.
        .target(
            name: "FlatlineLoadgen",
            dependencies: [
                "FlatlineCore",
                "FlatlineNATS",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The strict YAML reader of the configuration and model files: every key known, every
        // value of its type, every error with its file, line and key.
        .target(
            name: "FlatlineYAML",
            dependencies: ["FlatlineCore", .product(name: "Yams", package: "Yams")]
        ),
        // The configuration file: one strict YAML reader for the whole file, each part's settings
        // (scrape jobs, routing, web, cluster, backfill), and what every HTTP client shares
        // (TLS files, credentials, errors in words).
        .target(
            name: "FlatlineConfig",
            dependencies: [
                "FlatlineCore",
                "FlatlineYAML",
                "FlatlineIngest",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // Scraping: HTTP targets (NATS monitoring and Prometheus /metrics) and NATS clusters
        // through the system account, validation, and recording.
        .target(
            name: "FlatlineScrape",
            dependencies: [
                "FlatlineConfig",
                "FlatlineCore",
                "FlatlineIngest",
                "FlatlineNATS",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPCompression", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Alert states (pending, firing, resolved), fingerprints as Alertmanager computes them.
        // Pure: clocked from outside, no I/O.
        .target(
            name: "FlatlineAlerting",
            dependencies: ["FlatlineCore", "FlatlineYAML", .product(name: "Yams", package: "Yams")]
        ),
        // Where alerts go: the routing tree, grouping and timers, silences and inhibition,
        // Alertmanager's payloads, and their delivery.
        .target(
            name: "FlatlineNotify",
            dependencies: [
                "FlatlineCore",
                "FlatlineAlerting",
                "FlatlineConfig",
                "FlatlineNATS",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The daemon (one pipeline, its API, its state and its cluster) and replay through it.
        .target(
            name: "FlatlineDaemon",
            dependencies: [
                "FlatlineCore",
                "FlatlineIngest",
                "FlatlineAlerting",
                "FlatlineConfig",
                "FlatlineScrape",
                "FlatlineNotify",
                "FlatlineNATS",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "flatline",
            dependencies: [
                "FlatlineCore",
                "FlatlineIngest",
                "FlatlineDaemon",
                "FlatlineNATS",
                "FlatlineLoadgen",
                "FlatlineConfig",
                "FlatlineYAML",
                "FlatlineScrape",
                "FlatlineAlerting",
                "FlatlineNotify",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Shared test code: fixtures, synthetic series, process helpers. Never copied between test targets.
        .target(
            name: "FlatlineTestSupport",
            dependencies: [
                "FlatlineCore",
                "CZlib",
                "FlatlineNATS",
                .product(name: "RealModule", package: "swift-numerics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "FlatlineCoreTests",
            dependencies: [
                "FlatlineCore",
                "FlatlineTestSupport",
                .product(name: "RealModule", package: "swift-numerics"),
            ],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "FlatlineIngestTests",
            dependencies: ["FlatlineIngest", "FlatlineTestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "FlatlineNATSTests",
            dependencies: [
                "FlatlineNATS",
                "FlatlineTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "FlatlineScrapeTests",
            dependencies: [
                "FlatlineConfig",
                "FlatlineYAML",
                "FlatlineScrape",
                "FlatlineIngest",
                "FlatlineNATS",
                "FlatlineLoadgen",
                "FlatlineTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(
            name: "FlatlineDaemonTests",
            dependencies: [
                "FlatlineDaemon",
                "FlatlineAlerting",
                "FlatlineIngest",
                "FlatlineConfig",
                "FlatlineYAML",
                "FlatlineScrape",
                "FlatlineNATS",
                "FlatlineCore",
                "FlatlineTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "FlatlineAlertingTests",
            dependencies: ["FlatlineAlerting", "FlatlineCore", "FlatlineTestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "FlatlineNotifyTests",
            dependencies: [
                "FlatlineNotify", "FlatlineAlerting", "FlatlineConfig", "FlatlineCore", "FlatlineNATS",
                "FlatlineTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "FlatlineLoadgenTests",
            dependencies: ["FlatlineLoadgen", "FlatlineNATS", "FlatlineTestSupport"]
        ),
        .testTarget(
            name: "FlatlineCLITests",
            dependencies: [
                "flatline",
                "FlatlineDaemon",
                "FlatlineAlerting",
                "FlatlineCore",
                "FlatlineTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
    ]
)

// Fuzzing targets for libFuzzer, declared only for `make fuzz` (FLATLINE_FUZZ=1), which builds
// them with -sanitize=fuzzer,address in .build-fuzz; they are not part of any normal build.
if Context.environment["FLATLINE_FUZZ"] != nil {
    package.products += [
        .library(name: "FlatlineNATS", targets: ["FlatlineNATS"]),
        .library(name: "FlatlineScrape", targets: ["FlatlineScrape"]),
        .library(name: "FlatlineConfig", targets: ["FlatlineConfig"]),
    ]
    let fuzzTargets: [(String, [Target.Dependency])] = [
        ("FuzzExposition", ["FlatlineCore", "FlatlineIngest"]),
        ("FuzzNATSBodies", ["FlatlineCore", "FlatlineIngest"]),
        ("FuzzNATSProtocol", ["FlatlineNATS", .product(name: "NIOCore", package: "swift-nio")]),
        ("FuzzConfiguration", ["FlatlineConfig", "FlatlineAlerting"]),
        ("FuzzRecording", ["FlatlineIngest"]),
    ]
    package.targets.append(.target(name: "FuzzSupport", path: "Tests/Fuzz/FuzzSupport"))
    for (name, dependencies) in fuzzTargets {
        package.targets.append(
            .executableTarget(
                name: name,
                dependencies: dependencies + ["FuzzSupport"],
                path: "Tests/Fuzz/\(name)",
                swiftSettings: [.unsafeFlags(["-parse-as-library"])]
            )
        )
    }
}

for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    target.swiftSettings = settings
}
