/// Gives every series of one source a slot, a column in the detectors' matrices, and takes the
/// slot back when the series goes stale so the matrices do not grow without bound.
///
/// Label sets are interned: names and values repeated across series share one string, so ten
/// thousand connections of one server cost one copy of `server_id`.
public struct SeriesStore: Sendable {
    /// What the store knows of one series.
    public struct Entry: Sendable, Hashable {
        /// The series' labels.
        public var labels: LabelSet
        /// The stable key of ``labels``.
        public var key: SeriesKey
        /// Counter or gauge, as first seen.
        public var kind: MetricKind
        /// When the series was first seen in this slot.
        public var firstSeen: Timestamp
        /// When the series was last seen.
        public var lastSeen: Timestamp
    }

    /// The most series the store will hold, or `nil` for no limit.
    public var maxSeries: Int?

    private var slotsByLabels: [LabelSet: Int] = [:]
    private var entries: [Entry?] = []
    // Free slots, kept sorted in descending order so the lowest slot is reused first: the
    // assignment is deterministic, which keeps replays identical.
    private var freeSlots: [Int] = []
    private var interner = StringInterner()

    /// Creates an empty store.
    /// - Parameter maxSeries: the cardinality limit, or `nil` for none.
    public init(maxSeries: Int? = nil) {
        self.maxSeries = maxSeries
    }

    /// The most slots a restored store may have (a larger `capacity` in a state file is
    /// corruption, refused before anything is allocated).
    public static let maximumCapacity = 16_777_216

    /// The number of slots, used or free: the width every per-series vector must have.
    public var capacity: Int { entries.count }

    /// The number of live series.
    public var count: Int { slotsByLabels.count }

    /// The number of distinct label names and values held for the live series.
    public var internedStrings: Int { interner.count }

    /// The entry in `slot`, or `nil` when the slot is free.
    public func entry(at slot: Int) -> Entry? {
        slot >= 0 && slot < entries.count ? entries[slot] : nil
    }

    /// The slot of `labels`, or `nil` when the series is unknown.
    public func slot(of labels: LabelSet) -> Int? { slotsByLabels[labels] }

    /// The live series with their slots, in slot order.
    public var liveSlots: [(slot: Int, entry: Entry)] {
        entries.enumerated().compactMap { slot, entry in entry.map { (slot, $0) } }
    }

    /// The kind of the series in `slot` (as first seen), or `nil` when the slot is free. Read in
    /// place: ``entry(at:)`` copies the entry, its labels and key retained and released.
    public func kind(at slot: Int) -> MetricKind? {
        slot >= 0 && slot < entries.count ? entries[slot]?.kind : nil
    }

    /// Marks the series in `slot` seen at `time` (as ``slot(for:kind:at:)`` does), in place.
    public mutating func touch(slot: Int, at time: Timestamp) {
        guard slot >= 0, slot < entries.count, let last = entries[slot]?.lastSeen, last < time else { return }
        entries[slot]?.lastSeen = time
    }

    /// The slot of `labels`, creating it (or reusing a free one) for a new series.
    ///
    /// - Parameters:
    ///   - labels: the series.
    ///   - kind: counter or gauge; kept from the first sight of the series.
    ///   - time: when it was seen; updates ``Entry/lastSeen``.
    /// - Returns: the slot, and whether the series is new (its detector state must start cold).
    /// - Throws: ``SeriesStoreError`` when a new series would exceed ``maxSeries``.
    public mutating func slot(
        for labels: LabelSet,
        kind: MetricKind,
        at time: Timestamp
    ) throws(SeriesStoreError) -> (slot: Int, isNew: Bool) {
        if let slot = slotsByLabels[labels] {
            if var entry = entries[slot], entry.lastSeen < time {
                entry.lastSeen = time
                entries[slot] = entry
            }
            return (slot, false)
        }
        guard labels.count <= LabelSet.maximumCount else {
            throw SeriesStoreError(kind: .tooManyLabels, limit: LabelSet.maximumCount, labels: labels)
        }
        if let maxSeries, slotsByLabels.count >= maxSeries {
            throw SeriesStoreError(kind: .seriesLimit, limit: maxSeries, labels: labels)
        }
        let interned = interner.intern(labels)
        let entry = Entry(labels: interned, key: interned.fingerprint, kind: kind, firstSeen: time, lastSeen: time)
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            entries[slot] = entry
        } else {
            slot = entries.count
            entries.append(entry)
        }
        slotsByLabels[interned] = slot
        return (slot, true)
    }

    /// ``slot(for:kind:at:)`` for a series that is probably in `hint` (where it was in the
    /// source's previous tick): when it is, found by comparing its labels with the slot's,
    /// without hashing them; otherwise looked up as usual. The same slot either way.
    public mutating func slot(
        for labels: LabelSet,
        kind: MetricKind,
        at time: Timestamp,
        hint: Int
    ) throws(SeriesStoreError) -> (slot: Int, isNew: Bool) {
        if hint >= 0, hint < entries.count, var entry = entries[hint], entry.labels == labels {
            if entry.lastSeen < time {
                entry.lastSeen = time
                entries[hint] = entry
            }
            return (hint, false)
        }
        return try slot(for: labels, kind: kind, at: time)
    }

    /// Frees the slots of series not seen since `cutoff`.
    ///
    /// - Returns: the freed slots in ascending order; detectors must reset them.
    public mutating func sweep(notSeenSince cutoff: Timestamp) -> [Int] {
        var freed: [Int] = []
        for (slot, entry) in entries.enumerated() {
            guard let entry, entry.lastSeen < cutoff else { continue }
            freed.append(slot)
            entries[slot] = nil
            slotsByLabels[entry.labels] = nil
            interner.release(entry.labels)
        }
        if !freed.isEmpty {
            freeSlots.append(contentsOf: freed)
            freeSlots.sort(by: >)
        }
        return freed
    }
}

extension SeriesStore: Codable {
    private enum CodingKeys: String, CodingKey { case maxSeries, series, table, capacity }

    private struct StoredEntry: Codable {
        var slot: Int
        var labels: LabelSet
        var kind: MetricKind
        var firstSeen: Timestamp
        var lastSeen: Timestamp
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(maxSeries: try container.decodeIfPresent(Int.self, forKey: .maxSeries))
        let capacity = try container.decode(Int.self, forKey: .capacity)
        // Checked before anything is allocated: a hostile capacity must not exhaust memory.
        guard capacity >= 0, capacity <= Self.maximumCapacity else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: container.codingPath,
                    debugDescription: "capacity \(capacity) is outside 0...\(Self.maximumCapacity)"
                )
            )
        }
        let stored: [StoredEntry]
        if let table = try container.decodeIfPresent(String.self, forKey: .table) {
            guard let bytes = Base64.decode(table), let entries = Self.entries(bytes) else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: container.codingPath, debugDescription: "the series table is not readable")
                )
            }
            stored = entries
        } else {
            // Files written before the table was packed: one JSON object per series.
            stored = try container.decode([StoredEntry].self, forKey: .series)
        }
        guard capacity >= 0, stored.allSatisfy({ $0.slot >= 0 && $0.slot < capacity }) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: container.codingPath, debugDescription: "series slot outside the store's capacity")
            )
        }
        entries = Array(repeating: nil, count: capacity)
        for item in stored {
            let labels = interner.intern(item.labels)
            guard entries[item.slot] == nil, slotsByLabels[labels] == nil else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: container.codingPath, debugDescription: "series \(labels) stored twice")
                )
            }
            entries[item.slot] = Entry(
                labels: labels,
                key: labels.fingerprint,
                kind: item.kind,
                firstSeen: item.firstSeen,
                lastSeen: item.lastSeen
            )
            slotsByLabels[labels] = item.slot
        }
        freeSlots = entries.indices.filter { entries[$0] == nil }.sorted(by: >)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(maxSeries, forKey: .maxSeries)
        try container.encode(capacity, forKey: .capacity)
        // One binary record per series (slot, kind, first and last seen, labels), base64 as a
        // whole: a JSON object per series would be a million encoder nodes at 100,000 series.
        var writer = BinaryWriter(capacity: count * 96)
        for (slot, entry) in liveSlots {
            writer.integer(UInt32(slot))
            writer.string(entry.kind.rawValue)
            writer.integer(entry.firstSeen.milliseconds)
            writer.integer(entry.lastSeen.milliseconds)
            // Label sets are sorted with unique names (and at most LabelSet.maximumCount labels,
            // enforced where series enter), so the count fits the record's 16 bits.
            let labels = entry.labels.labels.prefix(Int(UInt16.max))
            writer.integer(UInt16(labels.count))
            for label in labels {
                writer.string(label.name)
                writer.string(label.value)
            }
        }
        try container.encode(Base64.encode(writer.bytes), forKey: .table)
    }

    /// The records of a packed series table; `nil` if they are cut short or malformed.
    private static func entries(_ bytes: [UInt8]) -> [StoredEntry]? {
        var reader = BinaryReader(bytes)
        var out: [StoredEntry] = []
        while !reader.atEnd {
            guard let slot = reader.integer(UInt32.self),
                let kind = reader.string().flatMap(MetricKind.init(rawValue:)),
                let first = reader.integer(Int64.self),
                let last = reader.integer(Int64.self), let count = reader.integer(UInt16.self)
            else { return nil }
            var pairs: [(String, String)] = []
            for _ in 0..<count {
                guard let name = reader.string(), let value = reader.string() else { return nil }
                pairs.append((name, value))
            }
            guard let labels = try? LabelSet(validating: pairs) else { return nil }
            out.append(
                StoredEntry(
                    slot: Int(slot),
                    labels: labels,
                    kind: kind,
                    firstSeen: Timestamp(milliseconds: first),
                    lastSeen: Timestamp(milliseconds: last)
                )
            )
        }
        return out
    }
}

/// A new series the store refuses: it would exceed the cardinality limit, or it has more labels
/// than any series may have.
public struct SeriesStoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Which limit refused the series.
    public enum Kind: Hashable, Sendable {
        /// ``SeriesStore/maxSeries``.
        case seriesLimit
        /// ``LabelSet/maximumCount``.
        case tooManyLabels
    }

    public var kind: Kind
    /// The limit that was reached.
    public var limit: Int
    /// The series that was refused.
    public var labels: LabelSet

    public var description: String {
        switch kind {
        case .seriesLimit: "series limit of \(limit) reached; refused new series \(labels.description.prefix(200))"
        case .tooManyLabels:
            "a series has \(labels.count) labels, more than \(limit); refused \(labels.metricName.prefix(200))"
        }
    }
}

/// Keeps one shared copy of every label name and value, counting its users so that values of
/// series that went away (a closed connection's `cid`) are forgotten too.
struct StringInterner: Sendable {
    private var table: [String: Int] = [:]

    mutating func intern(_ string: String) -> String {
        if let index = table.index(forKey: string) {
            let canonical = table[index].key
            table[canonical, default: 0] += 1
            return canonical
        }
        table[string] = 1
        return string
    }

    mutating func release(_ string: String) {
        guard let count = table[string] else { return }
        table[string] = count > 1 ? count - 1 : nil
    }

    mutating func intern(_ labels: LabelSet) -> LabelSet {
        LabelSet(uncheckedSorted: labels.labels.map { Label(name: intern($0.name), value: intern($0.value)) })
    }

    mutating func release(_ labels: LabelSet) {
        for label in labels.labels {
            release(label.name)
            release(label.value)
        }
    }

    /// The number of distinct strings held.
    var count: Int { table.count }
}
