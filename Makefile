# Pipeline Ledger: `make demo` and `make test` set everything up on a fresh clone.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# dbt and psql reach the loader's database (embedded unless DATABASE_HOST is set).
WITH_DB = eval "$$($(BIN)/python -m loader db env)" &&
DBT = $(BIN)/dbt --no-use-colors

.PHONY: help setup demo test lint format pytest pytest-pg15 dbt-build db-start db-stop roles bench test-superset docs clean

help:  ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml setup.py loader/_plain_rows.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

setup: $(STAMP)  ## Create .venv and install the pinned dependencies (and, as root, chromium)
	@# The HTML report's browser tests need Debian's chromium; apt-get runs only when it is
	@# missing and we are root (a user without root installs it: see README, HTML report).
	@if ! command -v chromium >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else \
			echo "chromium is missing: the browser tests of the HTML report will skip"; \
		fi; \
	fi

db-start: setup  ## Start (or reuse) the embedded PostgreSQL in .pgdata/
	$(BIN)/python -m loader db start

db-stop: setup  ## Stop the embedded PostgreSQL
	$(BIN)/python -m loader db stop

roles: setup  ## Create the raw schema, then the access-control roles and grants (needs CREATEROLE)
	$(BIN)/python -m loader init
	$(BIN)/python -m loader roles

demo: db-start  ## Load a realistic history through the loader, build with dbt, show the result
	$(BIN)/python -m loader init
	$(BIN)/python -m loader simulate
	$(WITH_DB) $(DBT) build
	$(BIN)/python -m loader report
	$(BIN)/python -m loader report --html target/ledger-report.html

lint: setup  ## ruff, ruff format --check, sqlfluff, mypy, the C checker's warnings
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint models macros dbt_tests
	$(BIN)/sqlfluff lint --templater placeholder loader/sql
	$(BIN)/mypy
	@# The compiled checker: every warning an error here (setup.py builds without -Werror,
	@# so that another compiler's new warning never fails an install).
	$${CC:-cc} -fsyntax-only -Wall -Wextra -Werror \
		-I"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" loader/_plain_rows.c

format: setup  ## Apply ruff and sqlfluff fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/sqlfluff fix models macros dbt_tests
	$(BIN)/sqlfluff fix --templater placeholder loader/sql

# One worker per core; a test module stays on one worker (it owns a database).
PYTEST_PARALLEL ?= -n 2 --dist loadfile

pytest: db-start  ## The pytest suite against the embedded PostgreSQL (18)
	$(BIN)/pytest $(PYTEST_PARALLEL)

# The other major version this machine has; `make test` covers it when installed.
PG15_BIN ?= /usr/lib/postgresql/15/bin

# The modules marked `pg15` hold what can differ between major versions (the raw schema's
# DDL, the loader's bulk path, roles and grants, every dbt model); pure Python, process
# faults and the property tests (the same SQL on more data) run once, on PostgreSQL 18.
pytest-pg15: setup  ## The tests marked pg15 against a throwaway PostgreSQL 15
	@if [ -x $(PG15_BIN)/postgres ]; then \
		scripts/with-postgres.sh $(PG15_BIN) \
			$(BIN)/pytest -q $(PYTEST_PARALLEL) -m "pg15 and not hypothesis"; \
	else \
		echo "no PostgreSQL 15 binaries in $(PG15_BIN): install postgresql-15 to test it"; \
	fi

dbt-build: db-start  ## `dbt build` (models and every dbt test) and source freshness on the demo history
	$(BIN)/python -m loader init
	$(BIN)/python -m loader simulate
	$(WITH_DB) $(DBT) build
	$(WITH_DB) $(DBT) source freshness

# The two servers' suites side by side: each waits on its database much of the time.
test: ## Every check: lint, pytest (PostgreSQL 18 and 15), dbt build; prints its own time
	@start=$$(date +%s); status=0; \
	{ $(MAKE) lint db-start && \
		$(MAKE) --jobs=2 --output-sync=target pytest pytest-pg15 && \
		$(MAKE) dbt-build; } || status=$$?; \
	elapsed=$$(( $$(date +%s) - start )); \
	echo "make test: $$((elapsed / 60)) min $$((elapsed % 60)) s, exit status $$status"; \
	exit $$status

# Apache Superset 6.1 from PyPI in a venv of its own, pinned by scripts/superset-constraints.txt.
SUPERSET_VENV := .venv-superset
$(SUPERSET_VENV)/.installed: scripts/superset-constraints.txt
	rm -rf $(SUPERSET_VENV)
	$(PYTHON) -m venv $(SUPERSET_VENV)
	$(SUPERSET_VENV)/bin/pip install --quiet --disable-pip-version-check \
		-c scripts/superset-constraints.txt 'apache-superset[postgres]==6.1.0'
	touch $@

test-superset: setup $(SUPERSET_VENV)/.installed  ## Import the Superset bundle into a real Superset 6.1, read every chart (minutes; not in `make test`)
	$(BIN)/python scripts/superset_check.py --superset-bin $(SUPERSET_VENV)/bin

bench: db-start  ## Benchmarks against baselines in one run (minutes; not part of `make test`)
	$(BIN)/python -m bench

docs: db-start  ## Generate and serve the dbt docs site
	$(WITH_DB) $(DBT) docs generate && $(WITH_DB) $(DBT) docs serve

clean: db-stop  ## Remove the embedded database and build output
	rm -rf .pgdata target logs
