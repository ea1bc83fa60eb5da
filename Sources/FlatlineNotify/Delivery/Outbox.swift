import Foundation
import GRDB

/// One notification for one integration, waiting to be delivered.
public struct OutboxItem: Sendable, Hashable {
    public var id: Int64
    /// The integration it goes to (`pager/webhook/0`); each has its own queue.
    public var integration: String
    public var receiver: String
    /// Items of one group of one integration are delivered in order: a resolve never
    /// overtakes its firing.
    public var groupKey: String
    /// The same for every attempt of this notification, and across restarts.
    public var idempotencyKey: String
    public var body: Data
    /// Unix seconds.
    public var createdAt: Double
    public var nextAttemptAt: Double
    public var attempts: Int
    public var lastError: String?

    public init(
        id: Int64,
        integration: String,
        receiver: String,
        groupKey: String,
        idempotencyKey: String,
        body: Data,
        createdAt: Double,
        nextAttemptAt: Double,
        attempts: Int,
        lastError: String? = nil
    ) {
        self.id = id
        self.integration = integration
        self.receiver = receiver
        self.groupKey = groupKey
        self.idempotencyKey = idempotencyKey
        self.body = body
        self.createdAt = createdAt
        self.nextAttemptAt = nextAttemptAt
        self.attempts = attempts
        self.lastError = lastError
    }
}

/// A notification to put in the outbox.
public struct OutboxEntry: Sendable, Hashable {
    public var integration: String
    public var receiver: String
    public var groupKey: String
    public var idempotencyKey: String
    public var body: Data

    public init(integration: String, receiver: String, groupKey: String, idempotencyKey: String, body: Data) {
        self.integration = integration
        self.receiver = receiver
        self.groupKey = groupKey
        self.idempotencyKey = idempotencyKey
        self.body = body
    }
}

/// A notification given up on: rejected by the receiver, or too old. Kept, never dropped
/// silently.
public struct FailedNotification: Sendable, Hashable {
    public var item: OutboxItem
    public var failedAt: Double
    public var reason: String
}

/// The outbox could not be opened or written.
public struct OutboxError: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public var description: String { "\(path): \(reason)" }
}

/// The durable outbox: notifications are committed to SQLite (WAL, fsync on every commit)
/// before their first attempt, and leave it only after a 2xx, or into the failed table with
/// the reason. A restart, even `kill -9`, loses nothing: what was committed is delivered once
/// the receiver is back (at least once, with the same idempotency key).
public final class Outbox: Sendable {
    public let path: String
    private let pool: DatabasePool

    /// Opens (and creates, or migrates) the outbox database at `path`.
    /// - Throws: ``OutboxError`` naming the file and the reason.
    public init(path: String) throws(OutboxError) {
        self.path = path
        var configuration = GRDB.Configuration()
        configuration.prepareDatabase { db in
            // Every commit reaches the disk before `enqueue` returns.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            pool = try Self.open(path, configuration)
            var migrator = DatabaseMigrator()
            migrator.registerMigration("v1") { db in
                try db.execute(
                    sql: """
                        CREATE TABLE outbox (
                            id INTEGER PRIMARY KEY AUTOINCREMENT,
                            integration TEXT NOT NULL,
                            receiver TEXT NOT NULL,
                            group_key TEXT NOT NULL,
                            idempotency_key TEXT NOT NULL,
                            body BLOB NOT NULL,
                            created_at REAL NOT NULL,
                            next_attempt_at REAL NOT NULL,
                            attempts INTEGER NOT NULL DEFAULT 0,
                            last_error TEXT
                        );
                        CREATE INDEX outbox_queue ON outbox(integration, group_key, id);
                        CREATE TABLE failed (
                            id INTEGER PRIMARY KEY,
                            integration TEXT NOT NULL,
                            receiver TEXT NOT NULL,
                            group_key TEXT NOT NULL,
                            idempotency_key TEXT NOT NULL,
                            body BLOB NOT NULL,
                            created_at REAL NOT NULL,
                            attempts INTEGER NOT NULL,
                            failed_at REAL NOT NULL,
                            reason TEXT NOT NULL
                        );
                        """
                )
            }
            try migrator.migrate(pool)
        } catch {
            throw OutboxError(path: path, reason: "cannot open the outbox: \(error)")
        }
    }

    /// The pool at `path`. Another process may hold the file's lock for a moment when it is
    /// opened (a daemon on the same data directory closing its connections, `flatline notify`):
    /// "database is locked" is tried again every 50 ms for up to 10 s before it is the answer.
    /// Commits do not wait: a locked outbox fails them at once, and the pipeline retries.
    private static func open(_ path: String, _ configuration: GRDB.Configuration) throws -> DatabasePool {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            do {
                return try DatabasePool(path: path, configuration: configuration)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && ContinuousClock.now < deadline
            {
                usleep(50_000)
            }
        }
    }

    /// Commits entries, all or none, ready for their first attempt at `now`.
    /// - Returns: their ids, in order.
    @discardableResult
    public func enqueue(_ entries: [OutboxEntry], now: Double) throws(OutboxError) -> [Int64] {
        guard !entries.isEmpty else { return [] }
        do {
            return try pool.write { db in
                var ids: [Int64] = []
                let statement = try db.cachedStatement(
                    sql: """
                        INSERT INTO outbox (integration, receiver, group_key, idempotency_key, body, created_at, next_attempt_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """
                )
                for entry in entries {
                    try statement.execute(arguments: [
                        entry.integration, entry.receiver, entry.groupKey, entry.idempotencyKey, entry.body, now, now,
                    ])
                    ids.append(db.lastInsertedRowID)
                }
                return ids
            }
        } catch {
            throw OutboxError(path: path, reason: "cannot commit \(entries.count) notification(s): \(error)")
        }
    }

    /// The items of `integration` that may be attempted at `now`: the oldest of each group
    /// (later ones wait for it), when its next attempt is due; oldest first.
    public func due(integration: String, now: Double, limit: Int = 64) throws(OutboxError) -> [OutboxItem] {
        try read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT o.* FROM outbox o
                    WHERE o.integration = ? AND o.next_attempt_at <= ?
                      AND o.id = (SELECT MIN(i.id) FROM outbox i WHERE i.integration = o.integration AND i.group_key = o.group_key)
                    ORDER BY o.id LIMIT ?
                    """,
                arguments: [integration, now, limit]
            ).map(Self.item)
        }
    }

    /// When the next item of `integration` is due, or `nil` when its queue is empty.
    public func nextAttempt(integration: String) throws(OutboxError) -> Double? {
        try read { db in
            try Double.fetchOne(
                db,
                sql: """
                    SELECT MIN(o.next_attempt_at) FROM outbox o WHERE o.integration = ?
                      AND o.id = (SELECT MIN(i.id) FROM outbox i WHERE i.integration = o.integration AND i.group_key = o.group_key)
                    """,
                arguments: [integration]
            )
        }
    }

    /// The items of `integration` created at or before `time`, whether due or not, oldest first.
    public func created(integration: String, atOrBefore time: Double, limit: Int = 256) throws(OutboxError)
        -> [OutboxItem]
    {
        try read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM outbox WHERE integration = ? AND created_at <= ? ORDER BY id LIMIT ?",
                arguments: [integration, time, limit]
            ).map(Self.item)
        }
    }

    /// What an attempt changes in the outbox.
    public enum Update: Sendable, Hashable {
        /// Delivered: removed.
        case delivered(Int64)
        /// Failed, to be tried again at `at`.
        case retry(Int64, at: Double, error: String)
        /// Given up: moved to the failed table with the reason.
        case giveUp(Int64, reason: String)
    }

    /// Applies the outcomes of a round of attempts in one transaction (one fsync for all).
    public func apply(_ updates: [Update], now: Double) throws(OutboxError) {
        guard !updates.isEmpty else { return }
        try write { db in
            for update in updates {
                switch update {
                case .delivered(let id):
                    try db.execute(sql: "DELETE FROM outbox WHERE id = ?", arguments: [id])
                case .retry(let id, let at, let error):
                    try db.execute(
                        sql:
                            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?",
                        arguments: [at, error, id]
                    )
                case .giveUp(let id, let reason):
                    try db.execute(
                        sql: """
                            INSERT INTO failed (id, integration, receiver, group_key, idempotency_key, body, created_at, attempts, failed_at, reason)
                            SELECT id, integration, receiver, group_key, idempotency_key, body, created_at, attempts + 1, ?, ?
                            FROM outbox WHERE id = ?
                            """,
                        arguments: [now, reason, id]
                    )
                    try db.execute(sql: "DELETE FROM outbox WHERE id = ?", arguments: [id])
                }
            }
        }
    }

    /// Moves every waiting item of `integration` to the failed table with `reason`.
    /// - Returns: how many moved.
    @discardableResult
    public func giveUp(integration: String, reason: String, now: Double) throws(OutboxError) -> Int {
        var moved = 0
        try write { db in
            try db.execute(
                sql: """
                    INSERT INTO failed (id, integration, receiver, group_key, idempotency_key, body, created_at, attempts, failed_at, reason)
                    SELECT id, integration, receiver, group_key, idempotency_key, body, created_at, attempts, ?, ?
                    FROM outbox WHERE integration = ?
                    """,
                arguments: [now, reason, integration]
            )
            try db.execute(sql: "DELETE FROM outbox WHERE integration = ?", arguments: [integration])
            moved = db.changesCount
        }
        return moved
    }

    /// Items waiting, over all integrations.
    public func pendingCount() throws(OutboxError) -> Int {
        try read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox") ?? 0 }
    }

    /// The creation time of the oldest waiting item, or `nil`.
    public func oldestCreatedAt() throws(OutboxError) -> Double? {
        try read { db in try Double.fetchOne(db, sql: "SELECT MIN(created_at) FROM outbox") }
    }

    /// Every waiting item, oldest first (for inspection and tests).
    public func pending() throws(OutboxError) -> [OutboxItem] {
        try read { db in try Row.fetchAll(db, sql: "SELECT * FROM outbox ORDER BY id").map(Self.item) }
    }

    /// The integrations that have waiting items.
    public func integrations() throws(OutboxError) -> [String] {
        try read { db in try String.fetchAll(db, sql: "SELECT DISTINCT integration FROM outbox ORDER BY integration") }
    }

    /// The notifications given up on, oldest first.
    public func failed() throws(OutboxError) -> [FailedNotification] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM failed ORDER BY id").map { row in
                var item = Self.item(row)
                item.nextAttemptAt = row["failed_at"]
                return FailedNotification(item: item, failedAt: row["failed_at"], reason: row["reason"])
            }
        }
    }

    private static func item(_ row: Row) -> OutboxItem {
        OutboxItem(
            id: row["id"],
            integration: row["integration"],
            receiver: row["receiver"],
            groupKey: row["group_key"],
            idempotencyKey: row["idempotency_key"],
            body: row["body"],
            createdAt: row["created_at"],
            nextAttemptAt: row["next_attempt_at"] ?? 0,
            attempts: row["attempts"] ?? 0,
            lastError: row["last_error"]
        )
    }

    private func read<T>(_ body: (Database) throws -> T) throws(OutboxError) -> T {
        do {
            return try pool.read(body)
        } catch {
            throw OutboxError(path: path, reason: "cannot read the outbox: \(error)")
        }
    }

    private func write(_ body: (Database) throws -> Void) throws(OutboxError) {
        do {
            try pool.write(body)
        } catch {
            throw OutboxError(path: path, reason: "cannot write the outbox: \(error)")
        }
    }
}
