# Two entry points, both doing their own set-up on a fresh machine:
#   make demo   - the seed's multi-model analysis on embedded defaults (no keys, no servers)
#   make test   - the whole test suite (starts its own Temporal dev server and PostgreSQL)
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-quorum clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/baton demo

test: $(STAMP)
	@bash tests/ensure-postgres.sh
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks.run

# quorum=2 against all-must-finish on the seed fan-out with one slow model (~3 minutes)
bench-quorum: $(STAMP)
	$(VENV)/bin/python -m benchmarks.quorum

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy baton_temporal

clean:
	rm -rf $(VENV) .baton .pytest_cache
