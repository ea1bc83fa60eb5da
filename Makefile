# Flatline: see README.md. Every target installs what it needs first (make deps).
SWIFT ?= swift

.PHONY: all deps build release test lint format bench demo demo-replay clean

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

demo: deps
	@scripts/demo.sh

demo-replay: deps
	@scripts/demo-replay.sh

clean:
	rm -rf .build
