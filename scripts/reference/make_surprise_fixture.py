#!/usr/bin/env python3
"""Reference values for the surprise detector, from a plain scalar re-implementation of its
documented rules (SurpriseDetector.swift's doc comments and the README's "The detectors").

    pip install numpy scipy
    python3 scripts/reference/make_surprise_fixture.py > Tests/FlatlineCoreTests/Fixtures/surprise-reference.json

Written point by point, one series at a time, with Python's math (libm) and scipy's brentq for
the band's inversion of the normal tail; the daily profile is stored as float32 (numpy), as the
detector stores it. Each case is a series (times, values, NaN for a missing value) and, per
point, the expected value, scale, z, surprise L and the band's half-width in scales at L = 3.
Deterministic: fixed seed.
"""
import json
import math
import sys

import numpy as np
from scipy.optimize import brentq

LN10 = math.log(10)
LN4 = math.log(4)
BIG_Z = 1e6

# The defaults of SurpriseParameters.
P = dict(
    slow_weight=0.02, scale_weight=0.02, fast_weight=0.7, clip=3.0, scale_clip=3.0, shift_run=12,
    quantum_floor=1.0, warmup=10, tail_start=3.0, rate_weight=0.001, prior_rate=0.005,
    shape_weight=0.01, prior_shape=0.2, min_shape=0.05, per_hour=1.0, score_half=2.0,
    step_weight=0.05, threshold=3.0, season_period=86400.0, season_slots=96, season_weight=0.1,
    season_cycles=2.0, season_gain=0.5, season_penalty=0.3, season_min_points=8,
)


def normal_tail(a):
    """-log10 P(|Z| > a), Z standard normal; asymptotic beyond 8."""
    if a < 8:
        return -math.log(math.erfc(a / math.sqrt(2))) / LN10
    x = a / math.sqrt(2)
    return (x * x + math.log(x * math.sqrt(math.pi))) / LN10


BODY_AT_TAIL = normal_tail(P["tail_start"])


def z_of(error, scale):
    if scale > 0:
        return error / scale
    return 0.0 if error == 0 else math.copysign(BIG_Z, error)


class Channel:
    """Two forecasts (slow, fast), their mean absolute errors, the shift run, and a tail."""

    def __init__(self):
        self.slow = self.fast = math.nan
        self.slow_mae = self.fast_mae = 0.0
        self.run = 0
        self.side = 0
        self.rate = P["prior_rate"]
        self.shape = P["prior_shape"]
        self.in_cluster = False

    def forecasts(self, x, floor):
        slow_scale = max(math.sqrt(math.pi / 2) * self.slow_mae, floor)
        fast_scale = max(math.sqrt(math.pi / 2) * self.fast_mae, floor)
        f = dict(slow_scale=slow_scale, fast_scale=fast_scale, slow_error=x - self.slow,
                 fast_error=x - self.fast)
        f["slow_z"] = z_of(f["slow_error"], slow_scale)
        f["fast_z"] = z_of(f["fast_error"], fast_scale)
        f["use_fast"] = abs(f["fast_z"]) < abs(f["slow_z"])
        f["z"] = f["fast_z"] if f["use_fast"] else f["slow_z"]
        return f

    def tail(self, a):
        """(-log10 p, -log10 rate, index) of |z| = a."""
        rate_log = -math.log10(self.rate)
        index = max(self.shape, P["min_shape"])
        if a <= P["tail_start"]:
            return normal_tail(a) * rate_log / BODY_AT_TAIL, rate_log, index
        return rate_log + math.log10(a / P["tail_start"]) / index, rate_log, index

    @staticmethod
    def cap(rate_log, index, target):
        """|z| at which the tail reaches `target`; infinite within the normal body."""
        if target < rate_log or rate_log <= 0:
            return math.inf
        return P["tail_start"] * math.exp(min((target - rate_log) * index * LN10, 700))

    def learn_tail(self, a, cap):
        start = 0.0
        if a > P["tail_start"]:
            if not self.in_cluster:
                self.in_cluster = True
                start = 1.0
            if a < cap:
                self.shape += P["shape_weight"] * (math.log(a / P["tail_start"]) - self.shape)
        else:
            self.in_cluster = False
        self.rate += P["rate_weight"] * (start - self.rate)

    def learn_levels(self, x, f, w):
        if abs(f["slow_z"]) > P["clip"]:
            s = 1 if f["slow_z"] > 0 else -1
            if s == self.side:
                self.run += 1
            else:
                self.side, self.run = s, 1
        else:
            self.run, self.side = 0, 0
        new_fast = self.fast + P["fast_weight"] * f["fast_error"]
        if P["shift_run"] > 0 and self.run >= P["shift_run"]:
            self.slow = new_fast
            self.run, self.side = 0, 0
        else:
            limit = P["clip"] * f["slow_scale"] if f["slow_scale"] > 0 else math.inf
            self.slow += P["slow_weight"] * min(max(f["slow_error"], -limit), limit)
        self.fast = new_fast
        k_s = P["scale_clip"] * f["slow_scale"] if f["slow_scale"] > 0 else math.inf
        k_f = P["scale_clip"] * f["fast_scale"] if f["fast_scale"] > 0 else math.inf
        self.slow_mae += w * (min(abs(f["slow_error"]), k_s) - self.slow_mae)
        self.fast_mae += w * (min(abs(f["fast_error"]), k_f) - self.fast_mae)


class Series:
    def __init__(self):
        self.count = 0
        self.previous = math.nan
        self.quantum = math.inf
        self.log_step = math.nan
        self.last_time = math.nan
        self.season_start = math.nan
        self.raw = Channel()
        self.des = Channel()
        self.profile = np.zeros(P["season_slots"], dtype=np.float32)
        self.visits = [0] * P["season_slots"]

    def update(self, t, x):
        """(expected, scale, z, surprise, band half-width in scales at L = threshold)."""
        nan = math.nan
        if not math.isnan(self.last_time):
            d = t - self.last_time
            if d > 0:
                ld = math.log(d)
                cur = self.log_step
                self.log_step = ld if math.isnan(cur) else cur + P["step_weight"] * min(max(ld - cur, -LN4), LN4)
        self.last_time = t
        if math.isnan(x):
            return nan, nan, nan, nan, nan
        n = self.count
        if n == 0:
            self.raw.slow = self.raw.fast = self.des.slow = self.des.fast = x
            self.previous = x
            self.season_start = t
            self.count = 1
            return x, nan, nan, nan, nan
        step = 3600.0 if math.isnan(self.log_step) else math.exp(self.log_step)
        period = P["season_period"]
        slot_count = min(int(period / step + 0.5), P["season_slots"])
        seasonal = slot_count >= P["season_min_points"]
        phase = 0
        if seasonal:
            offset = math.fmod(t, period)
            if offset < 0:
                offset += period
            phase = min(int(offset / period * slot_count), slot_count - 1)
        s_value = float(self.profile[phase]) if seasonal else 0.0
        floor = P["quantum_floor"] * self.quantum if math.isfinite(self.quantum) else 0.0
        raw = self.raw.forecasts(x, floor)
        xd = x - s_value
        des = self.des.forecasts(xd, floor)
        cycles = (t - self.season_start) / period
        use_seasonal = seasonal and cycles >= P["season_cycles"] and des["slow_scale"] < P["season_gain"] * raw["slow_scale"]
        per_time = P["per_hour"] * math.log10(step / 3600)
        lp, rate_log, index = self.raw.tail(abs(raw["z"]))
        warm = n >= P["warmup"]
        if warm:
            self.raw.learn_tail(abs(raw["z"]), Channel.cap(rate_log, index, P["threshold"] - per_time))
        expected = self.raw.fast if raw["use_fast"] else self.raw.slow
        scale = raw["fast_scale"] if raw["use_fast"] else raw["slow_scale"]
        z = raw["z"]
        penalty = 0.0
        if use_seasonal:
            lp_d, rate_log_d, index_d = self.des.tail(abs(des["z"]))
            cap = Channel.cap(rate_log_d, index_d, P["threshold"] - per_time + P["season_penalty"])
            self.des.learn_tail(abs(des["z"]), cap)
            if lp_d - P["season_penalty"] > lp:
                lp = lp_d - P["season_penalty"]
                expected = (self.des.fast if des["use_fast"] else self.des.slow) + s_value
                scale = des["fast_scale"] if des["use_fast"] else des["slow_scale"]
                z = des["z"]
                rate_log, index, penalty = rate_log_d, index_d, P["season_penalty"]
        d = abs(x - self.previous)
        if 0 < d < self.quantum:
            self.quantum = d
        self.previous = x
        w = max(P["scale_weight"], 1 / n)
        self.raw.learn_levels(x, raw, w)
        if seasonal:
            slow_before = self.des.slow
            self.des.learn_levels(xd, des, w)
            residual = x - slow_before - s_value
            limit = P["clip"] * des["slow_scale"] if des["slow_scale"] > 0 else math.inf
            per_cycle = period / (step * slot_count)
            weight = P["season_weight"] if per_cycle <= 1 else 1 - (1 - P["season_weight"]) ** (1 / per_cycle)
            seen = self.visits[phase]
            g = max(weight, 1 / (seen + 1))
            self.profile[phase] = np.float32(s_value + g * min(max(residual, -limit), limit))
            self.visits[phase] = min(seen + 1, 65535)
        self.count = n + 1
        if not warm:
            return expected, nan, nan, nan, nan
        surprise = lp + per_time
        return expected, scale, z, surprise, band(P["threshold"] - per_time + penalty, rate_log, index)


def band(target, rate_log, index):
    """|z| at which the point's tail reaches `target` (the band's half-width in scales)."""
    if target <= 0 or rate_log <= 0:
        return 0.0
    if target >= rate_log:
        return P["tail_start"] * math.exp(min((target - rate_log) * index * LN10, 700))
    goal = target * BODY_AT_TAIL / rate_log
    return brentq(lambda a: normal_tail(a) - goal, 0.0, 40.0, xtol=1e-14, rtol=1e-14)


def run(times, values):
    s = Series()
    return [s.update(t, x) for t, x in zip(times, values)]


def cases():
    rng = np.random.default_rng(20261204)
    out = []
    # A daily shape at 15-minute steps over six days: the seasonal channel takes over after two
    # cycles; a spike on day four, a shift on day five.
    t0 = 1_767_225_600.0
    times = t0 + 900.0 * np.arange(6 * 96)
    values = 100 + 30 * np.sin(2 * np.pi * (times - t0) / 86400) + rng.normal(0, 3, times.size)
    values[4 * 96 + 10] += 60
    values[5 * 96 + 20:5 * 96 + 40] += 20
    out.append(("daily shape, 15 min", times, values))
    # Counts every minute: the resolution (1) floors the scale; a burst.
    times = t0 + 60.0 * np.arange(700)
    values = rng.poisson(3, times.size).astype(float)
    values[400:405] += 30
    out.append(("counts, 1 min", times, values))
    # Irregular 10 s steps with missing values, a random walk and a spike.
    times = t0 + np.cumsum(rng.choice([7.0, 10.0, 10.0, 13.0], size=600))
    values = 50 + np.cumsum(rng.normal(0, 0.5, times.size))
    values[rng.choice(times.size, 40, replace=False)] = np.nan
    values[450] = (values[449] if not np.isnan(values[449]) else 50) + 25
    out.append(("irregular 10 s with gaps", times, values))
    # Flat at zero, then a step: scale zero, the big z.
    times = t0 + 5.0 * np.arange(200)
    values = np.where(np.arange(200) < 120, 0.0, 5.0)
    out.append(("flat then a step", times, values))
    return out


def main():
    result = []
    for name, times, values in cases():
        # Inputs as printed decimals, so both sides read the same doubles.
        values = [float(f"{v:.6f}") if not np.isnan(v) else math.nan for v in values]
        times = [float(t) for t in times]
        rows = run(times, values)

        def num(v):
            return None if math.isnan(v) else v

        result.append({
            "name": name,
            "times": times,
            "values": [num(v) for v in values],
            "expected": [num(r[0]) for r in rows],
            "scale": [num(r[1]) for r in rows],
            "z": [num(r[2]) for r in rows],
            "surprise": [num(r[3]) for r in rows],
            "limit": [num(r[4]) for r in rows],
        })
    json.dump({"threshold": P["threshold"], "cases": result}, sys.stdout, indent=None)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
