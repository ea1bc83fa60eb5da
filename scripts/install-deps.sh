#!/usr/bin/env bash
# Installs the Debian packages Flatline's build and tests need. Quiet and fast when they are
# already there; runs apt-get (as root, or through sudo) only for what is missing.
set -euo pipefail

packages=(
    libblas-dev      # cblas.h and libblas.so (netlib CBLAS is part of libblas on Debian)
    liblapacke-dev   # lapacke.h and liblapacke.so (pulls liblapack-dev)
    nats-server      # the real server the NATS client tests talk to
    openssl          # test certificate authorities for the TLS tests
    libsqlite3-dev   # sqlite3.h and libsqlite3.so: the durable notification outbox (GRDB)
    prometheus       # promtool: the generated rule files are checked and tested with it
    prometheus-alertmanager  # a real Alertmanager receives pushed alerts in the tests
    zlib1g-dev       # zlib.h and libz.so: gzip recordings (and the PNG screenshots the tests read)
    chromium         # a real headless browser loads the status page in the tests
    python3          # the demo's summary, the evaluation and fixture scripts
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
