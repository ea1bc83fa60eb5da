#!/usr/bin/env python3
"""The NATS incident models on recordings of a real nats-server, at the scrape intervals operators
run: each 1 s recording (record_scenarios.sh) is thinned to 5, 15 and 30 s (thin_recording.py,
at every phase of the interval unless --one-phase) and replayed with the shipped models
(`flatline replay --alerts-out`); the alerts are scored against the scenario's ground truth.

    nats_intervals.py [--flatline PATH] [--recordings DIR] [--models DIR] [--intervals 1,5,15,30]
                      [--only NAME,...] [--jobs N] [--drop-endpoint NAME] [--verbose]

An alert detects an incident when it fires between the incident's start and 30 s after its end,
its name says the incident's kind (freeze, flood, slow) and its labels name the incident's target
(the consumer STREAM/name, or the client). The delay is from the incident's start. For slow
consumers the server's disconnect is found in the 1 s recording (the scrape where /varz
slow_consumers rose), and the delay is also given from it. A false alert is a firing alert that
names no incident's target within [start, end + 90 s], or that fires on a quiet recording.

Per interval it prints every incident's delay (s and in scrapes) and the false alerts, then a
summary: the worst delay per kind in scrapes and false alerts per hour of quiet recordings.
Standard library only (plus the two scripts next to it).
"""
import argparse
import collections
import concurrent.futures
import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# Recordings never used to choose a default: reported on their own.
HELD_OUT = {"incidents-other", "short-mild", "quiet-third"}
ROOT = os.path.dirname(os.path.dirname(HERE))


def ts(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def kind_of(p):
    return p.get("kind") or p["phase"].rstrip("0123456789")


def about(alert, phase):
    labels = alert.get("labels", {})
    for target in phase.get("targets") or []:
        parts = target.split("/")
        if len(parts) == 2:
            if labels.get("stream") != parts[0] or labels.get("consumer") != parts[1]:
                return False
        elif parts[0] not in (labels.get("client_name"), labels.get("client_group")):
            return False
    return True


def disconnects(recording):
    """Times (scrape ts) at which /varz slow_consumers rose."""
    out = []
    last = None
    with gzip.open(recording, "rt") as f:
        for line in f:
            if '"endpoint":"varz"' not in line:
                continue
            r = json.loads(line)
            n = r.get("body", {}).get("slow_consumers")
            if n is None:
                continue
            if last is not None and n > last:
                out.append(ts(r["ts"]))
            last = n
    return out


def replay(flatline, models, recording, alerts):
    subprocess.run(
        [flatline, "replay", recording, "--out", "/dev/null", "--alerts-out", alerts, "--models", models, "--quiet"],
        check=True,
    )
    with open(alerts) as f:
        return [json.loads(l) for l in f if l.strip()]


def score(truth, alerts, cuts, interval):
    phases = truth["phases"]
    incidents = [p for p in phases if kind_of(p) in ("freeze", "flood", "slow")]
    firing = [a for a in alerts if a.get("status") == "firing"]
    rows = []
    for p in incidents:
        k, s, e = kind_of(p), ts(p["start"]), ts(p["end"])
        hits = sorted(
            ts(a["ts"]) - s
            for a in firing
            if k in a["labels"].get("alertname", "").lower() and about(a, p) and s - 1 <= ts(a["ts"]) <= e + 30
        )
        cut = next((c for c in cuts if s <= c <= e + 5), None) if k == "slow" else None
        rows.append(
            {
                "phase": p["phase"],
                "kind": k,
                "targets": ",".join(p.get("targets") or []),
                "delay": hits[0] if hits else None,
                "disconnect": None if cut is None else cut - s,
                "interval": interval,
            }
        )
    false = [
        a
        for a in firing
        if not any(about(a, p) and ts(p["start"]) - 1 <= ts(a["ts"]) <= ts(p["end"]) + 90 for p in incidents)
    ]
    return rows, false


def run_one(args, name, interval, phase):
    directory = os.path.join(args.recordings, name)
    recording = os.path.join(directory, "recording.ndjson.gz")
    with open(os.path.join(directory, "truth.json")) as f:
        truth = json.load(f)
    with tempfile.TemporaryDirectory() as tmp:
        path = recording
        if interval > 1 or args.drop_endpoint:
            path = os.path.join(tmp, "thin.ndjson.gz")
            drops = [x for e in args.drop_endpoint for x in ("--drop-endpoint", e)]
            subprocess.run(
                [sys.executable, os.path.join(HERE, "thin_recording.py"), recording, path, "--every", str(interval),
                 "--phase", str(phase)] + drops,
                check=True,
                stderr=subprocess.DEVNULL,
            )
        alerts = replay(args.flatline, args.models, path, os.path.join(tmp, "alerts.ndjson"))
    start = ts(truth["phases"][0]["start"])
    end = ts(truth["phases"][-1]["end"])
    return name, interval, phase, truth, alerts, end - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flatline", default=os.path.join(ROOT, ".build", "release", "flatline"))
    ap.add_argument("--recordings", default=os.path.join(ROOT, ".build", "eval-nats"))
    ap.add_argument("--models", default=os.path.join(ROOT, "models"))
    ap.add_argument("--intervals", default="1,5,15,30")
    ap.add_argument("--only", default="")
    ap.add_argument("--one-phase", action="store_true", help="thin at phase 0 only")
    ap.add_argument("--drop-endpoint", action="append", default=[],
                    help="replay without this endpoint (e.g. connz_closed), as if it was not scraped")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--json", help="write every row here")
    a = ap.parse_args()
    intervals = [int(x) for x in a.intervals.split(",")]
    names = sorted(
        d for d in os.listdir(a.recordings)
        if os.path.exists(os.path.join(a.recordings, d, "recording.ndjson.gz"))
    )
    if a.only:
        names = [n for n in names if n in a.only.split(",")]
    jobs = []
    for name in names:
        for interval in intervals:
            phases = [0] if interval == 1 or a.one_phase else sorted({0, interval // 3, 2 * interval // 3})
            for phase in phases:
                jobs.append((name, interval, phase))
    cuts = {name: disconnects(os.path.join(a.recordings, name, "recording.ndjson.gz")) for name in names}
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        results = list(pool.map(lambda j: run_one(a, *j), jobs))

    all_rows = []
    for part, members in (("tuning", lambda n: n not in HELD_OUT), ("held out", lambda n: n in HELD_OUT)):
        chosen = [r for r in results if members(r[0])]
        if not chosen:
            continue
        worst = collections.defaultdict(lambda: collections.defaultdict(float))
        missed = collections.defaultdict(lambda: collections.defaultdict(int))
        quiet_hours = collections.defaultdict(float)
        false_count = collections.defaultdict(int)
        for name, interval, phase, truth, alerts, seconds in chosen:
            rows, false = score(truth, alerts, cuts[name], interval)
            incidents = bool(rows)
            tag = f"{name} @{interval}s" + (f" phase {phase}s" if phase else "")
            if a.verbose or false or any(r["delay"] is None for r in rows):
                print(f"== {tag}")
                for r in rows:
                    d = "missed" if r["delay"] is None else f"{r['delay']:.1f}s ({r['delay'] / interval:.1f} scrapes)"
                    cut = "" if r["disconnect"] is None else f"  disconnect at {r['disconnect']:.1f}s"
                    print(f"   {r['phase']:<10} {r['kind']:<7} {r['targets']:<22} {d}{cut}")
                for x in false:
                    labels = json.dumps(x["labels"], sort_keys=True)
                    print(f"   false alert {x['ts']} {x['labels'].get('alertname')} {labels}")
            for r in rows:
                r.update(name=name, phase_offset=phase, part=part)
                all_rows.append(r)
                if r["delay"] is None:
                    missed[r["kind"]][interval] += 1
                else:
                    worst[r["kind"]][interval] = max(worst[r["kind"]][interval], r["delay"])
            false_count[interval] += len(false)
            if not incidents:
                quiet_hours[interval] += seconds / 3600
        names = sorted({r[0] for r in chosen})
        print(f"\n{part}: {', '.join(names)}")
        print("worst delay per kind (seconds / scrapes; missed incidents), false alerts")
        print(f"{'interval':>9} " + " ".join(f"{k:>22}" for k in ("freeze", "flood", "slow"))
              + f" {'false':>7} {'per quiet hour':>15}")
        for interval in intervals:
            cells = []
            for k in ("freeze", "flood", "slow"):
                w = worst[k][interval]
                m = missed[k][interval]
                cells.append(f"{w:6.1f}s {w / interval:5.1f}sc" + (f" {m} missed" if m else "         "))
            qh = quiet_hours[interval]
            print(f"{interval:>8}s " + " ".join(f"{c:>22}" for c in cells) + f" {false_count[interval]:>7}"
                  + f" {'-' if not qh else f'{false_count[interval] / qh:.2f}':>15}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(all_rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
