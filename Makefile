# Developer and CI entry points. `make test` runs the suite against a throw-away PostgreSQL 15
# (scripts/with-postgres); extra pytest arguments go in PYTEST_ARGS, e.g.
#   make test PYTEST_ARGS="crm_pipelines_tests/test_dagster_instance.py -q"

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: .venv demo test lint FORCE

# The virtualenv, (re)installed when pyproject.toml changes or when its interpreter is missing.
.venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml $(if $(wildcard $(VENV)/bin/python),,FORCE)
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

FORCE:

demo: $(VENV_STAMP)
	$(VENV)/bin/crm-pipelines demo

test: $(VENV_STAMP)
	scripts/with-postgres $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(VENV_STAMP)
	$(VENV)/bin/ruff check .
