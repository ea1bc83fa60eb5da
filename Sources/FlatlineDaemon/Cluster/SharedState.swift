import FlatlineAlerting
import FlatlineConfig
import FlatlineIngest
import FlatlineNATS
import FlatlineScrape
import Foundation
import Logging
import Synchronization

/// Learned state through the cluster, so a replica that takes a target over starts warm: after
/// each save, every replica puts the detection state of each target it evaluates (its file in the
/// data directory, as saved) into the JetStream object store `<name>-state`, one object per
/// target, and what its models learned of the target (the flood, freeze, ... baselines of the
/// things labelled with its `instance`) as a second object, `<target>` and a line `models`.
/// Before the first scrape of a target it now evaluates and knows nothing of (no bank in memory,
/// no file), it takes the first as its file, which the pipeline then restores as it restores its
/// own, and adopts the second into its models.
public final class SharedState: Sendable {
    public let cluster: Cluster
    private let state: StateDirectory
    private let logger: Logger
    private let store = Mutex<ObjectStore?>(nil)
    private let failing = Mutex(false)
    /// Chunk subjects the leader found named by no description, and when it first did.
    private let orphans = Mutex<[String: ContinuousClock.Instant]>([:])

    /// How long chunks stay named by no description before the leader purges them: longer than
    /// any writer takes between its first chunk and its description.
    public static let orphanAge = Duration.seconds(300)
    /// Failed objects in a row after which an upload round gives up (the store is unreachable).
    static let failuresPerRound = 3

    /// The largest state object taken (a target of some hundred thousand series).
    public static let maxBytes = 1 << 30

    public var bucket: String { cluster.settings.name + "-state" }

    public init(cluster: Cluster, state: StateDirectory, logger: Logger) {
        self.cluster = cluster
        self.state = state
        self.logger = logger
    }

    private func objects() async throws -> ObjectStore? {
        if let store = store.withLock({ $0 }) { return store }
        guard cluster.phase != .alone, let jetStream = cluster.jetStream else { return nil }
        let made = try await ObjectStore.create(bucket: bucket, replicas: Cluster.copies(jetStream), in: jetStream)
        store.withLock { $0 = made }
        return made
    }

    /// The object of what the models learned of `unit`.
    public static func modelsObject(_ unit: String) -> String { unit + "\nmodels" }

    /// The objects the units of `configuration` may have.
    public static func objects(of configuration: Configuration) -> [String] {
        Scraper.units(of: configuration).flatMap { [$0, modelsObject($0)] }
    }

    /// The prefixes of the objects of units found while scraping: the servers of each
    /// `nats_system` job of `configuration` (`<job>/`).
    public static func discoveredPrefixes(of configuration: Configuration) -> [String] {
        configuration.scrapeConfigs.filter { $0.kind == .natsSystem }.map { $0.jobName + "/" }
    }

    /// After a save: the saved detection state, and what the models learned, of every unit of
    /// `configuration` this replica evaluates. An object another replica wrote at the same time
    /// is left to it; one that fails is logged and the round goes on, until several fail in a row.
    /// - Returns: how many objects were written.
    @discardableResult
    public func upload(_ configuration: Configuration, pipeline: Pipeline) async -> Int {
        let found = cluster.discoveredUnits
        let units = (Scraper.units(of: configuration) + found.map(\.name)).filter(cluster.owns)
        guard !units.isEmpty else { return 0 }
        let owned = Set(units)
        var labels: [String: (instance: String, job: String)] = [:]
        for target in configuration.targets where owned.contains(target.name) {
            labels[target.name] = (target.labels["instance"] ?? target.address, target.job.jobName)
        }
        for unit in found where owned.contains(unit.name) { labels[unit.name] = (unit.instance, unit.job) }
        let parts = await pipeline.modelParts(units: labels)
        var written = 0
        do {
            guard let store = try await objects() else { return 0 }
            var inARow = 0
            for unit in units {
                var objects: [(String, [UInt8])] = []
                if let data = FileManager.default.contents(atPath: state.detectionFile(unit)),
                    data.count <= Self.maxBytes
                {
                    objects.append((unit, [UInt8](data)))
                }
                if let part = parts[unit], part.things > 0, let data = try? JSONEncoder().encode(part),
                    data.count <= Self.maxBytes
                {
                    objects.append((Self.modelsObject(unit), [UInt8](data)))
                }
                for (name, bytes) in objects {
                    do {
                        try await store.put(name, bytes: bytes)
                        written += 1
                        inARow = 0
                    } catch let error as NATSError where error.apiErrorCode == ObjectStore.conflict {
                        // Another replica evaluating it wrote its own at the same moment: that stands.
                        inARow = 0
                    } catch {
                        inARow += 1
                        if inARow >= Self.failuresPerRound { throw error }
                        logger.warning(
                            "cluster: cannot share the learned state of a target; the others are shared",
                            metadata: ["target": "\(unit)", "error": "\(error)"]
                        )
                    }
                }
            }
            if failing.withLock({ s in
                defer { s = false }; return s
            }) {
                logger.notice("cluster: learned state is shared again")
            }
        } catch {
            self.store.withLock { $0 = nil }
            if !failing.withLock({ s in
                defer { s = true }; return s
            }) {
                logger.warning(
                    "cluster: cannot share learned state; a replica taking a target over starts it cold",
                    metadata: ["error": "\(error)"]
                )
            }
        }
        return written
    }

    /// Before the first scrape of a unit this replica now evaluates: if it knows nothing of it,
    /// the detection state its previous owner shared becomes its file, and its models take what
    /// the previous owner's learned of it.
    public func takeOver(_ unit: String, pipeline: Pipeline) async {
        guard await pipeline.isCold(target: unit) else { return }
        let store: ObjectStore
        do {
            guard let found = try await objects() else { return }
            store = found
        } catch {
            logger.warning(
                "cluster: cannot take the shared state of a target over; it starts cold",
                metadata: ["target": "\(unit)", "error": "\(error)"]
            )
            return
        }
        await takeModels(unit, from: store, pipeline: pipeline)
        await takeDetection(unit, from: store, pipeline: pipeline)
    }

    private func takeModels(_ unit: String, from store: ObjectStore, pipeline: Pipeline) async {
        await take(
            unit,
            object: Self.modelsObject(unit),
            from: store,
            failure: "cluster: cannot take the shared model state of a target over; its models learn again"
        ) { bytes in
            let part = try JSONDecoder().decode(ModelEvaluatorState.self, from: Data(bytes))
            let taken = await pipeline.adoptModels(part)
            return ("cluster: model state taken over from the cluster", ["things": "\(taken)"])
        }
    }

    private func takeDetection(_ unit: String, from store: ObjectStore, pipeline: Pipeline) async {
        let path = state.detectionFile(unit)
        await take(
            unit,
            object: unit,
            from: store,
            failure: "cluster: cannot take the shared state of a target over; it starts cold"
        ) { bytes in
            let temporary = path + ".cluster-\(getpid())"
            guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else {
                throw StateFileError(path: temporary, reason: "cannot write")
            }
            // A file the pipeline made meanwhile (it scraped first) is left alone.
            guard await pipeline.isCold(target: unit), rename(temporary, path) == 0 else {
                unlink(temporary)
                return nil
            }
            return ("cluster: detection state taken over from the cluster", [:])
        }
    }

    /// Reads `object` and hands its bytes to `apply`, which says what it made of them (`nil`:
    /// nothing to tell); a failure is logged as `failure`.
    private func take(
        _ unit: String,
        object: String,
        from store: ObjectStore,
        failure: Logger.Message,
        _ apply: ([UInt8]) async throws -> (Logger.Message, Logger.Metadata)?
    ) async {
        do {
            guard let (info, bytes) = try await store.get(object, maxBytes: Self.maxBytes),
                let (message, extra) = try await apply(bytes)
            else { return }
            let metadata: Logger.Metadata = [
                "target": "\(unit)", "bytes": "\(bytes.count)", "saved": "\(info.mtime ?? "?")",
            ]
            logger.notice(message, metadata: metadata.merging(extra) { _, new in new })
        } catch {
            logger.warning(failure, metadata: ["target": "\(unit)", "error": "\(error)"])
        }
    }

    /// The leader's singleton work: the shared state of targets the configuration no longer has
    /// (`units`, the objects of `objects(of:)`, and any under `prefixes`: servers of a
    /// `nats_system` job still configured) is deleted, so the store does not keep every target that ever was, and chunks named by no
    /// description for ``orphanAge`` (a writer that died between its chunks and its
    /// description) are purged.
    /// - Returns: how many objects were deleted.
    @discardableResult
    public func prune(
        keeping units: [String],
        prefixes: [String] = [],
        now: ContinuousClock.Instant = .now
    ) async -> Int {
        let keep = Set(units)
        var deleted = 0
        do {
            guard let store = try await objects() else { return 0 }
            for info in try await store.list()
            where !keep.contains(info.name) && !prefixes.contains(where: info.name.hasPrefix) {
                try await store.delete(info.name)
                deleted += 1
            }
            let found = try await store.orphanedChunks()
            let old = orphans.withLock { seen -> [String] in
                seen = seen.filter { found.contains($0.key) }
                for subject in found where seen[subject] == nil { seen[subject] = now }
                return seen.filter { now - $0.value >= Self.orphanAge }.map(\.key)
            }
            if !old.isEmpty {
                let purged = try await store.purgeChunks(old)
                orphans.withLock { seen in for subject in old { seen[subject] = nil } }
                logger.info(
                    "cluster: chunks of shared state that no object names purged",
                    metadata: ["subjects": "\(old.count)", "messages": "\(purged)"]
                )
            }
        } catch {
            logger.warning("cluster: cannot prune the shared state", metadata: ["error": "\(error)"])
        }
        if deleted > 0 {
            logger.info(
                "cluster: shared state of targets no longer configured deleted",
                metadata: ["objects": "\(deleted)"]
            )
        }
        return deleted
    }
}
