#!/usr/bin/env bash
# make demo-replay: replay the bundled example recordings through the detectors and show what they find.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "Building flatline..."
swift build --product flatline >/dev/null
bin="$(swift build --show-bin-path)/flatline"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

series=examples/nats-orders-rate.csv
labels=examples/nats-orders-rate.labels.csv
echo
echo "1. $series: messages/s published on orders.>, every 5 minutes for 14 days,"
echo "   with a daily and a weekly cycle and four incidents (their times are in $labels)."
echo
"$bin" replay "$series" --out "$out/orders.csv"
echo
awk -F, '
    NR == FNR { if (FNR > 1 && $7 == 1) { flagged[++n] = $1; value[$1] = $2; expected[$1] = $3; lower[$1] = $4; upper[$1] = $5 } ; next }
    FNR == 1 { printf "   %-16s %-20s %-20s %s\n", "incident", "started", "flagged", "value (expected, band)"; next }
    {
        kind = $3; start = $1; found = ""
        for (i = 1; i <= n; i++) if (flagged[i] >= start && found == "") { found = flagged[i]; used[i] = 1 }
        if (found == "") printf "   %-16s %-20s %-20s\n", kind, start, "missed"
        else printf "   %-16s %-20s %-20s %.0f (%.0f, %.0f..%.0f)\n", kind, start, found, value[found], expected[found], lower[found], upper[found]
    }
    END {
        others = 0
        for (i = 1; i <= n; i++) if (!used[i]) { others++; extra = extra "\n     " flagged[i] }
        printf "\n   other points flagged: %d%s\n", others, extra
    }
' "$out/orders.csv" "$labels"

server=examples/nats-server.om
echo
echo "2. $server: one NATS server for 2 days, every minute (OpenMetrics with timestamps):"
echo "   messages in (a counter, which restarts with the server), connections, a JetStream"
echo "   consumer's pending count, and the bytes queued for one subscriber."
echo
"$bin" replay "$server" --anomalies-only --out "$out/server.csv"
echo
awk -F, 'NR > 1 {
    n = split($0, f, ","); series = f[1]; for (i = 2; i <= n - 7; i++) series = series "," f[i]
    gsub(/""/, "\"", series); gsub(/^"|"$/, "", series)
    cmd = "date -u -d @" f[n-6] " +\"%Y-%m-%d %H:%M\""; cmd | getline when; close(cmd)
    printf "   %s  %s\n      value %s, expected %.1f, band %.1f..%.1f, score %.4f\n", when, series, f[n-5], f[n-4], f[n-3], f[n-2], f[n-1]
}' "$out/server.csv"
echo
echo "Replay any CSV (timestamp,value) or OpenMetrics file the same way: $bin replay FILE"
