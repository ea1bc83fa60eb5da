import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The live connection's traffic runs on its event loop: the handler below hands every server
/// operation after the handshake straight to the client, and buffered bytes are written from the
/// loop as soon as the socket takes them. No task hop sits between the socket and a subscriber,
/// a reply, or the next write.
extension NATSClient {
    /// Asks the live connection's event loop to write what is buffered; `nil` does nothing.
    func signalWriter(_ channel: (any Channel)?) {
        guard let channel else { return }
        if channel.eventLoop.inEventLoop {
            writePending(on: channel)
        } else {
            channel.eventLoop.execute { self.writePending(on: channel) }
        }
    }

    /// Hands the buffered bytes to the socket, or, while the socket is full, leaves them for
    /// the writability change that calls this again. Publishers waiting for room are woken once
    /// the buffer is handed over. Runs on the channel's event loop.
    ///
    /// While publishes stream in (the last write, under ``coalesceWindow`` ago, carried at least
    /// ``coalesceMessages`` messages), a small buffer waits that long for more: one large write
    /// instead of many small ones, for this client and for the server it wakes. A request, or
    /// a message after a quiet spell, goes out at once.
    func writePending(on channel: any Channel) {
        let now = NIODeadline.now()
        let (chunk, waiters, reason, defer_) = state.withLock {
            s -> (ByteBuffer?, [CheckedContinuation<Void, any Error>], EndReason?, Bool) in
            guard let live = s.channel, live === channel, s.isConnected else {
                s.writeScheduled = false
                return (nil, [], nil, false)
            }
            // Still scheduled: the writability handler calls again; publishes need not.
            guard channel.isWritable else { return (nil, [], nil, false) }
            if !s.writeDeferred && s.lastWriteMessages >= Self.coalesceMessages
                && s.buffer.readableBytes < Self.coalesceBytes && now - s.lastWrite < Self.coalesceWindow
            {
                s.writeDeferred = true
                return (nil, [], nil, true)
            }
            s.writeDeferred = false
            s.writeScheduled = false
            let waiters = s.drainWaiters
            s.drainWaiters = []
            guard s.buffer.readableBytes > 0 else { return (nil, waiters, nil, false) }
            s.lastWrite = now
            s.lastWriteMessages = s.bufferedMessages
            s.bufferedMessages = 0
            let chunk = s.buffer
            // The next chunk is likely as large as this one: reserve it up front, bounded.
            s.buffer = channel.allocator.buffer(capacity: Swift.min(chunk.readableBytes, 1 << 20))
            return (chunk, waiters, s.endReason, false)
        }
        if defer_ {
            channel.eventLoop.scheduleTask(in: Self.coalesceWindow) { self.writePending(on: channel) }
            return
        }
        if let chunk {
            let server = state.withLock { $0.server }
            channel.writeAndFlush(chunk).whenFailure { error in
                reason?.record(NATSError(.connectionFailed, "write failed: \(error)", server: server))
                channel.close(promise: nil)
            }
        }
        for waiter in waiters { waiter.resume() }
    }

    /// How long a small buffer waits for more while publishes stream in.
    static let coalesceWindow = TimeAmount.microseconds(200)
    /// How many messages in one write mean publishes stream in.
    static let coalesceMessages = 32
    /// A buffer this large is written without waiting.
    static let coalesceBytes = 64 * 1024

    /// One server operation after the handshake. Runs on the channel's event loop.
    func handle(_ operation: ServerOperation, channel: any Channel, reason: EndReason) {
        switch operation {
        case .message(let message): deliver(message)
        case .ping:
            let wake = state.withLock { s -> (any Channel)? in
                ProtocolEncoding.writePong(into: &s.buffer)
                return s.wakeWriter()
            }
            signalWriter(wake)
        case .pong:
            let flush = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                guard !s.pings.isEmpty else { return nil }
                switch s.pings.removeFirst() {
                case .keepalive:
                    s.outstandingKeepalives = Swift.max(0, s.outstandingKeepalives - 1)
                    return nil
                case .flush(_, let c): return c
                case .abandoned: return nil
                }
            }
            flush?.resume()
        case .ok: break
        case .info(let info): state.withLock { $0.info = info }
        case .error(let message):
            let server = state.withLock { $0.server }
            let lowered = message.lowercased()
            logger.info("NATS server error", metadata: ["nats.server": "\(server ?? "-")", "error": "\(message)"])
            // Errors the server closes the connection after; the others (permissions) are
            // reported and the connection goes on.
            if lowered.contains("permissions violation") || lowered.contains("invalid subject") { return }
            let code: NATSError.Code = lowered.contains("authorization") ? .authorization : .serverError
            reason.record(NATSError(code, message, server: server))
            channel.close(promise: nil)
        }
    }

    func deliver(_ message: NATSMessage) {
        enum Route {
            case subscription(AsyncStream<NATSMessage>.Continuation, finish: Bool)
            case reply(CheckedContinuation<NATSMessage, any Error>, Scheduled<Void>?)
            case none
        }
        let route: Route = state.withLock { s in
            s.statistics.inMessages += 1
            s.statistics.inBytes += message.payload.readableBytes
            if message.sid == s.replySID, let prefix = s.replyPrefix {
                let token = String(message.subject.utf8.dropFirst(prefix.utf8.count)) ?? ""
                guard let slot = s.replies.removeValue(forKey: token) else { return .none }
                return .reply(slot.continuation, slot.timeout)
            }
            guard var subscription = s.subscriptions[message.sid], let continuation = subscription.continuation else {
                return .none
            }
            subscription.delivered += 1
            var finish = false
            if let max = subscription.max, subscription.delivered >= max {
                s.subscriptions[message.sid] = nil
                finish = true
            } else {
                s.subscriptions[message.sid] = subscription
            }
            return .subscription(continuation, finish: finish)
        }
        switch route {
        case .subscription(let continuation, let finish):
            if case .dropped = continuation.yield(message) { recordDrop(sid: message.sid, subject: message.subject) }
            if finish { continuation.finish() }
        case .reply(let continuation, let timeout):
            timeout?.cancel()
            continuation.resume(returning: message)
        case .none:
            break
        }
    }

    private func recordDrop(sid: UInt64, subject: String) {
        let dropped = state.withLock { s -> Int in
            s.statistics.droppedBySlowSubscriptions += 1
            s.subscriptions[sid]?.dropped += 1
            return s.subscriptions[sid]?.dropped ?? 0
        }
        if dropped == 1 || dropped % 10_000 == 0 {
            logger.warning(
                "NATS subscription is a slow consumer: messages dropped",
                metadata: ["nats.subject": "\(subject)", "nats.sid": "\(sid)", "nats.dropped": "\(dropped)"]
            )
        }
    }
}

/// Sits after the protocol decoder. During the handshake it passes operations on to the async
/// channel the handshake reads; from the first `PONG` on (the server accepted `CONNECT`) it hands
/// them to the client on the event loop. Errors and writability changes go to the client too.
final class NATSConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ServerOperation
    typealias InboundOut = ServerOperation

    private let client: NATSClient
    private let reason: EndReason
    private var live = false

    init(client: NATSClient, reason: EndReason) {
        self.client = client
        self.reason = reason
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let operation = unwrapInboundIn(data)
        guard live else {
            if case .pong = operation { live = true }
            context.fireChannelRead(data)
            return
        }
        client.handle(operation, channel: context.channel, reason: reason)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if live && context.channel.isWritable { client.writePending(on: context.channel) }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard live else {
            context.fireErrorCaught(error)
            return
        }
        let server = client.state.withLock { $0.server }
        let described: NATSError =
            (error as? NATSError) ?? NATSError(.connectionFailed, "\(error)", server: server)
        reason.record(described)
        context.close(promise: nil)
    }
}
