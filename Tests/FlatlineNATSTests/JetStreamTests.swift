import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineNATS

@Suite("JetStream API and system requests", .timeLimit(.minutes(1)))
struct JetStreamTests {
    @Test("stream and consumer lifecycle, fetch, ack and redelivery")
    func lifecycle() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            let js = JetStream(client: client)
            var stream = StreamConfiguration(name: "ORDERS", subjects: ["orders.>"])
            stream.maxMessages = 1000
            let created = try await js.createStream(stream)
            #expect(created.config.name == "ORDERS")
            #expect(created.config.maxMessages == 1000)
            for i in 1...10 {
                let ack = try await js.publish(Array("order \(i)".utf8), to: "orders.new")
                #expect(ack.stream == "ORDERS")
                #expect(ack.sequence == UInt64(i))
            }
            #expect(try await js.streamInfo("ORDERS").state.messages == 10)

            var consumer = ConsumerConfiguration(durableName: "worker")
            consumer.ackWait = 500_000_000  // 0.5 s
            consumer.maxAckPending = 100
            try await js.createConsumer(stream: "ORDERS", consumer)
            let batch = try await js.fetch(stream: "ORDERS", consumer: "worker", batch: 4, expires: .seconds(2))
            #expect(batch.map(\.message.string) == ["order 1", "order 2", "order 3", "order 4"])
            let metadata = try #require(batch.first?.metadata)
            #expect(metadata.stream == "ORDERS" && metadata.consumer == "worker" && metadata.streamSequence == 1)
            for message in batch.prefix(3) { try await message.ack() }
            try await batch[3].nak()
            try await client.flush()
            var info = try await js.consumerInfo(stream: "ORDERS", consumer: "worker")
            #expect(info.ackFloor.streamSequence == 3)
            #expect(info.numPending == 6)

            // The nak'd message comes again, first.
            let next = try await js.fetch(stream: "ORDERS", consumer: "worker", batch: 1, expires: .seconds(2))
            #expect(next.first?.message.string == "order 4")
            #expect(next.first?.metadata?.delivered == 2)
            try await next.first?.term()

            // Unacknowledged messages come back after ack_wait.
            let unacked = try await js.fetch(stream: "ORDERS", consumer: "worker", batch: 2, expires: .seconds(2))
            #expect(unacked.map(\.message.string) == ["order 5", "order 6"])
            try await Task.sleep(for: .milliseconds(800))
            let redelivered = try await js.fetch(stream: "ORDERS", consumer: "worker", batch: 2, expires: .seconds(2))
            #expect(redelivered.map(\.message.string) == ["order 5", "order 6"])
            for message in redelivered { try await message.inProgress() }
            for message in redelivered { try await message.ack() }
            try await client.flush()
            info = try await js.consumerInfo(stream: "ORDERS", consumer: "worker")
            #expect(info.ackFloor.streamSequence == 6)
            #expect(info.numRedelivered == 0)

            // Nothing left beyond what is pending: a fetch returns what there is, then ends.
            let rest = try await js.fetch(stream: "ORDERS", consumer: "worker", batch: 100, expires: .milliseconds(500))
            #expect(rest.count == 4)

            try await js.deleteConsumer(stream: "ORDERS", consumer: "worker")
            try await js.deleteStream("ORDERS")
            do {
                _ = try await js.streamInfo("ORDERS")
                Issue.record("a deleted stream still answers")
            } catch let error as NATSError {
                #expect(error.code == .jetStream)
                #expect(error.apiCode == 404)
                #expect(error.apiErrorCode == 10059)
            }
        }
    }

    @Test("a push consumer delivers to its subject")
    func pushConsumer() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            let js = JetStream(client: client)
            try await js.createStream(StreamConfiguration(name: "EVENTS", subjects: ["events.*"]))
            let deliveries = try client.subscribe(to: "deliver.audit")
            var push = ConsumerConfiguration(durableName: "audit")
            push.deliverSubject = "deliver.audit"
            try await js.createConsumer(stream: "EVENTS", push)
            for i in 0..<3 { try await js.publish(Array("e\(i)".utf8), to: "events.created") }
            var received: [String] = []
            for await message in deliveries {
                received.append(message.string)
                try await JetStreamMessage(message: message, client: client).ack()
                if received.count == 3 { break }
            }
            #expect(received == ["e0", "e1", "e2"])
        }
    }

    @Test("JetStream disabled: a clear error, not a timeout")
    func disabled() async throws {
        let server = try NATSServerProcess(jetStream: false)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            do {
                _ = try await JetStream(client: client).streamInfo("X")
                Issue.record("answered without JetStream")
            } catch let error as NATSError {
                #expect(error.code == .jetStream)
                #expect(error.message.contains("not enabled"))
            }
        }
    }

    @Test("system account: $SYS.REQ.SERVER.PING.VARZ collects every server's reply")
    func systemPing() async throws {
        let server = try NATSServerProcess(
            jetStream: true,
            configuration: """
                accounts {
                  SYS { users = [ { user: sys, password: sys } ] }
                  APP { users = [ { user: app, password: app } ], jetstream: enabled }
                }
                system_account: SYS
                """
        )
        defer { server.stop() }
        try await TestSupport.withNATSClient(
            server.url,
            configure: { $0.authentication = .userPassword(user: "sys", password: "sys") }
        ) {
            client in
            let started = ContinuousClock.now
            // Generous against a busy machine, yet far below the timeout: it stops once the
            // expected servers answered instead of waiting the timeout out.
            let replies = try await SystemRequests.ping(client, .varz, timeout: .seconds(30), expectedServers: 1)
            #expect(ContinuousClock.now - started < .seconds(15), "stops once the expected servers answered")
            #expect(replies.count == 1)
            let reply = try #require(replies.first)
            #expect(reply.server.name == "flatline-test")
            let data = try #require(reply.data)
            let varz = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(varz["in_msgs"] != nil)
            #expect(varz["server_id"] as? String == reply.server.id)

            for endpoint in [SystemRequests.Endpoint.connz, .jsz, .healthz, .statsz] {
                let answers = try await SystemRequests.ping(client, endpoint, timeout: .seconds(1), expectedServers: 1)
                #expect(answers.count == 1, "\(endpoint)")
                #expect(answers.first?.data != nil, "\(endpoint): \(answers.first?.error ?? "")")
            }
            // Without a limit it waits the whole timeout, then returns what came.
            let all = try await SystemRequests.ping(client, .varz, timeout: .milliseconds(300))
            #expect(all.count == 1)
        }
    }
}
