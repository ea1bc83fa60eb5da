import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// A NATS client on SwiftNIO.
///
/// The client is a ServiceLifecycle ``Service``: ``run()`` makes the connection, keeps it alive
/// with pings, and reconnects with backoff and jitter when it drops, re-subscribing everything;
/// it returns after ``close()`` or ``drain(timeout:)``, or throws when it gives up. Everything
/// else (publish, subscribe, request, flush) may be called from any task while it runs:
///
/// ```swift
/// let client = NATSClient(configuration: try NATSClientConfiguration(urls: ["nats://127.0.0.1:4222"]), logger: logger)
/// try await withThrowingTaskGroup(of: Void.self) { group in
///     group.addTask { try await client.run() }
///     try await client.waitUntilConnected()
///     try await client.publish(Array("hello".utf8), to: "greetings")
///     try await client.drain()
/// }
/// ```
///
/// Publishing buffers the bytes and lets one writer per connection send them in large writes;
/// when more than ``NATSClientConfiguration/writeBufferHighWater`` bytes wait, `publish` waits
/// for the socket. While disconnected, publishes are buffered up to
/// ``NATSClientConfiguration/reconnectBufferBytes`` and refused (and counted) beyond.
public final class NATSClient: Service, Sendable {
    /// The version sent in `CONNECT`.
    public static let libraryVersion = "0.1.0"

    public let configuration: NATSClientConfiguration
    let logger: Logger
    let state: Mutex<ClientState>
    /// The event loop every connection of this client runs on.
    let eventLoop: any EventLoop

    /// Runs tasks on the client's event loop, where its messages arrive and its writes start.
    ///
    /// A request loop or a responder that does little work per message answers faster under
    /// `withTaskExecutorPreference(client.taskExecutor) { ... }`: replies and writes no longer
    /// cross threads. Work that blocks or computes for long must not run there: it holds up
    /// the connection.
    public let taskExecutor: EventLoopTaskExecutor

    /// - Parameters:
    ///   - configuration: servers, credentials, timeouts and limits.
    ///   - logger: where the client logs (at `info` and below).
    public init(configuration: NATSClientConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        state = Mutex(ClientState())
        eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        taskExecutor = EventLoopTaskExecutor(eventLoop)
    }

    // MARK: State

    /// The live server's `INFO`, or the last one seen.
    public var serverInfo: ServerInfo? { state.withLock { $0.info } }

    /// Whether a connection is up.
    public var isConnected: Bool { state.withLock { $0.isConnected } }

    /// Traffic counters.
    public var statistics: NATSStatistics { state.withLock { $0.statistics } }

    /// The error that ended the last connection, if any.
    public var lastError: NATSError? { state.withLock { $0.lastError } }

    var maxPayload: Int { state.withLock { $0.info?.maxPayload ?? 1_048_576 } }

    /// Waits until a connection is up (or the client closes).
    /// - Throws: ``NATSError`` with ``NATSError/Code/timeout`` after `timeout`, or the reason
    ///   the client closed.
    public func waitUntilConnected(timeout: Duration = .seconds(10)) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                let id = self.state.withLock { $0.makeWaiterID() }
                try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                        let result: Result<Void, any Error>? = self.state.withLock { s in
                            if Task.isCancelled { return .failure(CancellationError()) }
                            switch s.phase {
                            case .connected, .draining: return .success(())
                            case .closed:
                                return .failure(s.lastError ?? NATSError(.connectionClosed, "the client is closed"))
                            default:
                                s.connectWaiters[id] = continuation
                                return nil
                            }
                        }
                        if let result { continuation.resume(with: result) }
                    }
                } onCancel: {
                    let waiter = self.state.withLock { $0.connectWaiters.removeValue(forKey: id) }
                    waiter?.resume(throwing: CancellationError())
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                let (server, last) = self.state.withLock { ($0.server, $0.lastError) }
                let servers = self.configuration.servers.map(\.description).joined(separator: ", ")
                throw NATSError(
                    .timeout,
                    "not connected to \(servers) after \(timeout)"
                        + (last.map { " (last error: \($0.message))" } ?? ""),
                    server: server ?? self.configuration.servers.first?.description
                )
            }
            defer { group.cancelAll() }
            _ = try await group.next()
        }
    }

    // MARK: Publish

    /// Publishes a message.
    ///
    /// - Parameters:
    ///   - payload: the bytes; at most the server's `max_payload`.
    ///   - subject: a subject without wildcards.
    ///   - replyTo: where replies should go.
    ///   - headers: headers, sent with `HPUB`.
    /// - Throws: ``NATSError``: invalid subject, payload too large, client closed, or the
    ///   reconnect buffer full while disconnected.
    public func publish(
        _ payload: some Collection<UInt8>,
        to subject: String,
        replyTo: String? = nil,
        headers: NATSHeaders? = nil
    ) async throws {
        // One generic call, then the concrete path: the caller's module need not specialise it.
        let mustWait =
            try payload.withContiguousStorageIfAvailable {
                try enqueuePublish(UnsafeRawBufferPointer($0), subject: subject, replyTo: replyTo, headers: headers)
            }
            ?? Array(payload).withUnsafeBytes {
                try enqueuePublish($0, subject: subject, replyTo: replyTo, headers: headers)
            }
        if mustWait { try await waitForDrain() }
    }

    /// Publishes the readable bytes of a buffer (a received message's payload, say).
    public func publish(
        _ payload: ByteBuffer,
        to subject: String,
        replyTo: String? = nil,
        headers: NATSHeaders? = nil
    ) async throws {
        let mustWait = try payload.withUnsafeReadableBytes {
            try enqueuePublish($0, subject: subject, replyTo: replyTo, headers: headers)
        }
        if mustWait { try await waitForDrain() }
    }

    /// Publishes text as UTF-8.
    public func publish(_ text: String, to subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil)
        async throws
    {
        try await publish(Array(text.utf8), to: subject, replyTo: replyTo, headers: headers)
    }

    /// Checks a publish and puts it in the buffer; returns whether the caller should wait for
    /// the socket to take some of it.
    func enqueuePublish(
        _ payload: UnsafeRawBufferPointer,
        subject: String,
        replyTo: String?,
        headers: NATSHeaders?
    ) throws(NATSError) -> Bool {
        try ProtocolEncoding.validate(subject: subject, wildcards: false)
        if let replyTo { try ProtocolEncoding.validate(subject: replyTo, wildcards: false) }
        let headerBytes = headers?.encoded()
        let result: Result<((any Channel)?, Bool), NATSError> = state.withLock { s in
            let server = s.server
            switch s.phase {
            case .closed: return .failure(NATSError(.connectionClosed, "the client is closed", server: server))
            case .draining: return .failure(NATSError(.connectionClosed, "the client is draining", server: server))
            default: break
            }
            let limit = s.info?.maxPayload ?? 1_048_576
            let size = payload.count + (headerBytes?.count ?? 0)
            guard size <= limit else {
                return .failure(
                    NATSError(
                        .payloadTooLarge,
                        "\(size) bytes to \(subject) exceed the server's max_payload of \(limit)",
                        server: server
                    )
                )
            }
            if headers != nil, let info = s.info, !info.headers {
                return .failure(NATSError(.invalidArgument, "the server does not support headers", server: server))
            }
            if !s.isConnected
                && s.buffer.readableBytes + size + subject.utf8.count + 32 > configuration.reconnectBufferBytes
            {
                s.statistics.droppedWhileDisconnected += 1
                let dropped = s.statistics.droppedWhileDisconnected
                return .failure(
                    NATSError(
                        .disconnected,
                        "reconnecting and the \(configuration.reconnectBufferBytes)-byte publish buffer is full; "
                            + "\(dropped) publishes refused so far",
                        server: server
                    )
                )
            }
            ProtocolEncoding.writePublish(
                subject: subject,
                replyTo: replyTo,
                headers: headerBytes,
                payload: payload,
                into: &s.buffer
            )
            s.statistics.outMessages += 1
            s.statistics.outBytes += payload.count
            s.bufferedMessages += 1
            let wake = s.wakeWriter()
            return .success((wake, s.isConnected && s.buffer.readableBytes > configuration.writeBufferHighWater))
        }
        switch result {
        case .failure(let error): throw error
        case .success(let (wake, wait)):
            signalWriter(wake)
            return wait
        }
    }

    private func waitForDrain() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let ready = state.withLock { s -> Bool in
                if !s.isConnected || s.buffer.readableBytes <= configuration.writeBufferHighWater { return true }
                s.drainWaiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    // MARK: Subscribe

    /// Subscribes to a subject (wildcards allowed), optionally in a queue group.
    /// - Throws: ``NATSError`` for an invalid subject or queue, or a closed client.
    public func subscribe(to subject: String, queue: String? = nil) throws(NATSError) -> NATSSubscription {
        try ProtocolEncoding.validate(subject: subject, wildcards: true)
        if let queue { try ProtocolEncoding.validate(queue: queue) }
        let (stream, continuation) = AsyncStream<NATSMessage>.makeStream(
            bufferingPolicy: .bufferingOldest(configuration.subscriptionBufferMessages)
        )
        let result: Result<(UInt64, (any Channel)?), NATSError> = state.withLock { s in
            guard s.phase != .closed && s.phase != .draining else {
                return .failure(NATSError(.connectionClosed, "the client is closed", server: s.server))
            }
            let sid = s.nextSID
            s.nextSID += 1
            s.subscriptions[sid] = ClientState.Subscription(subject: subject, queue: queue, continuation: continuation)
            // While disconnected the reconnect re-subscribes from the table.
            if s.isConnected {
                ProtocolEncoding.writeSubscribe(subject: subject, queue: queue, sid: sid, into: &s.buffer)
            }
            return .success((sid, s.wakeWriter()))
        }
        switch result {
        case .failure(let error):
            continuation.finish()
            throw error
        case .success(let (sid, wake)):
            signalWriter(wake)
            continuation.onTermination = { [weak self] termination in
                if case .cancelled = termination { try? self?.unsubscribe(sid: sid, after: nil) }
            }
            return NATSSubscription(sid: sid, subject: subject, queue: queue, stream: stream, client: self)
        }
    }

    func unsubscribe(sid: UInt64, after max: Int?) throws(NATSError) {
        let (continuation, wake): (AsyncStream<NATSMessage>.Continuation?, (any Channel)?) =
            state.withLock { s in
                guard var subscription = s.subscriptions[sid] else { return (nil, nil) }
                if let max, subscription.delivered < max {
                    subscription.max = max
                    s.subscriptions[sid] = subscription
                    if s.isConnected { ProtocolEncoding.writeUnsubscribe(sid: sid, max: max, into: &s.buffer) }
                    return (nil, s.wakeWriter())
                }
                s.subscriptions[sid] = nil
                if s.isConnected { ProtocolEncoding.writeUnsubscribe(sid: sid, max: nil, into: &s.buffer) }
                return (subscription.continuation, s.wakeWriter())
            }
        signalWriter(wake)
        continuation?.finish()
    }

    func droppedMessages(sid: UInt64) -> Int { state.withLock { $0.subscriptions[sid]?.dropped ?? 0 } }

    // MARK: Request

    /// Sends a request and waits for the first reply.
    ///
    /// Replies come back on one wildcard inbox subscription shared by all requests; the reply
    /// resumes the caller straight from the connection's event loop, and the timeout is a timer
    /// there, not a task.
    /// - Throws: ``NATSError`` with ``NATSError/Code/noResponders`` when nobody listens on
    ///   `subject`, ``NATSError/Code/timeout`` after `timeout`.
    public func request(
        _ payload: some Collection<UInt8> & Sendable,
        to subject: String,
        headers: NATSHeaders? = nil,
        timeout: Duration? = nil
    ) async throws -> NATSMessage {
        try ProtocolEncoding.validate(subject: subject, wildcards: false)
        let (prefix, wake) = try ensureReplyInbox()
        signalWriter(wake)
        if state.withLock({ $0.isConnected && $0.buffer.readableBytes > configuration.writeBufferHighWater }) {
            try await waitForDrain()
        }
        let token = Self.randomToken(12)
        let limit = timeout ?? configuration.requestTimeout
        let bytes = Array(payload)
        let reply = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<NATSMessage, any Error>) in
                let registered = state.withLock { s -> Bool in
                    guard !Task.isCancelled else { return false }
                    s.replies[token] = ClientState.ReplySlot(continuation: continuation, timeout: nil)
                    return true
                }
                guard registered else { return continuation.resume(throwing: CancellationError()) }
                do {
                    _ = try bytes.withUnsafeBytes {
                        try enqueuePublish($0, subject: subject, replyTo: prefix + token, headers: headers)
                    }
                } catch {
                    failReply(token, error)
                    return
                }
                let timer = eventLoop.scheduleTask(in: TimeAmount(limit)) {
                    self.failReply(
                        token,
                        NATSError(
                            .timeout,
                            "no reply on \(subject) within \(limit)",
                            server: self.state.withLock { $0.server }
                        )
                    )
                }
                let pending = state.withLock { s -> Bool in
                    guard s.replies[token] != nil else { return false }
                    s.replies[token]?.timeout = timer
                    return true
                }
                if !pending { timer.cancel() }
            }
        } onCancel: {
            failReply(token, CancellationError())
        }
        if let status = reply.headers?.status, status == 503 {
            throw NATSError(.noResponders, "no responders on \(subject)", server: state.withLock { $0.server })
        }
        return reply
    }

    /// Ends a pending request with an error, if it is still pending.
    private func failReply(_ token: String, _ error: any Error) {
        let slot = state.withLock { $0.replies.removeValue(forKey: token) }
        slot?.timeout?.cancel()
        slot?.continuation.resume(throwing: error)
    }

    /// Sends a request and collects every reply that arrives within `timeout` (or until `max`
    /// replies): how a `$SYS.REQ.SERVER.PING` reaches every server of a cluster.
    public func requestMany(
        _ payload: some Collection<UInt8> & Sendable,
        to subject: String,
        timeout: Duration,
        max: Int? = nil
    ) async throws -> [NATSMessage] {
        let inbox = "_INBOX." + Self.randomToken(22)
        let subscription = try subscribe(to: inbox)
        defer { try? subscription.unsubscribe() }
        try await publish(payload, to: subject, replyTo: inbox)
        return try await withThrowingTaskGroup(of: [NATSMessage].self) { group in
            group.addTask {
                var replies: [NATSMessage] = []
                for await message in subscription {
                    if message.headers?.status == 503 { break }
                    replies.append(message)
                    if let max, replies.count >= max { break }
                }
                return replies
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                try subscription.unsubscribe()
                return []
            }
            var collected: [NATSMessage] = []
            if let first = try await group.next() { collected = first }
            group.cancelAll()
            if collected.isEmpty, let second = try await group.next() { collected = second }
            return collected
        }
    }

    private func ensureReplyInbox() throws(NATSError) -> (String, (any Channel)?) {
        let result: Result<(String, (any Channel)?), NATSError> = state.withLock { s in
            guard s.phase != .closed else { return .failure(NATSError(.connectionClosed, "the client is closed")) }
            if let prefix = s.replyPrefix { return .success((prefix, nil)) }
            let prefix = "_INBOX." + Self.randomToken(22) + "."
            let sid = s.nextSID
            s.nextSID += 1
            s.replyPrefix = prefix
            s.replySID = sid
            s.subscriptions[sid] = ClientState.Subscription(subject: prefix + "*", queue: nil, continuation: nil)
            if s.isConnected {
                ProtocolEncoding.writeSubscribe(subject: prefix + "*", queue: nil, sid: sid, into: &s.buffer)
            }
            return .success((prefix, s.wakeWriter()))
        }
        return try result.get()
    }

    // MARK: Flush, drain, close

    /// Waits until the server has processed everything sent so far (a `PING`/`PONG` round trip).
    /// - Throws: ``NATSError`` with ``NATSError/Code/timeout``, or when the connection is lost.
    public func flush(timeout: Duration? = nil) async throws {
        let limit = timeout ?? configuration.requestTimeout
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                let id = self.state.withLock { $0.makeWaiterID() }
                try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                        let (failure, wake): ((any Error)?, (any Channel)?) = self.state.withLock {
                            s in
                            if Task.isCancelled { return (CancellationError(), nil) }
                            guard s.isConnected else {
                                return (NATSError(.disconnected, "not connected", server: s.server), nil)
                            }
                            ProtocolEncoding.writePing(into: &s.buffer)
                            s.pings.append(.flush(id, continuation))
                            return (nil, s.wakeWriter())
                        }
                        if let failure { continuation.resume(throwing: failure) }
                        self.signalWriter(wake)
                    }
                } onCancel: {
                    // The PONG is still owed: keep the slot, forget the waiter.
                    let waiter = self.state.withLock { s -> CheckedContinuation<Void, any Error>? in
                        guard
                            let index = s.pings.firstIndex(where: { if case .flush(id, _) = $0 { true } else { false } }
                            ),
                            case .flush(_, let continuation) = s.pings[index]
                        else { return nil }
                        s.pings[index] = .abandoned
                        return continuation
                    }
                    waiter?.resume(throwing: CancellationError())
                }
            }
            group.addTask {
                try await Task.sleep(for: limit)
                throw NATSError(.timeout, "no PONG within \(limit)", server: self.state.withLock { $0.server })
            }
            defer { group.cancelAll() }
            _ = try await group.next()
        }
    }

    /// Unsubscribes everything, waits until the server has seen it, lets subscribers read what
    /// is buffered, then closes.
    public func drain(timeout: Duration? = nil) async throws {
        let wake: (any Channel)? = state.withLock { s in
            guard s.isConnected else { return nil }
            s.phase = .draining
            for (sid, subscription) in s.subscriptions where subscription.continuation != nil {
                ProtocolEncoding.writeUnsubscribe(sid: sid, max: nil, into: &s.buffer)
            }
            return s.wakeWriter()
        }
        signalWriter(wake)
        if wake != nil || isConnected { try? await flush(timeout: timeout) }
        close()
    }

    /// Closes the client: subscriptions end, waiters fail, ``run()`` returns.
    public func close() {
        let (subscriptions, pings, replies, connects, drains, closer) = state.withLock { s in
            let subscriptions = s.subscriptions.values.compactMap(\.continuation)
            let pings = s.pings
            let replies = s.replies.values
            let connects = Array(s.connectWaiters.values)
            let drains = s.drainWaiters
            let closer = s.connectionCloser
            s.phase = .closed
            s.subscriptions = [:]
            s.pings = []
            s.replies = [:]
            s.connectWaiters = [:]
            s.drainWaiters = []
            return (subscriptions, pings, Array(replies), connects, drains, closer)
        }
        let error = NATSError(.connectionClosed, "the client was closed")
        for subscription in subscriptions { subscription.finish() }
        for ping in pings { if case .flush(_, let c) = ping { c.resume(throwing: error) } }
        for reply in replies {
            reply.timeout?.cancel()
            reply.continuation.resume(throwing: error)
        }
        for c in connects { c.resume(throwing: error) }
        for c in drains { c.resume(throwing: error) }
        closer?.yield()
        closer?.finish()
    }

    // MARK: Fault injection

    /// Stops reading from the socket, as a consumer whose event loop is blocked would: the server
    /// queues what it owes this client (`pending_bytes` in `/connz`) until its write deadline or
    /// `max_pending` trips and it closes the connection as a slow consumer. The client notices
    /// only once reading resumes, then reconnects. For traffic generators and tests.
    public func pauseReading() {
        let channel = state.withLock { s -> (any Channel)? in
            s.readingPaused = true
            return s.channel
        }
        channel?.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
    }

    /// Reads from the socket again after ``pauseReading()``.
    public func resumeReading() {
        let channel = state.withLock { s -> (any Channel)? in
            s.readingPaused = false
            return s.channel
        }
        channel?.setOption(ChannelOptions.autoRead, value: true).whenSuccess { channel?.read() }
    }

    static func randomToken(_ length: Int) -> String {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        var generator = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
    }
}

/// A Swift concurrency executor that runs jobs on one NIO event loop.
public final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
