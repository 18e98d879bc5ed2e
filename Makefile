# `make serve` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup serve test bench check browser postgres clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The sample project on the local default: real Delta tables under .lakefn/, no Databricks.
serve: setup
	$(BIN)/lakefn tables create _data.tpch.dim_customer --sample --if-not-exists
	$(BIN)/lakefn serve

# Debian's chromium for the real-browser tests; Debian's postgresql for the PostgreSQL state
# store's tests (each test session starts a throwaway cluster of its own); wrk for benchmarks.
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

test: setup browser postgres
	$(BIN)/pytest

bench: setup
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python bench/run_all.py

check: setup
	$(BIN)/ruff format --check lakefn tests bench
	$(BIN)/ruff check lakefn tests bench
	$(BIN)/mypy lakefn

clean:
	rm -rf $(VENV) .lakefn

# The notebook panel on ipywidgets 7 (Databricks runtimes may ship 7): a venv of its own, since
# the dev venv has ipywidgets 8. IPYW7 names the venv; it is built once and reused.
IPYW7 ?= build/venv-ipywidgets7
.PHONY: test-ipywidgets7
test-ipywidgets7: $(IPYW7)/.installed
	$(IPYW7)/bin/pip list 2>/dev/null | grep -E '^ipywidgets +7\.'
	$(IPYW7)/bin/pytest tests/test_notebook_panel.py tests/test_notebook_magics.py

$(IPYW7)/.installed: pyproject.toml
	$(PYTHON) -m venv $(IPYW7)
	$(IPYW7)/bin/pip install --quiet 'ipywidgets>=7.7,<8' ipython ipykernel nest_asyncio pytest pytest-asyncio pytest-timeout -e .
	touch $@
