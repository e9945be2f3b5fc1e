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

.PHONY: help venv deps up down status test test-unit bench lint clean

help:
	@echo "make up         start Kafka, Postgres, Redis (and the services) in the background"
	@echo "make down       stop them"
	@echo "make status     what runs where"
	@echo "make test       run every test against a throw-away stack (PYTEST_ARGS=... to pass on)"
	@echo "make test-unit  run tests/unit only, no services"
	@echo "make bench      run the benchmarks against a throw-away stack"
	@echo "make lint       ruff"
	@echo "make clean      stop everything, remove .run/ and .cache/"

venv: $(VENV_STAMP)

# Reinstall only when pyproject.toml changes.
$(VENV_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(KAFKA_STAMP): infra/kafka/pom.xml
	scripts/kafka.sh fetch

# Everything the stack needs on this machine: venv, Kafka jars, Postgres and Redis packages.
deps: venv $(KAFKA_STAMP)
	scripts/postgres.sh ensure
	scripts/redis.sh ensure

up: deps
	$(SUPERVISE) up infra/stack.toml

down:
	$(SUPERVISE) down infra/stack.toml

status:
	$(SUPERVISE) status infra/stack.toml

# A fresh stack per run (data wiped), always torn down; exits with pytest's status.
test: deps
	$(call with_test_stack,$(PY) -m pytest tests $(PYTEST_ARGS))

test-unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

bench: deps
	$(call with_test_stack,$(PY) -m bench)

lint: venv
	$(VENV)/bin/ruff check libs services tests bench

clean:
	-$(SUPERVISE) down infra/stack-test.toml
	-$(SUPERVISE) down infra/stack.toml
	rm -rf .run .cache .pytest_cache .ruff_cache

# $(call with_test_stack,COMMAND): start infra/stack-test.toml, export its env, run COMMAND,
# tear the stack down whatever happens, exit with COMMAND's status.
define with_test_stack
	$(SUPERVISE) down infra/stack-test.toml >/dev/null; \
	rm -rf .run/test; \
	trap '$(SUPERVISE) down infra/stack-test.toml' EXIT; \
	$(SUPERVISE) up infra/stack-test.toml; \
	eval "$$($(SUPERVISE) env infra/stack-test.toml)"; \
	status=0; $(1) || status=$$?; \
	exit $$status
endef
