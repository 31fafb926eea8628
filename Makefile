# Two entry points, both doing their own set-up on a fresh machine:
#   make demo   - the seed's multi-model analysis on embedded defaults (no keys, no servers)
#   make test   - the whole test suite (starts its own Temporal dev server and PostgreSQL)
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: fault-kill demo test lint bench bench-quorum bench-scale rss-breakdown batch-faults big-flow clean histories histories-previous replay bench-sandbox bench-imports stream-soak bench-ui-events

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev,test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/baton demo

test: $(STAMP)
	@bash tests/ensure-postgres.sh
	@bash tests/ensure-tini.sh
	@bash tests/ensure-chromium.sh
	$(VENV)/bin/python -m pytest -q -n 2

bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks.run

# The replay corpus (tests/histories/, replayed in CI by tests/workflow/test_replay.py).
# `make histories` re-records this checkout's corpus (tests/histories/current);
# `make histories-previous` records the previous release (71585d7) from a worktree of it.
PREVIOUS_RELEASE ?= 71585d7
PREVIOUS_CODE ?= ../old-release
histories: $(STAMP)
	@bash tests/ensure-postgres.sh
	PYTHONPATH=$(CURDIR) $(VENV)/bin/python -m tests.histories.record

histories-previous: $(STAMP)
	@bash tests/ensure-postgres.sh
	test -d $(PREVIOUS_CODE) || git worktree add $(PREVIOUS_CODE) $(PREVIOUS_RELEASE)
	PYTHONPATH=$(CURDIR) $(VENV)/bin/python -m tests.histories.record \
		--code $(PREVIOUS_CODE) --release $(PREVIOUS_RELEASE)

replay: $(STAMP)
	PYTHONPATH=$(CURDIR) $(VENV)/bin/python -m tests.histories.replay

# Deliverable-1 measurements: sandboxed vs unsandboxed replay CPU; import and --help times.
bench-sandbox: $(STAMP)
	PYTHONPATH=$(CURDIR) $(VENV)/bin/python -m benchmarks.sandbox

# How the cost page hears of step changes: workflow_streams vs following history.
bench-ui-events: $(STAMP)
	PYTHONPATH=$(CURDIR) $(VENV)/bin/python -m benchmarks.ui_events --runs 7 --watchers 3

bench-imports: $(STAMP)
	PYTHONPATH=$(CURDIR) $(VENV)/bin/python -m benchmarks.imports

# A 10,000-step flow on a fresh dev server: wall time, history per run, peak pending
# activities (a few minutes on 2 cores); writes benchmarks/results/big_flow.json.
big-flow: $(STAMP)
	$(VENV)/bin/python -m benchmarks.big_flow --steps 10000

# quorum=2 against all-must-finish on the seed fan-out with one slow model (~3 minutes)
bench-quorum: $(STAMP)
	$(VENV)/bin/python -m benchmarks.quorum

# A reply streamed for 2.5 minutes inside a step, heartbeat timeout 10 s (docs/providers.md)
stream-soak: $(STAMP)
	PYTHONPATH=$(CURDIR) $(VENV)/bin/python -m benchmarks.stream_soak --seconds 150
# batch fan-outs across a Temporal server SIGKILL and restart, and a ledger outage when
# the results arrive (~1 min; docs/batch.md)
batch-faults: $(STAMP)
	$(VENV)/bin/python -m tests.batch.server_restart
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/batch/ledger_outage.py
# 1,000 seed flows in flight, 1 s model latency, real SDK clients to the stand-in: flows/s
# and worker RSS of baton against plain temporalio, ROUNDS rounds of every comparator in a
# rotated order, medians (~25 minutes on an idle 2-core machine); writes
# benchmarks/results/scale-$(FLOWS)-slots$(SLOTS).{json,md}. FLOWS=200 ROUNDS=1 for a quick run.
FLOWS ?= 1000
SLOTS ?= 100
ROUNDS ?= 3
bench-scale: $(STAMP)
	@bash tests/ensure-postgres.sh
	PYTHONPATH=$(CURDIR) $(VENV)/bin/python -m benchmarks.scale --flows $(FLOWS) --slots $(SLOTS) \
		--rounds $(ROUNDS)

# Where a worker's memory goes: RSS when polling, after the warm-up flows and per flow in
# flight for plain, baton and baton_noledger (FLOWS flows, 1 s models), with the modules,
# gc object types that grew; TRACE=1: also tracemalloc by line (RSS then inflated, ~5 min
# at FLOWS=200; more frames per block are far slower). One run of each comparator, ~6
# minutes at FLOWS=1000, ~2 at FLOWS=200. See benchmarks/README.md.
TRACE ?= 0
rss-breakdown: $(STAMP)
	@bash tests/ensure-postgres.sh
	PYTHONPATH=$(CURDIR) $(VENV)/bin/python -m benchmarks.rss_breakdown --flows $(FLOWS) \
		--trace $(TRACE)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy baton_temporal

clean:
	rm -rf $(VENV) .baton .pytest_cache

# The 20-trial worker-SIGKILL test (the suite runs 6 trials): billed vs recorded figures.
fault-kill: $(STAMP)
	@bash tests/ensure-postgres.sh
	BATON_KILL_TRIALS=20 PYTHONPATH=$(CURDIR) $(VENV)/bin/python -m pytest -q -s \
		-p no:cacheprovider tests/faults/test_worker_kill.py
