#!/usr/bin/env python3
"""Thin a recording of 1 s scrapes to a longer scrape interval, as if it had been scraped so.

    thin_recording.py IN.ndjson[.gz] OUT.ndjson[.gz] --every SECONDS [--phase SECONDS]
                      [--drop-endpoint NAME]...

A recording (`flatline record`) holds, per target, rounds of scrapes: one line per endpoint
(and page), then the recorder's "scrape" line. The first round of each target that starts in
each window [t0 + phase + k*every, t0 + phase + (k+1)*every) is kept whole, every other round is
dropped, so the thinned file is what a scraper with that interval (and that phase) would have
recorded; bodies are untouched. t0 is the first line's time. Standard library only.
"""
import argparse
import datetime as dt
import gzip
import json
import sys


def ts(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def opener(path, mode):
    return gzip.open(path, mode + "t") if path.endswith(".gz") else open(path, mode)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--every", type=float, required=True)
    ap.add_argument("--phase", type=float, default=0)
    ap.add_argument("--drop-endpoint", action="append", default=[],
                    help="leave out this endpoint's lines (e.g. connz_closed), as if it was not scraped")
    a = ap.parse_args()
    t0 = None
    rounds = {}  # target -> lines of the round in progress, its start
    kept_windows = {}  # target -> last window kept
    kept = dropped = 0
    with opener(a.input, "r") as src, opener(a.output, "w") as dst:
        for line in src:
            if not line.strip():
                continue
            record = json.loads(line)
            if record.get("endpoint") in a.drop_endpoint:
                continue
            t = ts(record["ts"])
            if t0 is None:
                t0 = t
            target = record.get("target", "")
            lines, start = rounds.get(target, ([], t))
            lines.append(line if line.endswith("\n") else line + "\n")
            rounds[target] = (lines, start)
            if record.get("endpoint") != "scrape":
                continue
            del rounds[target]
            window = int((start - t0 - a.phase) // a.every)
            if kept_windows.get(target) != window:
                kept_windows[target] = window
                dst.writelines(lines)
                kept += 1
            else:
                dropped += 1
    print(f"kept {kept} rounds, dropped {dropped}", file=sys.stderr)


if __name__ == "__main__":
    main()
