// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "flatline",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "flatline", targets: ["flatline"]),
        .library(name: "FlatlineCore", targets: ["FlatlineCore"]),
        .library(name: "FlatlineIngest", targets: ["FlatlineIngest"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
    ],
    targets: [
        // C BLAS (cblas.h) and LAPACKE (lapacke.h) from Debian's libblas-dev / liblapacke-dev.
        // Only FlatlineCore imports it; everything else sees Swift wrappers.
        .systemLibrary(
            name: "CLAPACK",
            providers: [.apt(["libblas-dev", "liblapacke-dev"])]
        ),
        // Series identity, counters to rates, numeric kernels, detectors and their state.
        .target(
            name: "FlatlineCore",
            dependencies: ["CLAPACK"]
        ),
        // Data entering Flatline: exposition formats, CSV series, (later) scrapes and recordings.
        .target(
            name: "FlatlineIngest",
            dependencies: ["FlatlineCore"]
        ),
        // Wiring of the parts: replay today, the daemon later.
        .target(
            name: "FlatlineDaemon",
            dependencies: [
                "FlatlineCore",
                "FlatlineIngest",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "flatline",
            dependencies: [
                "FlatlineCore",
                "FlatlineIngest",
                "FlatlineDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Shared test code: fixtures, synthetic series, process helpers. Never copied between test targets.
        .target(
            name: "FlatlineTestSupport",
            dependencies: [
                "FlatlineCore",
                .product(name: "RealModule", package: "swift-numerics"),
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
            name: "FlatlineCLITests",
            dependencies: [
                "flatline",
                "FlatlineDaemon",
                "FlatlineTestSupport",
            ]
        ),
    ]
)

for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    target.swiftSettings = settings
}
