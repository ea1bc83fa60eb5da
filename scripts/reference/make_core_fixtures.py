#!/usr/bin/env python3
"""Reference values for FlatlineCore's numeric tests, computed independently with numpy.

    python3 scripts/reference/make_core_fixtures.py > Tests/FlatlineCoreTests/Fixtures/reference.json

Every number here comes from a direct formula (full weighted sums, np.median over explicit
windows, np.linalg.lstsq), not from the recursions the Swift code uses, so agreement means the
Swift recursions are right. Deterministic: fixed seeds, no clock. numpy >= 1.24.
"""
import json
import math
import sys

import numpy as np


def ewma_reference(rng):
    """EWMA with a half-life in seconds over irregular timestamps.

    The recursion mean += a*(x - mean), var = (1 - a)*(var + a*d^2) with a = 1 - 2^(-dt/h) is
    the weighted mean and weighted population variance with weights w_j = a_j * prod_{k>j}(1 - a_k)
    (w_0 = prod_{k>0}(1 - a_k)); those sums are computed here directly, for every prefix.
    """
    n = 40
    half_life = 30.0
    dt = rng.choice([10.0, 10.0, 10.0, 20.0, 5.0], size=n - 1)
    t = np.concatenate([[1_700_000_000.0], 1_700_000_000.0 + np.cumsum(dt)])
    x = 100 + rng.normal(0, 5, n)
    means, sds = [], []
    for m in range(1, n + 1):  # state after m samples
        a = np.concatenate([[1.0], 1 - 2 ** (-(np.diff(t[:m])) / half_life)])
        w = np.empty(m)
        for j in range(m):
            w[j] = a[j] * np.prod(1 - a[j + 1:m])
        mu = np.sum(w * x[:m]) / np.sum(w)
        var = np.sum(w * (x[:m] - mu) ** 2) / np.sum(w)
        means.append(mu)
        sds.append(math.sqrt(var))
    # Point i is scored against the state after i samples.
    return {"half_life_seconds": half_life, "t": t.tolist(), "x": x.tolist(),
            "expected": [None] + means[:-1], "scale": [None] + sds[:-1]}


def rolling_reference(rng, window):
    n = 60
    x = np.round(rng.normal(0, 10, n), 1)  # rounded: ties happen
    med, scale = [None], [None]
    for i in range(1, n):
        w = x[max(0, i - window):i]
        m = float(np.median(w))
        med.append(m)
        scale.append(1.482602218505602 * float(np.median(np.abs(w - m))))
    return {"window": window, "x": x.tolist(), "median": med, "scale": scale}


def lstsq_reference(rng):
    a = rng.normal(0, 1, (12, 4))
    b = rng.normal(0, 1, (12, 3))
    sol, _res, rank, sv = np.linalg.lstsq(a, b, rcond=None)
    spd = a.T @ a + np.eye(4)
    rhs = rng.normal(0, 1, (4, 2))
    return {"a": a.tolist(), "b": b.tolist(), "solution": sol.tolist(), "rank": int(rank),
            "singular_values": sv.tolist(), "spd": spd.tolist(), "rhs": rhs.tolist(),
            "spd_solution": np.linalg.solve(spd, rhs).tolist()}


def seasonal_reference(rng):
    """Exponentially weighted least squares of level + 2 harmonics of a 1-hour season, sampled
    every 60 s for 6 hours; weights 2^(-(t_last - t)/h)."""
    step, period, harmonics, half_life = 60.0, 3600.0, 2, 7200.0
    n = 360
    t = 1_700_006_400.0 + step * np.arange(n)  # a multiple of the period: phase 0 at the start
    phase = (t % period) / period
    truth = {"level": 50.0, "sin1": 8.0, "cos1": -3.0, "sin2": 2.0, "cos2": 1.5}
    y = (truth["level"] + truth["sin1"] * np.sin(2 * np.pi * phase) + truth["cos1"] * np.cos(2 * np.pi * phase)
         + truth["sin2"] * np.sin(4 * np.pi * phase) + truth["cos2"] * np.cos(4 * np.pi * phase)
         + rng.normal(0, 0.5, n))
    design = np.column_stack([np.ones(n)] + [f(2 * np.pi * k * phase) for k in range(1, harmonics + 1)
                                               for f in (np.sin, np.cos)])
    w = 2 ** (-(t[-1] - t) / half_life)
    sw = np.sqrt(w)
    beta = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)[0]
    return {"step": step, "period": period, "harmonics": harmonics, "half_life_seconds": half_life,
            "t": t.tolist(), "y": y.tolist(), "coefficients": beta.tolist(), "truth": truth}


def main():
    rng = np.random.default_rng(20261124)
    out = {
        "generator": "scripts/reference/make_core_fixtures.py",
        "numpy": np.__version__,
        "ewma": ewma_reference(rng),
        "rolling_odd": rolling_reference(rng, 7),
        "rolling_even": rolling_reference(rng, 8),
        "lstsq": lstsq_reference(rng),
        "seasonal": seasonal_reference(rng),
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
