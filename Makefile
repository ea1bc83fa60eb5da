# Flatline: see README.md. Every target installs what it needs first (make deps).
SWIFT ?= swift

.PHONY: all deps build release test lint format bench eval eval-nats fuzz demo demo-replay clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# One test at a time: the suites talk to real nats-servers, HTTP servers and processes with
# timeouts, and on a 2-core machine suites running side by side starve each other's threads
# (about 95 s serial against 36 s parallel, without the timeouts that come with it).
test: deps lint
	$(SWIFT) test --no-parallel

# swift-format (bundled with the toolchain) with the settings in .swift-format.
lint:
	$(SWIFT) format lint --strict --recursive Sources Tests Package.swift

format:
	$(SWIFT) format --in-place --recursive Sources Tests Package.swift

# The NATS part compares with nats-py, installed into a venv under .build on first use.
bench: release
	$(SWIFT) run -c release flatline bench --python "$$(scripts/bench/python-env.sh)"

# Detection quality on real labelled telemetry (NAB's scoring, next to two naive baselines) and on
# the synthetic anomaly classes. Not part of `make test`: it measures, it does not pass or fail.
eval: release
	python3 scripts/eval/real_data.py --flatline .build/release/flatline
	python3 scripts/eval/anomaly_cases.py --flatline .build/release/flatline || true

# The NATS incident models on recordings of a real nats-server at 1, 5, 15 and 30 s scrapes
# (records the scenarios first, about 20 minutes, kept under .build/eval-nats).
eval-nats: release
	scripts/eval/record_scenarios.sh .build/release/flatline .build/eval-nats
	python3 scripts/eval/nats_intervals.py --flatline .build/release/flatline --recordings .build/eval-nats

# libFuzzer over the parsers that read what others send (exposition, NATS bodies and protocol,
# configuration and models, recordings): a million executions per target, about 30 minutes.
fuzz: deps
	scripts/fuzz.sh

demo: deps
	@scripts/demo.sh

demo-replay: deps
	@scripts/demo-replay.sh

clean:
	rm -rf .build
