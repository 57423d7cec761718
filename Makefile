# Developer and CI entry points. `make test` runs the suite against a throw-away PostgreSQL 15
# (scripts/with-postgres); extra pytest arguments go in PYTEST_ARGS, e.g.
#   make test PYTEST_ARGS="crm_pipelines_tests/test_dagster_instance.py -q"

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: .venv demo test lint chromium FORCE

# The virtualenv, (re)installed when pyproject.toml changes or when its interpreter is missing.
.venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml $(if $(wildcard $(VENV)/bin/python),,FORCE)
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

FORCE:

demo: $(VENV_STAMP)
	$(VENV)/bin/crm-pipelines demo

# The browser test (crm_pipelines_tests/browser/) drives the Dagster UI in Debian's Chromium through Playwright.
# `make test` installs Chromium with apt where it is missing and it can (as root with apt-get: CI, a fresh
# Debian machine); nothing fails here when it cannot: the browser test then skips and says why.
CRM_PIPELINES_CHROMIUM ?= /usr/bin/chromium

chromium:
	@if [ -x "$(CRM_PIPELINES_CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "make: $(CRM_PIPELINES_CHROMIUM) is missing and only root with apt-get installs it here" \
			"(apt-get install chromium): the browser test will be skipped" >&2; \
	else \
		echo "make: installing Debian's chromium for the browser test (apt-get, about a minute)" >&2; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
			echo "make: apt-get could not install chromium: the browser test will be skipped" >&2; \
	fi

test: $(VENV_STAMP) chromium
	scripts/with-postgres $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(VENV_STAMP)
	$(VENV)/bin/ruff check .
