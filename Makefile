# Flatline: see README.md. Every target installs what it needs first (make deps).
SWIFT ?= swift

.PHONY: all deps build release test bench demo format-check clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

test: deps
	$(SWIFT) test

bench: release
	$(SWIFT) run -c release flatline bench

demo: deps
	@scripts/demo.sh

clean:
	rm -rf .build
