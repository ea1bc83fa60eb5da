#!/usr/bin/env python3
"""Writes the example recordings under examples/ (deterministic; numpy).

    python3 scripts/make_examples.py

examples/nats-orders-rate.csv      one series: messages/s published on orders.>, every 5 min for
                                   14 days, with a daily and a weekly cycle, and four incidents
examples/nats-orders-rate.labels.csv  the incidents: start,end,kind (UTC, end inclusive)
examples/nats-server.om            OpenMetrics with timestamps: a NATS server's counters and
                                   gauges every 60 s for 2 days (a restart resets the counters),
                                   with a consumer freeze and a slow consumer
"""
import datetime as dt
import math
import os

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
START = dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc)  # a Monday


def fmt(t):
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def orders_rate(rng):
    step = 300
    n = 14 * 288
    t = START.timestamp() + step * np.arange(n)
    hour = (t % 86400) / 3600
    days = (t - START.timestamp()) / 86400  # 0 = Monday 00:00
    daily = 0.55 + 0.45 * np.exp(-((hour - 14) / 4.5) ** 2)  # busy in the afternoon
    weekend = np.exp(-(((days % 7) - 6.0) / 1.1) ** 2)  # quieter around Sunday
    weekly = 1.0 - 0.35 * weekend
    rate = 850 * daily * weekly * (1 + rng.normal(0, 0.03, n))
    incidents = []

    def window(day, hh, mm, minutes, kind):
        s = int((day * 86400 + hh * 3600 + mm * 60) // step)
        e = s + minutes * 60 // step - 1
        incidents.append((t[s], t[e], kind))
        return slice(s, e + 1)

    rate[window(8, 15, 0, 90, "producer_flood")] *= 4.0
    rate[window(10, 10, 30, 45, "publish_stall")] = 0.0
    rate[window(11, 3, 0, 5, "spike")] *= 3.0
    w = window(12, 20, 0, 120, "stuck_gauge")
    rate[w] = rate[w.start - 1]
    with open(os.path.join(ROOT, "nats-orders-rate.csv"), "w") as f:
        f.write("timestamp,value\n")
        for ti, v in zip(t, rate):
            f.write(f"{fmt(ti)},{v:.2f}\n")
    with open(os.path.join(ROOT, "nats-orders-rate.labels.csv"), "w") as f:
        f.write("start,end,kind\n")
        for s, e, kind in incidents:
            f.write(f"{fmt(s)},{fmt(e)},{kind}\n")


def server_metrics(rng):
    step = 60
    n = 2 * 1440
    t = START.timestamp() + step * np.arange(n)
    hour = (t % 86400) / 3600
    shape = 0.6 + 0.4 * np.exp(-((hour - 14) / 4.5) ** 2)
    in_rate = 240 * shape * (1 + rng.normal(0, 0.05, n))
    counter = np.cumsum(np.maximum(in_rate, 0) * step)
    restart = 1900  # the server restarts: counters start again from 0
    counter[restart:] -= counter[restart - 1]
    connections = 10 + (rng.random(n) < 0.02).astype(int)
    pending = np.zeros(n)
    freeze = slice(2400, 2460)  # the worker stops acking: its pending count climbs
    pending[freeze] = np.cumsum(rng.poisson(20 * shape[freeze]))
    pending_bytes = np.zeros(n)
    slow = slice(1200, 1212)  # a subscriber stops reading: bytes queue up, then it is cut off
    pending_bytes[slow] = np.cumsum(rng.integers(200_000, 400_000, 12))
    lines = ["# HELP gnatsd_varz_in_msgs Messages received by the server.", "# TYPE gnatsd_varz_in_msgs counter"]
    lines += [f'gnatsd_varz_in_msgs_total{{server_id="NDEMO"}} {int(c)} {int(ti)}' for ti, c in zip(t, counter)]
    lines += ["# HELP gnatsd_varz_connections Open client connections.", "# TYPE gnatsd_varz_connections gauge"]
    lines += [f'gnatsd_varz_connections{{server_id="NDEMO"}} {c} {int(ti)}' for ti, c in zip(t, connections)]
    lines += ["# HELP jetstream_consumer_num_pending Messages not yet delivered to the consumer.",
              "# TYPE jetstream_consumer_num_pending gauge"]
    lines += [f'jetstream_consumer_num_pending{{stream_name="ORDERS",consumer_name="worker"}} {int(p)} {int(ti)}'
              for ti, p in zip(t, pending)]
    lines += ["# HELP gnatsd_connz_pending_bytes Bytes queued for the client.", "# TYPE gnatsd_connz_pending_bytes gauge"]
    lines += [f'gnatsd_connz_pending_bytes{{client_name="telemetry-sub"}} {int(p)} {int(ti)}'
              for ti, p in zip(t, pending_bytes)]
    lines.append("# EOF")
    with open(os.path.join(ROOT, "nats-server.om"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    os.makedirs(ROOT, exist_ok=True)
    orders_rate(np.random.default_rng(2026))
    server_metrics(np.random.default_rng(4222))


if __name__ == "__main__":
    main()
