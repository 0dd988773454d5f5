# ampkit: the two commands a newcomer needs are `make demo` and `make test`.
# Everything else here is a step of those two, callable on its own.

SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all setup build release lint test bench local-up local-down local-status demo clean-local

all: build

## Install the local stack's programs (pinned, idempotent) into .local/
setup:
	scripts/setup

## Build every tool (debug)
build:
	$(CARGO) build --workspace --bins

## Build every tool (release), for benchmarks and real use
release:
	$(CARGO) build --workspace --bins --release

## Formatting and lints, warnings are errors (adds rustfmt and clippy to the toolchain if missing)
lint:
	@$(CARGO) fmt --version >/dev/null 2>&1 && $(CARGO) clippy --version >/dev/null 2>&1 \
		|| rustup component add rustfmt clippy
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Set up, build, start a private local stack, run every test, stop the stack (even on failure)
test:
	scripts/test

## Side-by-side benchmarks against the peers (wrk, oha, curl, awscurl); prints ratios
bench:
	scripts/bench

## Start / stop / show the local stack (moto, Prometheus, Alertmanager, Envoy mesh)
local-up: setup
	scripts/local-stack up

local-down:
	scripts/local-stack down

local-status:
	scripts/local-stack status

## Run the whole recipe on the local stack
demo:
	scripts/demo

## Stop the local stacks (yours and the tests') and remove their data; installs stay in .local/
clean-local:
	scripts/local-stack down || true
	AMPKIT_STACK_DIR=$(CURDIR)/.local/test-run scripts/local-stack down || true
	rm -rf .local/run .local/test-run out
