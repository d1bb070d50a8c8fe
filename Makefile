# The two commands of the quick start:
#   make run   — the whole pipeline locally (real Kafka, real ClickHouse engine, the three
#                services, demo events), prints the dashboard URL, Ctrl-C stops everything.
#   make test  — every test (unit + integration on the real engines), starting and stopping
#                the engines it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help run test stop infra-up infra-down fmt lint bench soak build release openapi

help:
	@echo "make run     run the pipeline locally (Kafka, ClickHouse, gateway, indexer, forwarder, demo data)"
	@echo "make test    run all tests against real Kafka and ClickHouse (started and stopped here)"
	@echo "make stop    stop everything make run started"
	@echo "make bench   run the benchmarks and print their table"
	@echo "make soak    whole-system soak with chaos (SOAK_MINUTES, default 10)"
	@echo "make fmt     format the code"
	@echo "make lint    rustfmt check + clippy -D warnings"
	@echo "make openapi regenerate docs/openapi.json from the code and validate it"

build:
	cargo build --workspace --bins

release:
	cargo build --release --workspace --bins

run:
	@deploy/local/run.sh

stop:
	@deploy/local/run.sh stop

test:
	@tests/run.sh

infra-up:
	@deploy/local/infra.sh up

infra-down:
	@deploy/local/infra.sh down

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# The HTTP API's OpenAPI document, generated from the handlers (`gateway openapi`), validated
# by openapi-spec-validator (deploy/local/apitools.sh installs it into the project's venv).
openapi:
	cargo run --quiet -p gateway --bin gateway -- openapi > docs/openapi.json.new
	mv docs/openapi.json.new docs/openapi.json
	@deploy/local/apitools.sh validate

bench:
	@deploy/local/bench.sh

soak:
	@deploy/local/soak.sh
