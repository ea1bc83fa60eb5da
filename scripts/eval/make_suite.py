#!/usr/bin/env python3
"""Labelled synthetic series for tuning and checking Flatline's detectors.

    make_suite.py --out DIR [--seed S] [--per-shape N]

Writes DIR/<name>.csv (timestamp,value; one series each) and DIR/labels.csv
(file,start,end,kind; unix seconds, end inclusive). Shapes cover what monitoring series look like
and what public benchmarks contain: daily/weekly seasons, random walks, trends, heavy tails,
low-rate integer counts, mostly-flat gauges, short non-daily cycles, counter rates with resets;
anomalies are spikes and dips, level shifts, flatlines, variance bursts and drops to zero.
Deterministic for a seed. Use different seeds for tuning and for checking.
"""
import argparse
import datetime as dt
import math
import os

import numpy as np

SHAPES = ["seasonal", "walk", "trend", "heavy", "counts", "sparse", "cycle", "counter_rate", "smooth"]


def base_series(shape, rng, T, step, t):
    day = 86400.0
    if shape == "seasonal":
        level = 10 ** rng.uniform(1, 5)
        y = level * (1 + rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * t / day + rng.uniform(0, 6.3))
                     + rng.uniform(0, 0.2) * np.sin(2 * np.pi * t / (7 * day) + rng.uniform(0, 6.3)))
        return y + rng.normal(0, rng.uniform(0.01, 0.06) * level, T), level
    if shape == "walk":
        level = 10 ** rng.uniform(1, 4)
        steps = rng.normal(0, level * rng.uniform(0.002, 0.01), T)
        return level + np.cumsum(steps) + rng.normal(0, level * 0.01, T), level
    if shape == "trend":
        level = 10 ** rng.uniform(1, 4)
        slope = level * rng.uniform(-0.5, 1.0) / T
        y = level + slope * np.arange(T) + level * 0.2 * np.sin(2 * np.pi * t / day)
        return y + rng.normal(0, level * 0.03, T), level
    if shape == "heavy":
        level = 10 ** rng.uniform(1, 4)
        return level + level * 0.02 * rng.standard_t(3, T), level
    if shape == "counts":
        lam = rng.uniform(1, 8) * (1 + 0.5 * np.sin(2 * np.pi * t / day))
        return rng.poisson(lam).astype(float), float(np.mean(lam))
    if shape == "sparse":
        y = np.zeros(T)
        y[rng.random(T) < rng.uniform(0.01, 0.08)] = rng.integers(1, 3)
        return y, 1.0
    if shape == "cycle":
        level = 10 ** rng.uniform(1, 4)
        period = rng.uniform(20, 80) * step
        return level * (1 + 0.3 * np.sin(2 * np.pi * t / period)) + rng.normal(0, level * 0.03, T), level
    if shape == "counter_rate":
        level = 10 ** rng.uniform(0.5, 3)
        rate = level * (1 + 0.3 * np.sin(2 * np.pi * t / day))
        return rng.poisson(rate * step).astype(float) / step, level
    if shape == "smooth":
        level = 10 ** rng.uniform(1, 3)
        y = level + np.convolve(rng.normal(0, level * 0.05, T + 50), np.ones(50) / 50, "same")[:T]
        return y + rng.normal(0, level * 0.002, T), level
    raise ValueError(shape)


def inject(y, shape, rng, T, level):
    """Returns labelled anomaly windows (index start, end inclusive, kind)."""
    kinds = ["spike", "dip", "shift_up", "shift_down", "flatline", "variance", "zero"]
    if shape in ("sparse",):
        kinds = ["spike", "shift_up"]
    if shape in ("counts", "counter_rate"):
        kinds = ["spike", "shift_up", "zero", "shift_down"]
    labels = []
    n = int(rng.integers(1, 4))
    warm = T // 5
    tries = 0
    noise = np.median(np.abs(np.diff(y))) / 0.95 + 1e-9
    while len(labels) < n and tries < 100:
        tries += 1
        kind = kinds[int(rng.integers(0, len(kinds)))]
        length = {"spike": int(rng.integers(1, 3)), "dip": int(rng.integers(1, 3)),
                  "shift_up": int(rng.integers(20, 120)), "shift_down": int(rng.integers(20, 120)),
                  "flatline": int(rng.integers(30, 100)), "variance": int(rng.integers(20, 80)),
                  "zero": int(rng.integers(10, 60))}[kind]
        s = int(rng.integers(warm, T - length - 1))
        e = s + length - 1
        if any(not (e + 50 < ps or s > pe + 50) for ps, pe, _ in labels):
            continue
        spread = max(noise, 0.02 * abs(level))
        if shape == "sparse":
            spread = 0.4  # integer-valued: shifts of 2-6 events, spikes of 3-8
        if kind == "spike":
            y[s:e + 1] += rng.uniform(8, 20) * spread
        elif kind == "dip":
            y[s:e + 1] -= rng.uniform(8, 20) * spread
        elif kind == "shift_up":
            y[s:e + 1] += rng.uniform(6, 15) * spread
        elif kind == "shift_down":
            y[s:e + 1] -= min(rng.uniform(6, 15) * spread, 0.9 * max(abs(np.median(y[s:e + 1])), spread))
        elif kind == "flatline":
            y[s:e + 1] = y[s - 1]
        elif kind == "variance":
            y[s:e + 1] += rng.normal(0, 6 * spread, length)
        elif kind == "zero":
            y[s:e + 1] = 0
            if abs(np.median(y[max(0, s - 200):s])) < 4 * spread:
                continue
        labels.append((s, e, kind))
    return sorted(labels)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-shape", type=int, default=4)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rows = ["file,start,end,kind"]
    start = dt.datetime(2024, 3, 4, tzinfo=dt.timezone.utc)
    for si, shape in enumerate(SHAPES):
        for k in range(a.per_shape):
            rng = np.random.default_rng([a.seed, si, k])
            step = [300, 60, 15, 600][int(rng.integers(0, 4))]
            T = int(rng.integers(3000, 9000))
            t = start.timestamp() + step * np.arange(T, dtype=float)
            y, level = base_series(shape, rng, T, step, t)
            labels = inject(y, shape, rng, T, level)
            if shape in ("counts", "sparse"):
                y = np.round(np.maximum(y, 0))
            name = f"{shape}-{k:02d}"
            with open(os.path.join(a.out, name + ".csv"), "w") as f:
                f.write("timestamp,value\n")
                for i in range(T):
                    ts = dt.datetime.fromtimestamp(t[i], dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
                    f.write(f"{ts},{y[i]:.6g}\n")
            for s, e, kind in labels:
                rows.append(f"{name}.csv,{int(t[s])},{int(t[e])},{kind}")
    with open(os.path.join(a.out, "labels.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
