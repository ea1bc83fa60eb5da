#!/usr/bin/env python3
"""Synthetic series for the anomaly classes production telemetry has, each with a twin without
the anomaly, for the detectors' behaviour tests.

    make_anomaly_cases.py OUT_DIR

Classes (Lai et al., NeurIPS 2021, "Revisiting Time Series Outlier Detection", plus what real
telemetry shows): point-global, point-contextual, pattern-shapelet, pattern-seasonal,
pattern-trend, missing-jump (a daily jump that does not happen), wrong-jump (it goes the wrong
way), denser-spikes (spikes every eight hours become hourly), level-shift (persists: flag once, then adapt),
slow-drift, count-burst (a quantised count, mostly 0-3, bursts), gaps (missing samples around an
anomaly). Every series: 10-minute steps, 8 days (1152 points), the anomaly on day 7; a daily
shape and noise that differ per case; seeded (numpy), so the files are reproducible.

Writes OUT_DIR/NAME.csv (timestamp,value: the anomalous series), OUT_DIR/NAME-clean.csv (the
twin without it) and OUT_DIR/cases.csv (name, first anomalous row, last anomalous row).
"""
import csv
import datetime as dt
import os
import sys

import numpy as np

STEP = 600
DAY = 86400 // STEP  # 144 points
N = 8 * DAY
START = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)
ONSET = 6 * DAY + 60  # day 7, 10:00


def daily(t, peak=1.0, sharp=1.0):
    """A business-day-like shape: low at night, a morning rise, an afternoon peak."""
    h = (t % DAY) / DAY * 24
    return peak * np.clip(np.sin((h - 6) / 16 * np.pi), 0, None) ** sharp


def base(seed, level=100.0, amp=60.0, noise=4.0, sharp=1.0):
    rng = np.random.default_rng(seed)
    t = np.arange(N)
    return level + amp * daily(t, sharp=sharp) + rng.normal(0, noise, N), rng


def cases():
    out = {}
    # point-global: one value far outside everything the series ever did.
    x, _ = base(1)
    y = x.copy()
    y[ONSET] += 400
    out["point-global"] = (y, x, ONSET, ONSET)
    # point-contextual: at night, the afternoon's level (normal globally, not at that hour).
    x, _ = base(2, amp=80)
    y = x.copy()
    night = 7 * DAY - 20  # day 7, ~20:40
    y[night] = x[night] + 70
    out["point-contextual"] = (y, x, night, night)
    # pattern-shapelet: the day's shape flattens into a plateau for three hours.
    x, rng = base(3, amp=70)
    y = x.copy()
    seg = slice(ONSET, ONSET + 18)
    y[seg] = x[ONSET] + rng.normal(0, 4, 18)
    out["pattern-shapelet"] = (y, x, ONSET, ONSET + 17)
    # pattern-seasonal: the cycle runs twice as fast for half a day.
    x, rng = base(4, amp=60)
    y = x.copy()
    t = np.arange(ONSET, ONSET + 72)
    y[t] = 100 + 60 * daily(2 * t) + rng.normal(0, 4, 72)
    out["pattern-seasonal"] = (y, x, ONSET, ONSET + 71)
    # pattern-trend: a ramp climbs over four hours, then stops.
    x, _ = base(5, amp=40)
    y = x.copy()
    ramp = np.linspace(0, 120, 24)
    y[ONSET:ONSET + 24] += ramp
    out["pattern-trend"] = (y, x, ONSET, ONSET + 23)
    # missing-jump: the usual morning jump does not happen (a service that did not come up).
    x, rng = base(6, level=20, amp=200, noise=6, sharp=0.3)
    y = x.copy()
    day7 = 6 * DAY
    morning = slice(day7 + 40, day7 + 110)
    y[morning] = 20 + rng.normal(0, 6, 70)
    out["missing-jump"] = (y, x, day7 + 48, day7 + 109)
    # wrong-jump: the morning jump goes down instead of up.
    x, rng = base(7, level=300, amp=200, noise=8, sharp=0.3)
    y = x.copy()
    y[day7 + 40:day7 + 110] = 300 - 0.5 * (x[day7 + 40:day7 + 110] - 300) + rng.normal(0, 8, 70)
    out["wrong-jump"] = (y, x, day7 + 48, day7 + 109)
    # denser-spikes: a spike every eight hours or so is normal; then one an hour.
    x, rng = base(8, amp=30, noise=3)
    for k in rng.choice(np.arange(100, ONSET - 10), 18, replace=False):
        x[k] += 35
    y = x.copy()
    burst = np.arange(ONSET, ONSET + 60, 6)
    y[burst] += 35
    out["denser-spikes"] = (y, x, ONSET, ONSET + 59)
    # level-shift: the level steps up by a lot and stays.
    x, _ = base(9, amp=30, noise=3)
    y = x.copy()
    y[ONSET:] += 80
    out["level-shift"] = (y, x, ONSET, ONSET + 5)
    # slow-drift: the level creeps up by 6 noise sd per hour for nine hours.
    x, _ = base(10, amp=20, noise=3)
    y = x.copy()
    y[ONSET:ONSET + 54] += np.arange(54) * 3.0
    y[ONSET + 54:] += 54 * 3.0
    out["slow-drift"] = (y, x, ONSET, ONSET + 53)
    # count-burst: a quantised count, mostly 0-3 (Poisson 0.8), then a burst of errors.
    rng = np.random.default_rng(11)
    x = rng.poisson(0.8, N).astype(float)
    y = x.copy()
    y[ONSET:ONSET + 6] = rng.poisson(14, 6)
    out["count-burst"] = (y, x, ONSET, ONSET + 5)
    # gaps: samples missing here and there (and for two hours before the anomaly), then a spike.
    x, rng = base(12, amp=50)
    holes = rng.choice(N, N // 20, replace=False)
    x[holes] = np.nan
    x[ONSET - 12:ONSET] = np.nan
    y = x.copy()
    y[ONSET] = 100 + 50 * daily(np.array([ONSET]))[0] + 150
    y[ONSET + 1] = 100 + 50 * daily(np.array([ONSET + 1]))[0] + 140
    out["gaps"] = (y, x, ONSET, ONSET + 1)
    return out


def write(path, values):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value"])
        for k, v in enumerate(values):
            t = (START + dt.timedelta(seconds=STEP * k)).strftime("%Y-%m-%d %H:%M:%S")
            w.writerow([t, "" if np.isnan(v) else f"{v:.4f}"])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "cases.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "first", "last"])
        for name, (y, x, first, last) in cases().items():
            write(os.path.join(out, name + ".csv"), y)
            write(os.path.join(out, name + "-clean.csv"), x)
            w.writerow([name, first, last])


if __name__ == "__main__":
    main()
