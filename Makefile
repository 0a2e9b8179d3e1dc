# Make targets for the log pipeline. `make test` is what CI runs (.ci/run).
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
CMDS    := $(notdir $(wildcard cmd/*))

.PHONY: all build test test-e2e test-ui bench deps vet fmt clean demo demo-stop

all: build

build:
	@mkdir -p bin
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

# Every test. Unit, integration and failure tests run with the race detector;
# they start embedded etcd and kfake in-process and run the daemons as
# subprocesses. Then the process-level fault suite (test-e2e) prints its table.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m $$($(GO) list ./... | grep -v /internal/e2e)
	$(MAKE) test-e2e
	$(MAKE) test-ui

# The process-level fault suite: real binaries, devstack processes, fake ES.
# (No race detector: the daemons under test are separate processes.)
test-e2e:
	$(GO) test -count=1 -timeout 20m -v -run TestFaultSuite ./internal/e2e/

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w cmd internal scripts

clean:
	rm -rf bin

# Headless Chromium opens the demo's log UI and checks a known line is shown;
# screenshot at .ci/artifacts/demo-ui.png.
test-ui: build
	scripts/ui-test.sh

# Benchmark the real binaries against an in-process broker and a minimal
# bulk sink; writes scripts/bench/RESULTS.md (medians of 3 runs).
bench: build
	$(GO) run ./scripts/bench -out scripts/bench/RESULTS.md

# Install test and demo prerequisites (Chromium, kcat, etcdctl, VictoriaLogs).
deps:
	scripts/deps.sh

# Run the pipeline locally (see README). demo-stop stops what it started.
demo: build
	scripts/demo.sh

demo-stop:
	scripts/demo-stop.sh
