# The exchange's commands. `make up` runs the whole stack on this machine without Docker;
# `make test` runs every test against a throw-away stack on other ports. See docs/RUNNING.md.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON     ?= python3
VENV       := .venv
PY         := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
KAFKA_STAMP := .cache/kafka/libs/.fetched
SUPERVISE  := $(PYTHON) scripts/supervise.py
PYTEST_ARGS ?=
# `make up CLUSTER=3`: three brokers and two instances of each service (infra/stack-cluster.toml)
STACK_FILE := $(if $(filter 3,$(CLUSTER)),infra/stack-cluster.toml,infra/stack.toml)

.PHONY: help venv deps browser up down status verify test test-unit bench lint clean

help:
	@echo "make up         start Kafka, Postgres, Redis (and the services) in the background"
	@echo "                (CLUSTER=3: three brokers, two instances of each service)"
	@echo "make down       stop them"
	@echo "make status     what runs where"
	@echo "make verify     every engine's live state equals its rebuild from the topics"
	@echo "make test       run every test against a throw-away stack (PYTEST_ARGS=... to pass on)"
	@echo "make test-unit  run tests/unit only, no services"
	@echo "make bench      run the benchmarks against a throw-away stack"
	@echo "make lint       ruff and mypy"
	@echo "make clean      stop everything, remove .run/ and .cache/"

venv: $(VENV_STAMP)

# Reinstall only when pyproject.toml changes.
$(VENV_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || \
		{ rm -rf $(VENV); scripts/apt-install.sh python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(KAFKA_STAMP): infra/kafka/pom.xml
	scripts/kafka.sh fetch

# Everything the stack needs on this machine: venv, Kafka jars, Postgres and Redis packages.
deps: venv $(KAFKA_STAMP)
	scripts/postgres.sh ensure
	scripts/redis.sh ensure

# Debian's Chromium for the trading page's browser tests (tests/e2e/test_trading_page.py):
# Playwright drives it; no browser is downloaded.
browser:
	test -x /usr/bin/chromium || scripts/apt-install.sh chromium

up: deps
	$(SUPERVISE) up $(STACK_FILE)

down:
	$(SUPERVISE) down $(STACK_FILE)

status:
	$(SUPERVISE) status $(STACK_FILE)

# `python -m exchange verify` against the `make up` stack (docs/RUNNING.md); exits 1 when an
# engine's live digest differs from its rebuild or cannot be asked.
verify: venv
	$(PY) -m exchange --stack $(STACK_FILE) verify

# A fresh stack per run (data wiped), always torn down. scripts/with-test-stack.sh exits with
# pytest's status; make reports a failure as "Error N" with N that status (and exits 2).
# tests/cluster run after the rest, on a three-broker stack of their own.
test: deps browser
	scripts/with-test-stack.sh $(PY) -m pytest tests --ignore=tests/cluster $(PYTEST_ARGS)
	STACK=infra/stack-cluster-test.toml scripts/with-test-stack.sh $(PY) -m pytest tests/cluster

test-unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

bench: deps
	scripts/with-test-stack.sh $(PY) -m bench

lint: venv
	$(VENV)/bin/ruff check libs services exchange tests bench scripts
	$(VENV)/bin/ruff format --check libs services exchange tests bench scripts
	$(VENV)/bin/mypy

clean:
	-$(SUPERVISE) down infra/stack-test.toml
	-$(SUPERVISE) down infra/stack.toml
	rm -rf .run .cache .pytest_cache .ruff_cache .mypy_cache
