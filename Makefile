# Entry points, each doing the whole set-up on a fresh machine: `make demo`, `make lm-demo`, `make test`.
# torch is pinned here (not in pyproject) because on this project's machines torch 2.13.0 is a
# CPU wheel already on disk; elsewhere, install the torch build of your platform first.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

.PHONY: install demo lm-demo test lint package-data
install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/unlearn demo

lm-demo: $(VENV)/.installed
	$(VENV)/bin/unlearn lm demo

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks

test: lint
	$(VENV)/bin/pytest -n 2 -q

# The package's copies of configs/ and the demo's preset from results/mnist1d/tuning.json
# (run after changing a protocol or committing a re-run tuning; tests/test_packaged.py checks).
package-data: $(VENV)/.installed
	$(PY) tools/package_data.py
