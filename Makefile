# Make targets for the log pipeline. `make test` is what CI runs (.ci/run).
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
CMDS    := $(notdir $(wildcard cmd/*))

.PHONY: all build package test-package test test-e2e test-mutants test-ui test-sim soak bench bench-fleet deps deps-demo deps-demo-real vet fmt clean demo demo-real demo-stop

all: build

# Static binaries (no libc: the pure-Go resolver), as deploy/Dockerfile
# builds them; an idle logagent maps 1.3 MB less.
build:
	@mkdir -p bin
	@test -x bin/logagent || echo "building logagent, logtransfer, logctl and devstack into bin/ (the first time Go downloads the modules and compiles them: a few minutes) ..."
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

# Every test. It first installs what the tests need (scripts/deps.sh: seconds
# when all is there). Unit, integration and failure tests run with the race
# detector; they start embedded etcd, kfake and the fake Elasticsearch
# in-process, Apache Kafka and Elasticsearch as JVM processes, and run the
# daemons as subprocesses. The stack-size tests run once more without the
# race detector, whose instrumentation changes frame sizes; the generated
# schedules of both simulations run for SIM_SHARE. Then the process-level
# fault suite (test-e2e) prints its table, on both backends.
test: deps
	@echo "make test [1/8]: go vet"
	$(GO) vet ./...
	@echo "make test [2/8]: every package's tests, race detector on (about 10 minutes on 2 cores; real servers start as JVMs)"
	$(GO) test -race -count=1 -timeout 25m $$($(GO) list ./... | grep -v /internal/dev/e2e)
	@echo "make test [3/8]: idle stacks without the race detector"
	$(GO) test -count=1 -run '^TestIdleTailerStacksShrink$$' ./internal/agent/collector
	@echo "make test [4/8]: generated schedules of both simulations, $(SIM_SHARE)"
	LOGPIPE_SOAK=$(SIM_SHARE) $(GO) test -count=1 -timeout 10m -v -run 'PathSoak$$' ./internal/agent/agentsim ./internal/transfer/transfersim -rapid.checks=500
	@echo "make test [5/8]: the process-level fault suite on the fake, the real and the OpenSearch backends (about 12 minutes)"
	$(MAKE) test-e2e
	@echo "make test [6/8]: every guarantee broken on purpose (scripts/mutants, about 15 minutes)"
	$(MAKE) test-mutants
	@echo "make test [7/8]: the demo's UI in headless Chromium"
	$(MAKE) test-ui
	@echo "make test [8/8]: the logagent .deb installed, checked and removed"
	$(MAKE) test-package

# Generated schedules (rapid: a failing one is shrunk and its seed printed;
# -rapid.seed=N replays it) over the agent's file path
# (internal/agent/agentsim) and the transfer's (internal/transfer/transfersim),
# the two packages side by side: as many as fit in SIM_SHARE in make test,
# SIM in make test-sim, DURATION in make soak.
SIM_SHARE ?= 90s
SIM       ?= 150s
DURATION  ?= 2h
test-sim:
	LOGPIPE_SOAK=$(SIM) $(GO) test -count=1 -timeout 0 -v -run 'PathSoak$$' ./internal/agent/agentsim ./internal/transfer/transfersim -rapid.checks=1000

soak:
	LOGPIPE_SOAK=$(DURATION) $(GO) test -count=1 -timeout 0 -v -run 'PathSoak$$' ./internal/agent/agentsim ./internal/transfer/transfersim -rapid.checks=1000

# .deb and .rpm packages of logagent, logtransfer and logctl in dist/ (nfpm).
package:
	scripts/package.sh

# Install the logagent .deb here, run its test config from the installed
# paths, remove it and check only its config is left (root or sudo).
test-package:
	scripts/package-test.sh

# Break each guarantee on purpose (scripts/mutants) and check that the tests
# named for it fail.
test-mutants:
	$(GO) run ./scripts/mutants

# The process-level fault suite: real binaries, devstack processes, fake ES.
# (No race detector: the daemons under test are separate processes.)
test-e2e:
	$(GO) test -count=1 -timeout 30m -v -run 'TestFaultSuite|TestTraceFollowsALine|TestTopShowsLiveRates' ./internal/dev/e2e/

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w cmd internal scripts

clean:
	rm -rf bin

# Headless Chromium opens the demo's log UI and checks a known line is shown;
# screenshot at .ci/artifacts/demo-ui.png.
test-ui: build deps
	scripts/ui-test.sh

# Benchmark the real binaries against an in-process broker and a minimal
# bulk sink; writes scripts/bench/RESULTS.md (medians of 3 runs).
# Fluent Bit's rows appear when FLUENT_BIT names its binary (or fluent-bit
# is on PATH); see README, "Benchmarks".
bench: build
	$(GO) build -o bin/ ./scripts/saramafloor
	$(GO) run ./scripts/bench -out scripts/bench/RESULTS.md

# 200 logagent processes against one etcd and one broker (config change
# p50/p99, etcd writes and database growth, idle CPU and RSS per agent) and
# the transfer over 24 partitions with 1, 2 and 3 instances; writes
# scripts/bench/FLEET.md. FLEET_WINDOW=10m for the long idle window.
FLEET_WINDOW ?= 2m
bench-fleet: build
	$(GO) run ./scripts/bench -only fleet -fleet-window $(FLEET_WINDOW) -out scripts/bench/FLEET.md

# Install test prerequisites (Chromium, kcat, etcdctl, VictoriaLogs, the real
# servers' jars, ...); `make test` runs it itself.
deps:
	scripts/deps.sh test

deps-demo:
	scripts/deps.sh demo

deps-demo-real:
	scripts/deps.sh demo-real

# Run the pipeline locally (see README): embedded etcd, kfake, VictoriaLogs.
# demo-real runs it on Apache Kafka and Elasticsearch instead (ENGINE=opensearch:
# OpenSearch). demo-stop stops
# what either started.
demo: build deps-demo
	scripts/demo.sh

ENGINE ?= elasticsearch
demo-real: build deps-demo-real
	REAL=1 ENGINE=$(ENGINE) scripts/demo.sh

demo-stop:
	scripts/demo-stop.sh
