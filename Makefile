# The one entry point: `make demo`, `make test`, `make bench`.
# Assumes rustup/cargo, python3.11, node 20, apt and (for make interop) Go 1.25; installs everything else
# idempotently (a second run skips what is already there).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
VPY := $(VENV)/bin/python
CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The wasm-bindgen CLI must match the wasm-bindgen crate in Cargo.lock exactly.
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/ { getline; gsub(/"/, "", $$3); print $$3; exit }' Cargo.lock)

.PHONY: help demo test check check-lanes lane-native lane-python bench venv python tools wasm-target wasm-bindgen-cli chromium npm-deps \
        fmt clippy wasm-build rust-test py-test test-connect mypy notebooks notebook-outputs wasm test-js test-browser clean

help:
	@echo "make demo   build the Python package into $(VENV) and run examples/python/order_flow.py"
	@echo "make test   install the tools, then run every check and suite (Rust, Python, notebooks, wasm, JS, server)"
	@echo "make bench  run the benchmarks (the engine's, side by side with its alternatives, the server's)"
	@echo "make soak   200 kill -9 cycles of mixed work on a file store (SOAK_CYCLES=n)"
	@echo "make fuzz   each fuzz target for 60 s from the seed corpus (FUZZ_SECONDS=n)"
	@echo "make interop  the same scenarios embedded, over connect() to pocketmq serve and to a local Apache RocketMQ"

# ---- installs -----------------------------------------------------------------

$(VENV)/.installed: py/requirements-dev.txt
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r py/requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# Builds the extension (release) and installs the package the way a user does.
python: venv
	$(VPY) -m pip install --quiet --force-reinstall --no-deps .

wasm-target:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown \
	  || rustup target add wasm32-unknown-unknown

wasm-bindgen-cli:
	@if [ "$$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $(WASM_BINDGEN_VERSION)" ]; then \
	  echo "wasm-bindgen $(WASM_BINDGEN_VERSION) is installed"; \
	else \
	  $(CARGO) install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); \
	fi

chromium:
	@if [ -x /usr/bin/chromium ]; then echo "chromium is installed"; else \
	  $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; fi

# npm dependencies of whichever JS packages exist (the JS suites install the
# freshly built wasm/pkg, so they come after `wasm`). Skipped when up to date.
npm-deps: wasm
	@for dir in wasm tests tests/js tests/browser; do \
	  [ -f $$dir/package.json ] || continue; \
	  stamp=$$dir/node_modules/.package-lock.json; \
	  if [ -f $$stamp ] && [ $$stamp -nt $$dir/package.json ] \
	     && { [ ! -f $$dir/package-lock.json ] || [ $$stamp -nt $$dir/package-lock.json ]; }; then \
	    echo "npm packages of $$dir are installed"; \
	  elif [ -f $$dir/package-lock.json ]; then (cd $$dir && npm ci --no-audit --no-fund); \
	  else (cd $$dir && npm install --no-audit --no-fund); fi; \
	done

tools: venv wasm-target wasm-bindgen-cli chromium fuzz-tools

# ---- demo ---------------------------------------------------------------------

demo: python
	$(VPY) examples/python/order_flow.py

# ---- checks -------------------------------------------------------------------

fmt:
	$(CARGO) fmt --all --check

# The core and the wasm crate are linted for wasm32 as well: code behind
# cfg(target_arch = "wasm32") is not seen by the native run.
clippy: wasm-target
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p pocketmq-wasm --target wasm32-unknown-unknown -- -D warnings

wasm-build: wasm-target
	$(CARGO) build -p pocketmq-wasm --target wasm32-unknown-unknown

rust-test:
	$(CARGO) test --workspace --no-fail-fast

# Two worker processes (pytest-xdist): most tests wait on timers and child processes.
py-test: python
	$(VPY) -m pytest -n 2 tests/python

# pocketmq.connect() against `pocketmq serve` (tests/python/test_connect.py), then the
# producer and simple-consumer tests unchanged over connect() (POCKETMQ_TARGET=serve;
# what the protocol cannot carry is skipped with its reason, see conftest.py).
CONNECT_SUBSET := tests/python/test_send.py tests/python/test_simple_consumer.py tests/python/test_consume.py
test-connect: python
	$(VPY) -m pytest -q tests/python/test_connect.py
	POCKETMQ_TARGET=serve $(VPY) -m pytest -q $(CONNECT_SUBSET)

# The examples and the package's own Python type-check strictly against the
# shipped stubs, and the stubs match the extension module (stubtest).
mypy: python
	$(VPY) -m mypy --strict examples/python
	cd py/python && ../../$(VPY) -m mypy --strict pocketmq
	$(VPY) -m mypy.stubtest pocketmq._native

notebooks: python
	$(VPY) -m pytest -n 2 --nbmake examples/notebooks

# Re-runs notebooks and saves their outputs in place, to commit them:
# make notebook-outputs NOTEBOOKS=examples/notebooks/peak_shaving.ipynb
NOTEBOOKS ?= $(wildcard examples/notebooks/*.ipynb)
notebook-outputs: python
	$(VPY) examples/notebooks/execute.py $(NOTEBOOKS)

# The npm package (wasm/pkg, for Node and the web), built by wasm/build.sh.
wasm: wasm-target wasm-bindgen-cli
	bash wasm/build.sh

test-js: wasm npm-deps
	$(CARGO) build -q -p pocketmq-server --bin pocketmq-serve
	node --test tests/js/

test-browser: wasm chromium npm-deps
	bash tests/browser/run.sh

# Every check runs even when an earlier one fails (-k); the exit status is
# non-zero if any failed. The engine's wasm32 build is checked by `wasm` (the npm
# package's release build), which the JS suites need anyway.
NATIVE_CHECKS := fmt clippy wasm rust-test test-js test-browser
PYTHON_CHECKS := py-test test-connect mypy notebooks test-server-clients fuzz
check: $(NATIVE_CHECKS) $(PYTHON_CHECKS)

# `check` in two lanes at once, each in order, its lines tagged with the lane's name:
# much of a suite's time is spent waiting (timers, long polls, child processes), which
# the other lane's builds fill. `make test` runs this. Each lane's output is also kept
# in target/lane-<name>.log; when a check fails, its failure lines (the failed make
# targets, pytest's and cargo's failed tests, panics, node's "not ok") are printed
# again at the end, where a long log's tail shows them.
FAILURE_LINES := \] make.*: \*\*\* |^\[[a-z]+\] (FAILED|ERROR|FAIL) |^\[[a-z]+\] E  |^\[[a-z]+\] [^ ]+ \.\.\. FAILED|panicked at|test result: FAILED|^\[[a-z]+\] +not ok 
check-lanes:
	@mkdir -p target
	@status=0; $(MAKE) --no-print-directory -j2 -k lane-native lane-python || status=$$?; \
	if [ $$status -ne 0 ]; then \
	  echo "== make test: what failed (the whole output is in target/lane-native.log and target/lane-python.log)"; \
	  grep -ahE '$(FAILURE_LINES)' target/lane-native.log target/lane-python.log | cut -c1-300 | tail -n 80 || true; \
	fi; exit $$status

# A lane is a serial make of its checks (MAKEFLAGS cleared: no jobserver); -k as in `check`.
lane-native lane-python: lane-%:
	@mkdir -p target
	MAKEFLAGS= $(MAKE) --no-print-directory -k $(LANE_$*) FUZZ_SECONDS=$(FUZZ_SECONDS) 2>&1 | sed -u 's/^/[$*] /' | tee target/lane-$*.log
LANE_native := $(NATIVE_CHECKS)
LANE_python := $(PYTHON_CHECKS)

# Fuzzing takes TEST_FUZZ_SECONDS per target here (CI, .ci/run, gives it 60: `make
# fuzz`'s default) so a warm local run stays short.
TEST_FUZZ_SECONDS ?= 20
test: tools
	$(MAKE) --no-print-directory check-lanes FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)

# ---- reliability --------------------------------------------------------------

.PHONY: soak fuzz fuzz-tools

SOAK_CYCLES ?= 200
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := record tags open_store
# cargo-fuzz needs nightly-only compiler flags (sanitizers, coverage): the nightly
# toolchain when one is installed, else stable with those flags unlocked.
FUZZ_CARGO := $(shell rustup toolchain list 2>/dev/null | grep -q '^nightly' && echo '$(CARGO) +nightly' || echo 'RUSTC_BOOTSTRAP=1 $(CARGO)')

# kill -9 cycles of mixed work on one file store, then every acknowledged message
# checked (core/tests/soak.rs); `make test` runs a short version with the Rust suite.
soak:
	SOAK_CYCLES=$(SOAK_CYCLES) $(CARGO) test --release -p pocketmq --test soak -- --exact soak --nocapture

fuzz-tools:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --version 0.13.2

# Each fuzz target (fuzz/fuzz_targets) for FUZZ_SECONDS from the committed seed
# corpus (fuzz/corpus); what it learns goes to target/fuzz-corpus, not the repo.
# Regenerate the seeds with `cargo run --manifest-path fuzz/Cargo.toml --bin seed`.
fuzz: fuzz-tools
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p target/fuzz-corpus/$$t; \
	  echo "== fuzz $$t ($(FUZZ_SECONDS) s; log in target/fuzz-$$t.log)"; \
	  if ! $(FUZZ_CARGO) fuzz run $$t target/fuzz-corpus/$$t fuzz/corpus/$$t \
	       -- -max_total_time=$(FUZZ_SECONDS) > target/fuzz-$$t.log 2>&1; then \
	    tail -40 target/fuzz-$$t.log; exit 1; \
	  fi; \
	  grep -E '^Done' target/fuzz-$$t.log; \
	done

# ---- benchmarks ---------------------------------------------------------------

.PHONY: bench-core bench-side-by-side bench-quick bench-deps bench-consumers

bench: bench-core bench-consumers bench-side-by-side bench-server

# The engine's own benches, and any bench/*.sh scripts.
bench-core:
	$(CARGO) bench -p pocketmq
	@for script in bench/*.sh; do \
	  if [ -f "$$script" ]; then echo "== $$script"; bash "$$script"; fi; \
	done

# Simple and classic consumers and a listener from Python (bench/consumers.py);
# rewrites its section of BENCHMARKS.md.
bench-consumers: python
	$(VPY) bench/consumers.py --write

# pocketmq beside Redis Streams, persist-queue, sqlite3 and litequeue, 3 runs each
# (about 5 minutes); rewrites its section of BENCHMARKS.md and docs/bench-ratios.png.
bench-side-by-side: python bench-deps
	$(VPY) bench/side_by_side.py

# Small N, one run, nothing rewritten: checks that every system still runs.
bench-quick: python bench-deps
	$(VPY) bench/side_by_side.py --quick

$(VENV)/.bench-installed: bench/requirements.txt $(VENV)/.installed
	$(VPY) -m pip install --quiet -r bench/requirements.txt
	touch $@

bench-deps: venv $(VENV)/.bench-installed
	@if command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ]; then echo "redis-server is installed"; else \
	  $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server; fi

clean:
	$(CARGO) clean
	rm -rf $(VENV) wasm/pkg data

# ==== Apache RocketMQ peer and official-client interop (interop/rocketmq, tests/interop/official)
# make rocketmq-start      start a local Apache RocketMQ 5 (jars from Maven Central on first use)
# make rocketmq-stop       stop it
# make interop-official    run the official Python, Node, Go and Rust clients' scenarios against
#                          $(ROCKETMQ_ENDPOINT) (default: the local Apache proxy, started if needed)
# Against pocketmq serve:  make interop-official ROCKETMQ_ENDPOINT=127.0.0.1:8081 ROCKETMQ_CREATE=
# Ports and versions: see the header of interop/rocketmq/rocketmq.sh (ROCKETMQ_GRPC_PORT, ...).

.PHONY: rocketmq-start rocketmq-stop interop interop-official interop-official-deps bench-rocketmq

ROCKETMQ_SH := interop/rocketmq/rocketmq.sh
ROCKETMQ_ENDPOINT ?= 127.0.0.1:$(or $(ROCKETMQ_GRPC_PORT),18081)
# Creates topics (with a message.type) and groups before a run; empty for auto-creating servers.
ROCKETMQ_CREATE ?= bash $(ROCKETMQ_SH) create
INTEROP_DIR := tests/interop/official
INTEROP_VENV := $(INTEROP_DIR)/.venv
INTEROP_PREFIX ?= it$(shell date +%s)
INTEROP_GO_DIR := $(INTEROP_DIR)/go
# Go 1.25 or later: `go` on PATH, else where the go.dev tarball puts it. go.mod and go.sum pin
# every module and no run rewrites them (-mod=readonly); modules land in GOPATH's cache.
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
INTEROP_GO := GOFLAGS="$(GOFLAGS) -mod=readonly -buildvcs=false" $(GO)

rocketmq-start:
	@command -v java >/dev/null || { $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y openjdk-17-jdk-headless; }
	@command -v mvn >/dev/null || { $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y maven; }
	bash $(ROCKETMQ_SH) start

rocketmq-stop:
	bash $(ROCKETMQ_SH) stop

$(INTEROP_VENV)/.installed: $(INTEROP_DIR)/requirements.txt
	test -x $(INTEROP_VENV)/bin/python || $(PYTHON) -m venv $(INTEROP_VENV)
	$(INTEROP_VENV)/bin/python -m pip install --quiet -r $(INTEROP_DIR)/requirements.txt
	touch $@

$(INTEROP_DIR)/node_modules/.package-lock.json: $(INTEROP_DIR)/package.json $(INTEROP_DIR)/package-lock.json
	cd $(INTEROP_DIR) && npm ci --no-audit --no-fund

$(INTEROP_GO_DIR)/.downloaded: $(INTEROP_GO_DIR)/go.mod $(INTEROP_GO_DIR)/go.sum
	@test -x "$(GO)" || { echo "Go 1.25 or later is needed for $(INTEROP_GO_DIR) (https://go.dev/dl; or GO=/path/to/go)" >&2; exit 1; }
	cd $(INTEROP_GO_DIR) && $(INTEROP_GO) mod download
	touch $@

$(INTEROP_GO_DIR)/scenarios: $(INTEROP_GO_DIR)/.downloaded $(INTEROP_GO_DIR)/main.go
	cd $(INTEROP_GO_DIR) && $(INTEROP_GO) build -o scenarios .

# The official Rust client's scenarios: crates.io's rocketmq at the version its lock file
# pins, built into target/interop-rust (cargo decides what is stale).
INTEROP_RUST := target/interop-rust/debug/scenarios
.PHONY: $(INTEROP_RUST)
$(INTEROP_RUST):
	CARGO_TARGET_DIR=target/interop-rust $(CARGO) build --quiet --locked --manifest-path $(INTEROP_DIR)/rust/Cargo.toml

interop-official-deps: $(INTEROP_VENV)/.installed $(INTEROP_DIR)/node_modules/.package-lock.json $(INTEROP_GO_DIR)/scenarios $(INTEROP_RUST)

# Starts the local Apache peer only when the endpoint is its default one.
interop-official: interop-official-deps
	@if [ "$(ROCKETMQ_ENDPOINT)" = "127.0.0.1:$(or $(ROCKETMQ_GRPC_PORT),18081)" ]; then $(MAKE) --no-print-directory rocketmq-start; fi
	rc=0; \
	$(INTEROP_VENV)/bin/python $(INTEROP_DIR)/scenarios.py $(ROCKETMQ_ENDPOINT) $(INTEROP_PREFIX)-py \
	  $(if $(ROCKETMQ_CREATE),--create "$(ROCKETMQ_CREATE)") || rc=1; \
	node $(INTEROP_DIR)/scenarios.js $(ROCKETMQ_ENDPOINT) $(INTEROP_PREFIX)-js \
	  $(if $(ROCKETMQ_CREATE),--create "$(ROCKETMQ_CREATE)") || rc=1; \
	$(INTEROP_GO_DIR)/scenarios $(ROCKETMQ_ENDPOINT) $(INTEROP_PREFIX)-go \
	  $(if $(ROCKETMQ_CREATE),--create "$(ROCKETMQ_CREATE)") || rc=1; \
	mkdir -p $(INTEROP_DIR)/.logs; \
	$(INTEROP_RUST) $(ROCKETMQ_ENDPOINT) $(INTEROP_PREFIX)-rs \
	  $(if $(ROCKETMQ_CREATE),--create "$(ROCKETMQ_CREATE)") 2>>$(INTEROP_DIR)/.logs/rust-client.log || rc=1; \
	exit $$rc

# The same code three ways — pocketmq's API embedded, over connect() to pocketmq serve and
# to Apache RocketMQ — then the package's producer/consumer tests over connect() to Apache
# and the official clients against both servers; a table of every scenario on every
# target (tests/interop/run.sh). Starts the local Apache RocketMQ when it is not running
# and stops it after; .ci/run runs this whenever Java and Maven are present.
interop: python npm-deps interop-official-deps tests/server/java/lib/.installed
	@command -v java >/dev/null || { $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y openjdk-17-jdk-headless; }
	@command -v mvn >/dev/null || { $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y maven; }
	VPY=$(VPY) bash tests/interop/run.sh

# pocketmq serve beside a local Apache RocketMQ 5, the official Python client and
# connect() as clients, embedded pocketmq in the same table; start-up and memory
# (bench/vs_rocketmq.py, about 10 minutes; restarts Apache to time its start, stops it after).
bench-rocketmq: python tests/server/.venv/.installed
	@command -v java >/dev/null || { $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y openjdk-17-jdk-headless; }
	@command -v mvn >/dev/null || { $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y maven; }
	cargo build --release -p pocketmq-server --example loadgen
	rc=0; $(VPY) bench/vs_rocketmq.py --restart-apache --write || rc=1; bash $(ROCKETMQ_SH) stop; exit $$rc
# ==== end of Apache RocketMQ peer and official-client interop

# ---- server (pocketmq-serve: RocketMQ 5 gRPC) ----------------------------------
# The official RocketMQ 5 clients (PyPI rocketmq-python-client, npm
# rocketmq-client-nodejs, Maven Central rocketmq-client-java, all pinned in
# tests/server) against pocketmq-serve, and the server's load generator.

.PHONY: test-server test-server-clients server-clients bench-server java-tools

SERVER_VENV := tests/server/.venv

$(SERVER_VENV)/.installed: tests/server/requirements.txt
	test -x $(SERVER_VENV)/bin/python || $(PYTHON) -m venv $(SERVER_VENV)
	$(SERVER_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SERVER_VENV)/bin/python -m pip install --quiet -r tests/server/requirements.txt
	touch $@

tests/server/node_modules/.package-lock.json: tests/server/package.json tests/server/package-lock.json
	cd tests/server && npm ci --no-audit --no-fund

# Java 17 and Maven (apt) for the official Java client, whose jar Maven fetches once.
java-tools:
	@command -v java >/dev/null || { $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y openjdk-17-jdk-headless; }
	@command -v mvn >/dev/null || { $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y maven; }

tests/server/java/lib/.installed: tests/server/java/pom.xml | java-tools
	cd tests/server/java && rm -rf lib && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib 2>&1 | sed 's/\x1b\[[0-9;]*m//g'
	touch $@

server-clients: $(SERVER_VENV)/.installed tests/server/node_modules/.package-lock.json tests/server/java/lib/.installed

# The official clients against `pocketmq serve` from the installed package (and the
# cargo-built pocketmq-serve): the three clients' scenarios, the multi-process run with
# a SIGKILL (MULTIPROC_MESSAGES, 100000), credentials, the Java client over TLS. Part of `make test`, whose
# rust-test runs the server's own tests.
test-server-clients: server-clients python
	CARGO=$(CARGO) POCKETMQ_VENV=$(VENV) bash tests/server/run.sh

# The server's own tests (tonic stubs over 127.0.0.1), then the official clients.
test-server:
	$(CARGO) test -p pocketmq-server
	$(MAKE) --no-print-directory test-server-clients

# The server's benchmarks (about 5 minutes): the Rust load generator (tonic client,
# 100 B, 16 producers, a file store flushed async: SendMessage and receive+ack against
# a no-op unary RPC in the same run, the long-poll wake-up; 3 runs, medians), then the
# official Python client beside Redis Streams with redis-py, separate processes
# (bench/server_clients.py, 3 runs; rewrites its section of BENCHMARKS.md).
bench-server: python bench-deps $(SERVER_VENV)/.installed
	d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; \
	$(CARGO) run --release -p pocketmq-server --example loadgen -- --runs 3 --store "$$d/store"
	$(VPY) bench/server_clients.py --write
