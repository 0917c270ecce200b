# gapwatch: `make demo` runs a live local stack with a demo scenario; `make test` runs the tests.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools  # the venv's bundled setuptools has known CVEs (make audit-deps)

install: $(PY) ## create .venv and install gapwatch with its dev tools
	$(PY) -m pip install --quiet -e ".[dev]"

fmt: install ## format and fix lint
	$(VENV)/bin/ruff format services tests scripts
	$(VENV)/bin/ruff check --fix services tests scripts

lint: install ## ruff lint + format check
	$(VENV)/bin/ruff check services tests scripts
	$(VENV)/bin/ruff format --check services tests scripts

type: install ## mypy --strict on the package
	$(VENV)/bin/mypy

test: lint type ## lint, types, then every test (unit, API, integration with real Tansu + Redis, e2e)
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "integration or not integration"

audit-deps: install ## known vulnerabilities in the installed pinned deps (pip-audit; exceptions: .ci/pip-audit-ignore.txt)
	$(PY) .ci/audit-deps

test-unit: install ## fast tests only (no broker)
	$(VENV)/bin/pytest -q -m "not integration"

test-integration: install ## integration and end-to-end tests only
	$(VENV)/bin/pytest -q -m integration

up: install ## start the local stack in the background (scripts/stack up)
	scripts/stack up

down: ## stop the local stack
	scripts/stack down

status: ## show the local stack
	scripts/stack status

demo: install ## live stack + 67 days of history (QOP gap widening) + live events for every ICB + alerter; Ctrl-C stops it all
	scripts/demo

bench: install ## bench-v1 ingest benchmark, then bench-api (prints two JSON documents)
	$(PY) scripts/bench.py
	$(PY) scripts/bench_api.py

chaos: install ## chaos harness: every fault scenario on 1M events, exact counts or exit 1 (ARGS="--events 100000")
	scripts/chaos $(ARGS)

bench-api: install ## API load benchmark: gap-query p99 at 50 clients with wrk (prints JSON)
	$(PY) scripts/bench_api.py

run-ingest: install ## run an ingest worker in the foreground
	$(VENV)/bin/gapwatch ingest

run-api: install ## run the API in the foreground
	$(VENV)/bin/gapwatch api

run-publisher: install ## publish live synthetic events at 200/s
	$(VENV)/bin/gapwatch publish --rate 200

check: audit-deps test ## what CI runs

.PHONY: help install fmt lint type test audit-deps test-unit test-integration up down status demo bench chaos bench-api run-ingest run-api run-publisher check
