import FlatlineTestSupport
import Foundation
import Testing

@testable import FlatlineNATS

@Suite("JetStream object store", .timeLimit(.minutes(1)))
struct ObjectStoreTests {
    @Test("objects of many chunks come back whole; a new version replaces the old and its chunks are purged")
    func roundTrip() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            let js = JetStream(client: client)
            var store = try await ObjectStore.create(bucket: "state", in: js)
            store.chunkSize = 1000
            #expect(try await store.get("nats/127.0.0.1:8222") == nil)
            var rng = SystemRandomNumberGenerator()
            let first = (0..<4500).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let info = try await store.put("nats/127.0.0.1:8222", bytes: first)
            #expect(info.chunks == 5 && info.size == 4500)
            // The layout the NATS tools use: chunks under C, the description under M.
            let stream = try await js.streamInfo("OBJ_state")
            #expect(stream.config.subjects == ["$O.state.C.>", "$O.state.M.>"])
            #expect(stream.state.messages == 6)
            let got = try #require(try await store.get("nats/127.0.0.1:8222"))
            #expect(got.bytes == first)
            #expect(got.info.digest == info.digest)

            // A second version: read back as written; the first one's chunks are gone.
            let second = Array("smaller".utf8)
            try await store.put("nats/127.0.0.1:8222", bytes: second)
            #expect(try await store.get("nats/127.0.0.1:8222")?.bytes == second)
            #expect(try await js.streamInfo("OBJ_state").state.messages == 2)
            // Empty objects, and a size limit on reading.
            try await store.put("empty", bytes: [])
            #expect(try await store.get("empty")?.bytes == [])
            await #expect(throws: NATSError.self) { try await store.get("nats/127.0.0.1:8222", maxBytes: 3) }
            // Chunks that do not match the description are refused, not returned.
            let description = try #require(try await store.info("nats/127.0.0.1:8222"))
            try await js.publish(Array("tampered".utf8), to: "$O.state.C.\(description.nuid)")
            try await js.purge(stream: "OBJ_state", subject: "$O.state.C.\(description.nuid)")
            try await js.publish(Array("tampere".utf8), to: "$O.state.C.\(description.nuid)")
            await #expect(throws: NATSError.self) { try await store.get("nats/127.0.0.1:8222") }

            // Listed by name; a deleted one is gone, with its chunks.
            #expect(try await store.list().map(\.name) == ["empty", "nats/127.0.0.1:8222"])
            try await store.put("other", bytes: Array(repeating: 7, count: 2500))
            try await store.delete("other")
            #expect(try await store.get("other") == nil)
            #expect(try await store.list().map(\.name) == ["empty", "nats/127.0.0.1:8222"])
            #expect(try await js.streamInfo("OBJ_state").state.messages == 4)
        }
    }

    @Test("writers of one object at once: one version stands, whole, and no chunks are left behind")
    func concurrentWriters() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            let js = JetStream(client: client)
            var store = try await ObjectStore.create(bucket: "race", in: js)
            store.chunkSize = 500
            let written = try await store.put("unit", bytes: Array(repeating: 0, count: 1200))
            let writers = store
            // Eight writers, each with its own bytes, several rounds.
            for round in 0..<5 {
                let outcomes = await withTaskGroup(of: Bool.self) { group in
                    for writer in 0..<8 {
                        group.addTask {
                            let bytes = Array(repeating: UInt8(writer + 1), count: 1500 + 100 * round)
                            do {
                                try await writers.put("unit", bytes: bytes)
                                return true
                            } catch let error as NATSError where error.apiErrorCode == ObjectStore.conflict {
                                return false
                            } catch {
                                Issue.record("put failed: \(error)")
                                return false
                            }
                        }
                    }
                    return await group.reduce(into: [Bool]()) { $0.append($1) }
                }
                #expect(outcomes.contains(true), "round \(round): nobody won")
                let got = try #require(try await store.get("unit"))
                #expect(got.bytes.count == 1500 + 100 * round && Set(got.bytes).count == 1)
                // Only the standing version's chunks (and its description) are left.
                #expect(try await store.orphanedChunks().isEmpty)
                let state = try await js.streamInfo("OBJ_race").state
                #expect(state.messages == got.info.chunks + 1, "round \(round): \(state.messages) messages")
            }
            #expect(written.nuid != (try await store.info("unit"))?.nuid)
        }
    }

    @Test("chunks no description names are found and purged; named ones are left")
    func orphans() async throws {
        let server = try NATSServerProcess(jetStream: true)
        defer { server.stop() }
        try await TestSupport.withNATSClient(server.url) { client in
            let js = JetStream(client: client)
            let store = try await ObjectStore.create(bucket: "sweep", in: js)
            let kept = try await store.put("kept", bytes: Array(repeating: 1, count: 10))
            // A writer that died after its chunks, before its description.
            try await js.publish(Array("lost".utf8), to: "$O.sweep.C.deadwriter")
            try await js.publish(Array("more".utf8), to: "$O.sweep.C.deadwriter")
            #expect(try await store.orphanedChunks() == ["$O.sweep.C.deadwriter"])
            #expect(try await js.subjects(stream: "OBJ_sweep", filter: "$O.sweep.C.>").count == 2)
            #expect(try await store.purgeChunks(["$O.sweep.C.deadwriter", "$O.elsewhere.C.x"]) == 2)
            #expect(try await store.orphanedChunks().isEmpty)
            #expect(try await store.get("kept")?.info == kept)
        }
    }
}
