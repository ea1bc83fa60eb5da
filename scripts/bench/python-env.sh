#!/usr/bin/env bash
# Prints the Python interpreter for flatline bench's nats-py comparison: a venv under .build
# with nats-py from PyPI, made on first use. Best effort: without network or venv support it
# prints plain python3 and the bench says why the comparison is missing.
set -uo pipefail
venv=.build/bench-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2 || { echo python3; exit 0; }
fi
if ! "$venv/bin/python" -c "import nats" 2>/dev/null; then
    echo "bench: installing nats-py into $venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check nats-py >&2 || echo "bench: pip install nats-py failed" >&2
fi
echo "$venv/bin/python"
