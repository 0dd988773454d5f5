# ampkit: the two commands a newcomer needs are `make demo` and `make test`.
# Everything else here is a step of those two, callable on its own.

SHELL := /bin/bash
CARGO ?= cargo
# Where `make install` puts the tools (PREFIX/bin), completions and man pages (PREFIX/share).
PREFIX ?= $(HOME)/.local

.PHONY: all setup build release install uninstall lint test bench local-up local-down local-status demo recipe recipe-check recipe-policy teardown clean-local

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

## The release tools into PREFIX/bin (default ~/.local), with bash, zsh and fish completions and
## man pages; the list of what was written goes to PREFIX/share/ampkit/installed-files
install: release
	scripts/install --prefix "$(PREFIX)" --bin-dir target/release

## Remove exactly what `make install` wrote (same PREFIX), and the directories it made if empty
uninstall:
	scripts/install --uninstall --prefix "$(PREFIX)"

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
	$(if $(MESH),AMPKIT_MESH=$(MESH) ,)scripts/local-stack up

local-down:
	scripts/local-stack down

local-status:
	scripts/local-stack status

## Run the whole recipe on the local stack, raise the alert, tear everything down, summarize;
## `make demo MESH=envoy-gateway` (or consul, or istio) runs the stack's Envoys, and the recipe, in that
## mesh's shape (default appmesh)
demo:
	$(if $(MESH),AMPKIT_MESH=$(MESH) ,)scripts/demo

## The recipe's chain against what the environment points at (AWS, or the local stack's env);
## the state document is saved to out/state.json after every step. The tools: target/release
## when built and current, else those on PATH, else target/debug (scripts/recipe says which);
## nothing is built, so that a run against AWS never waits for a build it did not ask for
recipe:
	$(if $(MESH),AMPKIT_MESH=$(MESH) ,)scripts/recipe

## Only the recipe's preflight: may the caller do every step (IAM SimulatePrincipalPolicy), and
## do the quotas allow it? Lists every missing permission; creates nothing
recipe-check:
	$(if $(MESH),AMPKIT_MESH=$(MESH) ,)scripts/recipe --check

## The IAM policy the whole recipe needs, on stdout (e.g. `make -s recipe-policy > policy.json`)
recipe-policy:
	@$(if $(MESH),AMPKIT_MESH=$(MESH) ,)scripts/recipe --print-policy

## Delete exactly what out/state.json's ledger lists (rewritten after every entry);
## `make teardown DRY_RUN=1` prints the plan only
teardown: build
	target/debug/teardown --state out/state.json $(if $(DRY_RUN),--dry-run,) > /dev/null

## Stop the local stacks (yours and the tests') and remove their data; installs stay in .local/
clean-local:
	scripts/local-stack down || true
	AMPKIT_STACK_DIR=$(CURDIR)/.local/test-run scripts/local-stack down || true
	rm -rf .local/run .local/test-run out
