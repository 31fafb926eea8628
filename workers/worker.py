"""The baton-temporal worker program.

    BATON_STEPS=workers.examples.seed TEMPORAL_ADDRESS=localhost:7233 python -m workers.worker

Reads its settings from the environment (see ``baton_temporal.worker``), runs until
SIGTERM or Ctrl-C, lets running steps finish, and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from baton_temporal.ledger import LedgerError
from baton_temporal.llm import LLMConfigError
from baton_temporal.logs import configure_logging
from baton_temporal.worker import WorkerSettings, run_worker


def main() -> int:
    try:
        # One line per failed step attempt; tracebacks with BATON_LOG_LEVEL=debug.
        configure_logging(level=logging.INFO)
        settings = WorkerSettings.from_env()
        if not settings.step_modules:
            print(
                "baton worker: no steps to run; set BATON_STEPS to your step modules, e.g. "
                "BATON_STEPS=workers.examples.seed",
                file=sys.stderr,
            )
            return 2
        asyncio.run(run_worker(settings))
    except (ImportError, ValueError, ConnectionError, LedgerError, LLMConfigError) as err:
        print(f"baton worker: {err}", file=sys.stderr)
        return 2
    return 0


def _exit(code: int) -> None:
    """Leave without interpreter finalization: temporalio's Rust core keeps threads that
    may call into Python while it tears down, which aborts the process now and then with
    "Fatal Python error: PyGILState_Release" (temporalio/sdk-python#300) and turns a
    clean exit 2 (bad settings, unreachable server) into 134. All work is done here."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
