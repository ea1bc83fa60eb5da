#!/usr/bin/env python3
"""The same work as flatline bench's NATS part, with Python's nats-py, for comparison.

    nats_py_bench.py URL SMALL_COUNT LARGE_COUNT REQUEST_SECONDS

Prints JSON: {"publish 16 B": msgs/s, "publish 1024 B": msgs/s, "request/reply, 16 B": round trips/s}.
"""
import asyncio
import json
import sys
import time

import nats


async def main():
    url, small, large, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    nc = await nats.connect(url, name="nats-py-bench")
    results = {}
    for size, count in ((16, small), (1024, large)):
        payload = b"x" * size
        start = time.perf_counter()
        for _ in range(count):
            await nc.publish("bench.publish", payload)
        await nc.flush(timeout=60)
        results[f"publish {size} B"] = count / (time.perf_counter() - start)

    async def echo(msg):
        await msg.respond(msg.data)

    await nc.subscribe("bench.echo", cb=echo)
    await nc.flush()
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        await nc.request("bench.echo", b"1" * 16, timeout=5)
        done += 1
    results["request/reply, 16 B"] = done / (time.perf_counter() - start)
    await nc.drain()
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
