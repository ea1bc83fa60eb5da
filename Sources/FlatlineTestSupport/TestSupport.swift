import FlatlineCore
import Foundation
import RealModule
import Synchronization

/// Shared helpers for Flatline's test targets.
public enum TestSupport {
    /// A copy of the shipped models in `directory` with the producer flood's warm-up cut from two
    /// minutes to `warmup` (`"20s"`), so a test can show a flood after a short normal phase.
    public static func modelsWithFloodWarmup(_ warmup: String, in directory: TemporaryDirectory) throws -> URL {
        let models = directory.file("models")
        try FileManager.default.copyItem(at: repositoryFile("models"), to: models)
        let flood = models.appendingPathComponent("producer_flood.yml")
        let text = try String(contentsOf: flood, encoding: .utf8)
        let quick = text.replacingOccurrences(of: "warmup: 2m ", with: "warmup: \(warmup) ")
        guard quick != text else { throw TestError("producer_flood.yml has no `warmup: 2m` to shorten") }
        try quick.write(to: flood, atomically: true, encoding: .utf8)
        return models
    }

    /// Whether `a` and `b` agree to `relative` tolerance, or to `absolute` near zero. Both NaN
    /// counts as agreement.
    public static func close(_ a: Double, _ b: Double, relative: Double = 1e-9, absolute: Double = 1e-12) -> Bool {
        if a.isNaN && b.isNaN { return true }
        return a.isApproximatelyEqual(to: b, absoluteTolerance: absolute, relativeTolerance: relative)
    }

    /// JSON with sorted keys: equal values give equal bytes.
    public static func canonicalJSON(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(value)
    }

    /// The repository's root, found from this file's location.
    public static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    /// A file under the repository root.
    public static func repositoryFile(_ relativePath: String) -> URL {
        repositoryRoot.appendingPathComponent(relativePath)
    }

    /// The `flatline` executable built next to the running tests.
    public static var flatlineBinary: URL {
        // Tests run from .build/<triple>/debug/<package>PackageTests.xctest (or a bundle inside
        // it); the executable sits in the same build directory.
        var directory = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("flatline")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return repositoryFile(".build/debug/flatline")
    }

    /// What a finished process said.
    public struct ProcessResult: Sendable {
        public var status: Int32
        public var standardOutput: String
        public var standardError: String
    }

    /// Runs an executable to completion and collects its output; after `timeout` seconds it is
    /// killed (and the result says so by its signal status).
    public static func run(_ executable: URL, _ arguments: [String], timeout: Double? = nil) throws -> ProcessResult {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        if let timeout {
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
        }
        // Read both pipes to the end before waiting, so a full pipe cannot block the child.
        let errData = Mutex(Data())
        let errRead = DispatchGroup()
        errRead.enter()
        DispatchQueue.global().async {
            let data = err.fileHandleForReading.readDataToEndOfFile()
            errData.withLock { $0 = data }
            errRead.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        errRead.wait()
        process.waitUntilExit()
        return ProcessResult(
            status: process.terminationStatus,
            standardOutput: String(decoding: outData, as: UTF8.self),
            standardError: String(decoding: errData.withLock { $0 }, as: UTF8.self)
        )
    }

    /// A fresh temporary directory, removed by ``TemporaryDirectory/remove()``.
    public struct TemporaryDirectory: Sendable {
        public let url: URL

        public init() throws {
            url = FileManager.default.temporaryDirectory.appendingPathComponent("flatline-test-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }

        public func file(_ name: String) -> URL { url.appendingPathComponent(name) }

        public func write(_ name: String, _ text: String) throws -> URL {
            let target = file(name)
            try Data(text.utf8).write(to: target)
            return target
        }

        public func remove() {
            try? FileManager.default.removeItem(at: url)
        }
    }
}

/// Deterministic synthetic series for tests.
public enum Synthetic {
    /// `count` standard-normal draws from `seed`.
    public static func noise(count: Int, seed: UInt64) -> [Double] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in rng.normal() }
    }
}

/// A seeded random number generator for tests (SplitMix64): the same seed, the same numbers.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var base: SplitMix64

    public init(seed: UInt64) {
        base = SplitMix64(seed: seed)
    }

    public mutating func next() -> UInt64 { base.next() }

    /// A uniform double in [0, 1).
    public mutating func uniform() -> Double { base.uniform() }

    /// A standard normal draw.
    public mutating func normal() -> Double { base.normal() }
}

extension TestSupport {
    /// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
    @discardableResult
    public static func eventually(
        timeout: Duration = .seconds(10),
        _ condition: () throws -> Bool
    ) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return try condition()
    }
}
