#!/usr/bin/env python3
"""Reference fits for RobustLine, computed with statsmodels (an independent implementation).

    pip install statsmodels numpy
    python3 scripts/reference/make_robust_line_fixture.py > Tests/FlatlineCoreTests/Fixtures/robust-line.json

Each case is a series x, y and the coefficients of
RLM(y, [1, x], M=HuberT(t=1.345)).fit(scale_est="mad", tol=1e-12, maxiter=200), plus ordinary
least squares for comparison. Deterministic: fixed seed. statsmodels >= 0.14.
"""
import json
import sys

import numpy as np
import statsmodels.api as sm


def case(name, x, y):
    exog = sm.add_constant(np.asarray(x, dtype=float))
    robust = sm.RLM(np.asarray(y, dtype=float), exog, M=sm.robust.norms.HuberT(t=1.345))
    r = robust.fit(scale_est="mad", tol=1e-12, maxiter=200, conv="coefs")
    ols = sm.OLS(np.asarray(y, dtype=float), exog).fit()
    return {"name": name, "x": list(map(float, x)), "y": list(map(float, y)),
            "intercept": float(r.params[0]), "slope": float(r.params[1]), "scale": float(r.scale),
            "ols_intercept": float(ols.params[0]), "ols_slope": float(ols.params[1])}


def main():
    rng = np.random.default_rng(20261124)
    cases = []
    # A backlog rising 12 msgs/s with noise, sampled every 15 s, three wild scrapes.
    x = 1_767_225_600 + 15.0 * np.arange(40)
    y = 500 + 12 * (x - x[0]) + rng.normal(0, 30, x.size)
    y[[7, 21, 33]] += [4000, -2500, 6000]
    cases.append(case("rising backlog with outliers", x - x[0], y))
    # Flat and noisy, irregular times, one spike.
    x = np.cumsum(rng.choice([1.0, 1.0, 2.0, 0.5], size=60))
    y = 100 + rng.normal(0, 5, x.size)
    y[30] += 500
    cases.append(case("flat with a spike", x, y))
    # Falling, heavy-tailed noise.
    x = np.arange(25, dtype=float)
    y = 1000 - 7.5 * x + rng.standard_t(2, x.size) * 10
    cases.append(case("falling with heavy tails", x, y))
    json.dump({"generator": "scripts/reference/make_robust_line_fixture.py",
               "statsmodels": sm.__version__ if hasattr(sm, "__version__") else "",
               "cases": cases}, sys.stdout, indent=1)
    sys.stdout.write("\n")


main()
