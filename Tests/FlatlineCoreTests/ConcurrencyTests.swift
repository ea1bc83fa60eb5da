import FlatlineCore
import Synchronization
import Testing

@Suite("Wait primitives")
struct ConcurrencyTests {
    final class Counter: Sendable {
        let count = Mutex(0)
    }

    @Test(
        "Generations: every waiter wakes at the next generation; a wait for a past one returns at once; cancellation ends a wait"
    )
    func generations() async throws {
        let generations = Generations()
        #expect(generations.current == 0)
        let woken = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    await generations.wait(past: 0)
                    woken.count.withLock { $0 += 1 }
                }
            }
            // Nobody wakes before the generation moves on.
            try await Task.sleep(for: .milliseconds(200))
            #expect(woken.count.withLock { $0 } == 0)
            generations.advance()
            try await group.waitForAll()
        }
        #expect(woken.count.withLock { $0 } == 3)
        #expect(generations.current == 1)
        // Already past: at once.
        await generations.wait(past: 0)
        // Cancelled: the wait ends without a new generation.
        let waiter = Task { await generations.wait(past: 1) }
        try await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        await waiter.value
        #expect(generations.current == 1)
    }

    @Test("Wakeup: a fire wakes the waiter before its timeout, a fire with nobody waiting is kept for the next wait")
    func wakeup() async throws {
        let wakeup = Wakeup()
        let clock = ContinuousClock()
        // Nothing fired: the whole timeout.
        let idle = await clock.measure { await wakeup.wait(upTo: .milliseconds(300)) }
        #expect(idle >= .milliseconds(290))
        // Fired meanwhile: well before a long timeout.
        let fired = await clock.measure {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await wakeup.wait(upTo: .seconds(30)) }
                group.addTask {
                    try? await Task.sleep(for: .milliseconds(100))
                    wakeup.fire()
                }
                await group.waitForAll()
            }
        }
        #expect(fired < .seconds(10))
        // Fired before the wait: the wait returns at once.
        wakeup.fire()
        let kept = await clock.measure { await wakeup.wait(upTo: .seconds(30)) }
        #expect(kept < .seconds(10))
    }
}
