import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineNATS

@Suite("JetStream key-value buckets", .timeLimit(.minutes(1)))
struct KeyValueTests {
    @Test("create-if-absent, update by revision, delete and entries, against a real server")
    func compareAndSwap() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            let js = JetStream(client: client)
            let kv = try await KeyValue.create(KeyValue.Configuration(bucket: "leases"), in: js)
            // The layout the NATS tools use.
            let info = try await js.streamInfo("KV_leases")
            #expect(info.config.subjects == ["$KV.leases.>"])
            #expect(info.config.maxMessagesPerSubject == 1)
            #expect(info.config.allowRollup && info.config.denyDelete && info.config.allowDirect)

            #expect(try await kv.get("a") == nil)
            let first = try await kv.create("a", value: Array("one".utf8))
            // A second create loses: the key holds a value.
            let lost = await #expect(throws: NATSError.self) { try await kv.create("a", value: Array("two".utf8)) }
            #expect(lost?.apiErrorCode == KeyValue.wrongRevision)
            #expect(try await kv.get("a")?.value == Array("one".utf8))

            // Update by revision: the holder of the revision wins, a stale revision loses.
            let second = try await kv.update("a", value: Array("two".utf8), revision: first)
            #expect(second > first)
            let stale = await #expect(throws: NATSError.self) {
                try await kv.update("a", value: Array("three".utf8), revision: first)
            }
            #expect(stale?.apiErrorCode == KeyValue.wrongRevision)
            #expect(
                try await kv.get("a")
                    == KeyValue.Entry(key: "a", value: Array("two".utf8), revision: second, operation: .put)
            )

            try await kv.put("b.c", value: Array("x".utf8))
            try await kv.put("d", value: [])
            #expect(try await kv.entries().map(\.key) == ["a", "b.c", "d"])

            // Delete leaves a tombstone: gone for get and entries, and free for create again.
            try await kv.delete("a", revision: second)
            #expect(try await kv.get("a") == nil)
            #expect(try await kv.entries().map(\.key) == ["b.c", "d"])
            let again = try await kv.create("a", value: Array("new".utf8))
            #expect(try await kv.get("a")?.revision == again)

            // Keys the bucket cannot hold are refused before they reach the server.
            await #expect(throws: NATSError.self) { try await kv.put("a b", value: []) }
            await #expect(throws: NATSError.self) { try await kv.put(".a", value: []) }
            #expect(throws: NATSError.self) { try KeyValue(bucket: "a.b", jetStream: js) }
        }
    }

    @Test("a key lapses its ttl after its last write; a renewed one stays")
    func ttl() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            let js = JetStream(client: client)
            var configuration = KeyValue.Configuration(bucket: "members")
            configuration.ttl = .seconds(2)
            configuration.storage = .memory
            let kv = try await KeyValue.create(configuration, in: js)
            // Creating it again with another limit brings the stream to it.
            configuration.ttl = .milliseconds(1500)
            _ = try await KeyValue.create(configuration, in: js)
            #expect(try await js.streamInfo("KV_members").config.maxAge == 1_500_000_000)

            var kept = try await kv.create("kept", value: Array("1".utf8))
            try await kv.create("lapsing", value: Array("1".utf8))
            let deadline = ContinuousClock.now + .seconds(10)
            while try await kv.get("lapsing") != nil, ContinuousClock.now < deadline {
                kept = try await kv.update("kept", value: Array("1".utf8), revision: kept)
                try await Task.sleep(for: .milliseconds(300))
            }
            #expect(try await kv.get("lapsing") == nil)
            #expect(try await kv.get("kept")?.revision == kept)
            // A lapsed key is free: create wins again.
            try await kv.create("lapsing", value: Array("2".utf8))
            #expect(try await kv.entries().map(\.key).sorted() == ["kept", "lapsing"])
        }
    }
}
