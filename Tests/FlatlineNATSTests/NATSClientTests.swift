import FlatlineTestSupport
import Foundation
import NIOCore
import Synchronization
import Testing

@testable import FlatlineNATS

/// The client against a real nats-server on 127.0.0.1.
@Suite("NATS client", .timeLimit(.minutes(1)))
struct NATSClientTests {
    @Test("publish and subscribe round trips: empty, one byte, and max_payload")
    func roundTrips() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            let subscription = try client.subscribe(to: "sizes.*")
            try await client.flush()
            let max = try #require(client.serverInfo?.maxPayload)
            let payloads: [[UInt8]] = [[], [42], (0..<max).map { UInt8(truncatingIfNeeded: $0 &* 31) }]
            for (i, payload) in payloads.enumerated() { try await client.publish(payload, to: "sizes.\(i)") }
            var received: [[UInt8]] = []
            for await message in subscription {
                received.append(message.bytes)
                if received.count == payloads.count { break }
            }
            #expect(received == payloads)
            #expect(client.statistics.outMessages == 3)
            #expect(client.statistics.inMessages == 3)
        }
    }

    @Test("a payload over max_payload gets a clear error and nothing is sent")
    func payloadTooLarge() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            let max = try #require(client.serverInfo?.maxPayload)
            do {
                try await client.publish([UInt8](repeating: 1, count: max + 1), to: "big")
                Issue.record("accepted a payload over max_payload")
            } catch let error as NATSError {
                #expect(error.code == .payloadTooLarge)
                #expect(error.message.contains("\(max)"))
            }
            #expect(client.statistics.outMessages == 0)
            try await client.flush()  // the connection is still fine
        }
    }

    @Test("headers travel with the message, status lines included")
    func headers() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            let subscription = try client.subscribe(to: "with.headers")
            try await client.flush()
            var headers = NATSHeaders()
            headers.append("abc", for: "Trace-Id")
            headers.append("def", for: "Trace-Id")
            headers.set("1", for: "Nats-Msg-Id")
            try await client.publish("body", to: "with.headers", headers: headers)
            var iterator = subscription.makeAsyncIterator()
            let message = try #require(await iterator.next())
            #expect(message.headers?.values(for: "Trace-Id") == ["abc", "def"])
            #expect(message.headers?["Nats-Msg-Id"] == "1")
            #expect(message.string == "body")
        }
    }

    @Test("a queue group delivers each message to exactly one member")
    func queueGroups() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            let a = try client.subscribe(to: "work", queue: "workers")
            let b = try client.subscribe(to: "work", queue: "workers")
            let all = try client.subscribe(to: "work")
            try await client.flush()
            for i in 0..<200 { try await client.publish("\(i)", to: "work") }
            try await client.flush()
            try await Task.sleep(for: .milliseconds(200))
            try a.unsubscribe()
            try b.unsubscribe()
            try all.unsubscribe()
            var countA = 0
            var countB = 0
            var countAll = 0
            for await _ in a { countA += 1 }
            for await _ in b { countB += 1 }
            for await _ in all { countAll += 1 }
            #expect(countA + countB == 200)
            #expect(countA > 0 && countB > 0)
            #expect(countAll == 200)
        }
    }

    @Test("request/reply, and no responders said clearly")
    func requestReply() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            let service = try client.subscribe(to: "echo")
            try await client.flush()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await request in service {
                        guard let reply = request.replyTo else { continue }
                        try await client.publish("echo: " + request.string, to: reply)
                    }
                }
                for i in 0..<20 {
                    let reply = try await client.request(Array("ping \(i)".utf8), to: "echo", timeout: .seconds(2))
                    #expect(reply.string == "echo: ping \(i)")
                }
                do {
                    _ = try await client.request(Array("anyone?".utf8), to: "nobody.home", timeout: .seconds(2))
                    Issue.record("a request to nobody got an answer")
                } catch let error as NATSError {
                    #expect(error.code == .noResponders)
                    #expect(error.message.contains("nobody.home"))
                }
                try service.unsubscribe()
                try await group.waitForAll()
            }
        }
    }

    @Test("concurrent requests each get their own reply, also from the client's event loop; cancelled ones end")
    func concurrentRequests() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            let service = try client.subscribe(to: "double")
            try await client.flush()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await request in service {
                        guard let reply = request.replyTo, let n = Int(request.string) else { continue }
                        try await client.publish("\(2 * n)", to: reply)
                    }
                }
                let answers = try await withThrowingTaskGroup(of: (Int, Int, Bool).self) { requests in
                    for i in 0..<200 {
                        requests.addTask {
                            let executor: EventLoopTaskExecutor? = i.isMultiple(of: 2) ? client.taskExecutor : nil
                            return try await withTaskExecutorPreference(executor) {
                                let reply = try await client.request(Array("\(i)".utf8), to: "double")
                                return (i, Int(reply.string) ?? -1, client.eventLoop.inEventLoop)
                            }
                        }
                    }
                    return try await requests.reduce(into: [(Int, Int, Bool)]()) { $0.append($1) }
                }
                #expect(answers.count == 200)
                for (i, doubled, onLoop) in answers {
                    #expect(doubled == 2 * i)
                    #expect(onLoop == i.isMultiple(of: 2))
                }
                // A request to a service that never answers, cancelled: it ends at once and
                // leaves nothing pending.
                let silent = try client.subscribe(to: "silent")
                try await client.flush()
                let waiting = Task { try await client.request(Array("?".utf8), to: "silent", timeout: .seconds(30)) }
                for await _ in silent { break }
                waiting.cancel()
                await #expect(throws: CancellationError.self) { _ = try await waiting.value }
                #expect(client.state.withLock { $0.replies.isEmpty })
                try silent.unsubscribe()
                try service.unsubscribe()
                try await group.waitForAll()
            }
        }
    }

    @Test("a request nobody answers in time times out; a late reply is ignored")
    func requestTimeout() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            let silent = try client.subscribe(to: "silent")
            try await client.flush()
            let started = ContinuousClock.now
            do {
                _ = try await client.request([UInt8](), to: "silent", timeout: .milliseconds(300))
                Issue.record("got a reply")
            } catch let error as NATSError {
                #expect(error.code == .timeout)
            }
            #expect(ContinuousClock.now - started < .seconds(5))
            try silent.unsubscribe()
        }
    }

    @Test("after the server is killed and restarted, the client reconnects and re-subscribes")
    func reconnect() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url, configure: { $0.reconnectDelay = .milliseconds(50) }) {
            client in
            let subscription = try client.subscribe(to: "survivor")
            try await client.flush()
            try await client.publish("before", to: "survivor")
            var iterator = subscription.makeAsyncIterator()
            #expect(await iterator.next()?.string == "before")
            server.kill()
            #expect(await TestSupport.eventually { !client.isConnected })
            // Published while disconnected: buffered, sent after the reconnect.
            try await client.publish("while away", to: "survivor")
            try server.restart()
            try await client.waitUntilConnected(timeout: .seconds(10))
            try await client.flush()
            try await client.publish("after", to: "survivor")
            var received: [String] = []
            while let message = await iterator.next() {
                received.append(message.string)
                if message.string == "after" { break }
            }
            #expect(received == ["while away", "after"])
            #expect(client.statistics.reconnects == 1)
        }
    }

    @Test("publishes beyond the reconnect buffer are refused and counted, not silently lost")
    func reconnectBuffer() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        try await TestSupport.withNATSClient(
            server.url,
            configure: {
                $0.reconnectBufferBytes = 4096
                $0.reconnectDelay = .seconds(30)
            }
        ) { client in
            server.kill()
            #expect(await TestSupport.eventually { !client.isConnected })
            var refused = 0
            for _ in 0..<100 {
                do { try await client.publish([UInt8](repeating: 7, count: 100), to: "buffered") } catch let error
                    as NATSError
                {
                    #expect(error.code == .disconnected)
                    refused += 1
                }
            }
            #expect(refused > 50)
            #expect(client.statistics.droppedWhileDisconnected == refused)
        }
    }

    @Test("a fast stream of mixed sizes arrives complete and in order, past the write buffer's high-water mark")
    func streamArrivesInOrder() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        let count = 100_000
        try await TestSupport.withNATSClient(
            server.url,
            name: "receiver",
            configure: { $0.subscriptionBufferMessages = count }
        ) { receiver in
            let subscription = try receiver.subscribe(to: "stream")
            try await receiver.flush()
            // A small high-water mark makes the publisher wait for the socket again and again.
            try await TestSupport.withNATSClient(
                server.url,
                name: "sender",
                configure: { $0.writeBufferHighWater = 64 * 1024 }
            ) { sender in
                for i in 0..<count {
                    var payload = Array("\(i)".utf8)
                    if i % 1000 == 0 { payload += [UInt8](repeating: 35, count: 100_000) }
                    try await sender.publish(payload, to: "stream")
                }
                try await sender.flush()
            }
            var next = 0
            for await message in subscription {
                let text = String(decoding: message.bytes.prefix { $0 != 35 }, as: UTF8.self)
                guard text == "\(next)" else {
                    Issue.record("message \(next) expected, \(text) arrived")
                    break
                }
                next += 1
                if next == count { break }
            }
            #expect(next == count)
            #expect(subscription.droppedMessages == 0)
        }
    }

    @Test("a subscription that falls behind drops and counts, it does not grow without bound")
    func slowSubscription() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url, configure: { $0.subscriptionBufferMessages = 10 }) { client in
            let subscription = try client.subscribe(to: "firehose")
            try await client.flush()
            for i in 0..<500 { try await client.publish("\(i)", to: "firehose") }
            try await client.flush()
            #expect(await TestSupport.eventually { subscription.droppedMessages == 490 })
            #expect(client.statistics.droppedBySlowSubscriptions == 490)
            var first: [String] = []
            for await message in subscription {
                first.append(message.string)
                if first.count == 10 { break }
            }
            #expect(first == (0..<10).map(String.init))
        }
    }

    @Test("unsubscribe after N messages ends the sequence after exactly N")
    func autoUnsubscribe() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            let subscription = try client.subscribe(to: "three")
            try subscription.unsubscribe(after: 3)
            try await client.flush()
            for i in 0..<10 { try await client.publish("\(i)", to: "three") }
            var received: [String] = []
            for await message in subscription { received.append(message.string) }
            #expect(received == ["0", "1", "2"])
        }
    }

    @Test("an unreachable server: waiting for the connection times out, naming the server and why")
    func unreachable() async throws {
        let port = try NATSServerProcess.freePort()
        var configuration = try NATSClientConfiguration(urls: ["nats://127.0.0.1:\(port)"])
        configuration.reconnectDelay = .milliseconds(20)
        let client = NATSClient(configuration: configuration, logger: TestSupport.quietLogger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.run() }
            let started = ContinuousClock.now
            do {
                try await client.waitUntilConnected(timeout: .milliseconds(500))
                Issue.record("connected to nothing")
            } catch let error as NATSError {
                #expect(error.code == .timeout)
                #expect(error.message.contains("127.0.0.1:\(port)"))
                #expect(error.message.contains("refused"), "\(error)")
            }
            // The wait ends at its timeout, not never (loose: the machine may be busy).
            #expect(ContinuousClock.now - started < .seconds(20))
            do {
                try await client.flush(timeout: .milliseconds(100))
                Issue.record("flushed without a connection")
            } catch let error as NATSError {
                #expect(error.code == .disconnected)
            }
            client.close()
            try await group.waitForAll()
        }
    }

    @Test("gives up after max_reconnect_attempts with the last error")
    func givesUp() async throws {
        var configuration = try NATSClientConfiguration(urls: ["nats://127.0.0.1:\(try NATSServerProcess.freePort())"])
        configuration.maxReconnectAttempts = 2
        configuration.reconnectDelay = .milliseconds(10)
        let client = NATSClient(configuration: configuration, logger: TestSupport.quietLogger)
        await #expect(throws: NATSError.self) { try await client.run() }
        #expect(client.lastError?.code == .connectionFailed)
    }

    @Test("drain delivers what is buffered, then ends subscriptions and the client")
    func drain() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            let subscription = try client.subscribe(to: "drained")
            try await client.flush()
            for i in 0..<50 { try await client.publish("\(i)", to: "drained") }
            try await client.flush()
            try await Task.sleep(for: .milliseconds(100))
            try await client.drain()
            var count = 0
            for await _ in subscription { count += 1 }
            #expect(count == 50)
            #expect(!client.isConnected)
            do {
                try await client.publish("late", to: "drained")
                Issue.record("publish after drain was accepted")
            } catch let error as NATSError {
                #expect(error.code == .connectionClosed)
            }
        }
    }
}
