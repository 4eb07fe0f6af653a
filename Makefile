# Every gate of the project. Humans and CI call the same targets:
#   make serve   set everything up and run the server on 127.0.0.1:50051
#   make test    set everything up and run every check
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
export PATH := $(BIN):$(HOME)/.cargo/bin:$(PATH)
export VIRTUAL_ENV := $(VENV)

LISTEN ?= 127.0.0.1:50051
DATA_DIR ?= ./batchgrpc-data
PYTEST_ARGS ?=

RUST_SOURCES := Cargo.toml Cargo.lock rust_core/Cargo.toml $(shell find rust_core/src -name '*.rs')
PY_SOURCES := $(shell find src -name '*.py' -o -name '*.pyi')

.PHONY: help setup build serve test generate check-generated lint lint-proto lint-python lint-rust lint-go \
        test-rust test-go test-python stubtest bench-core bench-schema bench-jobs bench-jobs-rss bench-ingest bench-cluster \
        fuzz fuzz-build fuzz-ci fuzz-cmin fuzz-tools grpcurl gateway serve-rest serve-cluster servers servers-stop clean

help:
	@echo "make serve            set up, build and run the server on $(LISTEN) (data in $(DATA_DIR))"
	@echo "make test             set up, build and run every check (what CI runs)"
	@echo "make serve-rest       the server plus the REST sidecar on $(REST_LISTEN)"
	@echo "make serve-cluster    REPLICAS (default 3) replicas on PostgreSQL, events to Kafka; Ctrl-C stops it all"
	@echo "make gateway          build the REST sidecar (target/go-bin/batchgrpc-gateway)"
	@echo "make servers          start the tests' PostgreSQL and Kafka and leave them running ($(SERVERS_STATE)/env)"
	@echo "make servers-stop     stop them"
	@echo "make generate         regenerate the Python stubs from proto/"
	@echo "make lint             buf lint, ruff, mypy, stubtest, clippy"
	@echo "make bench-core       the row pipeline against pure-Python peers (prints figures)"
	@echo "make bench-schema     the store's own insert limit: bare table, the events schema, each index's cost"
	@echo "make bench-jobs       batch jobs end to end through a real server, 1 and 2 workers (prints figures)"
	@echo "make bench-jobs-rss   a batch job's worker RSS on ~100 MB and ~1 GB files (it must stay flat)"
	@echo "make bench-ingest     bulk create events and tracking batches, 1 and 2 workers (prints figures)"
	@echo "make bench-cluster    bulk ingest and a batch job: SQLite, PostgreSQL with 1 and 2 replicas, Kafka sink"
	@echo "make fuzz             run each fuzz target for FUZZ_SECONDS (default 60), growing fuzz/corpus"
	@echo "make fuzz-ci          run each fuzz target 30 s from a copy of the committed corpus (in make test)"
	@echo "make clean            remove build output and the virtualenv"

# --- set-up -------------------------------------------------------------------

$(VENV)/.deps: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The Rust extension, installed into the virtualenv with src/ on the path.
$(VENV)/.core: $(VENV)/.deps pyproject.toml $(RUST_SOURCES)
	maturin develop --release --locked
	touch $@

setup: $(VENV)/.core

# Go tools from the module proxy, pinned, into target/go-bin: grpcurl for the
# tests that drive the server the way engineers do, and the protoc plugins of
# the REST sidecar (gateway/).
GO_BIN := $(CURDIR)/target/go-bin
GRPCURL_VERSION := v1.9.3
PROTOBUF_GO_VERSION := v1.36.12
GRPC_GO_PLUGIN_VERSION := v1.6.2
GRPC_GATEWAY_VERSION := v2.33.0
GRPCURL := $(GO_BIN)/grpcurl
GATEWAY := $(GO_BIN)/batchgrpc-gateway
GO_PLUGINS := $(GO_BIN)/.plugins-$(PROTOBUF_GO_VERSION)-$(GRPC_GO_PLUGIN_VERSION)-$(GRPC_GATEWAY_VERSION)
GATEWAY_SOURCES := gateway/go.mod gateway/go.sum $(shell find gateway -name '*.go')
export BATCHGRPC_GRPCURL := $(GRPCURL)
export BATCHGRPC_GATEWAY := $(GATEWAY)

$(GRPCURL):
	GOBIN=$(GO_BIN) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

$(GO_PLUGINS):
	GOBIN=$(GO_BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOBUF_GO_VERSION)
	GOBIN=$(GO_BIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(GRPC_GO_PLUGIN_VERSION)
	GOBIN=$(GO_BIN) go install \
	  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION) \
	  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)
	touch $@

$(GATEWAY): $(GATEWAY_SOURCES)
	cd gateway && go build -trimpath -o $(GATEWAY) ./cmd/batchgrpc-gateway

grpcurl: $(GRPCURL)

gateway: $(GATEWAY)

build: setup

# --- run ----------------------------------------------------------------------

serve: setup
	batchgrpc serve --listen $(LISTEN) --data-dir $(DATA_DIR)

REST_LISTEN ?= 127.0.0.1:8080

# The server and the REST sidecar together; Ctrl-C stops both.
serve-rest: setup $(GATEWAY)
	trap 'kill 0' EXIT; \
	batchgrpc serve --listen $(LISTEN) --data-dir $(DATA_DIR) & \
	$(GATEWAY) --listen $(REST_LISTEN) --backend $(LISTEN) & \
	wait

REPLICAS ?= 3

# Replicas on one PostgreSQL database, every event to one Kafka topic
# (tools/cluster.py: servers in target/cluster/servers, replicas' data in
# target/cluster/replica-N, ports 50051 and up); Ctrl-C stops all of it.
serve-cluster: setup
	python tools/cluster.py --replicas $(REPLICAS)

# --- generated code -----------------------------------------------------------

generate: $(VENV)/.deps $(GO_PLUGINS)
	buf generate
	rm -rf gateway/gen gateway/openapi
	buf generate --template buf.gen.gateway.yaml
	$(BIN)/python tools/openapi_jsonapi.py gateway/openapi/batchgrpc.swagger.json

check-generated: $(VENV)/.deps $(GO_PLUGINS)
	tools/check-generated

# --- lint ---------------------------------------------------------------------

lint-proto: $(VENV)/.deps
	buf lint
	buf format --diff --exit-code

lint-python: setup
	ruff check src tests bench tools/protoc-gen-grpc-python tools/servers.py tools/cluster.py
	ruff format --check src tests bench tools/protoc-gen-grpc-python tools/servers.py tools/cluster.py
	mypy
	mypy tools/servers.py
	python -m mypy.stubtest batchgrpc._core

lint-rust:
	cargo fmt --all --check
	cargo clippy --locked --workspace --all-targets --features python -- -D warnings
	cargo clippy --locked --workspace --all-targets -- -D warnings

lint-go:
	cd gateway && test -z "$$(gofmt -l .)" || { gofmt -l . >&2; exit 1; }
	cd gateway && go vet ./...

lint: lint-proto lint-python lint-rust lint-go

stubtest: setup
	python -m mypy.stubtest batchgrpc._core

# --- tests --------------------------------------------------------------------

test-rust:
	cargo test --locked --workspace

test-go:
	cd gateway && go test ./...

# Under tools/servers.py, which installs and starts the throwaway PostgreSQL
# and Kafka the tests use (BATCHGRPC_TEST_POSTGRES, BATCHGRPC_TEST_KAFKA) and
# stops them however pytest ends.
test-python: setup $(GRPCURL) $(GATEWAY)
	$(PYTHON) tools/servers.py run -- python -m pytest $(PYTEST_ARGS)

# The same servers left running, for one test at a time by hand:
#   make servers && source $(SERVERS_STATE)/env && python -m pytest tests/...
SERVERS_STATE ?= target/servers

servers:
	$(PYTHON) tools/servers.py start --state-dir $(SERVERS_STATE)
	@echo "source $(SERVERS_STATE)/env to use them; make servers-stop to stop them"

servers-stop:
	$(PYTHON) tools/servers.py stop --state-dir $(SERVERS_STATE)

# The fuzz targets must build on every change (stable, no sanitizer).
fuzz-build:
	cd fuzz && cargo build --locked

FUZZ_SECONDS ?= 60
FUZZ_TARGETS := delimited json rules track track_single bulk
CARGO_FUZZ_VERSION := 0.13.1

# cargo-fuzz (pinned) and the nightly toolchain it needs, when missing.
fuzz-tools:
	rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	cargo fuzz --version 2>/dev/null | grep -qx 'cargo-fuzz $(CARGO_FUZZ_VERSION)' || \
	  cargo install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked

# CI: every target for 30 s from a temporary copy of the committed corpus
# (fuzz/corpus/<target>/), so new units never dirty the checkout; prints
# executions, coverage and crashes per target and fails on any crash.
fuzz-ci: fuzz-tools
	FUZZ_SECONDS=30 fuzz/ci.sh $(FUZZ_TARGETS)

# A longer local run, whose new units land in fuzz/corpus/<target>/
# (ignored by git, so they are kept only when added on purpose: run
# `make fuzz-cmin`, then `git add -f fuzz/corpus`).
fuzz: fuzz-tools
	cd fuzz && for target in $(FUZZ_TARGETS); do \
	  cargo +nightly fuzz run $$target -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

# Keeps of each target's corpus only the inputs that add coverage.
fuzz-cmin: fuzz-tools
	cd fuzz && for target in $(FUZZ_TARGETS); do cargo +nightly fuzz cmin $$target || exit 1; done

test: check-generated lint test-rust test-go fuzz-build fuzz-ci test-python

# --- benchmarks (programs that print figures; never part of make test) ---------

BENCH_ROWS ?= 1000000
BENCH_BIG_ROWS ?= 10000000
# Worker counts the server benchmarks compare, side by side.
BENCH_WORKERS ?= 1,2

bench-core: setup
	cargo build --release --locked --example csv_baseline
	python bench/bench_core.py --rows $(BENCH_ROWS)
	@echo
	@echo "Peak RSS of the core on a file 10x larger (it must not grow with the file):"
	python bench/bench_core.py --rows $(BENCH_BIG_ROWS) --runs 1 --only core

bench-schema: setup
	python bench/bench_schema.py

bench-jobs: setup
	python bench/bench_jobs.py --rows $(BENCH_ROWS) --workers $(BENCH_WORKERS)
	@echo
	@echo "The server's peak RSS on a file 10x larger (it must not grow with the file), one job on 2 workers:"
	python bench/bench_jobs.py --rows $(BENCH_BIG_ROWS) --runs 1 --no-raw --only single --workers 2

# Needs about 6 GB free in the temporary directory (it checks and says so).
bench-jobs-rss: setup
	python bench/bench_jobs.py --rss

# BENCH_PROFILE=path also writes py-spy stacks of each server process (needs py-spy).
bench-ingest: setup
	python bench/bench_ingest.py --workers $(BENCH_WORKERS) $(if $(BENCH_PROFILE),--profile $(BENCH_PROFILE))

# Starts its own PostgreSQL (durable settings) and Kafka; about 6 minutes here.
BENCH_CLUSTER_ROWS ?= 300000
BENCH_CLUSTER_ARGS ?=

bench-cluster: setup
	python bench/bench_cluster.py --rows $(BENCH_CLUSTER_ROWS) $(BENCH_CLUSTER_ARGS)

clean:
	rm -rf target .venv .pytest_cache .mypy_cache .ruff_cache
	find src -name '*.so' -delete
