# Make targets for the log pipeline. `make test` is what CI runs (.ci/run).
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
CMDS    := $(notdir $(wildcard cmd/*))

.PHONY: all build test vet fmt clean demo demo-stop

all: build

build:
	@mkdir -p bin
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

# Every test, race detector on. Integration and failure tests start embedded
# etcd and kfake in-process and run the daemons as subprocesses.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w cmd internal scripts

clean:
	rm -rf bin

# Run the pipeline locally (see README). demo-stop stops what it started.
demo: build
	scripts/demo.sh

demo-stop:
	scripts/demo-stop.sh
