#!/usr/bin/env python3
"""Runs `flatline replay` on the synthetic anomaly cases (make_anomaly_cases.py) and reports,
per case, the delay of the first flag after the anomaly's onset (in samples) and the flags
elsewhere, on the anomalous series and on its clean twin.

    anomaly_cases.py [--flatline PATH] [--cases DIR] [--args "..."] [--score]

With --score, a row counts as flagged when its score reaches the score column's threshold from
--threshold (default: the anomaly column).
"""
import argparse
import csv
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def flags(flatline, path, extra, threshold):
    out = subprocess.run([flatline, "replay", path, "--quiet"] + extra, check=True, capture_output=True, text=True)
    rows = list(csv.reader(out.stdout.splitlines()))
    h = rows[0]
    ia, isc = h.index("anomaly"), h.index("score")
    if threshold is None:
        return [k for k, r in enumerate(rows[1:]) if r[ia] == "1"]
    return [k for k, r in enumerate(rows[1:]) if r[isc] and float(r[isc]) >= threshold]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flatline", default=os.path.join(ROOT, ".build", "release", "flatline"))
    ap.add_argument("--cases", default=os.path.join(ROOT, "Tests", "FlatlineCoreTests", "Fixtures", "anomaly-cases"))
    ap.add_argument("--args", default="")
    ap.add_argument("--threshold", type=float)
    a = ap.parse_args()
    extra = shlex.split(a.args)
    ok = True
    with open(os.path.join(a.cases, "cases.csv")) as f:
        cases = list(csv.DictReader(f))
    print(f"{'case':<18} {'delay':>6} {'flags elsewhere':>16} {'clean flags':>12}")
    for c in cases:
        first, last = int(c["first"]), int(c["last"])
        hit = flags(a.flatline, os.path.join(a.cases, c["name"] + ".csv"), extra, a.threshold)
        clean = flags(a.flatline, os.path.join(a.cases, c["name"] + "-clean.csv"), extra, a.threshold)
        inside = [k for k in hit if first <= k <= last + 6]
        # Probation: the first two days are learning.
        elsewhere = [k for k in hit if not first <= k <= last + 6 and k >= 288]
        clean = [k for k in clean if k >= 288]
        delay = inside[0] - first if inside else None
        print(f"{c['name']:<18} {'miss' if delay is None else delay:>6} {len(elsewhere):>16} {len(clean):>12}")
        ok &= delay is not None and not elsewhere and not clean
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
