import NIOCore

/// Counters a client keeps about its traffic.
public struct NATSStatistics: Sendable, Hashable {
    public var inMessages = 0
    public var inBytes = 0
    public var outMessages = 0
    public var outBytes = 0
    /// Connections made after the first.
    public var reconnects = 0
    /// Publishes refused because the reconnect buffer was full.
    public var droppedWhileDisconnected = 0
    /// Messages dropped because a subscription's buffer was full (client-side slow consumer).
    public var droppedBySlowSubscriptions = 0
}

/// Everything the client shares between the caller's tasks and its connection, under one lock.
struct ClientState: Sendable {
    enum Phase: Equatable {
        case idle, connecting, connected, reconnecting, draining, closed
    }

    enum PingPurpose {
        case keepalive
        case flush(UInt64, CheckedContinuation<Void, any Error>)
        /// A flush whose caller stopped waiting; its PONG is still owed.
        case abandoned
    }

    /// A request waiting for its reply, and the timer that fails it.
    struct ReplySlot {
        var continuation: CheckedContinuation<NATSMessage, any Error>
        var timeout: Scheduled<Void>?
    }

    struct Subscription {
        var subject: String
        var queue: String?
        /// `nil` for the client's own reply inbox.
        var continuation: AsyncStream<NATSMessage>.Continuation?
        var max: Int?
        var delivered = 0
        var dropped = 0
    }

    var phase: Phase = .idle
    /// Bytes on their way to the server: for the live connection, or the reconnect buffer.
    var buffer = ByteBuffer()
    /// Whether a write of the buffer is scheduled on the live connection's event loop (or
    /// waits for the socket to take more).
    var writeScheduled = false
    /// Whether the scheduled write waits a moment for more bytes.
    var writeDeferred = false
    /// When the buffer was last handed to the socket.
    var lastWrite = NIODeadline.uptimeNanoseconds(0)
    /// Messages in the last write, and in the buffer now.
    var lastWriteMessages = 0
    var bufferedMessages = 0
    /// Publishers waiting for the buffer to drain below the high-water mark.
    var drainWaiters: [CheckedContinuation<Void, any Error>] = []
    /// Ends the live connection (close and drain use it).
    var connectionCloser: AsyncStream<Void>.Continuation?
    var connectWaiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
    var nextWaiterID: UInt64 = 0
    var subscriptions: [UInt64: Subscription] = [:]
    var nextSID: UInt64 = 1
    var pings: [PingPurpose] = []
    var outstandingKeepalives = 0
    var replyPrefix: String?
    var replySID: UInt64?
    var replies: [String: ReplySlot] = [:]
    var info: ServerInfo?
    var server: String?
    var statistics = NATSStatistics()
    var lastError: NATSError?
    /// The live connection's channel: where the buffer is written.
    var channel: (any Channel)?
    /// Why the live connection ended, when the client knew before the socket closed.
    var endReason: EndReason?
    /// Whether reading from the socket is paused (fault injection: a slow consumer).
    var readingPaused = false

    var isConnected: Bool { phase == .connected || phase == .draining }

    mutating func makeWaiterID() -> UInt64 {
        nextWaiterID += 1
        return nextWaiterID
    }

    /// Schedules a write of the buffer unless one is pending; returns the channel to pass to
    /// ``NATSClient/signalWriter(_:)`` outside the lock.
    mutating func wakeWriter() -> (any Channel)? {
        guard isConnected, !writeScheduled, let channel else { return nil }
        writeScheduled = true
        return channel
    }
}
