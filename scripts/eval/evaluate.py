#!/usr/bin/env python3
"""Event-level precision and recall of `flatline replay` on labelled series.

    evaluate.py --suite DIR --flatline PATH [--args "..."] [--jobs N] [--verbose]

For every DIR/*.csv with windows in DIR/labels.csv, runs `flatline replay FILE --format csv`
(plus --args) and reads the anomaly flags. A labelled window is detected when a flag falls in
[start - step, end + tolerance] (tolerance: 10 steps); its delay is flag time - start. A flag
outside every such window is a false alarm. Reports recall, precision, F1, false alarms per
1000 points and the median delay in steps, per anomaly kind and per shape, and a NAB-like score
(1 per detected window, discounted linearly with delay over the window, -0.11 per false alarm,
normalised by the number of windows).
"""
import argparse
import collections
import concurrent.futures
import csv
import datetime as dt
import os
import shlex
import subprocess
import sys


def ts(text):
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc).timestamp()


def run(flatline, path, extra):
    out = subprocess.run([flatline, "replay", path, "--quiet"] + extra, check=True, capture_output=True, text=True)
    rows = list(csv.reader(out.stdout.splitlines()))
    header = rows[0]
    it, ia = header.index("timestamp"), header.index("anomaly")
    times = [ts(r[it]) for r in rows[1:]]
    flags = [ts(r[it]) for r in rows[1:] if r[ia] == "1"]
    return times, flags


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", required=True)
    ap.add_argument("--flatline", required=True)
    ap.add_argument("--args", default="")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--tolerance", type=int, default=10)
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    windows = collections.defaultdict(list)
    with open(os.path.join(a.suite, "labels.csv")) as f:
        for r in csv.DictReader(f):
            windows[r["file"]].append((int(r["start"]), int(r["end"]), r["kind"]))
    files = sorted(x for x in os.listdir(a.suite) if x.endswith(".csv") and x != "labels.csv")
    extra = shlex.split(a.args)
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        results = dict(zip(files, pool.map(lambda f: run(a.flatline, os.path.join(a.suite, f), extra), files)))

    by_kind = collections.defaultdict(lambda: [0, 0, []])
    by_shape = collections.defaultdict(lambda: [0, 0, 0, 0])
    total_windows = detected = false_alarms = points = 0
    nab = 0.0
    for f in files:
        times, flags = results[f]
        step = (times[1] - times[0]) if len(times) > 1 else 1
        shape = f.rsplit("-", 1)[0]
        points += len(times)
        used = set()
        for s, e, kind in windows.get(f, []):
            lo, hi = s - step, e + a.tolerance * step
            hits = [x for x in flags if lo <= x <= hi]
            total_windows += 1
            by_kind[kind][0] += 1
            by_shape[shape][0] += 1
            if hits:
                detected += 1
                by_kind[kind][1] += 1
                by_shape[shape][1] += 1
                delay = (min(hits) - s) / step
                by_kind[kind][2].append(delay)
                span = max(hi - lo, step)
                nab += 1 - max(0.0, min(hits) - lo) / span
            used.update(x for x in hits)
            if a.verbose:
                print(f"  {f} {kind} {s}-{e}: {'hit %.0f' % ((min(hits) - s) / step) if hits else 'MISS'}")
        fa = [x for x in flags if x not in used]
        false_alarms += len(fa)
        by_shape[shape][2] += len(fa)
        by_shape[shape][3] += len(times)
        nab -= 0.11 * len(fa)
        if a.verbose and fa:
            print(f"  {f}: {len(fa)} false alarms")
    recall = detected / max(1, total_windows)
    precision = detected / max(1, detected + false_alarms)
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    print(f"windows={total_windows} detected={detected} recall={recall:.3f} false_alarms={false_alarms} "
          f"precision={precision:.3f} F1={f1:.3f} fa_per_1k={1000 * false_alarms / max(1, points):.3f} "
          f"nab={nab / max(1, total_windows):.3f}")
    for kind, (n, d, delays) in sorted(by_kind.items()):
        delays.sort()
        med = delays[len(delays) // 2] if delays else float("nan")
        print(f"  kind {kind:<11} {d}/{n} median delay {med:.0f} steps")
    for shape, (n, d, fa, pts) in sorted(by_shape.items()):
        print(f"  shape {shape:<13} {d}/{n} detected, {fa} false alarms in {pts} points")


if __name__ == "__main__":
    sys.exit(main())
