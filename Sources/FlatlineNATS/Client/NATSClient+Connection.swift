import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

extension NATSClient {
    /// Connects, and keeps a connection up until ``close()`` or ``drain(timeout:)``.
    ///
    /// Lost connections are replaced with exponential backoff (``NATSClientConfiguration/reconnectDelay``
    /// doubling up to ``NATSClientConfiguration/reconnectDelayMax``, plus jitter), cycling through
    /// the servers; subscriptions are re-sent and buffered publishes follow. Graceful shutdown of
    /// the surrounding `ServiceGroup` closes the client.
    ///
    /// - Throws: the last connection error once ``NATSClientConfiguration/maxReconnectAttempts``
    ///   is exhausted, or an authorization error (unless configured to retry).
    public func run() async throws {
        let started = state.withLock { s -> Bool in
            guard s.phase == .idle else { return false }
            s.phase = .connecting
            return true
        }
        guard started else { throw NATSError(.invalidArgument, "run() was already called on this client") }
        try await withGracefulShutdownHandler {
            try await connectionLoop()
        } onGracefulShutdown: {
            self.close()
        }
    }

    private func connectionLoop() async throws {
        var attempt = 0
        var serverIndex = 0
        var everConnected = false
        while true {
            if state.withLock({ $0.phase == .closed }) { return }
            let address = configuration.servers[serverIndex % configuration.servers.count]
            var failure: NATSError?
            do {
                try await runConnection(to: address, reconnect: everConnected) {
                    everConnected = true
                    attempt = 0
                }
            } catch let error as NATSError {
                failure = error
            } catch is CancellationError {
                close()
                return
            } catch {
                failure = NATSError(.connectionFailed, "\(error)", server: address.description)
            }
            let closed = connectionEnded(failure)
            if closed { return }
            if let failure {
                logger.info(
                    "NATS connection ended",
                    metadata: ["nats.server": "\(address)", "error": "\(failure)", "nats.attempt": "\(attempt + 1)"]
                )
                if failure.code == .authorization && !configuration.retryOnAuthorizationError {
                    close()
                    state.withLock { $0.lastError = failure }
                    throw failure
                }
            }
            attempt += 1
            if let max = configuration.maxReconnectAttempts, attempt > max {
                let error = failure ?? NATSError(.connectionFailed, "gave up after \(max) reconnect attempts")
                state.withLock { $0.lastError = error }
                close()
                throw error
            }
            serverIndex += 1
            if try await pauseBeforeReconnect(attempt: attempt) { return }
        }
    }

    /// Marks the connection lost: fails what cannot survive it. Returns whether the client is closed.
    private func connectionEnded(_ error: NATSError?) -> Bool {
        let (closed, flushes) = state.withLock { s -> (Bool, [CheckedContinuation<Void, any Error>]) in
            if let error { s.lastError = error }
            s.connectionCloser = nil
            s.channel = nil
            s.endReason = nil
            s.writeScheduled = false
            let flushes = s.pings.compactMap { ping -> CheckedContinuation<Void, any Error>? in
                if case .flush(_, let c) = ping { return c }
                return nil
            }
            s.pings = []
            s.outstandingKeepalives = 0
            if s.phase == .closed || s.phase == .draining {
                s.phase = .closed
                return (true, flushes)
            }
            s.phase = .reconnecting
            return (false, flushes)
        }
        let lost = NATSError(.disconnected, "the connection was lost before the server answered", server: nil)
        for flush in flushes { flush.resume(throwing: lost) }
        return closed
    }

    /// Sleeps before the next attempt; returns `true` when the client was closed meanwhile.
    private func pauseBeforeReconnect(attempt: Int) async throws -> Bool {
        let base = configuration.reconnectDelay * (1 << Swift.min(attempt - 1, 20))
        let capped = Swift.min(base, configuration.reconnectDelayMax)
        let jitter = capped * Double.random(in: 0...configuration.reconnectJitter)
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        let alreadyClosed = state.withLock { s -> Bool in
            if s.phase == .closed { return true }
            s.connectionCloser = continuation
            return false
        }
        if alreadyClosed { return true }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: capped + jitter) }
            group.addTask { for await _ in stream { break } }
            _ = await group.next()
            group.cancelAll()
        }
        continuation.finish()
        return state.withLock { s in
            if s.connectionCloser != nil { s.connectionCloser = nil }
            return s.phase == .closed
        }
    }

    /// One connection, from TCP to its end.
    private func runConnection(
        to address: NATSServerAddress,
        reconnect: Bool,
        onConnected: () -> Void
    ) async throws {
        let server = address.description
        let parser = ProtocolParser()
        let reason = EndReason()
        let channel: NIOAsyncChannel<ServerOperation, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: eventLoop)
                .connectTimeout(
                    .nanoseconds(
                        Int64(configuration.connectTimeout.components.seconds) * 1_000_000_000
                            + configuration.connectTimeout.components.attoseconds / 1_000_000_000
                    )
                )
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connect(host: address.host, port: address.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(ServerOperationDecoder(parser: parser)),
                            name: "nats-decoder"
                        )
                        try channel.pipeline.syncOperations.addHandler(
                            NATSConnectionHandler(client: self, reason: reason),
                            name: "nats-connection"
                        )
                        return try NIOAsyncChannel<ServerOperation, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw NATSError(.connectionFailed, "cannot connect: \(Self.connectionReason(error))", server: server)
        }
        try await channel.executeThenClose { inbound, outbound in
            var operations = inbound.makeAsyncIterator()
            // One deadline over the whole handshake (INFO, TLS, CONNECT, PONG): a server that
            // accepts the connection and then says nothing is given up, and the next one tried.
            let expired = HandshakeDeadline()
            let deadline = channel.channel.eventLoop.scheduleTask(
                in: TimeAmount.nanoseconds(
                    Int64(configuration.connectTimeout.components.seconds) * 1_000_000_000
                        + configuration.connectTimeout.components.attoseconds / 1_000_000_000
                )
            ) {
                expired.fire()
                channel.channel.close(promise: nil)
            }
            let info: ServerInfo
            do {
                info = try await handshake(
                    channel: channel.channel,
                    operations: &operations,
                    outbound: outbound,
                    address: address
                )
                deadline.cancel()
            } catch {
                deadline.cancel()
                if expired.fired {
                    throw NATSError(
                        .connectionFailed,
                        "no handshake within \(configuration.connectTimeout) (the server sent no INFO, or stopped)",
                        server: server
                    )
                }
                throw error
            }
            let (closes, closer) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
            let (connectWaiters, drainWaiters, closedMeanwhile) = state.withLock { s in
                if s.phase == .closed {
                    return ([CheckedContinuation<Void, any Error>](), [CheckedContinuation<Void, any Error>](), true)
                }
                s.info = info
                s.server = server
                s.phase = .connected
                if reconnect { s.statistics.reconnects += 1 }
                // Subscriptions first, then whatever was published while disconnected.
                var preamble = ByteBuffer()
                for (sid, subscription) in s.subscriptions.sorted(by: { $0.key < $1.key }) {
                    ProtocolEncoding.writeSubscribe(
                        subject: subscription.subject,
                        queue: subscription.queue,
                        sid: sid,
                        into: &preamble
                    )
                    if let max = subscription.max {
                        ProtocolEncoding.writeUnsubscribe(sid: sid, max: max - subscription.delivered, into: &preamble)
                    }
                }
                preamble.writeBuffer(&s.buffer)
                s.buffer = preamble
                s.connectionCloser = closer
                s.channel = channel.channel
                s.endReason = reason
                s.writeScheduled = false
                if s.readingPaused {
                    channel.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
                }
                let waiters = (Array(s.connectWaiters.values), s.drainWaiters)
                s.connectWaiters = [:]
                s.drainWaiters = []
                return (waiters.0, waiters.1, false)
            }
            if closedMeanwhile { return }
            signalWriter(state.withLock { $0.wakeWriter() })
            onConnected()
            logger.info(
                "NATS connected",
                metadata: [
                    "nats.server": "\(server)", "nats.server_id": "\(info.serverID)", "nats.version": "\(info.version)",
                ]
            )
            for waiter in connectWaiters { waiter.resume() }
            for waiter in drainWaiters { waiter.resume() }

            // From here on the handler delivers on the event loop and the buffer is written
            // from there; this task waits for the socket to close, beside the pinger and the
            // close signal, either of which may close it.
            let socket = channel.channel
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        try await self.pingLoop(server: server)
                    } catch let error as NATSError {
                        reason.record(error)
                    }
                    socket.close(promise: nil)
                }
                group.addTask {
                    for await _ in closes { break }
                    socket.close(promise: nil)
                }
                defer { group.cancelAll() }
                try? await socket.closeFuture.get()
                if let recorded = reason.value { throw recorded }
                throw NATSError(.connectionFailed, "the server closed the connection", server: server)
            }
        }
    }

    /// Reads `INFO`, upgrades to TLS when asked, sends `CONNECT` and `PING`, and waits for the
    /// `PONG` that says the server accepted the credentials.
    private func handshake(
        channel: any Channel,
        operations: inout NIOAsyncChannelInboundStream<ServerOperation>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        address: NATSServerAddress
    ) async throws -> ServerInfo {
        let server = address.description
        guard case .info(let info) = try await nextOperation(&operations, server: server) else {
            throw NATSError(.protocolViolation, "the server did not start with INFO", server: server)
        }
        let wantsTLS = address.tls || configuration.tls != nil || info.tlsRequired
        if wantsTLS {
            try await upgradeToTLS(channel: channel, host: address.host, server: server)
        } else if info.tlsRequired {
            throw NATSError(.tls, "the server requires TLS", server: server)
        }
        var options = ConnectOptions()
        options.name = configuration.name
        options.echo = configuration.echo
        options.tlsRequired = wantsTLS
        options.headers = info.headers
        options.noResponders = info.headers
        try applyCredentials(to: &options, address: address, nonce: info.nonce, server: server)
        var buffer = ByteBuffer()
        try ProtocolEncoding.writeConnect(options, into: &buffer)
        ProtocolEncoding.writePing(into: &buffer)
        try await outbound.write(buffer)
        while true {
            switch try await nextOperation(&operations, server: server) {
            case .pong: return info
            case .ok, .info: continue
            case .ping:
                var pong = ByteBuffer()
                ProtocolEncoding.writePong(into: &pong)
                try await outbound.write(pong)
            case .error(let message):
                let code: NATSError.Code =
                    message.lowercased().contains("authorization") ? .authorization : .serverError
                throw NATSError(code, message, server: server)
            case .message:
                throw NATSError(
                    .protocolViolation,
                    "a message arrived before the connection was accepted",
                    server: server
                )
            }
        }
    }

    private func nextOperation(
        _ operations: inout NIOAsyncChannelInboundStream<ServerOperation>.AsyncIterator,
        server: String
    ) async throws -> ServerOperation {
        let timeout = configuration.connectTimeout
        do {
            guard let operation = try await operations.next() else {
                throw NATSError(
                    .connectionFailed,
                    "the server closed the connection during the handshake",
                    server: server
                )
            }
            return operation
        } catch let error as NATSError {
            throw error
        } catch {
            throw NATSError(.connectionFailed, "handshake failed within \(timeout): \(error)", server: server)
        }
    }

    private func applyCredentials(
        to options: inout ConnectOptions,
        address: NATSServerAddress,
        nonce: String?,
        server: String
    )
        throws(NATSError)
    {
        if let user = address.user {
            if let password = address.password {
                options.user = user
                options.pass = password
            } else {
                options.authToken = user
            }
        }
        switch configuration.authentication {
        case .none: break
        case .userPassword(let user, let password):
            options.user = user
            options.pass = password
        case .token(let token):
            options.authToken = token
        case .nkey(let seed):
            let pair = try NKeyPair(seed: seed)
            options.nkey = pair.publicKey
            guard let nonce else { throw NATSError(.authorization, "the server sent no nonce to sign", server: server) }
            options.sig = try pair.sign(Array(nonce.utf8)).base64URLEncoded
        case .credentials(let path):
            let credentials = try UserCredentials(contentsOf: path)
            options.jwt = credentials.jwt
            guard let nonce else { throw NATSError(.authorization, "the server sent no nonce to sign", server: server) }
            options.sig = try credentials.keyPair.sign(Array(nonce.utf8)).base64URLEncoded
        }
    }

    private func upgradeToTLS(channel: any Channel, host: String, server: String) async throws {
        let tls = configuration.tls ?? NATSTLSOptions()
        var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
        do {
            if let ca = tls.caFile {
                tlsConfiguration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
            }
            if let certificate = tls.certificateFile, let key = tls.keyFile {
                tlsConfiguration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map {
                    .certificate($0)
                }
                tlsConfiguration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            }
            if tls.insecureSkipVerify { tlsConfiguration.certificateVerification = .none }
            let context = try NIOSSLContext(configuration: tlsConfiguration)
            let name = tls.serverName ?? host
            let hostname = name.first?.isNumber == true || name.contains(":") ? nil : name
            // The handler is not Sendable: make it on the channel's event loop and add it there.
            try await channel.eventLoop.submit {
                let handler = try NIOSSLClientHandler(context: context, serverHostname: hostname)
                try channel.pipeline.syncOperations.addHandler(handler, position: .first)
            }.get()
        } catch {
            throw NATSError(.tls, "cannot set up TLS: \(error)", server: server)
        }
    }

    // MARK: Per-connection loops

    private func pingLoop(server: String) async throws {
        while true {
            try await Task.sleep(for: configuration.pingInterval)
            let (stale, wake) = state.withLock { s -> (Bool, (any Channel)?) in
                if s.outstandingKeepalives >= configuration.maxPingsOutstanding { return (true, nil) }
                s.outstandingKeepalives += 1
                s.pings.append(.keepalive)
                ProtocolEncoding.writePing(into: &s.buffer)
                return (false, s.wakeWriter())
            }
            if stale {
                throw NATSError(
                    .connectionFailed,
                    "stale connection: \(configuration.maxPingsOutstanding) pings unanswered",
                    server: server
                )
            }
            signalWriter(wake)
        }
    }
}

/// Why a connection ended, when a side task (writer, pinger) knew before the reader did.
final class EndReason: Sendable {
    private let storage = Mutex<NATSError?>(nil)

    func record(_ error: NATSError) { storage.withLock { $0 = $0 ?? error } }

    var value: NATSError? { storage.withLock { $0 } }
}

/// Whether a connection's handshake deadline passed (set on the event loop, read after).
final class HandshakeDeadline: Sendable {
    private let state = Mutex(false)

    func fire() { state.withLock { $0 = true } }

    var fired: Bool { state.withLock { $0 } }
}

extension NATSClient {
    /// Why a connection could not be made, in words (`connection refused`), not NIO's structures.
    static func connectionReason(_ error: any Error) -> String {
        guard let error = error as? NIOConnectionError else { return "\(error)" }
        if let dns = error.dnsAError ?? error.dnsAAAAError {
            return "cannot resolve \(error.host): \(dns)"
        }
        let codes = error.connectionErrors.compactMap { ($0.error as? IOError)?.errnoCode }
        if let code = codes.first {
            let words =
                switch code {
                case ECONNREFUSED: "connection refused"
                case ETIMEDOUT: "connection timed out"
                case EHOSTUNREACH, ENETUNREACH: "host unreachable"
                default: String(cString: strerror(code))
                }
            return "\(error.host):\(error.port): \(words)"
        }
        return "\(error)"
    }
}
