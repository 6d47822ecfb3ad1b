# The lab's two everyday commands are `make run` and `make test`; see README.md.
#
# Everything runs from the virtual environment in .venv, made here when it is
# missing. Installing and building the gRPC code are stamp files, so a second
# `make run` or `make test` skips them unless pyproject.toml or protos/ changed.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALL_STAMP := $(VENV)/.installed
PROTOS_GEN := sandbox_services/protos_gen
PROTOS_STAMP := $(PROTOS_GEN)/.built
PROTO_FILES := $(shell find protos -name '*.proto' 2>/dev/null)
CODEGEN_FILES := $(wildcard sandbox_services/codegen.py sandbox_services/codegen/*.py)

# Where `make run` serves the site.
HOST ?= 127.0.0.1
PORT ?= 8000

# Redis databases: `make run` uses LAB_REDIS_DB and `make test` LAB_TEST_REDIS_DB, so a
# test run never disturbs a running lab. A second lab beside the first needs its own:
# `make run PORT=8001 LAB_REDIS_DB=2 DATABASE_URL=sqlite:///$PWD/var/second.sqlite3`
# (README.md, "First steps"). A REDIS_URL set in the environment wins over LAB_REDIS_DB.
LAB_REDIS_DB ?= 0
LAB_TEST_REDIS_DB ?= 1
export REDIS_URL ?= redis://127.0.0.1:6379/$(LAB_REDIS_DB)
export CELERY_BROKER_URL ?= $(REDIS_URL)
TEST_ENV := REDIS_URL=redis://127.0.0.1:6379/$(LAB_TEST_REDIS_DB) \
	CELERY_BROKER_URL=redis://127.0.0.1:6379/$(LAB_TEST_REDIS_DB) LAB_KEEPALIVE_SECONDS=3
TESTS ?= tests/
PYTEST_ARGS ?=

.PHONY: help run test install protos preflight migrate bench lint clean clean-all

help:
	@echo "make run     install, build protos, check Redis/RabbitMQ, migrate, start the lab on http://$(HOST):$(PORT)/"
	@echo "make test    install, build protos, run the test suite (TESTS=tests/test_x.py or PYTEST_ARGS='-k name' to narrow it)"
	@echo "make bench   run the benchmarks in bench/bench_*.py (BENCH=name to pick some)"
	@echo "make protos  compile protos/ into $(PROTOS_GEN)/"
	@echo "make preflight  check that Redis and RabbitMQ (and PostgreSQL, with DATABASE_URL) answer"
	@echo "make lint    ruff check and ruff format --check"
	@echo "make clean   remove generated code, caches and build output (keeps .venv and the database var/lab.sqlite3)"
	@echo "make clean-all  also remove .venv and all of var/"

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' || { \
		echo "The lab needs Python 3.11 or 3.12; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)." \
		"Run make with PYTHON=/path/to/python3.11." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(INSTALL_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

install: $(INSTALL_STAMP)

$(PROTOS_STAMP): $(INSTALL_STAMP) $(PROTO_FILES) $(CODEGEN_FILES)
	$(PY) -m sandbox_services.codegen
	@touch $@

protos: $(PROTOS_STAMP)

var:
	@mkdir -p var

preflight: $(INSTALL_STAMP)
	@$(PY) scripts/preflight.py

migrate: $(INSTALL_STAMP) $(PROTOS_STAMP) | var
	$(PY) manage.py migrate --noinput

# preflight first: a missing Redis or RabbitMQ gets one clear paragraph, not a traceback.
run: $(INSTALL_STAMP) $(PROTOS_STAMP) | var
	@$(PY) scripts/preflight.py
	$(PY) manage.py migrate --noinput
	$(PY) manage.py check
	@$(PY) -c 'import sys, lab.settings as s; sys.exit(0 if s.DEBUG else 1)' \
		|| $(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) scripts/run_lab.py --host $(HOST) --port $(PORT)

# pytest exits 5 when it collected no test: that is a failure here, never a pass.
test: $(INSTALL_STAMP) $(PROTOS_STAMP) | var
	@$(TEST_ENV) $(PY) -m pytest -q $(TESTS) $(PYTEST_ARGS); code=$$?; \
	if [ $$code -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$code

bench: $(INSTALL_STAMP) $(PROTOS_STAMP) | var
	$(PY) bench/run.py$(if $(BENCH), -k $(BENCH))

lint: $(INSTALL_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(PROTOS_GEN) bench/out test-artifacts .pytest_cache .ruff_cache *.egg-info \
		var/staticfiles var/celerybeat-schedule* var/test*.sqlite3* var/sandboxes* $(INSTALL_STAMP)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

clean-all: clean
	rm -rf $(VENV) var
