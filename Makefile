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

.PHONY: help setup build serve test generate check-generated lint lint-proto lint-python lint-rust \
        test-rust test-python stubtest bench-core bench-jobs bench-ingest fuzz fuzz-build grpcurl clean

help:
	@echo "make serve            set up, build and run the server on $(LISTEN) (data in $(DATA_DIR))"
	@echo "make test             set up, build and run every check (what CI runs)"
	@echo "make generate         regenerate the Python stubs from proto/"
	@echo "make lint             buf lint, ruff, mypy, stubtest, clippy"
	@echo "make bench-core       the row pipeline against pure-Python peers (prints figures)"
	@echo "make bench-jobs       a batch job end to end through a real server (prints figures)"
	@echo "make bench-ingest     bulk create events and tracking batches under load (prints figures)"
	@echo "make fuzz             run each fuzz target for FUZZ_SECONDS (default 60; needs nightly)"
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

build: setup

# --- run ----------------------------------------------------------------------

serve: setup
	batchgrpc serve --listen $(LISTEN) --data-dir $(DATA_DIR)

# --- generated code -----------------------------------------------------------

generate: $(VENV)/.deps
	buf generate

check-generated: $(VENV)/.deps
	tools/check-generated

# --- lint ---------------------------------------------------------------------

lint-proto: $(VENV)/.deps
	buf lint
	buf format --diff --exit-code

lint-python: setup
	ruff check src tests bench tools/protoc-gen-grpc-python
	ruff format --check src tests bench tools/protoc-gen-grpc-python
	mypy
	python -m mypy.stubtest batchgrpc._core

lint-rust:
	cargo fmt --all --check
	cargo clippy --locked --workspace --all-targets --features python -- -D warnings
	cargo clippy --locked --workspace --all-targets -- -D warnings

lint: lint-proto lint-python lint-rust

stubtest: setup
	python -m mypy.stubtest batchgrpc._core

# --- tests --------------------------------------------------------------------

# grpcurl, from the Go module proxy, for the tests that drive the server the
# way engineers do (tests/process/test_grpcurl.py finds it here).
GRPCURL_VERSION := v1.9.3
GO_BIN := $(CURDIR)/target/go-bin
GRPCURL := $(GO_BIN)/grpcurl
export BATCHGRPC_GRPCURL := $(GRPCURL)

$(GRPCURL):
	GOBIN=$(GO_BIN) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

grpcurl: $(GRPCURL)

test-rust:
	cargo test --locked --workspace

test-python: setup $(GRPCURL)
	python -m pytest $(PYTEST_ARGS)

# The fuzz targets must build on every change; running them is `make fuzz`.
fuzz-build:
	cd fuzz && cargo build --locked

FUZZ_SECONDS ?= 60
FUZZ_TARGETS := delimited json rules track bulk

# cargo-fuzz needs a nightly toolchain (rustup toolchain install nightly).
fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd fuzz && for target in $(FUZZ_TARGETS); do \
	  cargo +nightly fuzz run $$target -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

test: check-generated lint test-rust fuzz-build test-python

# --- benchmarks (programs that print figures; never part of make test) ---------

BENCH_ROWS ?= 1000000
BENCH_BIG_ROWS ?= 10000000

bench-core: setup
	cargo build --release --locked --example csv_baseline
	python bench/bench_core.py --rows $(BENCH_ROWS)
	@echo
	@echo "Peak RSS of the core on a file 10x larger (it must not grow with the file):"
	python bench/bench_core.py --rows $(BENCH_BIG_ROWS) --runs 1 --only core

bench-jobs: setup
	python bench/bench_jobs.py --rows $(BENCH_ROWS)
	@echo
	@echo "The server's peak RSS on a file 10x larger (it must not grow with the file):"
	python bench/bench_jobs.py --rows $(BENCH_BIG_ROWS) --runs 1 --no-raw

# BENCH_PROFILE=path also writes py-spy stacks of the server (needs py-spy).
bench-ingest: setup
	python bench/bench_ingest.py $(if $(BENCH_PROFILE),--profile $(BENCH_PROFILE))

clean:
	rm -rf target .venv .pytest_cache .mypy_cache .ruff_cache
	find src -name '*.so' -delete
