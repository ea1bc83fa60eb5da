#!/usr/bin/env python3
"""A stand-in for `flatline replay` on one-series CSV files, running the scalar Python twin of the
surprise detector (scripts/reference/make_surprise_fixture.py, which the Swift detector matches
point by point) with parameters from SURPRISE_P (JSON, the keys of `detector.surprise`). For fast
parameter sweeps on the real-data evaluation without rebuilding:

    SURPRISE_P='{"shape_weight": 0.02}' python3 scripts/eval/real_data.py \\
        --flatline scripts/eval/surprise_twin.py --no-baselines

Prints `timestamp,value,score` (the only column real_data.py reads). Needs numpy and scipy, as the
reference script does. Only what the evaluation needs: no flags, no bursts, no calibration options.
"""
import csv
import datetime as dt
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reference"))
import make_surprise_fixture as M  # noqa: E402


def main():
    if len(sys.argv) < 3 or sys.argv[1] != "replay":
        sys.exit("usage: surprise_twin.py replay FILE.csv [ignored options]")
    overrides = json.loads(os.environ.get("SURPRISE_P", "{}"))
    unknown = set(overrides) - set(M.P)
    if unknown:
        sys.exit(f"SURPRISE_P: unknown keys {sorted(unknown)}; known: {sorted(M.P)}")
    M.P.update(overrides)
    M.BODY_AT_TAIL = M.normal_tail(M.P["tail_start"])
    series = M.Series()
    out = sys.stdout
    out.write("timestamp,value,score\n")
    with open(sys.argv[2], newline="") as f:
        rows = csv.reader(f)
        next(rows, None)
        for row in rows:
            text = row[0]
            try:
                t = float(text)
            except ValueError:
                t = dt.datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=dt.timezone.utc).timestamp()
            value = row[1] if len(row) > 1 else ""
            x = float(value) if value != "" else math.nan
            surprise = series.update(t, x)[3]
            score = 0.0 if math.isnan(surprise) or surprise <= 0 else surprise / (surprise + M.P["score_half"])
            out.write(f"{text},{value},{score!r}\n")


if __name__ == "__main__":
    main()
