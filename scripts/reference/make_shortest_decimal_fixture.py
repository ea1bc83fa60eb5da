#!/usr/bin/env python3
"""Writes Tests/FlatlineCoreTests/Fixtures/shortest-decimal.csv: doubles (as their 64-bit pattern
in hex) and Python's repr of each, the shortest decimal that reads back (David Gay's algorithm,
an implementation independent of Swift's and of ShortestDecimal's).

    python3 scripts/reference/make_shortest_decimal_fixture.py > Tests/FlatlineCoreTests/Fixtures/shortest-decimal.csv

Random bit patterns, random decimals of few digits, both sides of every power of two and ten,
subnormals, and the largest and smallest values; fixed seed.
"""

import math
import random
import struct


def bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def main():
    rng = random.Random(20261206)
    values = [0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 0.3, 1 / 3]
    while len(values) < 3000:
        x = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if math.isfinite(x):
            values.append(abs(x))
    for _ in range(2000):
        values.append(rng.randrange(1, 10**rng.randrange(1, 17)) * 10.0 ** rng.randrange(-20, 20))
    for e in range(-1074, 1024, 7):
        x = math.ldexp(1.0, e)
        values += [x, math.nextafter(x, 0), math.nextafter(x, math.inf)]
    for e in range(-323, 309):
        x = float(f"1e{e}")
        if math.isfinite(x) and x > 0:
            values += [x, math.nextafter(x, 0), math.nextafter(x, math.inf)]
    print("bits,repr")
    for x in values:
        if x > 0 and math.isfinite(x):
            print(f"{bits(x):016x},{x!r}")


if __name__ == "__main__":
    main()
