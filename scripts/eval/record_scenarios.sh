#!/usr/bin/env bash
# Records loadgen scenarios from a real nats-server at 1 s scrapes with `flatline record`, for the
# detection evaluation (scripts/eval/nats_intervals.py thins them to 5, 15 and 30 s and scores).
#
#   scripts/eval/record_scenarios.sh [FLATLINE] [OUT_DIR] [SCENARIO...]
#
# Each scenario (scripts/eval/scenarios/NAME.yml) runs against its own nats-server (JetStream,
# monitoring on 127.0.0.1) and is recorded to OUT_DIR/NAME/recording.ndjson.gz with its ground
# truth OUT_DIR/NAME/truth.json. Scenarios run side by side, PARALLEL (4) at a time; a recording that exists is kept
# (delete it to record again). Endpoints: varz, connz, jsz, accstatz, healthz, connz_closed.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
flatline="${1:-$root/.build/release/flatline}"
out="${2:-$root/.build/eval-nats}"
shift 2 || true
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then  # every scenario in scripts/eval/scenarios
    for f in "$root"/scripts/eval/scenarios/*.yml; do scenarios+=("$(basename "$f" .yml)"); done
fi
parallel="${PARALLEL:-4}"  # scenarios recorded side by side (each runs its own server and load)
mkdir -p "$out"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

record() {  # name
    local name="$1" port mport dir
    dir="$out/$name"
    if [ -s "$dir/recording.ndjson.gz" ] && [ -s "$dir/truth.json" ]; then
        echo "record: $name already recorded" >&2
        return
    fi
    port=$(free_port); mport=$(free_port)
    rm -rf "$dir"; mkdir -p "$dir"
    nats-server -a 127.0.0.1 -p "$port" -m "$mport" -js -sd "$dir/js" -n "eval-$name" >"$dir/server.log" 2>&1 &
    local server=$!
    sleep 1
    cat >"$dir/flatline.yml" <<YAML
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: nats
    kind: nats
    static_configs: [{targets: ["127.0.0.1:$mport"]}]
    nats: {endpoints: [varz, connz, jsz, accstatz, healthz, connz_closed]}
YAML
    "$flatline" record --config "$dir/flatline.yml" --out "$dir/recording.partial.ndjson.gz" 2>"$dir/record.log" &
    local recorder=$!
    "$flatline" loadgen --server "nats://127.0.0.1:$port" --scenario "$root/scripts/eval/scenarios/$name.yml" \
        --out "$dir/truth.json" 2>"$dir/loadgen.log"
    sleep 2
    kill -INT "$recorder"; wait "$recorder" || true
    kill "$server"; wait "$server" 2>/dev/null || true
    rm -rf "$dir/js"
    mv "$dir/recording.partial.ndjson.gz" "$dir/recording.ndjson.gz"
    echo "record: $name done" >&2
}

for name in "${scenarios[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do sleep 1; done
    record "$name" &
done
wait
