# `make test` builds its own virtualenv (.venv) and runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: test lint install bench screenshots soak clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Lint and types (configured in pyproject.toml): ruff, then mypy over src/.
lint: $(VENV)/.installed
	$(PY) -m ruff check src
	$(PY) -m mypy

# Two parts: every test but the chaos suite on $(JOBS) processes (pytest-xdist),
# then the chaos suite alone (it restarts the PostgreSQL server and loads the
# machine). Either part may find no test among PYTEST_ARGS (exit 5): that is fine.
JOBS ?= 2
test: $(VENV)/.installed
	$(PY) -m pytest -n $(JOBS) -m "not chaos" $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]
	$(PY) -m pytest -m chaos $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

screenshots: $(VENV)/.installed
	QUEUECTL_SCREENSHOT_DIR=$(CURDIR)/docs $(PY) -m pytest -q tests/e2e/test_browser.py

# The fault and load suite (tests/chaos) at full size, round after round.
SOAK_MINUTES ?= 10
soak: $(VENV)/.installed
	$(PY) tests/chaos/soak.py --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

bench: $(VENV)/.installed
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
