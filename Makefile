# `make serve` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup serve test test-all mutate bench check browser postgres clean

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

# Every supported Python that this machine has (pyenv's 3.10 to 3.13 on the project's machine
# image), each in a venv of its own (.venv-3.10, ...). One missing is said and skipped; any
# failure fails the whole, after every version has run.
SUPPORTED_PYTHONS := 3.10 3.11 3.12 3.13

test-all: browser postgres
	@failed=; missing=; \
	for v in $(SUPPORTED_PYTHONS); do \
		.ci/test-python $$v -q; rc=$$?; \
		if [ $$rc = 69 ]; then missing="$$missing $$v"; elif [ $$rc != 0 ]; then failed="$$failed $$v"; fi; \
	done; \
	[ -z "$$missing" ] || echo "not on this machine (not tested):$$missing"; \
	[ -z "$$failed" ] || { echo "FAILED on Python$$failed"; exit 1; }

# Mutation testing (mutmut, configured in pyproject.toml): slow, not part of `make test` or CI.
# Run before merging a change to a module it covers. MUTANTS narrows the run, e.g.
#   make mutate MUTANTS='lakefn.checkpoints.*'      make mutate MUTATE_CHILDREN=2
# It prints the surviving mutants per module; `.venv/bin/mutmut show NAME` shows one.
# Most of a mutant's run waits on servers and threads rather than computing, so two children per
# core keep the cores busy; a test waits MUTATE_WAIT seconds (not a minute) for what it expects,
# and a test still running after MUTATE_TEST_TIMEOUT seconds fails, so a mutant that breaks or
# hangs one is killed in seconds rather than at mutmut's own limit (many minutes).
MUTANTS ?=
MUTATE_CHILDREN ?= $(shell python3 -c 'import os; print(2 * (os.cpu_count() or 1))')
MUTATE_WAIT ?= 15
MUTATE_TEST_TIMEOUT ?= 60

mutate: setup
	LAKEFN_TEST_WAIT=$(MUTATE_WAIT) LAKEFN_TEST_TIMEOUT=$(MUTATE_TEST_TIMEOUT) \
		$(BIN)/mutmut run --max-children $(MUTATE_CHILDREN) $(MUTANTS)
	@$(BIN)/mutmut results --all true | $(BIN)/python -c "$$MUTANTS_BY_MODULE"

# mutmut names a mutant module.xǁClassǁmethod__mutmut_N or module.x_function__mutmut_N.
define MUTANTS_BY_MODULE
import collections, re, sys
counts = collections.defaultdict(collections.Counter)
for line in sys.stdin:
    name, _, status = line.strip().rpartition(": ")
    if name:
        counts[re.split(r"\.x[_\u01c1]", name)[0]][status] += 1
for module, c in sorted(counts.items()):
    print(f"{module:32} {c['survived']:4} survived of {sum(c.values()) - c['not checked']:4} checked"
          + "".join(f", {n} {s}" for s, n in sorted(c.items()) if s not in ("killed", "survived")))
endef
export MUTANTS_BY_MODULE

bench: setup
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python bench/run_all.py

check: setup
	$(BIN)/ruff format --check lakefn tests bench
	$(BIN)/ruff check lakefn tests bench
	$(BIN)/mypy lakefn

clean:
	rm -rf $(VENV) .venv-3.* .lakefn mutants

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
