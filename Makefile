# Chronicle. `make demo` runs the pipeline on embedded defaults; `make test` runs every test.
# Each target installs what it needs first (scripts/deps.sh TARGET) when it is missing.

GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 10s
BENCH_BYTES ?= 1073741824
BIN       := bin

export PATH := $(shell $(GO) env GOPATH)/bin:$(PATH)

.PHONY: all build deps test test-short bench fuzz lint demo demo-stop clean

all: build

deps:
	@scripts/deps.sh

build:
	$(GO) build -o $(BIN)/ ./cmd/...

test:
	@scripts/deps.sh test
	$(GO) vet $(PKGS)
	$(GO) test -race -timeout 25m $(PKGS)
	# the pure-Go zstd fallback of builds without cgo
	CGO_ENABLED=0 $(GO) test -timeout 5m ./format/qzst/ ./tiers/lifecycle/

test-short:
	$(GO) test -short $(PKGS)

# Benchmarks measure our figure beside a baseline in the same run; the report of them is
# bench/report.json, bench/report.md and README.md's table (docs/benchmarks.md).
bench:
	@scripts/deps.sh bench
	CHRONICLE_BENCH_BYTES=$(BENCH_BYTES) CHRONICLE_BENCH_COMMAND="make bench BENCH_BYTES=$(BENCH_BYTES)" scripts/bench.sh

fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

lint:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@scripts/deps.sh lint
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck $(PKGS)

# S3=1: the remote tier is a loopback S3 server (versitygw) instead of file://.
# DEMO_SYNTH=1: synthetic partitions too, to show scale.
# KEEP=1: the demo's tree stays mounted for the README's examples; `make demo-stop` ends it.
# FLEET=1: a research fleet on Dask over the bucket at the end (implies S3=1).
S3         ?= 0
DEMO_SYNTH ?= 0
KEEP       ?= 0
FLEET      ?= 0
demo:
	@scripts/deps.sh demo $(if $(filter 1,$(S3)),s3) $(if $(filter 1,$(FLEET)),fleet)
	@$(MAKE) --no-print-directory build
	S3=$(S3) DEMO_SYNTH=$(DEMO_SYNTH) KEEP=$(KEEP) FLEET=$(FLEET) scripts/demo.sh

demo-stop:
	@scripts/demo.sh stop

clean:
	rm -rf $(BIN)
