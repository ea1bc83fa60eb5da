import FlatlineConfig
import FlatlineCore
import FlatlineIngest
import Foundation
import Logging

/// Scrapes every target of a configuration on its own schedule, concurrently across targets and
/// one round at a time per target, and hands each round's batch to `sink`.
///
/// Each target scrapes at a fixed offset within its interval, derived from its job and address
/// (a stable jitter): targets spread over the interval instead of scraping in lockstep, and a
/// restart keeps the same phase. A round that overruns its interval delays the next to the
/// following slot; rounds of one target never overlap.
public final class Scraper: Sendable {
    public let configuration: Configuration
    private let logger: Logger
    private let recorder: Recorder?
    private let owns: (@Sendable (String) -> Bool)?
    private let taking: (@Sendable (String) async -> Void)?
    private let discovered: (@Sendable (_ job: String, _ servers: [DiscoveredUnit]) -> Void)?
    private let released: (@Sendable (_ unit: String, _ labels: [String: String]) async -> Void)?
    private let userAgent: String

    /// - Parameters:
    ///   - recorder: where raw scrapes are recorded, if anywhere.
    ///   - userAgent: the `User-Agent` of HTTP scrapes.
    ///   - owns: whether this process scrapes a unit (see ``units(of:)``) now, asked before each
    ///     round; `nil`: every unit, always.
    ///   - taking: called before the first round of a unit this process did not own before
    ///     (learned state taken over).
    ///   - discovered: told each round the servers of a `nats_system` job that answered (units
    ///     found while scraping, owned here or not).
    ///   - released: called when a unit this process scraped is owned elsewhere now, with its
    ///     target's labels.
    public init(
        configuration: Configuration,
        recorder: Recorder? = nil,
        userAgent: String = "flatline",
        owns: (@Sendable (String) -> Bool)? = nil,
        taking: (@Sendable (String) async -> Void)? = nil,
        discovered: (@Sendable (_ job: String, _ servers: [DiscoveredUnit]) -> Void)? = nil,
        released: (@Sendable (_ unit: String, _ labels: [String: String]) async -> Void)? = nil,
        logger: Logger
    ) {
        self.released = released
        self.configuration = configuration
        self.recorder = recorder
        self.userAgent = userAgent
        self.owns = owns
        self.taking = taking
        self.discovered = discovered
        self.logger = logger
    }

    /// What is scraped as one: a target of an HTTP job; a `nats_system` or `nats_events` job as a
    /// whole (one connection), by its first target's name. The servers of a `nats_system` job are
    /// units too, found while scraping (`<job>/<server name>`, told to `discovered`): its job's unit
    /// only tells the failure of the whole job.
    public static func units(of configuration: Configuration) -> [String] {
        var seen = Set<String>()
        var out: [String] = []
        for target in configuration.targets {
            let system = target.job.kind == .natsSystem || target.job.kind == .natsEvents
            guard !system || seen.insert(target.job.jobName).inserted else { continue }
            out.append(target.name)
        }
        return out
    }

    /// The offset of a target's scrapes within its interval, in seconds: the same for the same
    /// job and address, spread evenly across targets.
    public static func offset(for target: ScrapeTarget) -> Double {
        // FNV-1a over the name: stable across runs and platforms (Hasher is seeded per process).
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in target.name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return Double(hash % 1_000_000) / 1_000_000 * target.job.scrapeInterval
    }

    /// Scrapes until the task is cancelled, or until `rounds` rounds of every target are done.
    ///
    /// - Parameters:
    ///   - rounds: stop each target after this many rounds; `nil` runs until cancelled.
    ///   - immediately: start each target's first round at once instead of at its slot (for
    ///     tests and short recordings).
    ///   - sink: receives every round's batch, from the targets' tasks.
    /// - Throws: ``ScrapeError`` when a job's HTTP client cannot be set up (TLS files).
    public func run(
        rounds: Int? = nil,
        immediately: Bool = false,
        sink: @escaping @Sendable (ScrapeBatch) async -> Void
    ) async throws(ScrapeError) {
        var fetchers: [String: HTTPFetcher] = [:]
        for job in configuration.scrapeConfigs where job.kind != .natsSystem && job.kind != .natsEvents {
            do {
                fetchers[job.jobName] = try HTTPFetcher(job: job, userAgent: userAgent)
            } catch {
                for fetcher in fetchers.values { await fetcher.shutdown() }
                throw ScrapeError(reason: "job \(job.jobName): \(error.reason)")
            }
        }
        let global = configuration.global
        let logger = logger
        let recorder = recorder
        let owns = owns
        let taking = taking
        let discovered = discovered
        let released = released
        await withTaskGroup(of: Void.self) { group in
            // A system-account job is one connection to the cluster; its servers are its targets,
            // each a unit of its own: every process asks, each takes the servers it owns.
            for job in configuration.scrapeConfigs where job.kind == .natsSystem {
                guard let first = configuration.targets.first(where: { $0.job.jobName == job.jobName }) else {
                    continue
                }
                let servers = SystemServers()
                group.addTask {
                    var scraper = SystemScraper(
                        job: job,
                        global: global,
                        recorder: recorder,
                        servers: servers,
                        owns: owns,
                        taking: taking,
                        discovered: discovered,
                        released: released,
                        logger: logger
                    )
                    await Self.loop(target: first, rounds: rounds, immediately: immediately) {
                        for batch in await scraper.scrape() { await sink(batch) }
                    }
                    await scraper.close()
                }
                if job.system.events && rounds == nil {
                    // Events of servers this process does not evaluate find no state and are left.
                    group.addTask {
                        let watcher = SystemEventWatcher(
                            job: job,
                            servers: servers,
                            recorder: recorder,
                            logger: logger
                        )
                        await watcher.run(sink: sink)
                    }
                }
            }
            // An events job is a subscription, not scrapes: it runs until the end.
            for job in configuration.scrapeConfigs where job.kind == .natsEvents && rounds == nil {
                guard let first = configuration.targets.first(where: { $0.job.jobName == job.jobName }) else {
                    continue
                }
                group.addTask {
                    await Self.whileOwned(first.name, owns: owns) {
                        await AdvisoryWatcher(job: job, global: global, recorder: recorder, logger: logger)
                            .run(sink: sink)
                    }
                }
            }
            for target in configuration.targets where target.job.kind != .natsSystem && target.job.kind != .natsEvents {
                guard let fetcher = fetchers[target.job.jobName] else { continue }
                group.addTask {
                    var scraper = TargetScraper(
                        target: target,
                        global: global,
                        fetcher: fetcher,
                        recorder: recorder,
                        logger: logger
                    )
                    await Self.loop(
                        target: target,
                        rounds: rounds,
                        immediately: immediately,
                        owns: owns,
                        taking: taking,
                        released: released
                    ) {
                        await sink(await scraper.scrape())
                    }
                }
            }
        }
        for fetcher in fetchers.values { await fetcher.shutdown() }
    }

    /// Runs `body` while this process owns the unit: cancelled when it stops owning it, started
    /// again when it owns it again (ownership is looked at every second).
    private static func whileOwned(
        _ unit: String,
        owns: (@Sendable (String) -> Bool)?,
        body: @escaping @Sendable () async -> Void
    ) async {
        guard let owns else { return await body() }
        while !Task.isCancelled {
            while !owns(unit) {
                do { try await Task.sleep(for: .seconds(1)) } catch { return }
            }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await body() }
                group.addTask {
                    while owns(unit) {
                        do { try await Task.sleep(for: .seconds(1)) } catch { return }
                    }
                }
                await group.next()
                group.cancelAll()
            }
            // A body that ended on its own is not restarted in a tight loop.
            do { try await Task.sleep(for: .seconds(1)) } catch { return }
        }
    }

    /// Runs `round` on the target's schedule, skipping the rounds of a unit this process does
    /// not own.
    private static func loop(
        target: ScrapeTarget,
        rounds: Int?,
        immediately: Bool,
        owns: (@Sendable (String) -> Bool)? = nil,
        taking: (@Sendable (String) async -> Void)? = nil,
        released: (@Sendable (_ unit: String, _ labels: [String: String]) async -> Void)? = nil,
        round: () async -> Void
    ) async {
        let interval = target.job.scrapeInterval
        let offset = offset(for: target)
        var done = 0
        var first = immediately
        // Whether this process owned the unit at its last slot. One it did not own is looked at
        // every second, and scraped as soon as it is (a target taken over from a replica that
        // left has missed its slots): a takeover does not wait up to an interval.
        var owned = owns?(target.name) ?? true
        // Whether the unit was owned at the last round (false at the start: the first owned
        // round takes over whatever was shared of it).
        var scraping = false
        while !Task.isCancelled {
            if !first {
                let now = Date().timeIntervalSince1970
                // The next slot at `offset` within an interval, strictly after now.
                var next = (now / interval).rounded(.down) * interval + offset
                while next <= now { next += interval }
                var left = next - now
                while left > 0 {
                    do {
                        try await Task.sleep(for: Duration.clamped(seconds: owned ? left : min(1, left)))
                    } catch {
                        return
                    }
                    if !owned, let owns, owns(target.name) { break }
                    left = next - Date().timeIntervalSince1970
                }
            }
            first = false
            owned = owns?(target.name) ?? true
            guard owned else {
                // Moved to another replica: what was kept of it here is left to that one.
                if scraping, let released { await released(target.name, target.labels) }
                scraping = false
                continue
            }
            if !scraping, let taking { await taking(target.name) }
            scraping = true
            await round()
            done += 1
            if let rounds, done >= rounds { return }
        }
    }
}
