#!/usr/bin/env bash
# Records loadgen scenarios from a real nats-server with `flatline record`, replays each with the
# shipped models (`flatline replay --alerts-out`), and scores the alerts against the scenario's
# ground truth with score_alerts.py: detection delay per incident, false alerts.
#
#   scripts/eval/nats_scenarios.sh [FLATLINE] [OUT_DIR] [SCORER]
#
# Scenarios: scripts/eval/scenarios/{shifted,quiet}.yml at 1 s scrapes, and the built-in one at
# 15 s scrapes (Prometheus' default interval). Takes about six minutes (the scenarios run in
# parallel, each on its own server). SCENARIOS="quiet-long" (20 minutes of normal traffic, for
# the false-alert rate) or any list of shifted, quiet, quiet-long, builtin-15s picks others.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
flatline="${1:-$root/.build/release/flatline}"
out="${2:-$root/.build/eval-nats}"
scorer="${3:-$root/scripts/eval/score_alerts.py}"
mkdir -p "$out"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() {  # name scenario-file-or-empty interval
    local name="$1" scenario="$2" interval="$3"
    local port mport dir
    port=$(free_port); mport=$(free_port); dir="$out/$name"
    rm -rf "$dir"; mkdir -p "$dir"
    nats-server -a 127.0.0.1 -p "$port" -m "$mport" -js -sd "$dir/js" -n "eval-$name" >"$dir/server.log" 2>&1 &
    local server=$!
    sleep 1
    cat >"$dir/flatline.yml" <<YAML
global: {scrape_interval: $interval}
scrape_configs:
  - job_name: nats
    kind: nats
    static_configs: [{targets: ["127.0.0.1:$mport"]}]
    nats: {endpoints: [varz, connz, jsz, accstatz, healthz, connz_closed]}
YAML
    "$flatline" record --config "$dir/flatline.yml" --out "$dir/recording.ndjson.gz" 2>"$dir/record.log" &
    local recorder=$!
    local args=(loadgen --server "nats://127.0.0.1:$port" --out "$dir/truth.json")
    [ -n "$scenario" ] && args+=(--scenario "$scenario")
    "$flatline" "${args[@]}" 2>"$dir/loadgen.log"
    sleep 2
    kill -INT "$recorder"; wait "$recorder" || true
    kill "$server"; wait "$server" 2>/dev/null || true
    "$flatline" replay "$dir/recording.ndjson.gz" --out /dev/null \
        --alerts-out "$dir/alerts.ndjson" --models "$root/models" --quiet
    python3 "$scorer" "$dir/truth.json" "$dir/alerts.ndjson" --limits "freeze=$4,flood=$5,slow=$6" \
        >"$dir/score.txt" || true
}

scenarios="${SCENARIOS:-shifted quiet builtin-15s}"
for name in $scenarios; do
    case "$name" in
        builtin-15s) run builtin-15s "" 15s 60 30 60 & ;;
        *) run "$name" "$root/scripts/eval/scenarios/$name.yml" 1s 15 5 15 & ;;
    esac
done
wait
for name in $scenarios; do
    echo "== $name"; cat "$out/$name/score.txt"
done
